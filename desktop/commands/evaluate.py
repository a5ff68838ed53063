"""`captioneer evaluate PHOTO_OR_FOLDER…`: measure models on your own photos; print one comparison table."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from captioneer.desktop.evaluation.profiles import SPEC_HELP

if TYPE_CHECKING:
    from captioneer.desktop.core.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="compare models, precisions and image detail on your own photos",
        description="Run each profile's caption + keywords task on the photos and print one table: caption "
        "metrics against your reference captions (--references), keyword precision/recall/F1 against the "
        "keywords your photos already carry (read, never written), seconds per photo, model load time and "
        "peak memory. Profiles run one after another, each in its own engine process. Ctrl-C stops after "
        "the current photo and prints the profiles finished. Exit status: 0 done, 1 a profile could not "
        "run, 2 configuration error, 130 interrupted.",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PHOTO_OR_FOLDER",
                        help="photo files, or folders (searched recursively)")
    parser.add_argument(
        "--profile", action="append", dest="profiles", metavar="SPEC",
        help=f"a profile to run (repeat for several): {SPEC_HELP}. Quote specs with spaces: --profile "
        "'2B Q4_K_M@256'. Default: your configured model at your image detail (or the one chosen with "
        "--model/--mmproj/--image-tokens before `evaluate`)",
    )
    parser.add_argument(
        "--profiles", action="extend", dest="profiles", type=_spec_list, metavar="SPECS",
        help="several profiles in one argument, separated by ';': --profiles '2B Q4_K_M@256; 4B Q4_K_M@512'",
    )
    parser.add_argument("--references", type=Path, metavar="FILE",
                        help='reference captions, COCO format: {"images": [{"id", "file_name"}], '
                        '"annotations": [{"image_id", "caption"}]}; file_name is matched to the end of '
                        "each photo's path (a relative path or a bare file name)")
    parser.add_argument("--keyword-map", type=Path, metavar="FILE",
                        help="your vocabulary, to map synonyms before comparing keywords: one keyword a "
                        "line, 'keyword = synonym, synonym' (the same file as `tag --vocabulary`)")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N photos")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--csv", type=Path, metavar="FILE", help="also write the results as CSV to FILE")
    parser.set_defaults(func=run)


def _spec_list(text: str) -> list[str]:
    """``--profiles``' specs: split at ';' (paths and tags keep their commas and colons)."""
    specs = [spec.strip() for spec in text.split(";") if spec.strip()]
    if not specs:
        raise argparse.ArgumentTypeError("no profile in it: separate profiles with ';'")
    return specs


def _say(message: str) -> None:
    print(f"captioneer: {message}", file=sys.stderr, flush=True)


# Engine flags given before the subcommand that are about servers and devices, not the model: they apply to
# every profile, as the saved setting they stand for would.
_FLAG_SETTINGS = {
    "host": "ollama_host", "base_urls": "openai_base_urls", "api_key": "openai_api_key", "device": "device",
    "parallel": "server_parallel", "connect_timeout": "server_connect_timeout",
    "read_timeout": "server_read_timeout", "request_timeout": "server_request_timeout",
    "retry_down_after": "server_retry_down_after", "max_answer_kb": "server_max_answer_kb",
}
_MODEL_FLAGS = ("engine", "model", "mmproj", "quant", "image_tokens")


def _with_flags(settings: Settings, args: argparse.Namespace) -> Settings:
    """``settings`` with the server and device flags given on the command line."""
    given = {field: getattr(args, flag) for flag, field in _FLAG_SETTINGS.items()
             if getattr(args, flag, None) is not None}
    if "openai_base_urls" in given:
        given["openai_base_urls"] = list(given["openai_base_urls"])
    return settings.model_copy(update=given)


def run(args: argparse.Namespace) -> int:
    from captioneer.backends.cancel import CancelToken
    from captioneer.backends.errors import ConfigurationError
    from captioneer.desktop.commands.engine_args import overrides_from_args
    from captioneer.desktop.commands.tag import ProgressPrinter, cancel_on_signals
    from captioneer.desktop.core.settings import load_settings
    from captioneer.desktop.evaluation.keyword_scores import load_keyword_map
    from captioneer.desktop.evaluation.photos import collect_photos, read_keyword_truth
    from captioneer.desktop.evaluation.profiles import configured_profile, parse_profile
    from captioneer.desktop.evaluation.references import load_references
    from captioneer.desktop.evaluation.report import Context, report_csv, report_json, table
    from captioneer.desktop.evaluation.runner import evaluate_profiles
    from captioneer.desktop.evaluation.scores import EvaluationProgress
    from captioneer.desktop.library.scanner import printable

    if args.limit is not None and args.limit < 1:
        raise ConfigurationError("--limit must be at least 1.")
    settings = _with_flags(load_settings(), args)
    overrides = overrides_from_args(args)
    if args.profiles:
        chosen = [f"--{flag.replace('_', '-')}" for flag in _MODEL_FLAGS if getattr(args, flag, None)]
        if chosen:
            raise ConfigurationError(
                f"{', '.join(chosen)} choose the model when no --profile is given: with --profile, put the "
                "model and image detail in the spec (--profile 'MODEL@TOKENS')."
            )
        profiles = [parse_profile(spec, settings) for spec in args.profiles]
    else:
        profiles = [configured_profile(settings, overrides)]
    references = load_references(args.references) if args.references is not None else None
    keyword_map = load_keyword_map(args.keyword_map) if args.keyword_map is not None else None
    selection = collect_photos(args.paths, args.limit)
    photos = selection.photos
    context = Context(photos=len(photos), reference_file=str(args.references) if references else None)
    for path, reason in selection.skipped:
        context.notes.append(f"Skipped {printable(path)}: {reason}.")
    if references is not None:
        context.with_references = len(references.match(photos))
        _say(f"{context.with_references} of {len(photos)} photos have reference captions in "
             f"{args.references} ({len(photos) - context.with_references} without)")
    truth, notes = read_keyword_truth(photos)
    context.with_keywords = len(truth)
    context.notes.extend(notes)
    _say(f"{len(truth)} of {len(photos)} photos carry keywords of their own (the keyword scores are over "
         "them)")

    printer = ProgressPrinter()

    def progress(event: EvaluationProgress) -> None:
        head = f"[{event.profile_index + 1}/{event.profiles}] {event.label}"
        if event.phase == "loading":
            printer.event(f"{head}: loading the model…")
        elif event.phase == "scoring":
            printer.show(lambda: f"{head}: {event.photos}/{event.photos} photos, scoring…", final=True)
        else:
            printer.show(lambda: f"{head}: photo {event.done + 1}/{event.photos}", final=False)

    cancel = CancelToken()
    with cancel_on_signals(cancel.cancel):
        try:
            scores = evaluate_profiles(
                photos, profiles, settings=settings, references=references, keyword_truth=truth,
                keyword_map=keyword_map, progress=progress, cancel=cancel,
            )
        finally:
            printer.end_line()
    context.interrupted = cancel.cancelled
    if args.csv is not None:
        try:
            args.csv.write_text(report_csv(scores), encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot write the CSV file {args.csv}: {exc.strerror or exc}."
            ) from None
    if args.json:
        print(json.dumps(report_json(scores, context), ensure_ascii=False, indent=2))
    else:
        print(table(scores, context))
    if args.csv is not None:
        _say(f"wrote {args.csv}")
    if context.interrupted:
        return 130
    return 1 if any(score.error is not None for score in scores) else 0
