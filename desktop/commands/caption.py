"""`captioneer caption IMAGE…`: run a task on images and stream the answers to the terminal."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from captioneer.backends.errors import cli_text
from captioneer.desktop.commands.engine_args import add_engine_arguments, overrides_from_args
from captioneer.desktop.commands.tag import add_video_tokens_argument
from captioneer.desktop.core.tasks import DEFAULT_MAX_KEYWORDS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "caption",
        help="caption, describe, keyword or read images",
        description="Run a task on each image and stream the answer. Files that fail are reported and "
        "skipped; the exit status is 1 if any file failed, 2 for a configuration error.",
    )
    parser.add_argument(
        "images", nargs="+", metavar="IMAGE",
        help="image files (JPEG, PNG, HEIC, WebP, RAW…) or video clips (MP4, MOV, MKV…; the plan of frames "
        "sampled is printed on stderr)",
    )
    parser.add_argument(
        "--task", help="task preset (see `captioneer tasks`; default: caption, or question with --prompt)"
    )
    parser.add_argument("--prompt", help="your own question or instruction (the 'question' task)")
    parser.add_argument("--language", help="output language (default: from settings, else English)")
    parser.add_argument("--max-tokens", type=int, metavar="N", help="cap on generated tokens")
    parser.add_argument("--temperature", type=float, help="sampling temperature (0 = greedy)")
    parser.add_argument("--seed", type=int, help="sampling seed")
    parser.add_argument(
        "--max-keywords", type=int, default=DEFAULT_MAX_KEYWORDS, metavar="N", help="keywords task: at most N"
    )
    parser.add_argument(
        "--vocabulary", type=Path, metavar="FILE", help="keywords only from this list (one a line)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per image instead of text")
    add_video_tokens_argument(parser)
    add_engine_arguments(parser, subcommand=True)
    parser.set_defaults(func=run)


def _read_vocabulary(path: Path | None) -> tuple[str, ...]:
    from captioneer.backends.errors import ConfigurationError

    if path is None:
        return ()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigurationError(f"Cannot read the vocabulary file {path}: {exc.strerror}") from None
    words = tuple(dict.fromkeys(line.strip() for line in lines if line.strip() and not line.startswith("#")))
    if not words:
        raise ConfigurationError(f"The vocabulary file {path} has no keywords.")
    return words


def run(args: argparse.Namespace) -> int:
    from captioneer.backends.errors import ConfigurationError, EngineCrashedError
    from captioneer.desktop.core.captioning import CaptionResult, caption_file
    from captioneer.desktop.core.clips import describe_clip
    from captioneer.desktop.core.engine_setup import engine_config, open_backend, sampling_options
    from captioneer.desktop.core.settings import clip_budget, load_settings
    from captioneer.desktop.core.tasks import TaskOptions, get_task
    from captioneer.desktop.core.video import is_video_path
    from captioneer.desktop.library.run_media import clip_context
    from captioneer.desktop.library.scanner import escape_undecodable, printable

    settings = load_settings()
    task_id = args.task or ("question" if args.prompt else settings.task)
    task = get_task(task_id)
    task_options = TaskOptions(
        language=args.language or settings.language,
        question=args.prompt,
        max_keywords=args.max_keywords,
        vocabulary=_read_vocabulary(args.vocabulary),
    )
    overrides = overrides_from_args(args)
    sampling = sampling_options(settings, task, overrides)
    config = engine_config(settings, overrides)
    video_tokens = clip_budget(settings, args.video_tokens)
    if any(is_video_path(Path(path)) for path in args.images):
        if not task.takes_videos:  # said before the model loads, not after the first clip is sampled
            raise ConfigurationError(f"The '{task.id}' task does not take videos: choose a task that does.")
        config = clip_context(config, video_tokens)
    backend = open_backend(settings, config, in_process=overrides.in_process)
    multiple = len(args.images) > 1
    failures = 0

    def stream(chunk: str) -> None:
        sys.stdout.write(chunk)
        sys.stdout.flush()

    def planned(path: str, clip: Any) -> None:
        print(f"captioneer: {printable(str(path))}: {describe_clip(clip)}", file=sys.stderr, flush=True)

    def retrying(reason: str) -> None:
        print(f"\ncaptioneer: {cli_text(reason)}", file=sys.stderr)

    if sys.stderr.isatty():
        print(f"captioneer: loading {config.engine} model {config.model}…", file=sys.stderr)
    backend.load()
    try:
        for index, image in enumerate(args.images):
            if multiple and not args.json:
                print(f"{'' if index == 0 else chr(10)}==> {printable(str(image))} <==", flush=True)
            try:
                result = caption_file(
                    backend,
                    image,
                    task,
                    task_options=task_options,
                    sampling=sampling,
                    image_tokens=config.image_tokens,
                    video_tokens=video_tokens,
                    on_chunk=None if args.json else stream,
                    on_retry=retrying,
                    on_clip=lambda clip, name=image: planned(name, clip),
                )
            except EngineCrashedError as exc:
                # The engine host died on this photo (or refuses it after repeated crashes); the next photo
                # gets a fresh host.
                result = CaptionResult(
                    path=image, task=task.id, ok=False, error=str(exc), error_kind="engine-crashed"
                )
            info = backend.info()
            result.extra.update({"engine": info.engine, "model": info.model, "quant": info.quant})
            if args.json:
                record = {**result.to_json(), "path": escape_undecodable(str(image))}
                print(json.dumps(record, ensure_ascii=False), flush=True)
            elif result.ok:
                sys.stdout.write("\n")
                sys.stdout.flush()
            if not result.ok:
                failures += 1
                reason = cli_text(result.error or "")
                print(f"captioneer: {printable(str(image))}: {reason}", file=sys.stderr, flush=True)
            elif result.warning and not args.json:  # --json carries it in the result
                print(f"captioneer: {printable(str(image))}: {result.warning}", file=sys.stderr, flush=True)
    finally:
        backend.unload()
    return 1 if failures else 0
