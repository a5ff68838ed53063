"""The model catalog: Qwen3-VL sizes and the variants each engine runs, read from resources/models.toml."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from captioneer.backends.errors import ConfigurationError, ModelFileError
from captioneer.backends.registry import EngineEntry, engine_entry

TRANSFORMERS_FILE_PATTERNS = (
    "*.safetensors",
    "*.json",
    "*.jinja",
    "*.txt",
    "tokenizer*",
)
"""Files of a transformers repo that loading needs (weights, configs, tokenizer, chat template); READMEs and
pictures are left on the hub."""


@dataclass(frozen=True)
class ModelSpec:
    """One Qwen3-VL size and the architecture numbers the estimates need.

    Attributes:
        id: e.g. ``qwen3-vl-8b``.
        name: e.g. ``Qwen3-VL 8B Instruct``.
        params_b: all parameters in billions (LLM + vision encoder).
        vision_params_b: the vision encoder's share, in billions.
        layers, hidden, kv_heads, head_dim: the language model.
        vision_depth, vision_hidden, vision_heads: the vision encoder.
    """

    id: str
    name: str
    params_b: float
    vision_params_b: float
    layers: int
    hidden: int
    kv_heads: int
    head_dim: int
    vision_depth: int
    vision_hidden: int
    vision_heads: int

    @property
    def size_label(self) -> str:
        """``2B``, ``4B`` or ``8B``: the part of the id people recognise."""
        return self.id.rsplit("-", 1)[-1].upper()

    @property
    def llm_params_b(self) -> float:
        return self.params_b - self.vision_params_b

    @property
    def kv_bytes_per_token(self) -> int:
        """KV cache per context token at f16: keys and values for every layer and KV head."""
        return 2 * self.layers * self.kv_heads * self.head_dim * 2


@dataclass(frozen=True)
class Variant:
    """One way to run a model: engine × quantization, with where its files come from.

    Attributes:
        id: what ``captioneer models pull`` takes, e.g. ``qwen3-vl-8b-gguf-q4_k_m``.
        model: the size it belongs to.
        engine: ``gguf``, ``transformers`` or ``ollama``.
        quant: ``Q4_K_M``/``Q8_0``/``F16`` (gguf), ``bf16``/``fp16``/``fp32``/``nf4``/``int8`` (transformers),
            the tag's quantization (ollama).
        repo: hub repository (gguf, transformers); ``None`` for Ollama.
        tag: Ollama tag; ``None`` otherwise.
        download_gb: bytes to fetch, in GB.
        weights_gb: memory the weights take when loaded, in GB (gguf: model file + mmproj).
        decode_gb: weights read for every generated token (the language model only), in GB.
        mmproj_quant: the vision projector's quantization (gguf).
    """

    id: str
    model: ModelSpec
    engine: str
    quant: str
    repo: str | None
    tag: str | None
    download_gb: float
    weights_gb: float
    decode_gb: float
    mmproj_quant: str | None = None

    @property
    def entry(self) -> EngineEntry:
        """The engine's registry entry: the traits that decide how this variant is downloaded and run."""
        return engine_entry(self.engine)

    @property
    def store(self) -> str | None:
        """The folder under the models directory holding this variant's files: its own for a GGUF file; one
        per model for a repository snapshot, which every precision shares (NF4 and int8 are quantized while
        loading); None where the server keeps its own store."""
        download = self.entry.download
        if download == "gguf":
            return self.id
        if download == "snapshot":
            return f"{self.model.id}-{self.engine}"
        return None

    @property
    def pull_name(self) -> str:
        """What people type and read for it: the tag where the server pulls it, else the profile id."""
        return self.tag or self.id

    @property
    def label(self) -> str:
        """Short human name, e.g. ``8B Q4_K_M (gguf)``."""
        return f"{self.model.size_label} {self.quant} ({self.engine})"


@dataclass(frozen=True)
class Catalog:
    """Every model size and variant Captioneer knows."""

    models: dict[str, ModelSpec]
    variants: tuple[Variant, ...]

    def find(self, name: str) -> Variant:
        """The variant called ``name``: a variant id (``qwen3-vl-2b-gguf-q4_k_m``) or an Ollama tag
        (``qwen3-vl:2b-instruct``), case-insensitive.

        Raises:
            ConfigurationError: no such variant.
        """
        wanted = name.strip().lower()
        for variant in self.variants:
            if wanted in (variant.id, (variant.tag or "").lower()):
                return variant
        known = ", ".join(v.pull_name for v in self.variants)
        raise ConfigurationError(f"Unknown model profile '{name}'. Known profiles: {known}.")

    def by_store(self, store: str) -> list[Variant]:
        """The variants whose files live in the folder ``store``."""
        return [variant for variant in self.variants if variant.store == store]


def _gb(value: Any, where: str) -> float:
    if not isinstance(value, int | float) or value <= 0:
        raise ConfigurationError(f"models.toml: {where} must be a positive number of GB, not {value!r}.")
    return float(value)


def _model_spec(model_id: str, data: dict[str, Any]) -> ModelSpec:
    try:
        return ModelSpec(
            id=model_id,
            name=str(data["name"]),
            params_b=float(data["params_b"]),
            vision_params_b=float(data["vision_params_b"]),
            layers=int(data["layers"]),
            hidden=int(data["hidden"]),
            kv_heads=int(data["kv_heads"]),
            head_dim=int(data["head_dim"]),
            vision_depth=int(data["vision_depth"]),
            vision_hidden=int(data["vision_hidden"]),
            vision_heads=int(data["vision_heads"]),
        )
    except KeyError as exc:
        raise ConfigurationError(f"models.toml: [models.{model_id}] lacks {exc.args[0]}.") from None


