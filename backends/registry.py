"""The engines Captioneer knows, imported only when used so the app starts without torch or llama_cpp."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass

from captioneer.backends.base import Backend, EngineConfig, EngineOptions
from captioneer.backends.errors import ConfigurationError, EngineNotInstalledError


@dataclass(frozen=True)
class EngineEntry:
    """An engine as the rest of the app sees it before (or without) importing it: where it lives, what it
    needs installed, and the traits call sites decide by instead of by its name.

    Attributes:
        local_files: the model is a file or folder on this machine (a path the user may browse to); server
            engines name their models instead.
        needs_mmproj: a separate vision projector file goes with the model.
        model_folder: the model is a folder (a repository snapshot), not one file.
        quant_choice: the user picks the precision when the model loads; other engines' precision is part of
            the model file or tag.
        server: the engine talks to a server over HTTP (addresses, timeouts, parallel requests apply).
        server_pulls_models: the server downloads models itself (``ollama pull``), not Captioneer.
        download: how Captioneer downloads a catalog model for it: ``"gguf"`` (one GGUF file and its
            projector), ``"snapshot"`` (a whole model repository), or None (the server has its own).
    """

    name: str
    module: str
    cls: str
    requires: tuple[str, ...]
    extra: str
    summary: str
    local_files: bool = False
    needs_mmproj: bool = False
    model_folder: bool = False
    quant_choice: bool = False
    server: bool = False
    server_pulls_models: bool = False
    download: str | None = None


ENGINES: dict[str, EngineEntry] = {
    entry.name: entry
    for entry in (
        EngineEntry(
            "gguf", "captioneer.backends.gguf", "GGUFBackend", ("llama_cpp",), "gguf",
            "llama.cpp in-process (GGUF model + mmproj)",
            local_files=True, needs_mmproj=True, download="gguf",
        ),
        EngineEntry(
            "transformers", "captioneer.backends.transformers_engine", "TransformersBackend",
            ("torch", "transformers"), "transformers",
            "Hugging Face Transformers (bf16/fp16/fp32, bitsandbytes NF4/int8)",
            local_files=True, model_folder=True, quant_choice=True, download="snapshot",
        ),
        EngineEntry(
            "ollama", "captioneer.backends.ollama_engine", "OllamaBackend", ("ollama",), "ollama",
            "a running Ollama server",
            server=True, server_pulls_models=True,
        ),
        EngineEntry(
            "openai", "captioneer.backends.openai_engine", "OpenAIBackend", ("openai",), "openai",
            "any OpenAI-compatible server (llama-server, LM Studio, vLLM)",
            server=True,
        ),
    )
}


def engine_installed(name: str) -> bool:
    """Whether the engine's libraries are importable, found without importing them."""
    entry = engine_entry(name)
    return all(importlib.util.find_spec(module) is not None for module in entry.requires)


def installed_engines() -> list[str]:
    return [name for name in ENGINES if engine_installed(name)]


def engine_entry(name: str) -> EngineEntry:
    """The registry entry (and so the traits) of an engine; a clear error for an unknown name."""
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
    entry = engine_entry(name)
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


def engine_class(name: str) -> type[Backend]:
    """The engine's class, for what it declares (its ``Options``, ``context_tokens``, ``destinations``): the
    engine modules import their libraries only when a model loads, so this works without them installed."""
    entry = engine_entry(name)
    return getattr(importlib.import_module(entry.module), entry.cls)


def options_class(name: str) -> type[EngineOptions]:
    """The options the engine takes (its ``Backend.Options``)."""
    return engine_class(name).Options


def backend_class(name: str) -> type[Backend]:
    """The engine's class, once its libraries are known to be installed.

    Raises:
        ConfigurationError: unknown engine.
        EngineNotInstalledError: its libraries are missing, with how to get them.
    """
    if not engine_installed(name):
        raise EngineNotInstalledError(f"The {name} engine is not installed. {install_hint(name)}")
    return engine_class(name)


def create_backend(config: EngineConfig) -> Backend:
    """Build (but do not load) the engine named by ``config.engine``.

    Raises:
        ConfigurationError: unknown engine, or ``config.options`` has a key the engine does not take or a
            bad value (one line naming the key, the engine and the keys it takes).
        EngineNotInstalledError: the engine's libraries are missing.
    """
    return backend_class(config.engine)(config)
