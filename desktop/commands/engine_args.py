"""Engine options shared by every command that runs a model (caption, tag, smoke test)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from captioneer.backends.base import Backend, EngineConfig
from captioneer.backends.errors import ConfigurationError
from captioneer.backends.registry import ENGINES
from captioneer.desktop.core.settings import Settings


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("engine")
    group.add_argument(
        "--engine", choices=list(ENGINES), help="engine to use (default: from settings, else gguf)"
    )
    group.add_argument("--model", help="GGUF file, model folder or repo id, Ollama tag, or server model name")
    group.add_argument("--mmproj", help="GGUF vision projector (mmproj) that belongs to --model")
    group.add_argument("--quant", help="transformers precision: bf16, fp16, fp32, nf4, int8")
    group.add_argument("--device", help="auto, cpu, cuda or mps (in-process engines)")
    group.add_argument("--host", help="Ollama address (default: $OLLAMA_HOST or http://127.0.0.1:11434)")
    group.add_argument(
        "--base-url",
        action="append",
        dest="base_urls",
        metavar="URL",
        help="OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1 (repeat to spread work over several)",
    )
    group.add_argument("--api-key", help="API key for an OpenAI-compatible server (default: $OPENAI_API_KEY)")
    group.add_argument(
        "--image-tokens",
        type=int,
        metavar="N",
        help="pixel budget in visual tokens (one token = 32×32 pixels; default 1024)",
    )
    group.add_argument("--threads", type=int, metavar="N", help="CPU threads for in-process engines")
    group.add_argument(
        "--context", type=int, dest="context_tokens", metavar="N", help="context length override"
    )
    group.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a server that is not on this machine (your photos are sent to it)",
    )
    group.add_argument(
        "--allow-cloud", action="store_true", help="allow Ollama *-cloud models (photos leave)"
    )
    group.add_argument(
        "--parallel",
        type=int,
        metavar="N",
        help="ollama/openai: requests in flight on each server at once (default 1)",
    )
    group.add_argument(
        "--connect-timeout",
        type=float,
        metavar="SECONDS",
        help="ollama/openai: seconds to reach a server (default 5)",
    )
    group.add_argument(
        "--read-timeout",
        type=float,
        metavar="SECONDS",
        help="ollama/openai: seconds a server may stay silent before or during an answer (default 120)",
    )
    group.add_argument(
        "--request-timeout",
        type=float,
        metavar="SECONDS",
        help="ollama/openai: seconds one server may take for one photo's whole answer (default 600)",
    )
    group.add_argument(
        "--retry-down-after",
        type=float,
        metavar="SECONDS",
        help="ollama/openai: seconds a failing server is skipped before one trial request (default 30)",
    )
    group.add_argument(
        "--max-answer-kb",
        type=int,
        metavar="KB",
        help="ollama/openai: the most one answer may send; longer streams are cut off (default 16384)",
    )
    group.add_argument(
        "--in-process",
        action="store_true",
        help="run gguf/transformers in this process instead of the engine host process (no crash isolation)",
    )


SERVER_ENGINES = ("ollama", "openai")


def server_options(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """The server engines' limits (``EngineConfig.extra``): command-line flags over saved settings."""
    pairs = {
        "parallel": (args.parallel, settings.server_parallel),
        "connect_timeout": (args.connect_timeout, settings.server_connect_timeout),
        "read_timeout": (args.read_timeout, settings.server_read_timeout),
        "request_timeout": (args.request_timeout, settings.server_request_timeout),
        "retry_down_after": (args.retry_down_after, settings.server_retry_down_after),
        "max_answer_kb": (args.max_answer_kb, settings.server_max_answer_kb),
    }
    return {key: saved if given is None else given for key, (given, saved) in pairs.items()}


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
    extra = server_options(args, settings) if engine in SERVER_ENGINES else {}
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
            extra=extra,
        )
    except ValueError as exc:
        raise ConfigurationError(f"Invalid engine option: {exc}") from None


def open_backend_from_args(args: argparse.Namespace, settings: Settings, config: EngineConfig) -> Backend:
    """The engine for a command: gguf and transformers run in the engine host process (recycled per the
    settings) unless ``--in-process`` is given; server engines are used directly."""
    from captioneer.backends.host import HostPolicy, open_backend

    limit_mb = settings.host_memory_limit_mb
    policy = HostPolicy(
        recycle_every=settings.host_recycle_every,
        memory_limit_bytes=limit_mb * 2**20 if limit_mb else None,
    )
    return open_backend(config, in_process=args.in_process, policy=policy)
