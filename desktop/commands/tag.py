"""`captioneer tag FOLDER`: scan a folder, tag its new photos (resuming an unfinished run), maybe write."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from captioneer.desktop.commands.engine_args import add_engine_arguments, overrides_from_args
from captioneer.desktop.commands.keyword_args import add_keyword_arguments, keyword_fields
from captioneer.desktop.core.settings import MAX_VIDEO_TOKENS, MIN_VIDEO_TOKENS
from captioneer.desktop.core.tasks import DEFAULT_MAX_KEYWORDS
from captioneer.desktop.core.video_budget import DEFAULT_VIDEO_TOKENS

WRITE_CHOICES = ("none", "sidecar", "embedded", "both")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tag",
        help="caption and keyword every photo in a folder (resumable)",
        description="Scan FOLDER into the catalog and tag each photo not yet tagged with this task and "
        "model. "
        "Results are stored as they land: stop with Ctrl-C (or lose power) and run the same command again to "
        "finish. Photos that cannot be read are listed and skipped. Nothing is written into your photos "
        "unless you pass --write; by default only approved results are written (see `captioneer review`). "
        "Exit status: 0 done, 1 done but some photos failed, 2 configuration error, 3 library offline, "
        "130 interrupted.",
    )
    parser.add_argument("folder", type=Path, metavar="FOLDER", help="the photo folder (scanned recursively)")
    parser.add_argument(
        "--task", default="keywords", help="task preset (default: keywords = caption + keywords)"
    )
    parser.add_argument("--language", help="output language (default: from settings, else English)")
    parser.add_argument(
        "--max-keywords", type=int, default=DEFAULT_MAX_KEYWORDS, metavar="N",
        help="at most N keywords per photo",
    )
    parser.add_argument(
        "--vocabulary",
        type=Path,
        metavar="FILE",
        help="your keyword list: one a line, synonyms as `keyword = synonym, synonym`, paths as "
        "`Places|France|Paris`; Lightroom's exported keyword list is read as it is",
    )
    parser.add_argument(
        "--vocabulary-loose",
        action="store_true",
        help="map keywords onto the vocabulary but keep words outside it (default: only vocabulary words)",
    )
    context = parser.add_argument_group(
        "context in the prompt",
        "Tell the model what the photo's files and library say about it, and what you know of the shoot. "
        "Each photo's prompt then starts 'Context: taken 2024-05-01 in Paris, France; folder \"Wedding\"; "
        "...' with an instruction to use it only where the photo agrees. What each photo was sent is "
        "recorded with its result (`captioneer review show ID`). Tasks that describe photos take context; "
        "ocr, question and diagram do not.",
    )
    context.add_argument(
        "--prompt-context",
        metavar="LIST",
        help="comma-separated, or all: folder (the photo's folder name), path (its folders below the "
        "library, instead of folder), date (capture date from EXIF; none if the photo has none), place "
        "(GPS turned into a town offline; needs the places extra), camera, caption and keywords (the "
        "photo's existing ones). A photo that lacks one simply goes without it. (--context N is the engine's \
context length, not this)",
    )
    context.add_argument("--event", metavar="TEXT", help="the event, for every photo (\"Anna's wedding\")")
    context.add_argument("--people", metavar="TEXT", help="who is in the photos (\"Anna, Ben\")")
    context.add_argument("--location", metavar="TEXT", help="where they were taken (\"Lake Bled\")")
    parser.add_argument("--redo", action="store_true", help="tag photos again that already have a result")
    parser.add_argument(
        "--reviewed",
        choices=("ask", "skip", "replace", "keep"),
        default="ask",
        help="photos whose current result for this task you already reviewed (approved, edited, rejected or "
        "written), met again with --redo or another model: skip them; replace their result (the new one "
        "becomes current, the old one a superseded version that is never written); or keep both as versions "
        "(your reviewed result stays current and is what is shown and written; the new one is kept as a "
        "version, `captioneer review use ID` makes it current). ask (default) asks once for the whole run "
        "on a terminal and skips them otherwise",
    )
    parser.add_argument(
        "--write",
        choices=WRITE_CHOICES,
        default="none",
        help="after tagging, write results into the photos: sidecar, embedded or both (default: none)",
    )
    parser.add_argument(
        "--write-unreviewed", action="store_true", help="write results without reviewing them"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="with --write: show what would change, touch nothing"
    )
    parser.add_argument(
        "--batch-size", type=int, default=4, metavar="N", help="photos per batch where supported"
    )
    parser.add_argument(
        "--recycle-every",
        type=int,
        metavar="N",
        help="restart the engine process every N photos (memory growth)",
    )
    parser.add_argument(
        "--no-retry",
        action="store_true",
        help="keep an answer that is invalid or looks degenerate (empty, looping, cut off, wrong language) "
        "as 'needs review' at once instead of asking the model again",
    )
    add_video_tokens_argument(parser)
    parser.add_argument("--max-tokens", type=int, metavar="N", help="cap on generated tokens")
    parser.add_argument("--temperature", type=float, help="sampling temperature (0 = greedy)")
    parser.add_argument("--seed", type=int, help="sampling seed")
    add_engine_arguments(parser, subcommand=True)
    add_keyword_arguments(parser)
    parser.set_defaults(func=run)


def add_video_tokens_argument(parser: argparse.ArgumentParser) -> None:
    """``--video-tokens N``: a clip's whole visual budget (tag and caption take it)."""
    parser.add_argument(
        "--video-tokens",
        type=int,
        metavar="N",
        help=f"a video clip's whole visual budget, spread over its sampled frames (default: Settings' video "
        f"clip detail, {DEFAULT_VIDEO_TOKENS} unless changed; {MIN_VIDEO_TOKENS} to {MAX_VIDEO_TOKENS:,}): "
        "more and sharper frames cost more time and memory",
    )


