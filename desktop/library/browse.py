"""Browsing the catalog a page at a time: filters over photos and their current results, ordered photo ids,
row pages, folder trees, keyword counts, the review panel's content, reversible review steps and the library
window's remembered choices."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from captioneer.backends.errors import CaptioneerError
from captioneer.desktop.core.paths import config_dir
from captioneer.desktop.core.tasks import get_task
from captioneer.desktop.library.catalog import Catalog, CatalogError, Photo, Result
from captioneer.desktop.library.metadata import Generated
from captioneer.desktop.library.publishing import photo_changes, writable_for_photo
from captioneer.desktop.library.runs import RESUMABLE_STATES, Run, list_runs, run_counts
from captioneer.desktop.library.search import compile_query

STATUS_FILTERS = ("all", "untagged", "new", "needs_review", "approved", "rejected", "written")
"""What the status filter offers: every photo, photos without a result, or one review state."""

STATUS_LABELS = {
    "all": "All photos",
    "untagged": "Not tagged yet",
    "new": "New",
    "needs_review": "Needs review",
    "approved": "Approved",
    "rejected": "Rejected",
    "written": "Written",
}

KEYWORD_SEPARATOR = "; "

log = logging.getLogger(__name__)

# A photo has one current result per task. The grid shows (and the editor edits) the newest of them; filters
# match any of them; review actions and the write take all of them. Superseded versions never show here.
_NEWEST = "r.id = (SELECT MAX(r2.id) FROM results r2 WHERE r2.photo_id = p.id AND r2.current = 1)"
_FROM = f"photos p LEFT JOIN results r ON {_NEWEST}"


def _any_current(condition: str) -> str:
    """True when one of the photo's current results (as ``r``) meets ``condition``."""
    return f"EXISTS (SELECT 1 FROM results r WHERE r.photo_id = p.id AND r.current = 1 AND ({condition}))"


@dataclass(frozen=True)
class BrowseFilter:
    """What the grid shows: photos present in the catalog, narrowed by every field that is set.

    Attributes:
        folder: only photos in this folder or below it.
        status: ``untagged`` (no current result) or a review state one of the current results is in.
        keyword: photos with a current result that has this keyword, or whose files (read at the last scan)
            have it (case-insensitive; ``*`` wildcard).
        text: photos with a current result whose caption, title or alt text contains this text.
        query: the search language of ``captioneer search``, matched against each current result.
    """

    folder: str = ""
    status: str = "all"
    keyword: str = ""
    text: str = ""
    query: str = ""

    def describe(self) -> str:
        """A short label for the scope of a run or an export: ``folder /a · needs review · "beach"``."""
        parts = []
        if self.folder:
            parts.append(f"folder {self.folder}")
        if self.status != "all":
            parts.append(STATUS_LABELS[self.status].lower())
        if self.keyword:
            parts.append(f"keyword {self.keyword}")
        if self.text:
            parts.append(f'text "{self.text}"')
        if self.query:
            parts.append(f"search {self.query}")
        return " · ".join(parts) or "all photos"


def folder_bounds(folder: str) -> tuple[str, str]:
    """The path range ``[low, high)`` holding everything below ``folder``, so the path index answers it."""
    low = folder.rstrip(os.sep) + os.sep
    return low, low[:-1] + chr(ord(os.sep) + 1)


