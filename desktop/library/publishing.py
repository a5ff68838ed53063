"""Drive the metadata writer from the catalog: which results to write, dry run, write, log, and undo a run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from backends.errors import CaptioneerError
from desktop.core.paths import data_dir
from desktop.library.catalog import Catalog, Result
from desktop.library.journal import Journal, JournalError, UndoReport, remove_stale_temps, undo
from desktop.library.keywords import merge_keywords
from desktop.library.metadata import Generated
from desktop.library.sidecars import SidecarNaming, WriteMode
from desktop.library.writer import DiskFullError, WriteOptions, apply, plan_write

WRITABLE_REVIEWED = ("approved",)
WRITABLE_UNREVIEWED = ("approved", "new", "needs_review")

# BCP-47 tags for the output languages people pick by name; the caption is also written as x-default.
LANGUAGE_TAGS = {
    "english": "en",
    "german": "de",
    "french": "fr",
    "spanish": "es",
    "italian": "it",
    "portuguese": "pt",
    "dutch": "nl",
    "swedish": "sv",
    "danish": "da",
    "norwegian": "no",
    "finnish": "fi",
    "polish": "pl",
    "czech": "cs",
    "turkish": "tr",
    "russian": "ru",
    "ukrainian": "uk",
    "greek": "el",
    "japanese": "ja",
    "chinese": "zh",
    "korean": "ko",
    "arabic": "ar",
    "hebrew": "he",
    "hindi": "hi",
    "thai": "th",
    "vietnamese": "vi",
    "indonesian": "id",
    "romanian": "ro",
    "hungarian": "hu",
    "bulgarian": "bg",
}

Report = Callable[[str], None]


class WriteStopped(CaptioneerError):
    """Writing stopped part-way (disk full, journal failure); what was written stays written and journaled."""


def language_tag(language: str) -> str:
    """The BCP-47 tag for a language name (``German`` → ``de``); a tag given as such is kept."""
    name = language.strip()
    return LANGUAGE_TAGS.get(name.casefold(), name if len(name) <= 8 and " " not in name else "")


def journal_dir(run_id: int) -> Path:
    """Where the write journal of a run lives (one per run, so ``undo RUN`` restores just that run)."""
    return data_dir() / "journal" / str(run_id)


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

    def generated(self) -> Generated:
        return combined_generated(self.results)


def photo_changes(results: Sequence[Result]) -> list[PhotoChange]:
    """Group results by photo (in the order photos first appear): one change per file."""
    groups: dict[int, list[Result]] = {}
    for result in results:
        groups.setdefault(result.photo_id, []).append(result)
    return [
        PhotoChange(tuple(sorted(group, key=lambda r: (r.created_at, r.id)))) for group in groups.values()
    ]


def combined_generated(results: Sequence[Result]) -> Generated:
    """What the metadata writer merges into a photo for its results (oldest first): every keyword of every
    result (first spelling kept); each of caption, title and alt text from the newest result that has one;
    provenance and language from the newest result."""
    if not results:
        raise ValueError("combined_generated needs at least one result")
    keywords: list[str] = []
    caption = title = alt_text = ""
    for result in results:
        keywords = merge_keywords(keywords, result.keywords)
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
    )


def library_root_of(catalog: Catalog, result: Result) -> Path:
    row = catalog.db.execute(
        "SELECT l.root FROM photos p JOIN libraries l ON l.id = p.library_id WHERE p.id = ?",
        (result.photo_id,),
    ).fetchone()
    return Path(row[0])


@dataclass
class WriteSummary:
    written: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    would_change: int = 0

    def describe(self, dry_run: bool) -> str:
        if dry_run:
            return f"dry run: {self.would_change} files would change, {self.unchanged} already up to date"
        parts = [f"{self.written} written", f"{self.unchanged} already up to date"]
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        return ", ".join(parts)


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

    Each photo's change is journaled under its run, so ``undo_run`` restores it byte for byte. A written
    (or already up-to-date) result becomes ``written``; a skipped one stays approved for the next write.

    Raises:
        WriteStopped: the disk is full or the journal cannot be written; nothing more is attempted.
    """
    options = WriteOptions(mode=mode, naming=naming)
    summary = WriteSummary()
    say = report or (lambda _message: None)
    journals: dict[int, Journal] = {}
    if not dry_run:
        for root in {library_root_of(catalog, result) for result in results}:
            if root.is_dir():
                remove_stale_temps(root)
    for change in photo_changes(results):
        # One combined change per file; it is journaled under (and logged for) every result it carries.
        result = change.newest
        photo = Path(result.path)
        try:
            plan = plan_write(
                photo, change.generated(), library_root=library_root_of(catalog, result), options=options
            )
            if dry_run:
                if plan.changed:
                    summary.would_change += 1
                    say(plan.describe())
                elif plan.skipped:
                    summary.skipped.append((result.path, plan.skipped))
                    say(plan.describe())
                else:
                    summary.unchanged += 1
                continue
            journal = journals.get(result.run_id)
            if journal is None:
                journal = journals[result.run_id] = Journal(journal_dir(result.run_id))
            outcome = apply(plan, journal)
        except DiskFullError as exc:
            for part in change.results:
                catalog.log_write(part, mode.value, "failed", str(exc))
            raise WriteStopped(f"{exc} {summary.written} photos were written before it stopped.") from None
        except JournalError as exc:
            raise WriteStopped(f"Writing stopped: {exc}") from None
        except CaptioneerError as exc:  # refused (symlink, outside the library), unreadable, kept changing
            summary.failed.append((result.path, str(exc)))
            say(f"{result.path}: {exc}")
            if not dry_run:
                for part in change.results:
                    catalog.log_write(part, mode.value, "failed", str(exc))
            continue
        if outcome.status == "written":
            summary.written += 1
            say(f"wrote {', '.join(str(path) for path, _sha in outcome.files)}")
        elif outcome.status == "unchanged":
            summary.unchanged += 1
        else:
            summary.skipped.append((result.path, outcome.reason))
            say(f"{result.path}: {outcome.reason}")
        for note in outcome.notes:
            say(f"{result.path}: note: {note}")
        for part in change.results:
            catalog.log_write(
                part, mode.value, outcome.status, outcome.reason or None, str(journal_dir(result.run_id))
            )
    return summary


def undo_run(catalog: Catalog, run_id: int, *, force: bool = False) -> UndoReport:
    """Put back every file the run's writes touched, and mark its written results approved again.

    Raises:
        JournalError: nothing was written for this run, or its journal is damaged.
    """
    directory = journal_dir(run_id)
    if not (directory / "entries").is_dir():
        raise JournalError(f"Nothing was written for run {run_id}, so there is nothing to undo.")
    report = undo(directory, force=force)
    if report.ok:
        # A combined change is journaled under its newest result's run but carries other runs' results too.
        logged = [
            int(row[0])
            for row in catalog.db.execute(
                "SELECT DISTINCT result_id FROM write_log WHERE journal_ref = ?", (str(directory),)
            )
        ]
        written = [
            r.id
            for r in catalog.results(run_id=run_id, review=("written",))
            + catalog.results(ids=logged, review=("written",))
        ]
        catalog.set_review(sorted(set(written)), "approved", "metadata write undone")
    return report