def _say(message: str) -> None:
    print(f"captioneer: {message}", file=sys.stderr, flush=True)


class ProgressPrinter:
    """One updating line on a terminal; a line every few seconds otherwise (logs, pipes)."""

    def __init__(self, stream: Any = None, interval: float = 5.0) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval = interval
        self.last: float | None = None
        self.width = 0

    def __call__(self, progress: Any) -> None:
        """Show a run's progress (a :class:`~captioneer.desktop.library.runs.RunProgress`)."""
        self.show(progress.describe, final=progress.finished >= progress.total)

    def scanning(self, files: int, _path: str) -> None:
        """Show a scan's progress."""
        self.show(lambda: f"scanning: {files:,} files so far", final=False)

    def show(self, line: Callable[[], str], final: bool) -> None:
        now = time.monotonic()
        since = now - self.last if self.last is not None else float("inf")
        if since < (0.1 if self.tty else self.interval) and not final:
            return
        if self.tty:
            text = line()
            self.stream.write("\r" + text.ljust(self.width))
            self.width = len(text)
        else:
            self.stream.write(line() + "\n")
        self.last = now
        self.stream.flush()

    def event(self, message: str) -> None:
        self.end_line()
        _say(message)

    def end_line(self) -> None:
        if self.tty and self.width:
            self.stream.write("\n")
            self.stream.flush()
            self.width = 0


def ask_about_reviewed(count: int, task: str, stdin: Any = None) -> str:
    """Ask once what to do with ``count`` photos whose current result was reviewed: ``skip``, ``replace`` or
    ``keep``. Without a terminal (scripts, CI) nobody can answer: they are skipped."""
    stdin = stdin or sys.stdin
    if not stdin.isatty():
        return "skip"
    print(
        f"{count} photos already have a reviewed {task} result (approved, edited, rejected or written).\n"
        "  s  skip them (default)\n"
        "  r  replace: the new result becomes current; the reviewed one is kept as a version, never written\n"
        "  k  keep both as versions: the reviewed result stays current and is what is written",
        file=sys.stderr,
        flush=True,
    )
    choices = {"": "skip", "s": "skip", "skip": "skip", "r": "replace", "replace": "replace"}
    choices.update({"k": "keep", "keep": "keep"})
    while True:
        print("What should this run do with them? [S/r/k] ", end="", file=sys.stderr, flush=True)
        line = stdin.readline()
        if not line:  # end of input: nobody is there to answer
            return "skip"
        answer = choices.get(line.strip().lower())
        if answer is not None:
            return answer


