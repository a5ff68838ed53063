"""Engine options shared by every command that runs a model (caption, tag, smoke test)."""

from __future__ import annotations

import argparse
from typing import Any

from captioneer.backends.base import DEFAULT_IMAGE_TOKENS
from captioneer.backends.registry import ENGINES
from captioneer.desktop.core.engine_setup import Overrides


def add_engine_arguments(parser: argparse.ArgumentParser, *, subcommand: bool = False) -> None:
    """The engine flags. On a subcommand (``subcommand``) a flag left out sets nothing, so the same flag given
    before the subcommand (``captioneer --model X caption …``) is kept instead of being reset to None."""
    group = parser.add_argument_group("engine")
    left_out = {"default": argparse.SUPPRESS} if subcommand else {}

    def add(*flags: str, **how: Any) -> None:
        group.add_argument(*flags, **left_out, **how)

    add(
        "--engine", choices=list(ENGINES), help="engine to use (default: from settings, else gguf)"
    )
    add("--model", help="GGUF file, model folder or repo id, Ollama tag, or server model name")
    add("--mmproj", help="GGUF vision projector (mmproj) that belongs to --model")
    add("--quant", help="transformers precision: bf16, fp16, fp32, nf4, int8")
    add("--device", help="auto, cpu, cuda or mps (in-process engines)")
    add("--host", help="Ollama address (default: $OLLAMA_HOST or http://127.0.0.1:11434)")
    add(
        "--base-url",
        action="append",
        dest="base_urls",
        metavar="URL",
        help="OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1 (repeat to spread work over several)",
    )
    add("--api-key", help="API key for an OpenAI-compatible server (default: $OPENAI_API_KEY)")
    add(
        "--image-tokens",
        type=int,
        metavar="N",
        help=f"pixel budget in visual tokens (one token = 32×32 pixels; default {DEFAULT_IMAGE_TOKENS})",
    )
    add("--threads", type=int, metavar="N", help="CPU threads for in-process engines")
    add(
        "--context", type=int, dest="context_tokens", metavar="N", help="context length override"
    )
    add(
        "--allow-remote",
        action="store_true",
        help="allow a server that is not on this machine (your photos are sent to it)",
    )
    add(
        "--allow-cloud", action="store_true", help="allow Ollama *-cloud models (photos leave)"
    )
    add(
        "--parallel",
        type=int,
        metavar="N",
        help="ollama/openai: requests in flight on each server at once (default 1)",
    )
    add(
        "--connect-timeout",
        type=float,
        metavar="SECONDS",
        help="ollama/openai: seconds to reach a server (default 5)",
    )
    add(
        "--read-timeout",
        type=float,
        metavar="SECONDS",
        help="ollama/openai: seconds a server may stay silent before or during an answer (default 120)",
    )
    add(
        "--request-timeout",
        type=float,
        metavar="SECONDS",
        help="ollama/openai: seconds one server may take for one photo's whole answer (default 600)",
    )
    add(
        "--retry-down-after",
        type=float,
        metavar="SECONDS",
        help="ollama/openai: seconds a failing server is skipped before one trial request (default 30)",
    )
    add(
        "--max-answer-kb",
        type=int,
        metavar="KB",
        help="ollama/openai: the most one answer may send; longer streams are cut off (default 16384)",
    )
    add(
        "--in-process",
        action="store_true",
        help="run gguf/transformers in this process instead of the engine host process (no crash isolation)",
    )


ENGINE_OPTION_FLAGS = (
    "mmproj", "quant", "device", "host", "base_urls", "api_key", "threads", "allow_cloud", "parallel",
    "connect_timeout", "read_timeout", "request_timeout", "retry_down_after", "max_answer_kb",
)
"""The flags that set an engine's own options (``EngineConfig.options``, same names)."""


def overrides_from_args(args: argparse.Namespace) -> Overrides:
    """What the command line gave, for :mod:`~captioneer.desktop.core.engine_setup`: flags left out are
    None (the settings decide); a flag the chosen engine does not take becomes an error there."""
    given = {name: getattr(args, name, None) for name in ENGINE_OPTION_FLAGS}
    return Overrides(
        engine=getattr(args, "engine", None),
        model=getattr(args, "model", None),
        image_tokens=getattr(args, "image_tokens", None),
        context_tokens=getattr(args, "context_tokens", None),
        allow_remote=bool(getattr(args, "allow_remote", False)),
        in_process=bool(getattr(args, "in_process", False)),
        options={name: tuple(value) if name == "base_urls" else value
                 for name, value in given.items() if value is not None and value is not False},
        max_tokens=getattr(args, "max_tokens", None),
        temperature=getattr(args, "temperature", None),
        seed=getattr(args, "seed", None),
    )