def compile_filter(browse: BrowseFilter) -> tuple[str, list[Any]]:
    """The SQL condition (over ``photos p`` and its newest current result ``r``) and its parameters.

    Raises:
        SearchSyntaxError: the search text cannot be understood (the message says where).
        CatalogError: the status is not one of :data:`STATUS_FILTERS`.
    """
    clauses = ["p.status = 'present'"]
    params: list[Any] = []
    if browse.folder:
        clauses.append("p.path >= ? AND p.path < ?")
        params.extend(folder_bounds(browse.folder))
    if browse.status not in STATUS_FILTERS:
        raise CatalogError(
            f"Unknown status filter '{browse.status}'. Use one of: {', '.join(STATUS_FILTERS)}."
        )
    if browse.status == "untagged":
        clauses.append("r.id IS NULL")
    elif browse.status != "all":
        clauses.append(_any_current("r.review = ?"))
        params.append(browse.status)
    if browse.keyword.strip():
        folded = browse.keyword.strip().casefold()
        operator = "GLOB" if "*" in folded else "="
        clauses.append(
            "("
            + _any_current(
                f"EXISTS (SELECT 1 FROM json_each(r.keywords) k WHERE casefold(k.value) {operator} ?)"
            )
            + " OR EXISTS (SELECT 1 FROM json_each(p.existing_keywords) k "
            + f"WHERE casefold(k.value) {operator} ?))"
        )
        params.extend([folded, folded])
    if browse.text.strip():
        clauses.append(
            _any_current(
                "instr(casefold(COALESCE(r.caption, '') || ' ' || COALESCE(r.title, '') || ' ' || "
                "COALESCE(r.alt_text, '')), ?) > 0"
            )
        )
        params.append(browse.text.strip().casefold())
    if browse.query.strip():
        query = compile_query(browse.query)
        # A photo not tagged yet is matched as a photo without text (``NOT keyword:beach`` lets it through).
        clauses.append(f"({_any_current(query.where)} OR (r.id IS NULL AND ({query.where})))")
        params.extend(query.params * 2)
    return " AND ".join(clauses), params


def photo_ids(catalog: Catalog, browse: BrowseFilter) -> list[int]:
    """The ids of the photos the filter lets through, in path order (100,000 of them are a few hundred KB)."""
    where, params = compile_filter(browse)
    return [
        row[0]
        for row in catalog.db.execute(f"SELECT p.id FROM {_FROM} WHERE {where} ORDER BY p.path", params)
    ]


@dataclass(frozen=True)
class PhotoRow:
    """One grid cell: a photo and its newest current result (``result_id`` is None for a photo not tagged
    yet); the photo's other tasks' current results are in :meth:`Catalog.current_results`."""

    photo_id: int
    path: str
    size: int
    mtime_ns: int
    result_id: int | None = None
    run_id: int | None = None
    review: str | None = None
    review_reason: str | None = None
    caption: str = ""
    title: str = ""
    alt_text: str = ""
    keywords: tuple[str, ...] = ()
    model: str = ""
    edited: bool = False
    existing_keywords: tuple[str, ...] = ()
    """The keywords already in the photo's files (read-only here; the write merges with them)."""
    existing_keywords_note: str | None = None
    """Why some of the file's keywords could not be read (a malformed sidecar), or None."""
    task: str = ""

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def status(self) -> str:
        """The review state, or ``untagged``."""
        return self.review or "untagged"


_ROW_COLUMNS = (
    "p.id, p.path, p.size, p.mtime_ns, r.id, r.run_id, r.review, r.review_reason, r.caption, r.title, "
    "r.alt_text, r.keywords, r.model, r.edited, r.task, p.existing_keywords, p.existing_keywords_note"
)


def _row(values: Sequence[Any]) -> PhotoRow:
    return PhotoRow(
        photo_id=values[0],
        path=values[1],
        size=values[2],
        mtime_ns=values[3],
        result_id=values[4],
        run_id=values[5],
        review=values[6],
        review_reason=values[7],
        caption=values[8] or "",
        title=values[9] or "",
        alt_text=values[10] or "",
        keywords=tuple(json.loads(values[11])) if values[11] else (),
        model=values[12] or "",
        edited=bool(values[13]),
        task=values[14] or "",
        existing_keywords=tuple(json.loads(values[15])) if values[15] else (),
        existing_keywords_note=values[16],
    )


def fetch_rows(catalog: Catalog, ids: Sequence[int]) -> dict[int, PhotoRow]:
    """The rows for these photo ids (one page), keyed by photo id; ids no longer in the catalog are absent."""
    found: dict[int, PhotoRow] = {}
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        for values in catalog.db.execute(
            f"SELECT {_ROW_COLUMNS} FROM {_FROM} WHERE p.id IN ({marks})", chunk
        ):
            row = _row(values)
            found[row.photo_id] = row
    return found


# ---- folders and keywords -----------------------------------------------------------------------------