@contextmanager
def cancel_on_signals(cancel: Callable[[], None]) -> Iterator[None]:
    """Ctrl-C (or SIGTERM) asks the run to stop after the current photo; a second Ctrl-C stops at once."""
    previous = {}

    def handler(signum: int, _frame: object) -> None:
        _say("stopping after the current photo (Ctrl-C again to stop now)…")
        cancel()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def run(args: argparse.Namespace) -> int:
    from captioneer.backends.errors import ConfigurationError
    from captioneer.desktop.core.context import ContextSpec, parse_variables
    from captioneer.desktop.core.engine_setup import engine_config, sampling_choices
    from captioneer.desktop.core.settings import clip_budget, load_settings
    from captioneer.desktop.core.tasks import get_task
    from captioneer.desktop.core.video import is_video_path
    from captioneer.desktop.library.catalog import open_catalog
    from captioneer.desktop.library.folder_rules import describe_groups, read_rules, rules_path
    from captioneer.desktop.library.keyword_rules import check_rules
    from captioneer.desktop.library.keywords import read_vocabulary
    from captioneer.desktop.library.photo_context import check_context
    from captioneer.desktop.library.rule_runs import rule_runs
    from captioneer.desktop.library.run_media import clip_context
    from captioneer.desktop.library.run_spec import context_fields, vocabulary_fields
    from captioneer.desktop.library.runs import RunController, RunSpec
    from captioneer.desktop.library.scanner import printable, scan_library

    settings = load_settings()
    folder = args.folder.expanduser().absolute()
    vocabulary = read_vocabulary(args.vocabulary) if args.vocabulary is not None else None
    if vocabulary and vocabulary.ambiguous:
        names = ", ".join(vocabulary.ambiguous)
        _say(f"the vocabulary has {names} at more than one place: written without a path (rename one)")
    if args.batch_size < 1 or (args.recycle_every is not None and args.recycle_every < 1):
        raise ConfigurationError("--batch-size and --recycle-every must be at least 1.")
    context = ContextSpec(
        parse_variables(args.prompt_context or ""), args.event or "", args.people or "", args.location or ""
    )
    check_context(get_task(args.task), context)
    overrides = overrides_from_args(args)
    config = engine_config(settings, overrides)
    spec = RunSpec(
        task=args.task,
        language=args.language or settings.language,
        max_keywords=args.max_keywords,
        **vocabulary_fields(vocabulary),
        vocabulary_only=not args.vocabulary_loose,
        sampling=sampling_choices(settings, overrides),
        image_tokens=config.image_tokens,
        video_tokens=clip_budget(settings, args.video_tokens),  # --video-tokens, else the settings
        batch_size=args.batch_size,
        **context_fields(context),
        **keyword_fields(args),
    )
    check_rules(spec.keyword_rules(), spec.max_keywords)
    rules = read_rules(args.rules.expanduser() if args.rules is not None else rules_path())
    printer = ProgressPrinter()
    controller = RunController()
    with open_catalog() as catalog, cancel_on_signals(controller.cancel):
        try:
            report = scan_library(catalog, folder, cancel=controller.cancel_token, progress=printer.scanning)
        finally:
            printer.end_line()
        _say(f"scanned {printable(str(folder))}: {report.summary()}")
        for line in report.problem_lines():
            _say(line)
        photos = catalog.photos_under(folder)
        runs = rule_runs(catalog, photos, spec, rules)
        ruled = describe_groups([(group.rule, group.photos) for group in runs])
        if ruled:
            _say(f"folder rules: {ruled}")
        if any(is_video_path(Path(photo.path)) for photo in photos):
            config = clip_context(config, spec.video_tokens)
        engine = _Engine(settings, config, overrides, args.recycle_every, controller)
        try:
            scope = str(folder)
            failed = [
                _tag_photos(catalog, group.scope(scope), group.photos, group.spec, args, engine, printer)
                for group in runs
            ]
        finally:
            engine.unload()
    return 1 if any(failed) else 0


class _Engine:
    """The model, loaded once when the first run has photos to tag and shared by the runs of one ``tag``."""

    def __init__(
        self, settings: Any, config: Any, overrides: Any, recycle_every: int | None, controller: Any
    ) -> None:
        self.settings = settings
        self.config = config
        self.overrides = overrides
        self.recycle_every = recycle_every
        self.controller = controller
        self.backend: Any = None

    def load(self) -> Any:
        """The loaded backend (loading it the first time).

        Raises:
            CaptioneerError: the engine did not start.
        """
        from captioneer.desktop.core.engine_setup import open_backend

        if self.backend is None:
            settings = self.settings
            if self.recycle_every:
                settings = settings.model_copy(update={"host_recycle_every": self.recycle_every})
            backend = open_backend(settings, self.config, in_process=self.overrides.in_process)
            _say(f"loading the {self.config.engine} model {self.config.model}…")
            backend.load(cancel=self.controller.cancel_token)
            self.backend = backend
        return self.backend

    def unload(self) -> None:
        if self.backend is not None:
            self.backend.unload()
            self.backend = None


