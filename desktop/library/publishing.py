"""Drive the metadata writer from the catalog: which results to write, dry run, write, log, and undo.

Every (non-dry-run) write is one *write operation*: a ``write_ops`` row with its own journal, so
``undo_write(catalog, op_id)`` puts back exactly what that write changed, byte for byte.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from captioneer.backends.errors import CaptioneerError
from captioneer.desktop.core.languages import find_language
from captioneer.desktop.core.paths import data_dir
from captioneer.desktop.library.catalog import Catalog, Result
from captioneer.desktop.library.catalog.runs import get_run
from captioneer.desktop.library.catalog.write_ops import WriteOperation as WriteOperation
from captioneer.desktop.library.catalog.write_ops import (
    forget_operation,
    log_write,
    mark_undone,
    marked_anything,
    newer_write,
    results_marked_by,
    start_operation,
    write_operation,
)
from captioneer.desktop.library.catalog.write_ops import write_operations as write_operations
from captioneer.desktop.library.journal import Journal, JournalError, UndoReport, remove_stale_temps, undo
from captioneer.desktop.library.keyword_tree import KeywordPath
from captioneer.desktop.library.keywords import merge_keywords
from captioneer.desktop.library.merge import Generated
from captioneer.desktop.library.sidecars import SidecarNaming, WriteMode
from captioneer.desktop.library.writer import DiskFullError, WriteOptions, WritePlan, apply, plan_write

WRITABLE_REVIEWED = ("approved",)
WRITABLE_UNREVIEWED = ("approved", "new", "needs_review")


Report = Callable[[str], None]


class WriteStopped(CaptioneerError):
    """Writing stopped part-way (disk full, journal failure); what was written stays written and journaled."""


class UndoRefused(CaptioneerError):
    """Undoing this write would also throw away ``newer``, a later write of the same photos."""

    def __init__(self, message: str, newer: int) -> None:
        super().__init__(message)
        self.newer = newer


def language_tag(language: str) -> str:
    """The BCP-47 tag for a language name (``Deutsch`` or ``German`` → ``de``); a tag is kept as given."""
    name = language.strip()
    known = find_language(name)
    return known.tag if known is not None else name if len(name) <= 8 and " " not in name else ""


def _start_operation(catalog: Catalog, mode: WriteMode) -> tuple[int, Journal]:
    """A new write operation and its own journal folder."""
    op_id, directory = start_operation(catalog, mode.value, data_dir() / "journal")
    return op_id, Journal(directory)


def _finish_operation(catalog: Catalog, op_id: int, journal: Journal) -> None:
    """Forget an operation that marked nothing written (every photo skipped or failed)."""
    if marked_anything(catalog, op_id) or journal.entries():
        return
    forget_operation(catalog, op_id)
    shutil.rmtree(journal.directory, ignore_errors=True)


def writable_results(
    catalog: Catalog, *, unreviewed: bool = False, run_id: int | None = None
) -> list[Result]:
    """The results a write step takes: each photo's current result per task (never a superseded version),
    approved (or, with ``unreviewed``, anything not rejected or already written); results with nothing to
    write are left out. A photo with several such results gets them combined into one change
    (:func:`photo_changes`)."""
    states = WRITABLE_UNREVIEWED if unreviewed else WRITABLE_REVIEWED
    return [
        result
        for result in catalog.results(current_only=True, review=states, run_id=run_id)
        if _has_text(result)
    ]


def _has_text(result: Result) -> bool:
    return bool(result.caption.strip() or result.keywords)


def nothing_to_write(catalog: Catalog, *, unreviewed: bool = False, run_id: int | None = None) -> str:
    """Why :func:`writable_results` is empty, for the person: nothing approved yet, or approved results with
    no caption and no keywords (answers that were cut off or invalid), which are never written."""
    states = WRITABLE_UNREVIEWED if unreviewed else WRITABLE_REVIEWED
    empty = catalog.results(current_only=True, review=states, run_id=run_id)
    if empty:
        ids = ", ".join(str(result.id) for result in empty[:5]) + (" …" if len(empty) > 5 else "")
        return (
            f"nothing to write: the {len(empty)} results ready to write have no caption and no keywords "
            f"(cut-off or invalid answers; ids {ids}): edit them (captioneer review edit ID) or tag again"
        )
    return "nothing to write: approve results first (captioneer review approve)"


def writable_for_photo(catalog: Catalog, photo_id: int, *, unreviewed: bool = False) -> list[Result]:
    """The results of one photo that the next write takes (what the review panel says will be written)."""
    states = WRITABLE_UNREVIEWED if unreviewed else WRITABLE_REVIEWED
    return [
        result
        for result in catalog.current_results(photo_id)
        if result.review in states and _has_text(result)
    ]


@dataclass(frozen=True)
class PhotoChange:
    """One photo's write: its writable results (current ones, one per task, oldest first), combined."""

    results: tuple[Result, ...]

    @property
    def newest(self) -> Result:
        """The result whose run the change is journaled under and whose provenance it carries."""
        return self.results[-1]

    @property
    def path(self) -> str:
        return self.results[0].path

    def generated(self, paths: RunPaths | None = None) -> Generated:
        return combined_generated(self.results, paths)


