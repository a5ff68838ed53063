"""Engine options shared by every command that runs a model (caption, tag, smoke test)."""

from __future__ import annotations

import argparse
import os

from backends.base import EngineConfig
from backends.errors import ConfigurationError
from backends.registry import ENGINES
from desktop.core.settings import Settings


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("engine")
    group.add_argument("--engine", choices=list(ENGINES), help="engine to use (default: from settings, else gguf)")
    group.add_argument("--model", help="GGUF file, model folder or repo id, Ollama tag, or server model name")
    group.add_argument("--mmproj", help="GGUF vision projector (mmproj) that belongs to --model")
    group.add_argument("--quant", help="transformers precision: bf16, fp16, fp32, nf4, int8")
    group.add_argument("--device", help="auto, cpu, cuda or mps (in-process engines)")
    group.add_argument("--host", help="Ollama address (default: $OLLAMA_HOST or http://127.0.0.1:11434)")
    group.add_argument(
        "--base-url", action="append", dest="base_urls", metavar="URL",
        help="OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1 (repeat to spread work over several)",
    )
    group.add_argument("--api-key", help="API key for an OpenAI-compatible server (default: $OPENAI_API_KEY)")
    group.add_argument(
        "--image-tokens", type=int, metavar="N",
        help="pixel budget in visual tokens (one token = 32×32 pixels; default 1024)",
    )
    group.add_argument("--threads", type=int, metavar="N", help="CPU threads for in-process engines")
    group.add_argument("--context", type=int, dest="context_tokens", metavar="N", help="context length override")
    group.add_argument(
        "--allow-remote", action="store_true",
        help="allow a server that is not on this machine (your photos are sent to it)",
    )
    group.add_argument("--allow-cloud", action="store_true", help="allow Ollama *-cloud models (photos leave)")


def engine_config_from_args(args: argparse.Namespace, settings: Settings) -> EngineConfig:
    """Command-line options over saved settings over defaults."""
    engine = args.engine or settings.engine
    model = args.model or (settings.model if engine == settings.engine else "")
    if not model:
        raise ConfigurationError(
            f"No model chosen for the {engine} engine: pass --model (and --mmproj for gguf), "
            "or run the first-run wizard."
        )
    mmproj = args.mmproj or (settings.mmproj if engine == settings.engine and not args.model else None)
    base_urls = tuple(args.base_urls or settings.openai_base_urls)
    try:
        return EngineConfig(
            engine=engine,
            model=model,
            mmproj=mmproj,
            quant=args.quant or (settings.quant if engine == settings.engine else None),
            device=args.device or settings.device,
            host=args.host or settings.ollama_host or os.environ.get("OLLAMA_HOST"),
            base_urls=base_urls,
            api_key=args.api_key or settings.openai_api_key or os.environ.get("OPENAI_API_KEY"),
            image_tokens=args.image_tokens or settings.image_tokens,
            threads=args.threads,
            context_tokens=args.context_tokens,
            allow_remote=args.allow_remote,
            allow_cloud=args.allow_cloud,
        )
    except ValueError as exc:
        raise ConfigurationError(f"Invalid engine option: {exc}") from None