def _tag_photos(
    catalog: Any,
    scope: str,
    photos: list[Any],
    spec: Any,
    args: argparse.Namespace,
    engine: _Engine,
    printer: ProgressPrinter,
) -> bool:
    """Plan and execute one run (``scope``, ``photos``, ``spec``), then write it when asked; whether some
    photos failed."""
    from captioneer.desktop.library.publishing import nothing_to_write, writable_results, write_results
    from captioneer.desktop.library.runs import (
        abandon_run,
        execute_run,
        failed_items,
        plan_run,
        queued_media,
        reviewed_in_selection,
        run_counts,
        set_run_state,
    )
    from captioneer.desktop.library.scanner import media_count, printable
    from captioneer.desktop.library.sidecars import WriteMode

    config, controller = engine.config, engine.controller
    on_reviewed = args.reviewed
    if on_reviewed == "ask":
        reviewed = reviewed_in_selection(catalog, photos, spec, config, redo=args.redo)
        on_reviewed = ask_about_reviewed(reviewed, spec.task) if reviewed else "skip"
    plan = plan_run(catalog, scope, photos, spec, config, redo=args.redo, on_reviewed=on_reviewed)
    for skipped, kind, why in (
        (plan.skipped_videos, "video", "takes no videos"),
        (plan.skipped_photos, "photo", "takes only videos"),
    ):
        if skipped:
            _say(f"{skipped} {kind}{'s' if skipped != 1 else ''} skipped: the '{spec.task}' task {why}")
    if plan.skipped_reviewed:
        _say(
            f"skipped {plan.skipped_reviewed} photos whose {spec.task} result you already reviewed "
            "(--reviewed replace to tag them again, --reviewed keep to keep both as versions)"
        )
    if plan.run_id is None:
        if plan.already_done:
            _say(
                f"nothing to tag: {plan.already_done} photos already have a result from this model "
                "(--redo to tag them again)"
            )
        elif not plan.skipped_reviewed:
            _say("nothing to tag: no photos in this folder")
        return False
    counts = run_counts(catalog, plan.run_id)
    verb = "resuming run" if plan.resumed else "run"
    done_note = f", {plan.already_done} already tagged (--redo to tag again)" if plan.already_done else ""
    rule_note = f" (rule {spec.rule}: {spec.task})" if spec.rule else ""
    pending = media_count(*queued_media(catalog, plan.run_id, "pending"))
    _say(f"{verb} {plan.run_id}{rule_note}: {pending} to tag{done_note}")
    if counts.pending:
        try:
            backend = engine.load()
        except BaseException as exc:
            abandon_run(catalog, plan.run_id, f"The engine did not start: {exc}")
            raise
        try:
            counts = execute_run(
                catalog,
                plan.run_id,
                backend,
                controller=controller,
                on_progress=printer,
                on_event=printer.event,
                retries=0 if args.no_retry else 1,
            )
        finally:
            printer.end_line()
    else:
        set_run_state(catalog, plan.run_id, "done")
    failed = failed_items(catalog, plan.run_id)
    photos, videos = queued_media(catalog, plan.run_id, "done")
    tagged = f"{counts.done} tagged" + (f" ({media_count(photos, videos)})" if videos else "")
    _say(f"run {plan.run_id} finished: {tagged}, {counts.failed} failed, {counts.needs_review} need review")
    for path, error, _kind in failed:
        _say(f"failed {printable(path)}: {printable(error)}")
    run_results = catalog.results(run_id=plan.run_id)
    kept = sum(not result.current for result in run_results)
    if kept:
        _say(
            f"{kept} new results were kept as versions: your reviewed results stay current and are what "
            "is written (`captioneer review list --versions`, `captioneer review use ID`)"
        )
    if args.write != "none" or args.dry_run:
        mode = WriteMode(args.write if args.write != "none" else engine.settings.metadata_mode)
        results = writable_results(catalog, unreviewed=args.write_unreviewed, run_id=plan.run_id)
        if not results:
            reason = nothing_to_write(catalog, unreviewed=args.write_unreviewed, run_id=plan.run_id)
            _say(reason + ("" if args.write_unreviewed else " or pass --write-unreviewed"))
        else:
            summary = write_results(
                catalog,
                results,
                mode=mode,
                dry_run=args.dry_run,
                report=print if args.dry_run else _say,
            )
            _say(summary.describe(args.dry_run))
    else:
        _say("review the results with `captioneer review list`, then write them with `captioneer write`")
    return bool(failed)
