"""Browsing the library: folder trees, keyword counts, the review panel and history, the window's prefs, what
the window says about a video clip.

Also typing keywords (completion, splitting) and the runs the window offers to resume.

The grid's queries (filters, photo ids, row pages, review snapshots) live in the catalog
(:mod:`~captioneer.desktop.library.catalog.browsing`, :mod:`~captioneer.desktop.library.catalog.review`) and
are importable from here as well."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from captioneer.backends.errors import CaptioneerError
from captioneer.desktop.core.paths import config_dir
from captioneer.desktop.core.tasks import get_task
from captioneer.desktop.core.video import is_video_path
from captioneer.desktop.library.catalog import Catalog, Photo, Result
from captioneer.desktop.library.catalog.browsing import KIND_FILTERS as KIND_FILTERS
from captioneer.desktop.library.catalog.browsing import KIND_LABELS as KIND_LABELS
from captioneer.desktop.library.catalog.browsing import STATUS_FILTERS as STATUS_FILTERS
from captioneer.desktop.library.catalog.browsing import STATUS_LABELS as STATUS_LABELS
from captioneer.desktop.library.catalog.browsing import BrowseFilter as BrowseFilter
from captioneer.desktop.library.catalog.browsing import PhotoRow as PhotoRow
from captioneer.desktop.library.catalog.browsing import compile_filter as compile_filter
from captioneer.desktop.library.catalog.browsing import fetch_rows as fetch_rows
from captioneer.desktop.library.catalog.browsing import filtered_results as filtered_results
from captioneer.desktop.library.catalog.browsing import keywords_in_use, present_paths
from captioneer.desktop.library.catalog.browsing import match_snippet as match_snippet
from captioneer.desktop.library.catalog.browsing import photo_ids as photo_ids
from captioneer.desktop.library.catalog.browsing import status_counts as status_counts
from captioneer.desktop.library.catalog.review import ResultState
from captioneer.desktop.library.catalog.review import restore as restore
from captioneer.desktop.library.catalog.review import snapshot as snapshot
from captioneer.desktop.library.merge import Generated
from captioneer.desktop.library.publishing import photo_changes, writable_for_photo
from captioneer.desktop.library.runs import RESUMABLE_STATES, Run, list_runs, run_counts

KEYWORD_SEPARATOR = "; "

log = logging.getLogger(__name__)


# ---- folders and keywords -----------------------------------------------------------------------------


@dataclass
class FolderNode:
    """A folder in a library with the number of photos (and video clips) in it and below it."""

    path: str
    name: str
    count: int = 0
    children: dict[str, FolderNode] = field(default_factory=dict)
    videos: int = 0
    """How many of ``count`` are video clips."""

    def sorted_children(self) -> list[FolderNode]:
        return sorted(self.children.values(), key=lambda node: node.name.casefold())


def folder_tree(root: str, paths: Sequence[str]) -> FolderNode:
    """The folders holding ``paths`` below ``root``, each counting the photos in it and its subfolders (and
    how many of them are video clips)."""
    top = FolderNode(path=root, name=Path(root).name or root)
    base = root.rstrip(os.sep) + os.sep
    for path in paths:
        video = is_video_path(Path(path))
        top.count += 1
        top.videos += video
        if not path.startswith(base):
            continue
        node = top
        for part in path[len(base) :].split(os.sep)[:-1]:
            child = node.children.get(part)
            if child is None:
                child = node.children[part] = FolderNode(
                    path=node.path.rstrip(os.sep) + os.sep + part, name=part
                )
            child.count += 1
            child.videos += video
            node = child
    return top


def library_trees(catalog: Catalog) -> list[FolderNode]:
    """Every library as a folder tree of its present photos."""
    trees = []
    for library_id, root in catalog.libraries():
        trees.append(folder_tree(root, present_paths(catalog, library_id)))
    return trees


def keyword_counts(catalog: Catalog) -> list[tuple[str, int]]:
    """The keywords on the photos' current results and those already in the photos' files, most used first
    (spelling of the first one seen)."""
    counts: dict[str, list[Any]] = {}
    for value in keywords_in_use(catalog):
        if not isinstance(value, str):
            continue
        entry = counts.setdefault(value.casefold(), [value, 0])
        entry[1] += 1
    return sorted(((word, count) for word, count in counts.values()), key=lambda item: (-item[1], item[0]))


def completion_words(library: Sequence[tuple[str, int]], vocabulary: Sequence[str]) -> list[str]:
    """Words for keyword autocomplete: the library's own keywords (most used first), then the vocabulary's
    others, each once whatever its case."""
    seen: set[str] = set()
    words = []
    for word in [word for word, _count in library] + list(vocabulary):
        if word.casefold() not in seen:
            seen.add(word.casefold())
            words.append(word)
    return words


def keyword_suggestions(photo: Sequence[str], library: Sequence[str], taken: Sequence[str]) -> list[str]:
    """What keyword autocomplete offers while a photo is edited: the keywords already in its files first,
    then the library's (most used first, then the vocabulary's), each once whatever its case, leaving out
    those the photo's result already has."""
    seen = {word.casefold() for word in taken}
    words = []
    for word in [*photo, *library]:
        if word.casefold() not in seen:
            seen.add(word.casefold())
            words.append(word)
    return words


