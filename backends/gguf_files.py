"""GGUF file inspection without llama.cpp: header, metadata and tensor table, and the model/mmproj checks.

Reading a header costs milliseconds and no memory beyond the metadata, so the engine, the model catalog and
the downloader can all check a file (complete? a language model or a vision projector? a matching pair?)
before anything slow or native touches it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from captioneer.backends.errors import ModelFileError, setting

MAGIC = b"GGUF"
HEADER_BYTES = 24
"""Magic, version, tensor count and metadata count: the smallest possible GGUF file."""

DEFAULT_ALIGNMENT = 32

# GGUF metadata value types (the numbers are the file format's).
_SCALARS: dict[int, str] = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
                            11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_SMALL_ARRAY = 64
"""Arrays up to this length are kept in ``metadata``; longer ones (the vocabulary) only by length."""

# ggml tensor type -> (elements per block, bytes per block), from ggml's type table.
TENSOR_BLOCKS: dict[int, tuple[int, int]] = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 40),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
    16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110),
    22: (256, 82), 23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8),
    29: (256, 56), 30: (1, 2), 34: (256, 54), 35: (256, 66), 39: (32, 17), 40: (64, 36), 41: (128, 18),
}

# general.file_type -> the quantization name people see in file names.
FILE_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S",
    12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K",
    19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL",
    26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0",
    37: "TQ2_0", 38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0",
}

# Vision projector type -> the language-model architectures it was trained with.
PROJECTOR_ARCHITECTURES: dict[str, frozenset[str]] = {
    "qwen3vl_merger": frozenset({"qwen3vl", "qwen3vlmoe"}),
    "qwen2vl_merger": frozenset({"qwen2vl"}),
    "qwen2.5vl_merger": frozenset({"qwen2vl"}),
}

MMPROJ_HINT = (
    "The vision projector is a separate file named like 'mmproj-…-F16.gguf' in the same Hugging Face "
    "repository as the model (for example Qwen/Qwen3-VL-2B-Instruct-GGUF); it is usually downloaded into "
    "the same folder as the model."
)


@dataclass(frozen=True)
class ArrayInfo:
    """A metadata array too long to keep (for example the vocabulary): its element type and length."""

    item_type: int
    length: int


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    type: int
    offset: int


@dataclass(frozen=True)
class GGUFHeader:
    """What a GGUF file says about itself, read from its header.

    Attributes:
        path: the file.
        version: GGUF format version (2 or 3).
        metadata: key -> value; long arrays appear as :class:`ArrayInfo`.
        tensors: the tensor table.
        spans: key -> (start, end) byte range of each metadata entry in the file.
        tensor_info_end: where the tensor table ends.
        data_offset: where tensor data starts (aligned).
        data_size: bytes of tensor data the table describes (None if a tensor type is unknown).
        file_size: the file's size on disk.
    """

    path: Path
    version: int
    metadata: dict[str, Any]
    tensors: tuple[TensorInfo, ...]
    spans: dict[str, tuple[int, int]] = field(repr=False)
    tensor_info_end: int
    data_offset: int
    data_size: int | None
    file_size: int

    @property
    def architecture(self) -> str | None:
        return self.metadata.get("general.architecture")

    @property
    def is_mmproj(self) -> bool:
        """A vision (or audio) projector for llama.cpp's mtmd, not a language model."""
        return self.metadata.get("general.type") == "mmproj" or self.architecture == "clip"

    @property
    def has_vision(self) -> bool:
        return bool(self.metadata.get("clip.has_vision_encoder"))

    @property
    def quantization(self) -> str | None:
        file_type = self.metadata.get("general.file_type")
        if file_type is None:
            return None
        return FILE_TYPES.get(int(file_type), f"type {file_type}")

    @property
    def embedding_length(self) -> int | None:
        """The language model's hidden size."""
        value = self.metadata.get(f"{self.architecture}.embedding_length")
        return None if value is None else int(value)

    @property
    def projection_dim(self) -> int | None:
        """The width of the embeddings the projector feeds to the language model."""
        value = self.metadata.get("clip.vision.projection_dim")
        return None if value is None else int(value)

    @property
    def projector_type(self) -> str | None:
        return self.metadata.get("clip.vision.projector_type") or self.metadata.get("clip.projector_type")

    @property
    def chat_template(self) -> str | None:
        return self.metadata.get("tokenizer.chat_template")

    @property
    def name(self) -> str:
        return str(self.metadata.get("general.name") or self.path.name)


