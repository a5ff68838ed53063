"""The library window's queries: the grid filter, photo ids, row pages, folder paths, keywords in use."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from captioneer.desktop.library.catalog.errors import CatalogError
from captioneer.desktop.library.catalog.records import Query, Result
from captioneer.desktop.library.catalog.search import (
    SearchSyntaxError,
    compile_query,
    contains,
    has_keyword,
    is_video,
    snippets,
)
from captioneer.desktop.library.catalog.store import Catalog

STATUS_FILTERS = ("all", "untagged", "failed", "new", "needs_review", "approved", "rejected", "written")
"""What the status filter offers: every photo, photos without a result, photos that could not be tagged (or
read), or one review state."""

STATUS_LABELS = {
    "all": "All photos",
    "untagged": "Not tagged yet",
    "failed": "Failed",
    "new": "New",
    "needs_review": "Needs review",
    "approved": "Approved",
    "rejected": "Rejected",
    "written": "Written",
}

KIND_FILTERS = ("all", "photo", "video")
"""What the type filter offers: photos and video clips, photos only, clips only (as ``type:`` searches)."""

KIND_LABELS = {"all": "Photos and videos", "photo": "Photos", "video": "Videos"}

# A photo has one current result per task. The grid shows (and the editor edits) the newest of them; filters
# match any of them; review actions and the write take all of them. Superseded versions never show here.
_NEWEST = "r.id = (SELECT MAX(r2.id) FROM results r2 WHERE r2.photo_id = p.id AND r2.current = 1)"
_FROM = f"photos p LEFT JOIN results r ON {_NEWEST}"


# A photo failed when the scan or a run could not read it, or a run could not tag it and it has no result yet.
# It stays in the grid (with its error) until it is read or tagged.
_FAILED = (
    "(p.status = 'unreadable' OR (r.id IS NULL AND EXISTS (SELECT 1 FROM run_items i "
    "WHERE i.photo_id = p.id AND i.state = 'failed')))"
)
_SHOWN = "p.status IN ('present', 'unreadable')"
"""The photos the window lists: every one found by the last scan (a missing one is not there to show)."""


def _any_current(condition: str) -> str:
    """True when one of the photo's current results (as ``r``) meets ``condition``."""
    return f"EXISTS (SELECT 1 FROM results r WHERE r.photo_id = p.id AND r.current = 1 AND ({condition}))"


@dataclass(frozen=True)
class BrowseFilter:
    """What the grid shows: photos present in the catalog, narrowed by every field that is set.

    Attributes:
        folder: only photos in this folder or below it.
        status: ``untagged`` (no current result, not failed), ``failed`` (could not be read or tagged) or a
            review state one of the current results is in.
        keyword: photos with a current result that has this keyword, or whose files (read at the last scan)
            have it (case-insensitive; ``*`` wildcard), as the search's ``keyword:`` matches it.
        text: photos with a current result whose caption, title or alt text contains this text (a plain
            substring, as the search matches text where SQLite has no full-text index: typing ``sun`` already
            finds ``sunset``).
        query: the search language of ``captioneer search``, matched against each current result.
        kind: ``photo`` or ``video`` for only those (``all``: both).
    """

    folder: str = ""
    status: str = "all"
    keyword: str = ""
    text: str = ""
    query: str = ""
    kind: str = "all"

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
        if self.kind != "all":
            parts.append(f"{self.kind}s only")
        return " · ".join(parts) or "all photos"


def folder_bounds(folder: str) -> tuple[str, str]:
    """The path range ``[low, high)`` holding everything below ``folder``, so the path index answers it."""
    low = folder.rstrip(os.sep) + os.sep
    return low, low[:-1] + chr(ord(os.sep) + 1)


