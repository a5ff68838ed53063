"""The open catalog: one SQLite connection and the reads and writes of libraries, photos and results."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from captioneer.desktop.library.catalog.connection import WriterLock, connect, open_connection
from captioneer.desktop.library.catalog.errors import CatalogError, default_catalog_path
from captioneer.desktop.library.catalog.fts import index_ready
from captioneer.desktop.library.catalog.migrations import schema_version
from captioneer.desktop.library.catalog.records import (
    PHOTO_COLUMNS,
    RESULT_COLUMNS,
    REVIEW_STATES,
    Photo,
    Query,
    Result,
    keyword_list,
    result_from_row,
)


class Catalog:
    """An open catalog. Use :func:`open_catalog`; close it (or use ``with``) to release the writer lock.

    Every method that writes commits before it returns (or inside :meth:`transaction`), so a killed process
    loses at most the transaction in flight.
    """

    def __init__(self, db: sqlite3.Connection, path: Path, lock: WriterLock | None) -> None:
        self.db = db
        self.path = path
        self._lock = lock
        self._text_index: bool | None = None

    @property
    def writable(self) -> bool:
        return self._lock is not None

    @property
    def text_index(self) -> bool:
        """Whether searches can use the full-text index (this SQLite has FTS5 and the index is in step)."""
        if self._text_index is None:
            self._text_index = index_ready(self.db)
        return self._text_index

    def close(self) -> None:
        self.db.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def open_sibling(self) -> Catalog:
        """Another connection to this catalog for another thread of this process (an SQLite connection stays
        in the thread that made it). It works under this catalog's writer lock: close it before this one.
        The file was checked when this catalog opened, so the sibling skips the (slow) check."""
        return Catalog(connect(self.path, readonly=not self.writable, quick_check=False), self.path, None)

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: everything inside commits together or not at all.

        Inside another transaction it is a savepoint, so the outer one still decides for everything (an
        import of many edits lands whole or not at all)."""
        if self.db.in_transaction:
            self.db.execute("SAVEPOINT nested")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK TO nested")
                self.db.execute("RELEASE nested")
                raise
            self.db.execute("RELEASE nested")
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.rollback()
            raise
        self.db.commit()

    def schema_version(self) -> int:
        return schema_version(self.db)

    def integrity_check(self) -> list[str]:
        """The full check (slow on big catalogs): an empty list means the file is sound."""
        rows = [row[0] for row in self.db.execute("PRAGMA integrity_check")]
        return [] if rows == ["ok"] else rows

    # ---- libraries and photos -------------------------------------------------------------------------

    def library_id(self, root: Path, create: bool = True) -> int | None:
        row = self.db.execute("SELECT id FROM libraries WHERE root = ?", (str(root),)).fetchone()
        if row is not None:
            return int(row[0])
        if not create:
            return None
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO libraries (root, added_at) VALUES (?, ?)", (str(root), time.time())
            )
        return int(cursor.lastrowid)

    def libraries(self) -> list[tuple[int, str]]:
        return [(int(r[0]), r[1]) for r in self.db.execute("SELECT id, root FROM libraries ORDER BY root")]

    def photo_by_path(self, path: str) -> Photo | None:
        row = self.db.execute(f"SELECT {PHOTO_COLUMNS} FROM photos WHERE path = ?", (path,)).fetchone()
        return Photo(*row) if row else None

    def photo(self, photo_id: int) -> Photo | None:
        row = self.db.execute(f"SELECT {PHOTO_COLUMNS} FROM photos WHERE id = ?", (photo_id,)).fetchone()
        return Photo(*row) if row else None

    def existing_keywords(self, photo_id: int) -> tuple[tuple[str, ...], str | None]:
        """(the keywords the photo's files already had at the last scan, why some could not be read)."""
        row = self.db.execute(
            "SELECT existing_keywords, existing_keywords_note FROM photos WHERE id = ?", (photo_id,)
        ).fetchone()
        if row is None:
            return (), None
        return tuple(keyword_list(row[0], f"photo {photo_id}", self.path)), row[1]

    def photos_under(self, folder: Path, status: str | None = "present") -> list[Photo]:
        """Photos whose path is ``folder`` or below it, in path order."""
        prefix = str(folder).rstrip(os.sep) + os.sep
        sql = f"SELECT {PHOTO_COLUMNS} FROM photos WHERE substr(path, 1, ?) = ?"
        params: list[Any] = [len(prefix), prefix]
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        return [Photo(*row) for row in self.db.execute(sql + " ORDER BY path", params)]

    # ---- results ----------------------------------------------------------------------------------------

    def results(
        self,
        *,
        run_id: int | None = None,
        review: Sequence[str] | None = None,
        ids: Sequence[int] | None = None,
        photo_id: int | None = None,
        path: str | None = None,
        current_only: bool = False,
        query: Query | None = None,
        by_relevance: bool = False,
    ) -> list[Result]:
        """Results joined with their photo path, oldest first. ``current_only`` keeps each photo's current
        result per task (leaving out superseded versions); ``query`` narrows them by a search or filter
        (:mod:`captioneer.desktop.library.catalog.search`); ``by_relevance`` puts those that match its words
        best first (bm25), when it has words and the full-text index is usable."""
        clauses: list[str] = []
        values: list[Any] = []
        if query is not None and query.fallback is not None and not self.text_index:
            query = query.fallback
        if run_id is not None:
            clauses.append("r.run_id = ?")
            values.append(run_id)
        if review:
            clauses.append(f"r.review IN ({','.join('?' * len(review))})")
            values.extend(review)
        if ids is not None:
            clauses.append(f"r.id IN ({','.join('?' * len(ids))})" if ids else "0")
            values.extend(ids)
        if photo_id is not None:
            clauses.append("r.photo_id = ?")
            values.append(photo_id)
        if path is not None:
            clauses.append("p.path = ?")
            values.append(path)
        if current_only:
            clauses.append("r.current = 1")
        if query is not None:
            clauses.append(f"({query.where})")
            values.extend(query.params)
        sql = f"SELECT {RESULT_COLUMNS} FROM results r JOIN photos p ON p.id = r.photo_id"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        found = [result_from_row(row, self.path) for row in self.db.execute(sql + " ORDER BY r.id", values)]
        if by_relevance and query is not None and query.ranking() and self.text_index:
            scores = self._relevance(query)
            # bm25 is lower for better matches; results matched only otherwise (a file name) come last.
            found.sort(key=lambda result: (result.id not in scores, scores.get(result.id, 0.0)))
        return found

    def _relevance(self, query: Query) -> dict[int, float]:
        """Each matching result's bm25 score, summed over the indexes its words and prefixes search.

        Read apart and sorted in Python: joined in SQL, the scores would be scanned once per result."""
        scores: dict[int, float] = {}
        for table, rank in query.ranking():
            for rowid, score in self.db.execute(
                f"SELECT rowid, bm25({table}) FROM {table} WHERE {table} MATCH ?", (rank,)
            ):
                scores[rowid] = scores.get(rowid, 0.0) + score
        return scores

    def result(self, result_id: int) -> Result | None:
        found = self.results(ids=[result_id])
        return found[0] if found else None

    def current_results(self, photo_id: int) -> list[Result]:
        """A photo's current result of each task, oldest first: what review shows and write combines."""
        return self.results(current_only=True, photo_id=photo_id)

    def library_root(self, photo_id: int) -> Path:
        """The root folder of the library a photo belongs to."""
        row = self.db.execute(
            "SELECT l.root FROM photos p JOIN libraries l ON l.id = p.library_id WHERE p.id = ?", (photo_id,)
        ).fetchone()
        return Path(row[0])

    def photos_of_results(self, result_ids: Sequence[int]) -> list[int]:
        """The photo ids these results belong to, each once (ids no longer in the catalog are left out)."""
        if not result_ids:
            return []
        marks = ",".join("?" * len(result_ids))
        sql = f"SELECT DISTINCT photo_id FROM results WHERE id IN ({marks})"
        return [row[0] for row in self.db.execute(sql, list(result_ids))]

    def make_current(self, result_id: int) -> Result:
        """Make a result (a kept version) the current one of its photo and task; the one it replaces becomes a
        superseded version. Returns the result as it is now.

        Raises:
            CatalogError: there is no such result.
        """
        found = self.result(result_id)
        if found is None:
            raise CatalogError(f"There is no result {result_id}. List results with: captioneer review list")
        if found.current:
            return found
        with self.transaction() as db:
            db.execute(
                "UPDATE results SET current = 0, updated_at = ? "
                "WHERE photo_id = ? AND task = ? AND current = 1",
                (time.time(), found.photo_id, found.task),
            )
            db.execute(
                "UPDATE results SET current = 1, updated_at = ? WHERE id = ?", (time.time(), result_id)
            )
        return self.result(result_id) or found

    def set_review(self, result_ids: Sequence[int], state: str, reason: str | None = None) -> int:
        """Move results to a review state; returns how many changed."""
        if state not in REVIEW_STATES:
            raise CatalogError(f"Unknown review state '{state}'. Use one of: {', '.join(REVIEW_STATES)}.")
        if not result_ids:
            return 0
        marks = ",".join("?" * len(result_ids))
        with self.transaction() as db:
            cursor = db.execute(
                f"UPDATE results SET review = ?, review_reason = ?, updated_at = ? "
                f"WHERE id IN ({marks}) AND review != ?",
                (state, reason, time.time(), *result_ids, state),
            )
        return cursor.rowcount

    def edit_result(
        self,
        result_id: int,
        *,
        caption: str | None = None,
        keywords: Sequence[str] | None = None,
        title: str | None = None,
        alt_text: str | None = None,
        review: str | None = None,
    ) -> bool:
        """Change a result's text as a person edited it; returns whether anything changed.

        An edited result that had been written goes back to ``approved`` so the next write carries the edit.
        """
        current = self.result(result_id)
        if current is None:
            raise CatalogError(f"There is no result {result_id}.")
        changes: dict[str, Any] = {}
        if caption is not None and caption != current.caption:
            changes["caption"] = caption
        if keywords is not None and tuple(keywords) != current.keywords:
            changes["keywords"] = json.dumps(list(keywords), ensure_ascii=False)
        if title is not None and title != (current.title or ""):
            changes["title"] = title or None
        if alt_text is not None and alt_text != (current.alt_text or ""):
            changes["alt_text"] = alt_text or None
        text_changed = bool(changes)
        if review is not None and review != current.review:
            if review not in REVIEW_STATES:
                raise CatalogError(
                    f"Unknown review state '{review}'. Use one of: {', '.join(REVIEW_STATES)}."
                )
            changes["review"] = review
        elif text_changed and current.review == "written":
            changes["review"] = "approved"
        if not changes:
            return False
        if text_changed:
            changes["edited"] = 1
        changes["updated_at"] = time.time()
        assignments = ", ".join(f"{column} = ?" for column in changes)
        with self.transaction() as db:
            db.execute(f"UPDATE results SET {assignments} WHERE id = ?", (*changes.values(), result_id))
        return True


def open_catalog(path: Path | None = None, *, readonly: bool = False) -> Catalog:
    """Open (creating and migrating if needed) the catalog.

    A writable catalog takes the single-writer lock; ``readonly`` opens for queries only, without the lock.

    Raises:
        CatalogLockedError: another process holds the writer lock.
        CatalogCorruptError: the file is not a sound SQLite database.
        CatalogError: the catalog is missing (read-only) or from a newer Captioneer.
    """
    path = path or default_catalog_path()
    db, lock = open_connection(path, readonly=readonly)
    return Catalog(db, path, lock)