class _Reader:
    """Sequential little-endian reads that turn a short read into a 'truncated' error."""

    def __init__(self, fh: BinaryIO, path: Path, size: int) -> None:
        self.fh, self.path, self.size = fh, path, size

    def tell(self) -> int:
        return self.fh.tell()

    def read(self, n: int) -> bytes:
        if n < 0 or self.fh.tell() + n > self.size:
            raise _truncated(self.path, self.size, "its header ends early")
        return self.fh.read(n)

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        raw = self.read(self.unpack("<Q"))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ModelFileError(f"{self.path} is corrupt: its header holds text that is not UTF-8.") \
                from None

    def skip_strings(self, count: int) -> None:
        for _ in range(count):
            length = self.unpack("<Q")
            if self.fh.tell() + length > self.size:
                raise _truncated(self.path, self.size, "its header ends early")
            self.fh.seek(length, 1)

    def value(self, value_type: int) -> Any:
        if value_type in _SCALARS:
            return self.unpack(_SCALARS[value_type])
        if value_type == _STRING:
            return self.string()
        if value_type == _ARRAY:
            item_type, length = self.unpack("<I"), self.unpack("<Q")
            if length <= _SMALL_ARRAY:
                return [self.value(item_type) for _ in range(length)]
            if item_type in _SCALARS:
                item_bytes = struct.calcsize(_SCALARS[item_type])
                if self.fh.tell() + item_bytes * length > self.size:
                    raise _truncated(self.path, self.size, "its header ends early")
                self.fh.seek(item_bytes * length, 1)
            elif item_type == _STRING:
                self.skip_strings(length)
            else:
                for _ in range(length):
                    self.value(item_type)
            return ArrayInfo(item_type, length)
        raise ModelFileError(f"{self.path} is corrupt: unknown metadata value type {value_type}.")


def _truncated(path: Path, size: int, why: str) -> ModelFileError:
    return ModelFileError(
        f"{path} is truncated ({size:,} bytes; {why}) — probably an interrupted download. Download it again."
    )


