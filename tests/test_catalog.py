"""The model catalog: resources/models.toml parsed into sizes and variants, and GGUF file resolution."""

from __future__ import annotations

import tomllib

import pytest

from captioneer.backends.catalog import load_catalog, parse_catalog, resolve_gguf_files, transformers_files
from captioneer.backends.errors import ConfigurationError, ModelFileError
from captioneer.desktop.core.paths import resource_path

# A realistic listing of an official Qwen GGUF repo (names as the hub shows them).
QWEN_GGUF_LISTING = [
    ".gitattributes",
    "README.md",
    "Qwen3VL-8B-Instruct-BF16.gguf",
    "Qwen3VL-8B-Instruct-F16.gguf",
    "Qwen3VL-8B-Instruct-Q4_K_M.gguf",
    "Qwen3VL-8B-Instruct-Q8_0.gguf",
    "mmproj-Qwen3VL-8B-Instruct-F16.gguf",
    "mmproj-Qwen3VL-8B-Instruct-Q8_0.gguf",
]


def test_every_size_has_every_engine_and_quantization():
    catalog = load_catalog()
    assert set(catalog.models) == {"qwen3-vl-2b", "qwen3-vl-4b", "qwen3-vl-8b"}
    for model_id in catalog.models:
        kinds = {(v.engine, v.quant) for v in catalog.variants if v.model.id == model_id}
        assert {("gguf", "Q4_K_M"), ("gguf", "Q8_0"), ("gguf", "F16")} <= kinds
        assert {("transformers", q) for q in ("bf16", "fp16", "fp32", "nf4", "int8")} <= kinds
        ollama = [v for v in catalog.variants if v.model.id == model_id and v.engine == "ollama"]
        assert len(ollama) == 1 and ollama[0].tag.endswith("-instruct")


def test_numbers_match_the_reference():
    catalog = load_catalog()
    # KV cache per token at f16, models.md: 112 KiB (2B), 144 KiB (4B, 8B).
    assert catalog.models["qwen3-vl-2b"].kv_bytes_per_token == 112 * 1024
    assert catalog.models["qwen3-vl-8b"].kv_bytes_per_token == 144 * 1024
    q4 = catalog.find("qwen3-vl-8b-gguf-q4_k_m")
    assert q4.download_gb == pytest.approx(5.03 + 1.16)
    assert q4.decode_gb == pytest.approx(5.03)  # the mmproj is not read per generated token
    assert q4.repo == "Qwen/Qwen3-VL-8B-Instruct-GGUF" and q4.mmproj_quant == "F16"
    assert catalog.find("qwen3-vl-2b-transformers-nf4").weights_gb < catalog.find(
        "qwen3-vl-2b-transformers-bf16"
    ).weights_gb


def test_find_by_id_or_ollama_tag():
    catalog = load_catalog()
    assert catalog.find("QWEN3-VL-4B-GGUF-Q8_0").quant == "Q8_0"
    assert catalog.find("qwen3-vl:2b-instruct").engine == "ollama"
    with pytest.raises(ConfigurationError, match="Unknown model profile 'qwen3-vl-3b'.*qwen3-vl:8b-instruct"):
        catalog.find("qwen3-vl-3b")


def test_download_folders():
    catalog = load_catalog()
    assert catalog.find("qwen3-vl-2b-gguf-q4_k_m").store == "qwen3-vl-2b-gguf-q4_k_m"
    # NF4 and int8 are quantized while loading: all precisions share one download.
    shared = {v.store for v in catalog.variants if v.model.id == "qwen3-vl-2b" and v.engine == "transformers"}
    assert shared == {"qwen3-vl-2b-transformers"}
    assert len(catalog.by_store("qwen3-vl-2b-transformers")) == 5
    assert catalog.find("qwen3-vl:8b-instruct").store is None


def test_the_data_file_is_the_shipped_resource():
    with resource_path("models.toml").open("rb") as fh:
        assert parse_catalog(tomllib.load(fh)) == load_catalog()


def test_a_broken_catalog_says_what_is_missing():
    with pytest.raises(ConfigurationError, match=r"\[models.x\] lacks layers"):
        parse_catalog({"models": {"x": {"name": "X", "params_b": 1, "vision_params_b": 0.1}}})
    with pytest.raises(ConfigurationError, match="lists no models"):
        parse_catalog({})


@pytest.mark.parametrize(
    ("quant", "mmproj_quant", "expected"),
    [
        ("Q4_K_M", "F16", ("Qwen3VL-8B-Instruct-Q4_K_M.gguf", "mmproj-Qwen3VL-8B-Instruct-F16.gguf")),
        ("F16", "F16", ("Qwen3VL-8B-Instruct-F16.gguf", "mmproj-Qwen3VL-8B-Instruct-F16.gguf")),  # not BF16
        ("Q8_0", "Q8_0", ("Qwen3VL-8B-Instruct-Q8_0.gguf", "mmproj-Qwen3VL-8B-Instruct-Q8_0.gguf")),
    ],
)
def test_gguf_files_are_resolved_from_the_listing(quant, mmproj_quant, expected):
    assert resolve_gguf_files(QWEN_GGUF_LISTING, quant, mmproj_quant) == expected


def test_gguf_resolution_fails_clearly():
    with pytest.raises(ModelFileError, match="no Q5_K_M model file.*Qwen3VL-8B-Instruct-Q4_K_M.gguf"):
        resolve_gguf_files(QWEN_GGUF_LISTING, "Q5_K_M", "F16")
    with pytest.raises(ModelFileError, match="no F32 mmproj"):
        resolve_gguf_files(QWEN_GGUF_LISTING, "Q4_K_M", "F32")
    ambiguous = [*QWEN_GGUF_LISTING, "sub/Qwen3VL-8B-Instruct-Q4_K_M.gguf"]
    with pytest.raises(ModelFileError, match="2 Q4_K_M model files"):
        resolve_gguf_files(ambiguous, "Q4_K_M", "F16")


def test_transformers_files_leave_readmes_and_pictures():
    listing = ["README.md", ".gitattributes", "config.json", "model-00001-of-00002.safetensors",
               "model-00002-of-00002.safetensors", "model.safetensors.index.json", "tokenizer.json",
               "tokenizer_config.json", "merges.txt", "vocab.json", "chat_template.jinja", "demo.jpeg"]
    assert transformers_files(listing) == sorted(set(listing) - {"README.md", ".gitattributes", "demo.jpeg"})
