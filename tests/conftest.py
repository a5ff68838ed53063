"""Shared test fixtures: a CAPTIONEER_HOME per test, offscreen Qt, paths of the tiny models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
TINY_HF_MODEL = FIXTURES / "tiny-qwen3vl"
TINY_GGUF_MODEL = FIXTURES / "tiny-qwen3vl-gguf" / "model.gguf"
TINY_GGUF_MMPROJ = FIXTURES / "tiny-qwen3vl-gguf" / "mmproj.gguf"

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.pop("OLLAMA_HOST", None)


@pytest.fixture(autouse=True)
def captioneer_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own settings, catalog and models folder."""
    home = tmp_path_factory.mktemp("captioneer-home")
    monkeypatch.setenv("CAPTIONEER_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def tiny_gguf() -> tuple[Path, Path]:
    """The committed tiny Qwen3-VL GGUF model and its mmproj (made by tests/fixtures/make_tiny_models.py)."""
    if not TINY_GGUF_MODEL.exists():
        pytest.fail("tests/fixtures/tiny-qwen3vl-gguf is missing: run tests/fixtures/make_tiny_models.py")
    return TINY_GGUF_MODEL, TINY_GGUF_MMPROJ


@pytest.fixture(scope="session")
def tiny_hf_model() -> Path:
    """The committed tiny Qwen3-VL transformers model folder."""
    if not (TINY_HF_MODEL / "config.json").exists():
        pytest.fail("tests/fixtures/tiny-qwen3vl is missing: run tests/fixtures/make_tiny_models.py")
    return TINY_HF_MODEL