def _tensor_bytes(tensor: TensorInfo) -> int | None:
    block = TENSOR_BLOCKS.get(tensor.type)
    if block is None:
        return None
    elements = 1
    for dim in tensor.shape:
        elements *= dim
    per_block, block_bytes = block
    return -(-elements // per_block) * block_bytes


def read_gguf_header(path: str | Path) -> GGUFHeader:
    """Read and check a GGUF file's header and tensor table.

    Raises:
        ModelFileError: the file is missing, not a file, too small, not GGUF, of an unsupported version,
            corrupt or truncated (shorter than its tensor table says).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelFileError(f"Model file not found: {path}")
    if not path.is_file():
        raise ModelFileError(f"{path} is not a file (a GGUF model is one .gguf file).")
    size = path.stat().st_size
    if size == 0:
        raise ModelFileError(
            f"{path} is empty (0 bytes) — probably an interrupted download. Download it again."
        )
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise ModelFileError(f"Cannot read {path}: {exc.strerror}.") from None
    with fh:
        magic = fh.read(4)
        if magic != MAGIC and not (len(magic) < len(MAGIC) and MAGIC.startswith(magic)):
            raise ModelFileError(
                f"{path} is not a GGUF file (it starts with {magic[:4]!r}, not b'GGUF'). "
                "Pick the .gguf file of the model."
            )
        if size < HEADER_BYTES:
            raise ModelFileError(
                f"{path} is only {size} bytes — too small to be a GGUF model. Download it again."
            )
        reader = _Reader(fh, path, size)
        version = reader.unpack("<I")
        if version not in (2, 3):
            raise ModelFileError(f"{path} uses GGUF version {version}, which llama.cpp cannot read.")
        tensor_count, kv_count = reader.unpack("<Q"), reader.unpack("<Q")
        # Every entry takes at least 8 bytes: a count beyond that is a corrupt header, not a huge file.
        if (tensor_count + kv_count) * 8 > size:
            raise _truncated(path, size, f"its header announces {tensor_count:,} tensors")
        metadata: dict[str, Any] = {}
        spans: dict[str, tuple[int, int]] = {}
        for _ in range(kv_count):
            start = reader.tell()
            key = reader.string()
            metadata[key] = reader.value(reader.unpack("<I"))
            spans[key] = (start, reader.tell())
        tensors = []
        for _ in range(tensor_count):
            name = reader.string()
            n_dims = reader.unpack("<I")
            if n_dims > 8:
                raise ModelFileError(f"{path} is corrupt: tensor {name} has {n_dims} dimensions.")
            shape = tuple(reader.unpack("<Q") for _ in range(n_dims))
            tensors.append(TensorInfo(name, shape, reader.unpack("<I"), reader.unpack("<Q")))
        tensor_info_end = reader.tell()
    alignment = int(metadata.get("general.alignment", DEFAULT_ALIGNMENT)) or DEFAULT_ALIGNMENT
    data_offset = -(-tensor_info_end // alignment) * alignment
    sizes = [_tensor_bytes(tensor) for tensor in tensors]
    if all(size_ is not None for size_ in sizes):
        data_size: int | None = max(
            (tensor.offset + size_ for tensor, size_ in zip(tensors, sizes, strict=True)), default=0
        )
        needed = data_offset + data_size
    else:
        # A tensor type newer than this table: at least every tensor must start inside the file.
        data_size = None
        needed = data_offset + max((tensor.offset for tensor in tensors), default=0)
    if size < needed:
        raise _truncated(path, size, f"its tensors need {needed:,} bytes")
    return GGUFHeader(
        path=path, version=version, metadata=metadata, tensors=tuple(tensors), spans=spans,
        tensor_info_end=tensor_info_end, data_offset=data_offset, data_size=data_size, file_size=size,
    )


def mmproj_candidates(model_path: str | Path) -> list[Path]:
    """Files next to ``model_path`` that look like vision projectors, by name."""
    folder = Path(model_path).expanduser().parent
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.gguf") if "mmproj" in p.name.lower())


def check_model_file(path: str | Path) -> GGUFHeader:
    """Check that ``path`` is a complete GGUF language model (not a vision projector)."""
    header = read_gguf_header(path)
    if header.is_mmproj:
        raise ModelFileError(
            f"{header.path} is a vision projector (mmproj), not the language model. "
            + setting("mmproj", "Pass it with --mmproj and give",
                      "Choose it as the vision projector and choose")
            + " the model file (e.g. Qwen3VL-2B-Instruct-Q4_K_M.gguf) "
            + setting("model", "as --model.", "as the model.")
        )
    if header.architecture is None:
        raise ModelFileError(f"{header.path} is not a language model: its header names no architecture.")
    if header.embedding_length is None:
        raise ModelFileError(
            f"{header.path} is not a complete {header.architecture} model: its header has no "
            f"{header.architecture}.embedding_length."
        )
    return header


def check_mmproj_file(path: str | Path) -> GGUFHeader:
    """Check that ``path`` is a complete GGUF vision projector (mmproj)."""
    if not Path(path).expanduser().exists():
        raise ModelFileError(
            f"Vision projector not found: {Path(path).expanduser()}. "
            + setting("mmproj", "Pass its mmproj .gguf file with --mmproj.", "Choose its mmproj .gguf file.")
        )
    header = read_gguf_header(path)
    if not header.is_mmproj:
        what = f"a {header.architecture} language model" if header.architecture else "not a vision projector"
        raise ModelFileError(
            f"{header.path} is {what}, not a vision projector (mmproj). {MMPROJ_HINT}"
        )
    if not header.has_vision:
        raise ModelFileError(
            f"{header.path} is a projector without a vision encoder (audio only?): it cannot read images."
        )
    return header


def check_pair(model: GGUFHeader, mmproj: GGUFHeader) -> None:
    """Check that ``mmproj`` was made for ``model``: same embedding width, a projector for its family."""
    expected = PROJECTOR_ARCHITECTURES.get(mmproj.projector_type or "")
    if expected is not None and model.architecture not in expected:
        raise ModelFileError(
            f"The vision projector {mmproj.path.name} ({mmproj.projector_type}) does not belong to "
            f"{model.path.name} (a {model.architecture} model). Use the mmproj file from the model's own "
            "repository."
        )
    if mmproj.projection_dim is not None and mmproj.projection_dim != model.embedding_length:
        raise ModelFileError(
            f"The vision projector {mmproj.path.name} does not match {model.path.name}: it makes "
            f"{mmproj.projection_dim}-wide embeddings, the model expects {model.embedding_length}. "
            "They are from different model sizes; use the mmproj file from the model's own repository."
        )


def check_gguf_pair(model_path: str | Path, mmproj_path: str | Path | None) -> tuple[GGUFHeader, GGUFHeader]:
    """All checks the gguf engine makes before loading: model file, mmproj file, and that they match.

    Raises:
        ModelFileError: with a message that says which file is wrong and what to do.
    """
    if not model_path:
        raise ModelFileError(
            "No GGUF model given: "
            + setting("model", "pass --model with the path of", "choose") + " a Qwen3-VL .gguf file."
        )
    model = check_model_file(model_path)
    if not mmproj_path:
        beside = mmproj_candidates(model.path)
        found = f" Found next to the model: {', '.join(p.name for p in beside)}." if beside else ""
        raise ModelFileError(
            f"No vision projector given for {model.path.name}: without it the model cannot see images. "
            + setting("mmproj", "Pass --mmproj with its mmproj .gguf file.", "Choose its mmproj .gguf file.")
            + f"{found} {MMPROJ_HINT}"
        )
    mmproj_file = Path(mmproj_path).expanduser()
    if mmproj_file.exists() and mmproj_file.resolve() == model.path.resolve():
        raise ModelFileError(
            setting("mmproj", "--model and --mmproj are", "The model and the vision projector are")
            + f" the same file ({model.path}). {MMPROJ_HINT}"
        )
    mmproj = check_mmproj_file(mmproj_file)
    check_pair(model, mmproj)
    return model, mmproj


@dataclass(frozen=True)
class GGUFFiles:
    """What a picked GGUF file pairs with, found by :func:`pair_gguf_files`.

    Attributes:
        model: the language model.
        mmproj: its vision projector, when exactly one file next to it fits; else None.
        projectors: the projectors next to the model that fit it (several when ``mmproj`` is None and a
            choice is needed; empty when none was found).
    """

    model: GGUFHeader
    mmproj: GGUFHeader | None
    projectors: tuple[Path, ...] = ()


def _fitting_projectors(model: GGUFHeader) -> list[GGUFHeader]:
    fitting = []
    for candidate in mmproj_candidates(model.path):
        try:
            header = check_mmproj_file(candidate)
            check_pair(model, header)
        except ModelFileError:
            continue  # a projector of another model (or a broken one) in the same folder is not a choice
        fitting.append(header)
    return fitting


def pair_gguf_files(picked: str | Path) -> GGUFFiles:
    """The model and vision projector that go together, from either one of them.

    A language model is paired with the one projector next to it (``mmproj`` in its name) that fits it; a
    projector is paired with the one language model next to it that it fits.

    Raises:
        ModelFileError: the file is not a usable GGUF file; a projector with no (or several) models next to
            it that it fits.
    """
    header = read_gguf_header(picked)
    if not header.is_mmproj:
        model = check_model_file(header.path)
        fitting = _fitting_projectors(model)
        mmproj = fitting[0] if len(fitting) == 1 else None
        return GGUFFiles(model, mmproj, tuple(h.path for h in fitting))
    mmproj = check_mmproj_file(header.path)
    models = []
    for candidate in sorted(mmproj.path.parent.glob("*.gguf")):
        if candidate == mmproj.path or "mmproj" in candidate.name.lower():
            continue
        try:
            model = check_model_file(candidate)
            check_pair(model, mmproj)
        except ModelFileError:
            continue
        models.append(model)
    if len(models) != 1:
        found = (f"several fit it ({', '.join(m.path.name for m in models)})" if models
                 else "no language model that fits it is in its folder")
        raise ModelFileError(
            f"{mmproj.path.name} is a vision projector, and {found}. "
            + setting("model", "Pass the model file with --model.", "Choose the model's .gguf file instead.")
        )
    return GGUFFiles(models[0], mmproj, (mmproj.path,))