def with_keyword(keywords: Sequence[str], word: str) -> list[str]:
    """``keywords`` with ``word`` added at the end, unless it is there already (whatever its case)."""
    if any(keyword.casefold() == word.casefold() for keyword in keywords):
        return list(keywords)
    return [*keywords, word]


def without_keyword(keywords: Sequence[str], word: str) -> list[str]:
    """``keywords`` without ``word`` (whatever its case)."""
    return [keyword for keyword in keywords if keyword.casefold() != word.casefold()]


@dataclass(frozen=True)
class KeywordChange:
    """One keyword added to (or removed from) the results of several photos, undoable as one review step."""

    step: ReviewStep
    changed: tuple[int, ...]
    """The photos whose keywords changed."""
    untagged: int
    """Selected photos left alone because they have no result yet."""


def change_keyword(catalog: Catalog, rows: Sequence[PhotoRow], keyword: str, *, add: bool) -> KeywordChange:
    """Add ``keyword`` to (or remove it from) the newest result of each of these photos, the result their
    panel edits; photos not tagged yet are counted, not changed.

    Raises:
        CaptioneerError: the keyword is empty.
    """
    word = " ".join(keyword.split())
    if not word:
        raise CaptioneerError("Type a keyword first.")
    tagged = [row for row in rows if row.result_id is not None]
    label = f"{'Add' if add else 'Remove'} keyword {word} ({len(tagged)} photos)"
    step = ReviewStep(label, snapshot(catalog, [row.result_id for row in tagged if row.result_id]))
    changed = []
    for row in tagged:
        result = catalog.result(row.result_id) if row.result_id is not None else None
        if result is None:
            continue
        keywords = with_keyword(result.keywords, word) if add else without_keyword(result.keywords, word)
        if catalog.edit_result(result.id, keywords=keywords):
            changed.append(row.photo_id)
    return KeywordChange(step=step, changed=tuple(changed), untagged=len(rows) - len(tagged))


def split_keywords(text: str) -> list[str]:
    """Keywords typed as ``beach; sunset, family`` (either separator), trimmed, each once."""
    seen: set[str] = set()
    keywords = []
    for part in text.replace(",", ";").split(";"):
        word = " ".join(part.split())
        if word and word.casefold() not in seen:
            seen.add(word.casefold())
            keywords.append(word)
    return keywords


def join_keywords(keywords: Sequence[str]) -> str:
    return KEYWORD_SEPARATOR.join(keywords)


# ---- video clips ----------------------------------------------------------------------------------------