RunPaths = Mapping[int, Mapping[str, KeywordPath]]
"""Each run's vocabulary paths: run id → casefolded keyword → its path."""


def run_keyword_paths(catalog: Catalog, results: Sequence[Result]) -> dict[int, dict[str, KeywordPath]]:
    """The vocabulary paths stored with the runs of ``results`` (see :class:`RunSpec` ``keyword_paths``)."""
    return {
        run_id: {
            keyword.casefold(): KeywordPath.parse(text)
            for keyword, text in get_run(catalog, run_id).spec.keyword_paths.items()
        }
        for run_id in {result.run_id for result in results}
    }


def photo_changes(results: Sequence[Result]) -> list[PhotoChange]:
    """Group results by photo (in the order photos first appear): one change per file."""
    groups: dict[int, list[Result]] = {}
    for result in results:
        groups.setdefault(result.photo_id, []).append(result)
    return [
        PhotoChange(tuple(sorted(group, key=lambda r: (r.created_at, r.id)))) for group in groups.values()
    ]


def combined_generated(results: Sequence[Result], paths: RunPaths | None = None) -> Generated:
    """What the metadata writer merges into a photo for its results (oldest first): every keyword of every
    result (first spelling kept), with its path in the vocabulary of the result's run (``paths``) when it
    has one, also for a keyword added in review; each of caption, title and alt text from the newest result
    that has one; provenance and language from the newest result."""
    if not results:
        raise ValueError("combined_generated needs at least one result")
    keywords: list[str] = []
    caption = title = alt_text = ""
    placed: dict[str, KeywordPath] = {}
    for result in results:
        keywords = merge_keywords(keywords, result.keywords)
        run_paths = (paths or {}).get(result.run_id, {})
        folded = (keyword.casefold() for keyword in result.keywords)
        placed.update({key: run_paths[key] for key in folded if key in run_paths})
        caption = result.caption.strip() and result.caption or caption
        title = result.title or title
        alt_text = result.alt_text or alt_text
    newest = results[-1]
    return Generated(
        keywords=tuple(keywords),
        caption=caption,
        title=title,
        alt_text=alt_text,
        language=language_tag(newest.language),
        model=newest.model,
        engine=newest.engine,
        quant=newest.quant or "",
        prompt_hash=newest.prompt_hash,
        time=datetime.fromtimestamp(newest.created_at, UTC).isoformat(timespec="seconds"),
        paths={k: placed[k.casefold()] for k in keywords if k.casefold() in placed},
    )


@dataclass
class WriteSummary:
    """What a write (or its dry run) did; ``op_id`` is the write operation to undo, if one was kept."""

    written: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    would_change: int = 0
    notes: list[str] = field(default_factory=list)
    op_id: int | None = None

    def describe(self, dry_run: bool) -> str:
        """One line: what changed (or would), what was skipped or refused, and the write's id."""
        done = f"dry run: {self.would_change} files would change" if dry_run else f"{self.written} written"
        parts = [done, f"{self.unchanged} already up to date"]
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        text = ", ".join(parts)
        return f"write {self.op_id}: {text}" if self.op_id is not None else text


