"""The engines Captioneer knows, imported only when used so the app starts without torch or llama_cpp."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass

from backends.base import Backend, EngineConfig
from backends.errors import ConfigurationError, EngineNotInstalledError


@dataclass(frozen=True)
class EngineEntry:
    name: str
    module: str
    cls: str
    requires: tuple[str, ...]
    extra: str
    summary: str


ENGINES: dict[str, EngineEntry] = {
    entry.name: entry
    for entry in (
        EngineEntry(
            "gguf", "backends.gguf", "GGUFBackend", ("llama_cpp",), "gguf",
            "llama.cpp in-process (GGUF model + mmproj)",
        ),
        EngineEntry(
            "transformers", "backends.transformers_engine", "TransformersBackend",
            ("torch", "transformers"), "transformers",
            "Hugging Face Transformers (bf16/fp16/fp32, bitsandbytes NF4/int8)",
        ),
        EngineEntry(
            "ollama", "backends.ollama_engine", "OllamaBackend", ("ollama",), "ollama",
            "a running Ollama server",
        ),
        EngineEntry(
            "openai", "backends.openai_engine", "OpenAIBackend", ("openai",), "openai",
            "any OpenAI-compatible server (llama-server, LM Studio, vLLM)",
        ),
    )
}


def engine_installed(name: str) -> bool:
    """Whether the engine's libraries are importable, found without importing them."""
    entry = _entry(name)
    return all(importlib.util.find_spec(module) is not None for module in entry.requires)


def installed_engines() -> list[str]:
    return [name for name in ENGINES if engine_installed(name)]


def _entry(name: str) -> EngineEntry:
    try:
        return ENGINES[name]
    except KeyError:
        known = ", ".join(ENGINES)
        raise ConfigurationError(f"Unknown engine '{name}'. Choose one of: {known}.") from None


def install_hint(name: str, frozen: bool | None = None) -> str:
    """How a person gets a missing engine: pip for a Python install; for the packaged app (``sys.frozen``),
    which pip cannot change, the download that carries it.

    Args:
        name: the engine.
        frozen: whether this is the packaged app (default: ``sys.frozen``, set by PyInstaller).
    """
    entry = _entry(name)
    if frozen is None:
        frozen = bool(getattr(sys, "frozen", False))
    if not frozen:
        return f"Install it with: pip install 'captioneer[{entry.extra}]'"
    if name == "transformers":
        return (
            "This Captioneer download leaves it out to stay small (it needs PyTorch, several GB). "
            "Download \"Captioneer Full\" from the releases page for it, or keep the gguf engine, "
            "which runs the same Qwen3-VL models."
        )
    return "This Captioneer download should include it: download Captioneer again from the releases page."


def backend_class(name: str) -> type[Backend]:
    entry = _entry(name)
    if not engine_installed(name):
        raise EngineNotInstalledError(f"The {name} engine is not installed. {install_hint(name)}")
    module = importlib.import_module(entry.module)
    return getattr(module, entry.cls)


def create_backend(config: EngineConfig) -> Backend:
    """Build (but do not load) the engine named by ``config.engine``."""
    return backend_class(config.engine)(config)