def compile_filter(browse: BrowseFilter, text_index: bool = True) -> tuple[str, list[Any]]:
    """The SQL condition (over ``photos p`` and its newest current result ``r``) and its parameters, built
    from the search's own conditions so a filter and a search for the same words find the same photos;
    ``text_index`` says whether the catalog's full-text index is usable (:attr:`Catalog.text_index`).

    Raises:
        SearchSyntaxError: the search text cannot be understood (the message says where).
        CatalogError: the status is not one of :data:`STATUS_FILTERS`, or the kind not of
            :data:`KIND_FILTERS`.
    """
    if browse.status not in STATUS_FILTERS:
        raise CatalogError(
            f"Unknown status filter '{browse.status}'. Use one of: {', '.join(STATUS_FILTERS)}."
        )
    if browse.kind not in KIND_FILTERS:
        raise CatalogError(f"Unknown type filter '{browse.kind}'. Use one of: {', '.join(KIND_FILTERS)}.")
    clauses, params = _scope(browse, text_index)
    if browse.status == "untagged":
        clauses.append(f"r.id IS NULL AND NOT {_FAILED}")
    elif browse.status == "failed":
        clauses.append(_FAILED)
    elif browse.status != "all":
        clauses.append(_any_current("r.review = ?"))
        params.append(browse.status)
    return " AND ".join(clauses), params


def _scope(browse: BrowseFilter, text_index: bool) -> tuple[list[str], list[Any]]:
    """The filter's conditions but its status: the photos among which each status is counted."""
    clauses = [_SHOWN]
    params: list[Any] = []
    if browse.folder:
        clauses.append("p.path >= ? AND p.path < ?")
        params.extend(folder_bounds(browse.folder))
    if browse.kind != "all":
        clauses.append(is_video("p.path") if browse.kind == "video" else f"NOT {is_video('p.path')}")
    if browse.keyword.strip():
        in_results, results_params = has_keyword("r.keywords", browse.keyword.strip())
        in_files, files_params = has_keyword("p.existing_keywords", browse.keyword.strip())
        clauses.append(f"({_any_current(in_results)} OR {in_files})")
        params.extend([*results_params, *files_params])
    if browse.text.strip():
        parts = [contains(column, browse.text.strip()) for column in ("r.caption", "r.title", "r.alt_text")]
        clauses.append(_any_current(" OR ".join(sql for sql, _params in parts)))
        params.extend(value for _sql, values in parts for value in values)
    if browse.query.strip():
        query = compile_query(browse.query, text_index=text_index)
        # A photo not tagged yet is matched as a photo without text (``NOT keyword:beach`` lets it through).
        clauses.append(f"({_any_current(query.where)} OR (r.id IS NULL AND ({query.where})))")
        params.extend(query.params * 2)
    return clauses, params


def status_counts(catalog: Catalog, browse: BrowseFilter) -> dict[str, int]:
    """How many photos each entry of :data:`STATUS_FILTERS` would show with the rest of ``browse`` (its
    folder, keyword, text and search) as it is: what the status list says beside each status."""
    clauses, params = _scope(browse, catalog.text_index)
    scope = f"SELECT p.id FROM {_FROM} WHERE {' AND '.join(clauses)}"
    total, untagged, failed = catalog.db.execute(
        f"SELECT COUNT(*), COALESCE(SUM(r.id IS NULL AND NOT {_FAILED}), 0), COALESCE(SUM({_FAILED}), 0) "
        f"FROM {_FROM} WHERE {' AND '.join(clauses)}",
        params,
    ).fetchone()
    counts = dict.fromkeys(STATUS_FILTERS, 0)
    counts.update(all=total, untagged=untagged, failed=failed)
    for review, count in catalog.db.execute(
        "SELECT review, COUNT(DISTINCT photo_id) FROM results "
        f"WHERE current = 1 AND photo_id IN ({scope}) GROUP BY review",
        params,
    ):
        if review in counts:
            counts[review] = count
    return counts


