"""What the catalog hands out: photos and results as frozen records, read from their rows."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from captioneer.desktop.library.catalog.errors import corrupt, default_catalog_path
from captioneer.desktop.library.catalog.fts import FTS_TABLE, WORDS_TABLE

REVIEW_STATES = ("new", "needs_review", "approved", "rejected", "written")
"""Review state of a result: fresh from the model, flagged, approved, rejected, or written into the files."""
REVIEWED_STATES = ("approved", "rejected", "written")
"""States a person put a result in (an edited result counts as reviewed too, whatever its state)."""


# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Photo:
    id: int
    library_id: int
    path: str
    size: int
    mtime_ns: int
    content_key: str | None
    status: str
    error: str | None
    error_kind: str | None


@dataclass(frozen=True)
class Result:
    """One model answer for one photo in one run, with its review state."""

    id: int
    photo_id: int
    run_id: int
    path: str
    task: str
    language: str
    caption: str
    keywords: tuple[str, ...]
    title: str | None
    alt_text: str | None
    engine: str
    model: str
    quant: str | None
    prompt_hash: str
    seconds: float | None
    review: str
    review_reason: str | None
    edited: bool
    created_at: float
    updated_at: float
    current: bool
    """The result shown, reviewed and written for its photo and task; False for a superseded version."""
    context: tuple[tuple[str, str], ...] = ()
    """The context its prompt was sent with, (name, value) in the order sent; empty: none."""

    def provenance(self) -> dict[str, Any]:
        """Who made this result: for the metadata writer's provenance fields and exports."""
        return {
            "engine": self.engine,
            "model": self.model,
            "quant": self.quant,
            "prompt_hash": self.prompt_hash,
            "task": self.task,
            "language": self.language,
            "created_at": self.created_at,
            "run_id": self.run_id,
        }


@dataclass(frozen=True)
class Query:
    """A compiled search or filter: an SQL condition over ``results r JOIN photos p`` and its parameters, made
    only inside this package (see :func:`~captioneer.desktop.library.catalog.search.compile_query`)."""

    text: str
    where: str
    params: tuple[Any, ...]
    rank: str = ""
    """An FTS5 MATCH expression of the search's words (not those under NOT) for the stemmed index, to order
    results by relevance (bm25) and cut snippets around them; empty when the search has no such words."""
    prefix_rank: str = ""
    """The same for the search's prefixes (``sun*``), on the unstemmed index."""
    fallback: Query | None = None
    """The same search without the full-text index (plain substring matching), for a catalog whose SQLite
    has no FTS5; None when the search does not use the index."""

    def ranking(self) -> list[tuple[str, str]]:
        """(index table, MATCH expression) for each index the search's words rank and cut snippets in."""
        pairs = ((FTS_TABLE, self.rank), (WORDS_TABLE, self.prefix_rank))
        return [(table, expression) for table, expression in pairs if expression]


RESULT_COLUMNS = (
    "r.id, r.photo_id, r.run_id, p.path, r.task, r.language, r.caption, r.keywords, r.title, r.alt_text, "
    "r.engine, r.model, r.quant, r.prompt_hash, r.seconds, r.review, r.review_reason, r.edited, "
    "r.created_at, r.updated_at, r.current, r.context"
)


def result_from_row(row: sqlite3.Row | Sequence[Any], catalog_path: Path | None = None) -> Result:
    values = list(row)
    values[7] = tuple(keyword_list(values[7], f"result {values[0]}", catalog_path))
    values[17] = bool(values[17])
    values[20] = bool(values[20])
    values[21] = context_pairs(values[21], f"result {values[0]}", catalog_path)
    return Result(*values)


def _stored_json(text: object) -> Any:
    """A stored JSON value, or None when the text is not JSON (damaged bytes)."""
    try:
        return json.loads(text) if isinstance(text, str) else None
    except (ValueError, RecursionError):
        return None


def context_pairs(text: object, where: str, catalog_path: Path | None = None) -> tuple[tuple[str, str], ...]:
    """A stored JSON object of context values as (name, value) pairs, checked like :func:`keyword_list`.

    Raises:
        CatalogCorruptError: the text is not a JSON object of strings.
    """
    value = _stored_json(text)
    if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
        raise corrupt(catalog_path or default_catalog_path(), f"unreadable context in {where}")
    return tuple(value.items())


def keyword_list(text: object, where: str, catalog_path: Path | None = None) -> list[str]:
    """A stored JSON list of keywords, checked: damaged catalog bytes become a :class:`CatalogCorruptError`
    naming ``where`` (``result 12``), never a traceback.

    Raises:
        CatalogCorruptError: the text is not a JSON list of strings.
    """
    value = _stored_json(text)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise corrupt(catalog_path or default_catalog_path(), f"unreadable keywords in {where}")
    return value


PHOTO_COLUMNS = "id, library_id, path, size, mtime_ns, content_key, status, error, error_kind"
