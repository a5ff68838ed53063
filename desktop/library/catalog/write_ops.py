"""Write operations in the catalog: one per metadata write, its log per result, and what undoing changes."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from captioneer.desktop.library.catalog.records import Result
from captioneer.desktop.library.catalog.store import Catalog

MARKED_WRITTEN = ("written", "unchanged")
"""Outcomes that leave a result ``written``: its text is in the file (just written, or already there)."""


@dataclass(frozen=True)
class WriteOperation:
    """One ``captioneer write`` (or the window's Write): what it wrote and whether it was undone.

    Attributes:
        photos: how many photos it changed on disk (each one's file, sidecar or both).
        state: ``written`` or ``undone``.
        runs: the tagging runs whose results it wrote.
    """

    id: int
    started_at: float
    mode: str
    journal: Path
    state: str
    photos: int
    runs: tuple[int, ...]

    def describe(self) -> str:
        """One line for a list: id, local time, photos changed (and where), state, runs."""
        when = datetime.fromtimestamp(self.started_at).strftime("%Y-%m-%d %H:%M:%S")
        runs = ", ".join(str(run) for run in self.runs) or "-"
        photos = f"{self.photos:,} photo{'s' if self.photos != 1 else ''} ({self.mode})"
        return f"write {self.id} · {when} · {photos} · {self.state} · runs {runs}"


_OPERATION_COLUMNS = (
    "o.id, o.started_at, o.mode, o.journal_ref, o.state, "
    "(SELECT COUNT(DISTINCT l.path) FROM write_log l WHERE l.op_id = o.id AND l.outcome = 'written'), "
    "(SELECT GROUP_CONCAT(DISTINCT l.run_id) FROM write_log l WHERE l.op_id = o.id)"
)


def _operation(row: Sequence) -> WriteOperation:
    runs = tuple(sorted(int(run) for run in (row[6] or "").split(",") if run))
    return WriteOperation(row[0], row[1], row[2], Path(row[3]), row[4], int(row[5] or 0), runs)


def write_operations(catalog: Catalog) -> list[WriteOperation]:
    """Every write operation, newest first."""
    rows = catalog.db.execute(f"SELECT {_OPERATION_COLUMNS} FROM write_ops o ORDER BY o.id DESC")
    return [_operation(row) for row in rows]


def write_operation(catalog: Catalog, op_id: int) -> WriteOperation | None:
    """One write operation, or None when there is none with this id."""
    row = catalog.db.execute(
        f"SELECT {_OPERATION_COLUMNS} FROM write_ops o WHERE o.id = ?", (op_id,)
    ).fetchone()
    return _operation(row) if row else None


def start_operation(catalog: Catalog, mode: str, journals: Path) -> tuple[int, Path]:
    """A new write operation and the folder in ``journals`` for its own journal."""
    now = time.time()
    with catalog.transaction() as db:
        op_id = int(
            db.execute(
                "INSERT INTO write_ops (started_at, mode, journal_ref) VALUES (?, ?, '')", (now, mode)
            ).lastrowid
        )
        # The time in the name keeps a restored catalog's reused ids off an older journal.
        directory = journals / f"write-{op_id}-{int(now)}"
        db.execute("UPDATE write_ops SET journal_ref = ? WHERE id = ?", (str(directory), op_id))
    return op_id, directory


def marked_anything(catalog: Catalog, op_id: int) -> bool:
    """Whether the operation left any result ``written``."""
    row = catalog.db.execute(
        "SELECT 1 FROM write_log WHERE op_id = ? AND outcome IN (?, ?) LIMIT 1", (op_id, *MARKED_WRITTEN)
    ).fetchone()
    return row is not None


def forget_operation(catalog: Catalog, op_id: int) -> None:
    with catalog.transaction() as db:
        db.execute("DELETE FROM write_ops WHERE id = ?", (op_id,))


def log_write(
    catalog: Catalog,
    result: Result,
    mode: str,
    outcome: str,
    detail: str | None = None,
    journal_ref: str | None = None,
    op_id: int | None = None,
) -> None:
    """Record what the metadata step (write operation ``op_id``) did to one result's file; written or
    already there: the result becomes ``written``."""
    with catalog.transaction() as db:
        db.execute(
            "INSERT INTO write_log "
            "(result_id, run_id, path, mode, outcome, detail, journal_ref, at, op_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (result.id, result.run_id, result.path, mode, outcome, detail, journal_ref, time.time(), op_id),
        )
        if outcome in MARKED_WRITTEN:
            db.execute(
                "UPDATE results SET review = 'written', updated_at = ? WHERE id = ?", (time.time(), result.id)
            )


def newer_write(catalog: Catalog, op_id: int) -> int | None:
    """The first later write (not undone) that changed a photo this operation changed, if any."""
    return catalog.db.execute(
        "SELECT MIN(later.op_id) FROM write_log mine JOIN write_log later ON later.path = mine.path "
        "JOIN write_ops o ON o.id = later.op_id WHERE mine.op_id = ? AND mine.outcome = 'written' "
        "AND later.outcome = 'written' AND later.op_id > ? AND o.state = 'written'",
        (op_id, op_id),
    ).fetchone()[0]


def results_marked_by(catalog: Catalog, op_id: int) -> list[int]:
    """The ids of the results the operation left ``written``."""
    return [
        row[0]
        for row in catalog.db.execute(
            "SELECT DISTINCT result_id FROM write_log WHERE op_id = ? AND outcome IN (?, ?)",
            (op_id, *MARKED_WRITTEN),
        )
    ]


def mark_undone(catalog: Catalog, op_id: int) -> None:
    with catalog.transaction() as db:
        db.execute("UPDATE write_ops SET state = 'undone', undone_at = ? WHERE id = ?", (time.time(), op_id))