@dataclass
class FolderNode:
    """A folder in a library with the number of photos in it and below it."""

    path: str
    name: str
    count: int = 0
    children: dict[str, FolderNode] = field(default_factory=dict)

    def sorted_children(self) -> list[FolderNode]:
        return sorted(self.children.values(), key=lambda node: node.name.casefold())


def folder_tree(root: str, paths: Sequence[str]) -> FolderNode:
    """The folders holding ``paths`` below ``root``, each counting the photos in it and its subfolders."""
    top = FolderNode(path=root, name=Path(root).name or root)
    base = root.rstrip(os.sep) + os.sep
    for path in paths:
        top.count += 1
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
            node = child
    return top


def library_trees(catalog: Catalog) -> list[FolderNode]:
    """Every library as a folder tree of its present photos."""
    trees = []
    for library_id, root in catalog.libraries():
        paths = [
            row[0]
            for row in catalog.db.execute(
                "SELECT path FROM photos WHERE library_id = ? AND status = 'present'", (library_id,)
            )
        ]
        trees.append(folder_tree(root, paths))
    return trees


def keyword_counts(catalog: Catalog) -> list[tuple[str, int]]:
    """The keywords on the photos' current results and those already in the photos' files, most used first
    (spelling of the first one seen)."""
    counts: dict[str, list[Any]] = {}
    rows = catalog.db.execute(
        "SELECT k.value FROM results r JOIN json_each(r.keywords) k "
        "WHERE r.current = 1 AND r.review != 'rejected'"
    )
    existing = catalog.db.execute(
        "SELECT k.value FROM photos p JOIN json_each(p.existing_keywords) k WHERE p.status = 'present'"
    )
    for (value,) in [*rows, *existing]:
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


def keyword_being_typed(text: str) -> tuple[str, str]:
    """Split keyword-field text into what is finished and the word being typed: ``("beach; ", "sun")``."""
    cut = max(text.rfind(";"), text.rfind(","))
    head = text[: cut + 1]
    token = text[cut + 1 :]
    stripped = token.lstrip()
    return head + token[: len(token) - len(stripped)], stripped


def complete_keyword(text: str, word: str) -> str:
    """The field text with the word being typed replaced by a completion, ready for the next keyword."""
    head, _token = keyword_being_typed(text)
    if head and not head.endswith(" "):
        head += " "
    return f"{head}{word}{KEYWORD_SEPARATOR}"


# ---- reversible review steps ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ResultState:
    """What a review step may change on a result, as it was before."""

    result_id: int
    review: str
    review_reason: str | None
    caption: str
    title: str | None
    alt_text: str | None
    keywords: str
    edited: int


@dataclass(frozen=True)
class ReviewStep:
    """One review action (approve, reject, edit) over one or more results, with their states before it."""

    label: str
    before: tuple[ResultState, ...]


def snapshot(catalog: Catalog, result_ids: Sequence[int]) -> tuple[ResultState, ...]:
    """The current state of these results, to undo a review action on them."""
    if not result_ids:
        return ()
    marks = ",".join("?" * len(result_ids))
    rows = catalog.db.execute(
        "SELECT id, review, review_reason, caption, title, alt_text, keywords, edited FROM results "
        f"WHERE id IN ({marks})",
        list(result_ids),
    )
    return tuple(ResultState(*row) for row in rows)


def restore(catalog: Catalog, states: Sequence[ResultState]) -> None:
    """Put results back exactly as :func:`snapshot` saw them, in one transaction."""
    now = time.time()
    with catalog.transaction() as db:
        for state in states:
            db.execute(
                "UPDATE results SET review = ?, review_reason = ?, caption = ?, title = ?, alt_text = ?, "
                "keywords = ?, edited = ?, updated_at = ? WHERE id = ?",
                (
                    state.review,
                    state.review_reason,
                    state.caption,
                    state.title,
                    state.alt_text,
                    state.keywords,
                    state.edited,
                    now,
                    state.result_id,
                ),
            )


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


def filtered_results(catalog: Catalog, browse: BrowseFilter) -> list[Result]:
    """The current results (every task) of the photos the filter lets through (what Export writes), in result
    order."""
    where, params = compile_filter(browse)
    return catalog.results(
        current_only=True, where=f"r.photo_id IN (SELECT p.id FROM {_FROM} WHERE {where})", params=params
    )
