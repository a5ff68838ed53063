"""GGUF header inspection and the model/mmproj checks the gguf engine makes before loading anything."""

from __future__ import annotations

import re
import shutil
import struct
from pathlib import Path

import pytest

from captioneer.backends.errors import ConfigurationError, ModelFileError
from captioneer.backends.gguf_files import (
    check_gguf_pair,
    check_mmproj_file,
    check_model_file,
    mmproj_candidates,
    pair_gguf_files,
    read_gguf_header,
)
from tests.conftest import FIXTURES

OTHER_MMPROJ = FIXTURES / "tiny-qwen3vl-w96-gguf" / "mmproj.gguf"


def rewrite_string(source: Path, key: str, value: str, target: Path) -> Path:
    """Copy a GGUF file with one string metadata value replaced (tensor data shifted to stay aligned)."""
    header = read_gguf_header(source)
    data = source.read_bytes()
    start, end = header.spans[key]
    key_bytes, value_bytes = key.encode(), value.encode()
    entry = struct.pack("<Q", len(key_bytes)) + key_bytes + struct.pack("<I", 8)
    entry += struct.pack("<Q", len(value_bytes)) + value_bytes
    head = data[:start] + entry + data[end : header.tensor_info_end]
    alignment = int(header.metadata.get("general.alignment", 32))
    head += b"\0" * (-len(head) % alignment)
    target.write_bytes(head + data[header.data_offset :])
    return target


def test_reads_the_tiny_pair(tiny_gguf: tuple[Path, Path]) -> None:
    model, mmproj = check_gguf_pair(*tiny_gguf)
    assert model.architecture == "qwen3vl"
    assert model.quantization == "F16"
    assert model.embedding_length == 64
    assert model.data_offset + model.data_size == model.file_size
    assert "<|im_start|>" in model.chat_template
    assert mmproj.is_mmproj and mmproj.has_vision
    assert mmproj.projector_type == "qwen3vl_merger"
    assert mmproj.projection_dim == 64


def test_rewrite_helper_keeps_a_loadable_file(tiny_gguf: tuple[Path, Path], tmp_path: Path) -> None:
    copy = rewrite_string(tiny_gguf[0], "general.name", "Renamed tiny model", tmp_path / "renamed.gguf")
    header = check_model_file(copy)
    assert header.name == "Renamed tiny model"
    assert header.tensors == read_gguf_header(tiny_gguf[0]).tensors
    assert header.data_offset + header.data_size == header.file_size


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp, model: tmp / "nope.gguf", "not found"),
        (lambda tmp, model: tmp, "is not a file"),
        (lambda tmp, model: _write(tmp / "empty.gguf", b""), "is empty (0 bytes)"),
        (lambda tmp, model: _write(tmp / "tiny.gguf", b"GGUF\x03\x00"), "too small"),
        (lambda tmp, model: _write(tmp / "notes.gguf", b"These are my notes, not a model.\n" * 10),
         "is not a GGUF file"),
        (lambda tmp, model: _write(tmp / "model.gguf", model.read_bytes()[:100]), "truncated"),
        (lambda tmp, model: _write(tmp / "model.gguf", model.read_bytes()[: model.stat().st_size // 2]),
         "truncated"),
        (lambda tmp, model: _write(tmp / "model.gguf", model.read_bytes()[:-1]), "truncated"),
        (lambda tmp, model: _write(tmp / "v9.gguf", b"GGUF" + struct.pack("<IQQ", 9, 0, 0)), "version 9"),
    ],
    ids=["missing", "directory", "zero-bytes", "too-small", "text-file", "cut-in-header", "cut-in-half",
         "one-byte-short", "unknown-version"],
)
def test_bad_model_files_are_refused_clearly(
    tiny_gguf: tuple[Path, Path], tmp_path: Path, make, message: str
) -> None:
    path = make(tmp_path, tiny_gguf[0])
    with pytest.raises(ModelFileError, match=re.escape(message)) as caught:
        check_gguf_pair(path, tiny_gguf[1])
    assert str(path) in str(caught.value) or path.name in str(caught.value)
    assert isinstance(caught.value, ConfigurationError) and caught.value.exit_code == 2


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_truncated_mmproj_is_refused(tiny_gguf: tuple[Path, Path], tmp_path: Path) -> None:
    cut = _write(tmp_path / "mmproj.gguf", tiny_gguf[1].read_bytes()[:-4096])
    with pytest.raises(ModelFileError, match="truncated"):
        check_gguf_pair(tiny_gguf[0], cut)


def test_mmproj_with_wrong_magic_is_refused(tiny_gguf: tuple[Path, Path], tmp_path: Path) -> None:
    fake = _write(tmp_path / "mmproj.gguf", b"\x89PNG" + tiny_gguf[1].read_bytes()[4:])
    with pytest.raises(ModelFileError, match="not a GGUF file"):
        check_gguf_pair(tiny_gguf[0], fake)


def test_missing_mmproj_says_what_to_pass_and_lists_candidates(
    tiny_gguf: tuple[Path, Path], tmp_path: Path
) -> None:
    model = tmp_path / "Qwen3VL-2B-Instruct-Q4_K_M.gguf"
    shutil.copyfile(tiny_gguf[0], model)
    with pytest.raises(ModelFileError, match="--mmproj") as caught:
        check_gguf_pair(model, None)
    assert "mmproj-" in str(caught.value) and "Found next to the model" not in str(caught.value)
    shutil.copyfile(tiny_gguf[1], tmp_path / "mmproj-Qwen3VL-2B-Instruct-F16.gguf")
    with pytest.raises(ModelFileError, match="Found next to the model: mmproj-Qwen3VL-2B-Instruct-F16.gguf"):
        check_gguf_pair(model, "")
    assert mmproj_candidates(model) == [tmp_path / "mmproj-Qwen3VL-2B-Instruct-F16.gguf"]