def photo_ids(catalog: Catalog, browse: BrowseFilter) -> list[int]:
    """The ids of the photos the filter lets through, in path order (100,000 of them are a few hundred KB)."""
    where, params = compile_filter(browse, catalog.text_index)
    return [
        row[0]
        for row in catalog.db.execute(f"SELECT p.id FROM {_FROM} WHERE {where} ORDER BY p.path", params)
    ]


def filtered_results(catalog: Catalog, browse: BrowseFilter) -> list[Result]:
    """The current results (every task) of the photos the filter lets through (what Export writes), in result
    order."""
    where, params = compile_filter(browse, catalog.text_index)
    query = Query(browse.describe(), f"r.photo_id IN (SELECT p.id FROM {_FROM} WHERE {where})", tuple(params))
    return catalog.results(current_only=True, query=query)


def match_snippet(catalog: Catalog, search: str, photo_id: int) -> str | None:
    """A short extract of the photo's current text around the words ``search`` matched (``[sunset]``), from
    its best-matching result; None when the search has no words, none matched here, or there is no index.
    One small indexed query: cheap enough for a tooltip."""
    if not search.strip() or not catalog.text_index:
        return None
    try:
        query = compile_query(search)
    except SearchSyntaxError:
        return None
    current = [row[0] for row in catalog.db.execute(_CURRENT_IDS, (photo_id,))]
    found = snippets(catalog, query, current)
    return next((" ".join(found[rid].split()) for rid in current if rid in found), None)


_CURRENT_IDS = "SELECT id FROM results WHERE photo_id = ? AND current = 1 ORDER BY id DESC"


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
    error: str | None = None
    """Why the photo could not be read (the scan's or a run's verdict), or why the last run that failed on
    it could not tag it when it has no result; None otherwise."""
    unreadable: bool = False
    """The file itself cannot be read (tagging it again needs a fixed file and a rescan first)."""

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def status(self) -> str:
        """``failed`` (there is an error), the review state, or ``untagged``."""
        if self.error:
            return "failed"
        return self.review or "untagged"

    @property
    def empty(self) -> bool:
        """Whether the result has nothing to approve: no caption, keywords, title or alt text (the model's
        answer could not be read or was cut off)."""
        return self.result_id is not None and not (
            self.caption.strip() or self.keywords or self.title.strip() or self.alt_text.strip()
        )


_ROW_COLUMNS = (
    "p.id, p.path, p.size, p.mtime_ns, r.id, r.run_id, r.review, r.review_reason, r.caption, r.title, "
    "r.alt_text, r.keywords, r.model, r.edited, r.task, p.existing_keywords, p.existing_keywords_note, "
    "CASE WHEN p.status = 'unreadable' THEN COALESCE(p.error, 'cannot be read') WHEN r.id IS NULL THEN "
    "(SELECT i.error FROM run_items i WHERE i.photo_id = p.id AND i.state = 'failed' "
    "ORDER BY i.run_id DESC LIMIT 1) END, p.status = 'unreadable'"
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
        error=values[17],
        unreadable=bool(values[18]),
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


def present_paths(catalog: Catalog, library_id: int) -> list[str]:
    """The paths of a library's photos the window lists (present or unreadable, not missing): the folder
    tree counts the same photos as the grid and as a scan."""
    return [
        row[0]
        for row in catalog.db.execute(
            f"SELECT p.path FROM photos p WHERE p.library_id = ? AND {_SHOWN}", (library_id,)
        )
    ]


def keywords_in_use(catalog: Catalog) -> list[object]:
    """Every keyword on a current, not rejected result, then every keyword already in a present photo's files,
    once per use (stored values as they are: a damaged entry may not be text)."""
    rows = catalog.db.execute(
        "SELECT k.value FROM results r JOIN json_each(r.keywords) k "
        "WHERE r.current = 1 AND r.review != 'rejected'"
    )
    existing = catalog.db.execute(
        "SELECT k.value FROM photos p JOIN json_each(p.existing_keywords) k WHERE p.status = 'present'"
    )
    return [value for (value,) in [*rows, *existing]]