def clip_length(seconds: float) -> str:
    """A clip's length as players show it: ``0:12``, ``12:05``, ``1:02:03`` (at least ``0:01``)."""
    total = max(1, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass(frozen=True)
class ClipFacts:
    """What the window shows about a video clip: its length in seconds, its size as shown (rotation
    applied) and its codec (FFmpeg's name)."""

    duration: float
    width: int
    height: int
    codec: str

    def describe(self) -> str:
        """``video 0:12 · 1080×1920 · hevc``: the details panel's line."""
        return f"video {clip_length(self.duration)} · {self.width}×{self.height} · {self.codec}"


# ---- reversible review steps ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewStep:
    """One review action (approve, reject, edit) over one or more results, with their states before it."""

    label: str
    before: tuple[ResultState, ...]


class ReviewHistory:
    """The review actions of this session, newest last, so U takes back the last one."""

    def __init__(self, limit: int = 200) -> None:
        self.limit = limit
        self._steps: list[ReviewStep] = []

    def push(self, step: ReviewStep) -> None:
        if step.before:
            self._steps.append(step)
            del self._steps[: -self.limit]

    def pop(self) -> ReviewStep | None:
        return self._steps.pop() if self._steps else None

    def __len__(self) -> int:
        return len(self._steps)


# ---- runs the window offers to resume -------------------------------------------------------------------


@dataclass(frozen=True)
class ResumableRun:
    run: Run
    pending: int
    total: int

    def describe(self) -> str:
        return (
            f"Run {self.run.id} ({self.run.task}, {self.run.model}) stopped with {self.pending} of "
            f"{self.total} photos still to tag."
        )


def resumable_runs(catalog: Catalog) -> list[ResumableRun]:
    """Unfinished runs that still have photos to tag, newest first (a closed window leaves its run paused)."""
    found = []
    for run in reversed(list_runs(catalog)):
        if run.state not in RESUMABLE_STATES:
            continue
        counts = run_counts(catalog, run.id)
        if counts.pending:
            found.append(ResumableRun(run=run, pending=counts.pending, total=counts.total))
    return found


@dataclass(frozen=True)
class PhotoReview:
    """What the review panel shows for one photo: its current result of each task (oldest first) and the one
    combined change the next write makes (None when nothing of it is approved), the same as the write
    preview, because both come from :func:`~captioneer.desktop.library.publishing.photo_changes`."""

    results: tuple[Result, ...]
    will_write: Generated | None

    def describe_results(self) -> str:
        """One line per task: ``Caption + keywords · approved · run 3``."""
        lines = []
        for result in self.results:
            state = result.review.replace("_", " ") + (" · edited" if result.edited else "")
            lines.append(f"{_task_label(result.task)} · {state} · run {result.run_id}")
        return "\n".join(lines)

    def describe_write(self) -> str:
        """The "will be written" summary: what the write preview shows for this photo's file."""
        generated = self.will_write
        if generated is None:
            if any(result.review == "written" for result in self.results):
                return "Will be written: nothing new (the written results are in the file)."
            return "Will be written: nothing yet (approve a result first)."
        lines = ["Will be written:"]
        for label, value in (
            ("caption", generated.caption),
            ("title", generated.title),
            ("alt text", generated.alt_text),
        ):
            if value:
                lines.append(f"{label}: {value}")
        if generated.keywords:
            lines.append("keywords: " + join_keywords(generated.keywords))
        return "\n".join(lines)


def _task_label(task_id: str) -> str:
    try:
        return get_task(task_id).label
    except CaptioneerError:  # a task removed since the result was made
        return task_id


def photo_review(catalog: Catalog, photo_id: int) -> PhotoReview:
    """The review panel's content for a photo, read afresh from the catalog."""
    results = tuple(catalog.current_results(photo_id))
    changes = photo_changes(writable_for_photo(catalog, photo_id))  # exactly as the write groups them
    return PhotoReview(results=results, will_write=changes[0].generated() if changes else None)


def photos_by_id(catalog: Catalog, ids: Sequence[int]) -> list[Photo]:
    """Catalog photos for these ids, in the given order (for planning a run over a selection)."""
    photos = (catalog.photo(photo_id) for photo_id in ids)
    return [photo for photo in photos if photo is not None]


# ---- remembered window choices -------------------------------------------------------------------------


@dataclass
class LibraryPrefs:
    """What the library window remembers between sessions (a small JSON file in the config folder)."""

    task: str = "keywords"
    language: str = ""
    vocabulary: str = ""
    vocabulary_only: bool = True
    write_mode: str = ""
    thumb_edge: int = 160
    save_edits_on_leave: bool = False
    """Moving to another photo saves unsaved edits without asking (the person chose so once)."""
    context: list[str] = field(default_factory=list)
    """Tag Photos' context: the photo facts sent (see core/context.py) and the typed fields."""
    context_event: str = ""
    context_people: str = ""
    context_location: str = ""
    keyword_choices: dict[str, Any] = field(default_factory=dict)
    """Tag Photos' Keywords group as last chosen (run spec field names)."""

    @staticmethod
    def path() -> Path:
        return config_dir() / "library-window.json"

    @classmethod
    def load(cls) -> LibraryPrefs:
        """The saved choices; defaults when there are none or the file is unreadable (it is only comfort)."""
        path = cls.path()
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{key: value for key, value in data.items() if key in cls.__dataclass_fields__})
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            log.warning("Ignoring the unreadable library window settings %s (%s); using defaults.", path, exc)
            return cls()

    def save(self) -> None:
        path = self.path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