def write_results(
    catalog: Catalog,
    results: Sequence[Result],
    *,
    mode: WriteMode,
    naming: SidecarNaming = SidecarNaming.FULL,
    dry_run: bool = False,
    report: Report | None = None,
) -> WriteSummary:
    """Write results into their photos (or show the diff with ``dry_run``, touching nothing).

    The whole call is one write operation with its own journal (``summary.op_id``), so ``undo_write`` restores
    exactly what it changed, byte for byte. A written (or already up-to-date) result becomes ``written``; a
    skipped or refused one stays approved for the next write. Notes for the person (an IPTC caption cut at
    2,000 bytes, a keyword kept XMP-only) go to ``report`` and ``summary.notes``, in the dry run too.

    Raises:
        WriteStopped: the disk is full or the journal cannot be written; nothing more is attempted.
    """
    options = WriteOptions(mode=mode, naming=naming)
    summary = WriteSummary()
    say = report or (lambda _message: None)
    journal: Journal | None = None
    if not dry_run:
        for root in {catalog.library_root(result.photo_id) for result in results}:
            if root.is_dir():
                removed = remove_stale_temps(root)
                if removed:
                    say(f"removed {len(removed)} temp file(s) an interrupted write left in {root}")
        if results:
            summary.op_id, journal = _start_operation(catalog, mode)
    paths = run_keyword_paths(catalog, results)
    try:
        for change in photo_changes(results):
            _write_one(catalog, change, paths, options, journal, summary, say)
    finally:
        if journal is not None and summary.op_id is not None:
            _finish_operation(catalog, summary.op_id, journal)
            if write_operation(catalog, summary.op_id) is None:
                summary.op_id = None
    return summary


def _write_one(
    catalog: Catalog,
    change: PhotoChange,
    paths: RunPaths,
    options: WriteOptions,
    journal: Journal | None,
    summary: WriteSummary,
    say: Report,
) -> None:
    """Plan (and unless ``journal`` is None, apply) one photo's combined change; count and report what
    happened, and log it for every result the change carries."""
    result = change.newest
    photo = Path(result.path)
    mode = options.mode.value

    def note(text: str) -> None:
        summary.notes.append(f"{result.path}: {text}")
        say(f"{result.path}: note: {text}")

    try:
        root = catalog.library_root(result.photo_id)
        plan = plan_write(photo, change.generated(paths), library_root=root, options=options)
        if journal is None:
            if plan.changed:
                summary.would_change += 1
                say(plan.describe())  # the notes are part of the description
                summary.notes += [f"{result.path}: {text}" for text in _plan_notes(plan)]
            elif plan.skipped:
                summary.skipped.append((result.path, plan.skipped))
                say(plan.describe())
            else:
                summary.unchanged += 1
            return
        outcome = apply(plan, journal)
    except DiskFullError as exc:
        if journal is not None:
            for part in change.results:
                log_write(catalog, part, mode, "failed", str(exc), op_id=summary.op_id)
        raise WriteStopped(f"{exc} {summary.written} photos were written before it stopped.") from None
    except JournalError as exc:
        raise WriteStopped(f"Writing stopped: {exc}") from None
    except (
        CaptioneerError
    ) as exc:  # refused (symlink, damaged XMP, outside the library), unreadable, changing
        summary.failed.append((result.path, str(exc)))
        say(f"{result.path}: {exc}")
        if journal is not None:
            for part in change.results:
                log_write(catalog, part, mode, "failed", str(exc), op_id=summary.op_id)
        return
    if outcome.status == "written":
        summary.written += 1
        say(f"wrote {', '.join(str(path) for path, _sha in outcome.files)}")
    elif outcome.status == "unchanged":
        summary.unchanged += 1
    else:
        summary.skipped.append((result.path, outcome.reason))
        say(f"{result.path}: {outcome.reason}")
    for text in outcome.notes:
        note(text)
    for part in change.results:
        reason = outcome.reason or None
        log_write(catalog, part, mode, outcome.status, reason, str(journal.directory), op_id=summary.op_id)


def _plan_notes(plan: WritePlan) -> list[str]:
    return [*plan.notes, *(text for change in plan.changes for text in change.notes)]


def undo_write(catalog: Catalog, op_id: int, *, force: bool = False) -> UndoReport:
    """Put back every file write operation ``op_id`` changed, and mark the results it wrote approved again.

    Raises:
        JournalError: there is no such write, or its journal is damaged.
        UndoRefused: a newer write changed some of the same photos (undo that first, or ``force``).
    """
    operation = write_operation(catalog, op_id)
    if operation is None:
        raise JournalError(
            f"Nothing to undo: there is no write {op_id} (`captioneer undo` lists the writes)."
        )
    newer = newer_write(catalog, op_id)
    if newer is not None and not force:
        raise UndoRefused(
            f"Write {newer} changed some of the same photos after write {op_id}: undo write {newer} first.",
            newer=newer,
        )
    report = (
        undo(operation.journal, force=force) if (operation.journal / "entries").is_dir() else UndoReport()
    )
    if report.ok:
        ids = results_marked_by(catalog, op_id)
        still_written = [r.id for r in catalog.results(ids=ids, review=("written",))]
        catalog.set_review(still_written, "approved", f"metadata write {op_id} undone")
        mark_undone(catalog, op_id)
    return report