def test_missing_mmproj_file(tiny_gguf: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="not found"):
        check_gguf_pair(tiny_gguf[0], tmp_path / "mmproj.gguf")


def test_no_model_given(tiny_gguf: tuple[Path, Path]) -> None:
    with pytest.raises(ModelFileError, match="--model"):
        check_gguf_pair("", tiny_gguf[1])


def test_model_and_mmproj_swapped(tiny_gguf: tuple[Path, Path]) -> None:
    model, mmproj = tiny_gguf
    with pytest.raises(ModelFileError, match="is a vision projector .* --mmproj"):
        check_gguf_pair(mmproj, model)
    with pytest.raises(ModelFileError, match="is a qwen3vl language model, not a vision projector"):
        check_mmproj_file(model)


def test_model_given_twice(tiny_gguf: tuple[Path, Path]) -> None:
    with pytest.raises(ModelFileError, match="same file"):
        check_gguf_pair(tiny_gguf[0], tiny_gguf[0])


def test_mmproj_of_another_model_size_is_refused(tiny_gguf: tuple[Path, Path]) -> None:
    assert read_gguf_header(OTHER_MMPROJ).projection_dim == 96
    with pytest.raises(ModelFileError, match="96-wide embeddings, the model expects 64"):
        check_gguf_pair(tiny_gguf[0], OTHER_MMPROJ)


def test_mmproj_of_another_architecture_is_refused(tiny_gguf: tuple[Path, Path], tmp_path: Path) -> None:
    qwen25 = rewrite_string(tiny_gguf[1], "clip.projector_type", "qwen2.5vl_merger", tmp_path / "mmproj.gguf")
    expected = r"\(qwen2.5vl_merger\) does not belong to model.gguf \(a qwen3vl"
    with pytest.raises(ModelFileError, match=expected):
        check_gguf_pair(tiny_gguf[0], qwen25)


def test_mmproj_without_vision_encoder_is_refused(tiny_gguf: tuple[Path, Path], tmp_path: Path) -> None:
    header = read_gguf_header(tiny_gguf[1])
    start, end = header.spans["clip.has_vision_encoder"]
    data = bytearray(tiny_gguf[1].read_bytes())
    assert data[end - 1] == 1
    data[end - 1] = 0
    audio_only = _write(tmp_path / "mmproj-audio.gguf", bytes(data))
    with pytest.raises(ModelFileError, match="cannot read images"):
        check_gguf_pair(tiny_gguf[0], audio_only)


def test_absurd_counts_are_corrupt_not_a_memory_bomb(tmp_path: Path) -> None:
    bomb = _write(tmp_path / "bomb.gguf", b"GGUF" + struct.pack("<IQQ", 3, 2**60, 2**60) + b"\0" * 64)
    with pytest.raises(ModelFileError, match="truncated"):
        read_gguf_header(bomb)


# -- pairing the files a user already has ------------------------------------------------------------------


def test_picking_the_model_pairs_the_projector_that_fits(tiny_gguf, tmp_path: Path) -> None:
    model = Path(shutil.copy(tiny_gguf[0], tmp_path / "Qwen3VL-2B-Instruct-Q4_K_M.gguf"))
    mmproj = Path(shutil.copy(tiny_gguf[1], tmp_path / "mmproj-Qwen3VL-2B-Instruct-F16.gguf"))
    shutil.copy(OTHER_MMPROJ, tmp_path / "mmproj-Qwen3VL-8B-Instruct-F16.gguf")  # another size: not a choice

    files = pair_gguf_files(model)
    assert (files.model.path, files.mmproj.path, files.projectors) == (model, mmproj, (mmproj,))
    from_projector = pair_gguf_files(mmproj)  # picking the projector first finds the model
    assert (from_projector.model.path, from_projector.mmproj.path) == (model, mmproj)


def test_several_or_no_fitting_projectors_leave_the_choice_open(tiny_gguf, tmp_path: Path) -> None:
    model = Path(shutil.copy(tiny_gguf[0], tmp_path / "model.gguf"))
    assert pair_gguf_files(model).mmproj is None and pair_gguf_files(model).projectors == ()
    first = Path(shutil.copy(tiny_gguf[1], tmp_path / "mmproj-F16.gguf"))
    second = Path(shutil.copy(tiny_gguf[1], tmp_path / "mmproj-Q8_0.gguf"))
    files = pair_gguf_files(model)
    assert files.mmproj is None and files.projectors == (first, second)


def test_a_projector_alone_asks_for_the_model(tiny_gguf, tmp_path: Path) -> None:
    mmproj = Path(shutil.copy(tiny_gguf[1], tmp_path / "mmproj.gguf"))
    with pytest.raises(ModelFileError, match="no language model that fits it") as caught:
        pair_gguf_files(mmproj)
    assert "--model" in str(caught.value) and "--model" not in caught.value.window_text
    with pytest.raises(ModelFileError, match="not a GGUF file"):
        pair_gguf_files(Path(shutil.copy(Path(__file__), tmp_path / "notes.gguf")))