def _variants(spec: ModelSpec, data: dict[str, Any]) -> Iterable[Variant]:
    llm_share = spec.llm_params_b / spec.params_b
    gguf = data.get("gguf")
    if gguf:
        mmproj_gb = _gb(gguf["mmproj_gb"], f"{spec.id}.gguf.mmproj_gb")
        for quant, file_gb in gguf["quants"].items():
            file_gb = _gb(file_gb, f"{spec.id}.gguf.quants.{quant}")
            yield Variant(
                id=f"{spec.id}-gguf-{quant.lower()}",
                model=spec,
                engine="gguf",
                quant=quant,
                repo=gguf["repo"],
                tag=None,
                download_gb=file_gb + mmproj_gb,
                weights_gb=file_gb + mmproj_gb,
                decode_gb=file_gb,
                mmproj_quant=gguf["mmproj_quant"],
            )
    hf = data.get("transformers")
    if hf:
        download_gb = _gb(hf["download_gb"], f"{spec.id}.transformers.download_gb")
        for quant, weights_gb in hf["weights_gb"].items():
            weights_gb = _gb(weights_gb, f"{spec.id}.transformers.weights_gb.{quant}")
            yield Variant(
                id=f"{spec.id}-transformers-{quant.lower()}",
                model=spec,
                engine="transformers",
                quant=quant,
                repo=hf["repo"],
                tag=None,
                download_gb=download_gb,
                weights_gb=weights_gb,
                decode_gb=weights_gb * llm_share,
            )
    ollama = data.get("ollama")
    if ollama:
        size_gb = _gb(ollama["size_gb"], f"{spec.id}.ollama.size_gb")
        # An Ollama tag bundles the language model with the same vision projector as the GGUF repo.
        mmproj_gb = gguf["mmproj_gb"] if gguf and gguf["mmproj_gb"] < size_gb else 0.0
        yield Variant(
            id=f"{spec.id}-ollama",
            model=spec,
            engine="ollama",
            quant=ollama["quant"],
            repo=None,
            tag=ollama["tag"],
            download_gb=size_gb,
            weights_gb=size_gb,
            decode_gb=size_gb - mmproj_gb if mmproj_gb else size_gb * llm_share,
        )


def parse_catalog(data: dict[str, Any]) -> Catalog:
    """Build the catalog from the parsed TOML (see the comments atop resources/models.toml).

    Raises:
        ConfigurationError: a field is missing or wrong.
    """
    models: dict[str, ModelSpec] = {}
    variants: list[Variant] = []
    for model_id, model_data in data.get("models", {}).items():
        spec = _model_spec(model_id, model_data)
        models[model_id] = spec
        variants.extend(_variants(spec, model_data))
    if not variants:
        raise ConfigurationError("models.toml lists no models.")
    return Catalog(models=models, variants=tuple(variants))


@cache
def load_catalog() -> Catalog:
    """The catalog shipped in ``captioneer.resources`` (resources/models.toml)."""
    try:
        root = resources.files("captioneer.resources")
    except ModuleNotFoundError:
        # A source checkout or an editable install, where resources/ is not installed as a package.
        root = Path(__file__).resolve().parents[1] / "resources"
    text = root.joinpath("models.toml").read_text(encoding="utf-8")
    return parse_catalog(tomllib.loads(text))


def _has_token(name: str, token: str) -> bool:
    """Whether ``token`` (``q4_k_m``, ``f16``…) appears in ``name`` on its own: ``f16`` is not ``bf16``."""
    return re.search(rf"(?<![a-z0-9]){re.escape(token.lower())}(?![a-z0-9])", name.lower()) is not None


def _basename(filename: str) -> str:
    return PurePosixPath(filename).name


def _is_mmproj(filename: str) -> bool:
    return _basename(filename).lower().startswith("mmproj")


def resolve_gguf_files(filenames: Iterable[str], quant: str, mmproj_quant: str) -> tuple[str, str]:
    """Pick the model file and its vision projector from a GGUF repo's file list.

    Args:
        filenames: every file in the repo (paths relative to its root).
        quant: the model file's quantization, e.g. ``Q4_K_M``.
        mmproj_quant: the projector's quantization, e.g. ``F16``.

    Returns:
        ``(model_file, mmproj_file)``.

    Raises:
        ModelFileError: none or several files match; the message lists what the repo has.
    """
    ggufs = [name for name in filenames if name.lower().endswith(".gguf")]
    models = [name for name in ggufs if not _is_mmproj(name) and _has_token(_basename(name), quant)]
    projectors = [name for name in ggufs if _is_mmproj(name) and _has_token(_basename(name), mmproj_quant)]
    available = ", ".join(sorted(ggufs)) or "no GGUF files"
    for kind, found, wanted in (("model", models, quant), ("mmproj", projectors, mmproj_quant)):
        if len(found) != 1:
            problem = "no" if not found else f"{len(found)}"
            raise ModelFileError(
                f"The repository has {problem} {wanted} {kind} file{'s' if found else ''} "
                f"(it has: {available}) — the catalog needs updating."
            )
    return models[0], projectors[0]


def transformers_files(filenames: Iterable[str]) -> list[str]:
    """The files of a transformers repo that loading needs (see :data:`TRANSFORMERS_FILE_PATTERNS`)."""
    return sorted(
        name
        for name in filenames
        if any(fnmatch.fnmatch(_basename(name), pattern) for pattern in TRANSFORMERS_FILE_PATTERNS)
    )

