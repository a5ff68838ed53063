"""A scan's catalog reads and writes: the photos known under a folder; new, changed, moved, missing photos.

Writes go in transactions of bounded size and age, so a killed scan loses little."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import NamedTuple

from captioneer.desktop.library.catalog.store import Catalog

KnownPhoto = tuple[int, int, int, str, "str | None", "str | None"]
"""(id, size, mtime_ns, status, content_key, existing_keywords_stamp) of a photo already in the catalog."""


class FileState(NamedTuple):
    """What a scan found in a photo's file: size and time, content key, and whether it can be read."""

    size: int
    mtime_ns: int
    content_key: str | None
    status: str
    """``present`` or ``unreadable``."""
    error: str | None
    error_kind: str | None


def known_photos(catalog: Catalog, prefix: str) -> dict[str, KnownPhoto]:
    """The photos whose path starts with ``prefix`` (a folder ending in a separator), by path."""
    return {
        row[0]: (int(row[1]), int(row[2]), int(row[3]), row[4], row[5], row[6])
        for row in catalog.db.execute(
            "SELECT path, id, size, mtime_ns, status, content_key, existing_keywords_stamp FROM photos "
            "WHERE substr(path, 1, ?) = ?",
            (len(prefix), prefix),
        )
    }


def unreadable_reasons(catalog: Catalog, prefix: str) -> dict[str, str | None]:
    """Why each photo below ``prefix`` that the catalog knows as unreadable could not be read, by path."""
    return dict(
        catalog.db.execute(
            "SELECT path, error FROM photos WHERE status = 'unreadable' AND substr(path, 1, ?) = ?",
            (len(prefix), prefix),
        )
    )


class ScanBatch:
    """A scan's writes, grouped into transactions of at most ``every`` writes or ``seconds`` of age."""

    def __init__(self, catalog: Catalog, every: int, seconds: float) -> None:
        self.db = catalog.db
        self.every = every
        self.seconds = seconds
        self.pending = 0
        self.started = 0.0
        self.total = 0

    def _write(self, sql: str, params: Sequence[object]) -> int:
        if self.pending == 0:
            self.db.execute("BEGIN IMMEDIATE")
            self.started = time.monotonic()
        cursor = self.db.execute(sql, params)
        self.pending += 1
        self.total += 1
        return int(cursor.lastrowid or 0)

    def maybe_commit(self) -> None:
        if self.pending and (self.pending >= self.every or time.monotonic() - self.started >= self.seconds):
            self.commit()

    def commit(self) -> None:
        if self.pending:
            self.db.commit()
            self.pending = 0

    def add_photo(self, library_id: int, path: str, file: FileState) -> int:
        """Record a new photo; returns its id."""
        now = time.time()
        return self._write(
            "INSERT INTO photos (library_id, path, size, mtime_ns, content_key, status, error, error_kind, "
            "first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (library_id, path, *file, now, now),
        )

    def update_photo(self, photo_id: int, file: FileState) -> None:
        """Record a changed photo: its new size, time, content key and whether it can be read."""
        self._write(
            "UPDATE photos SET size = ?, mtime_ns = ?, content_key = ?, status = ?, error = ?, "
            "error_kind = ?, last_seen = ? WHERE id = ?",
            (*file, time.time(), photo_id),
        )

    def relink(self, photo_id: int, library_id: int, path: str, size: int, mtime_ns: int) -> None:
        """Record that a photo moved to ``path`` (it keeps its id, so its results)."""
        self._write(
            "UPDATE photos SET library_id = ?, path = ?, size = ?, mtime_ns = ?, status = 'present', "
            "error = NULL, error_kind = NULL, last_seen = ? WHERE id = ?",
            (library_id, path, size, mtime_ns, time.time(), photo_id),
        )

    def set_existing_keywords(
        self, photo_id: int, keywords: Sequence[str], stamp: str, note: str | None
    ) -> None:
        """Store the keywords a photo's files already have, with the sidecar stamp they were read with."""
        self._write(
            "UPDATE photos SET existing_keywords = ?, existing_keywords_stamp = ?, "
            "existing_keywords_note = ? WHERE id = ?",
            (json.dumps(list(keywords), ensure_ascii=False), stamp, note, photo_id),
        )

    def same_content(self, key: str, path: str) -> list[tuple[int, str]]:
        """(id, path) of the other photos with this content key, missing ones first."""
        return [
            (int(row[0]), row[1])
            for row in self.db.execute(
                "SELECT id, path FROM photos WHERE content_key = ? AND path != ? "
                "ORDER BY status = 'missing' DESC, id",
                (key, path),
            )
        ]

    def still_at(self, photo_id: int, path: str) -> bool:
        """Whether the photo is still recorded at ``path`` (a relink in this scan may have moved it)."""
        row = self.db.execute("SELECT 1 FROM photos WHERE id = ? AND path = ?", (photo_id, path)).fetchone()
        return row is not None

    def mark_missing(self, photo_id: int) -> None:
        self._write("UPDATE photos SET status = 'missing' WHERE id = ?", (photo_id,))

    def mark_scanned(self, library_id: int) -> None:
        self._write("UPDATE libraries SET last_scan_at = ? WHERE id = ?", (time.time(), library_id))
