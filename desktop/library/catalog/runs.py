"""The catalog's queries about runs and their results: every SQL statement that plans, executes, counts and
lists tagging runs. Functions take a :class:`Catalog` (or a connection inside one of its transactions) and
return rows and dataclasses."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from captioneer.desktop.library.catalog import REVIEWED_STATES, Catalog, CatalogError
from captioneer.desktop.library.run_spec import RESUMABLE_STATES, Run, RunCounts, RunSpec

_RUN_COLUMNS = (
    "id, scope, task, language, engine, model, quant, prompt_hash, options, state, message, created_at, "
    "started_at, finished_at"
)


@dataclass
class NewResult:
    """What a run stores for one photo; ``problems`` (empty when it looks sound) send it to review."""

    caption: str = ""
    keywords: list[str] = field(default_factory=list)
    title: str | None = None
    alt_text: str | None = None
    ocr_text: str | None = None
    """The text the task read in the image (indexed for the search's ``ocr:``), if it reads text."""
    raw: str = ""
    seconds: float = 0.0
    image_tokens: int | None = None
    attempts: int = 1
    problems: list[str] = field(default_factory=list)
    context: dict[str, str] = field(default_factory=dict)
    """The context the prompt was sent with (see core/context.py), by name."""


# -- planning ---------------------------------------------------------------------------------------------


def reviewed_photo_ids(db: sqlite3.Connection, task: str) -> set[int]:
    """Photos whose current result for ``task`` a person approved, rejected, edited or wrote."""
    states = ",".join("?" * len(REVIEWED_STATES))
    return {
        int(r[0])
        for r in db.execute(
            "SELECT photo_id FROM results WHERE task = ? AND current = 1 "
            f"AND (edited = 1 OR review IN ({states}))",
            (task, *REVIEWED_STATES),
        )
    }


def tagged_photo_ids(db: sqlite3.Connection, task: str, model: str, run_id: int | None) -> set[int]:
    """Photos that already have a result for ``task`` from ``model`` (from another run than ``run_id``)."""
    return {
        int(r[0])
        for r in db.execute(
            "SELECT DISTINCT photo_id FROM results WHERE task = ? AND model = ? AND run_id != ?",
            (task, model, run_id or 0),
        )
    }


def resumable_run_id(
    db: sqlite3.Connection, scope: str, task: str, engine: str, model: str, prompt_hash: str
) -> int | None:
    """The newest unfinished run that asked the same of the same scope, if any."""
    row = db.execute(
        "SELECT id FROM runs WHERE scope = ? AND task = ? AND engine = ? AND model = ? AND prompt_hash = ? "
        f"AND state IN ({','.join('?' * len(RESUMABLE_STATES))}) ORDER BY id DESC LIMIT 1",
        (scope, task, engine, model, prompt_hash, *RESUMABLE_STATES),
    ).fetchone()
    return int(row[0]) if row is not None else None


def reopen_run(db: sqlite3.Connection, run_id: int, on_reviewed: str) -> None:
    db.execute(
        "UPDATE runs SET state = 'pending', message = NULL, on_reviewed = ? WHERE id = ?",
        (on_reviewed, run_id),
    )


def insert_run(
    db: sqlite3.Connection,
    scope: str,
    spec: RunSpec,
    identity: tuple[str, str, str | None],
    prompt_hash: str,
    on_reviewed: str,
) -> int:
    """A new pending run; ``identity`` is (engine, model, quant)."""
    engine, model, quant = identity
    cursor = db.execute(
        "INSERT INTO runs (scope, task, language, engine, model, quant, prompt_hash, options, state, "
        "created_at, on_reviewed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
        (
            scope,
            spec.task,
            spec.language,
            engine,
            model,
            quant,
            prompt_hash,
            spec.to_json(),
            time.time(),
            on_reviewed,
        ),
    )
    return int(cursor.lastrowid)


def queue_photos(db: sqlite3.Connection, run_id: int, photo_ids: Sequence[int]) -> int:
    """Append ``photo_ids`` to the run's queue (a photo already queued is not queued twice): how many were
    added."""
    position = int(
        db.execute(
            "SELECT COALESCE(MAX(position), -1) FROM run_items WHERE run_id = ?", (run_id,)
        ).fetchone()[0]
    )
    added = 0
    for photo_id in photo_ids:
        cursor = db.execute(
            "INSERT OR IGNORE INTO run_items (run_id, photo_id, position) VALUES (?, ?, ?)",
            (run_id, photo_id, position + 1),
        )
        if cursor.rowcount:
            position += 1
            added += 1
    return added


# -- runs and their counts --------------------------------------------------------------------------------


def get_run(catalog: Catalog, run_id: int) -> Run:
    row = catalog.db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise CatalogError(f"There is no run {run_id}. List runs with: captioneer runs")
    return _run_from_row(row)


def list_runs(catalog: Catalog) -> list[Run]:
    return [_run_from_row(row) for row in catalog.db.execute(f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY id")]


def _run_from_row(row: Sequence[Any]) -> Run:
    values = list(row)
    values[8] = RunSpec.from_json(values[8])
    return Run(*values)


def run_counts(catalog: Catalog, run_id: int) -> RunCounts:
    counts = dict(
        catalog.db.execute("SELECT state, COUNT(*) FROM run_items WHERE run_id = ? GROUP BY state", (run_id,))
    )
    review, versions = catalog.db.execute(
        "SELECT COALESCE(SUM(current = 1 AND review = 'needs_review'), 0), COALESCE(SUM(current = 0), 0) "
        "FROM results WHERE run_id = ?",
        (run_id,),
    ).fetchone()
    return RunCounts(
        total=sum(counts.values()),
        pending=counts.get("pending", 0),
        done=counts.get("done", 0),
        failed=counts.get("failed", 0),
        needs_review=int(review),
        versions=int(versions),
    )


def failed_items(catalog: Catalog, run_id: int) -> list[tuple[str, str | None, str | None]]:
    """(path, error, kind) of the photos a run could not tag."""
    return [
        (row[0], row[1], row[2])
        for row in catalog.db.execute(
            "SELECT p.path, i.error, i.error_kind FROM run_items i JOIN photos p ON p.id = i.photo_id "
            "WHERE i.run_id = ? AND i.state = 'failed' ORDER BY i.position",
            (run_id,),
        )
    ]


def abandon_run(catalog: Catalog, run_id: int, message: str) -> None:
    """The engine could not start: forget the run if nothing was tagged yet, else leave it paused."""
    with catalog.transaction() as db:
        has_results = db.execute("SELECT 1 FROM results WHERE run_id = ? LIMIT 1", (run_id,)).fetchone()
        if has_results is None:
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        else:
            db.execute("UPDATE runs SET state = 'paused', message = ? WHERE id = ?", (message, run_id))


def set_run_state(catalog: Catalog, run_id: int, state: str, message: str | None = None) -> None:
    now = time.time()
    with catalog.transaction() as db:
        db.execute(
            "UPDATE runs SET state = ?, message = ?, "
            "started_at = CASE WHEN ? = 'running' AND started_at IS NULL THEN ? ELSE started_at END, "
            "finished_at = CASE WHEN ? IN ('done', 'cancelled', 'failed') THEN ? ELSE finished_at END "
            "WHERE id = ?",
            (state, message, state, now, state, now, run_id),
        )


# -- executing a run ----------------------------------------------------------------------------------------


def item_paths(catalog: Catalog, run_id: int, state: str) -> list[str]:
    """The paths of the run's items in ``state``, in queue order."""
    rows = catalog.db.execute(
        "SELECT p.path FROM run_items i JOIN photos p ON p.id = i.photo_id "
        "WHERE i.run_id = ? AND i.state = ? ORDER BY i.position",
        (run_id, state),
    ).fetchall()
    return [str(row[0]) for row in rows]


def pending_photo_ids(catalog: Catalog, run_id: int, limit: int) -> list[int]:
    """The first ``limit`` pending photos of the run, in queue order."""
    rows = catalog.db.execute(
        "SELECT photo_id FROM run_items WHERE run_id = ? AND state = 'pending' ORDER BY position LIMIT ?",
        (run_id, limit),
    ).fetchall()
    return [int(r[0]) for r in rows]


def last_captions(catalog: Catalog, run_id: int, limit: int) -> list[tuple[int, str]]:
    """(result id, caption) of the run's last ``limit`` results in queue order, oldest first."""
    rows = catalog.db.execute(
        "SELECT r.id, r.caption FROM results r "
        "JOIN run_items i ON i.run_id = r.run_id AND i.photo_id = r.photo_id "
        "WHERE r.run_id = ? ORDER BY i.position DESC LIMIT ?",
        (run_id, limit),
    ).fetchall()
    return [(int(result_id), caption) for result_id, caption in reversed(rows)]


def record_result(
    catalog: Catalog,
    run: Run,
    photo_id: int,
    result: NewResult,
    *,
    suspects: Sequence[int] = (),
    suspect_reason: str = "",
) -> int:
    """Store ``result`` and mark the photo's queue item done, in one transaction (a kill at any moment leaves
    both or neither). It becomes current unless it meets a reviewed current result the run may not replace.
    ``suspects`` (earlier results of the run, still ``new``) go to review with ``suspect_reason``."""
    review = "needs_review" if result.problems else "new"
    reason = "; ".join(result.problems) or None
    now = time.time()
    with catalog.transaction() as db:
        current = _current_of(db, run.id, photo_id, run.task)
        if current:
            db.execute("UPDATE results SET current = 0, updated_at = ? WHERE id = ?", (now, current))
        cursor = db.execute(
            "INSERT INTO results (photo_id, run_id, task, language, caption, keywords, title, alt_text, raw, "
            "engine, model, quant, prompt_hash, seconds, image_tokens, attempts, review, review_reason, "
            "created_at, updated_at, current, ocr_text, context) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                photo_id,
                run.id,
                run.task,
                run.spec.language,
                result.caption,
                json.dumps(list(result.keywords), ensure_ascii=False),
                result.title,
                result.alt_text,
                result.raw,
                run.engine,
                run.model,
                run.quant,
                run.prompt_hash,
                result.seconds,
                result.image_tokens,
                result.attempts,
                review,
                reason,
                now,
                now,
                int(current is not None),
                result.ocr_text,
                json.dumps(result.context, ensure_ascii=False),
            ),
        )
        db.execute(
            "UPDATE run_items SET state = 'done', attempts = attempts + 1, error = NULL, error_kind = NULL "
            "WHERE run_id = ? AND photo_id = ?",
            (run.id, photo_id),
        )
        if suspects:
            db.execute(
                "UPDATE results SET review = 'needs_review', review_reason = ?, updated_at = ? "
                f"WHERE review = 'new' AND id IN ({','.join('?' * len(suspects))})",
                (suspect_reason, now, *suspects),
            )
    return int(cursor.lastrowid)


def _current_of(db: sqlite3.Connection, run_id: int, photo_id: int, task: str) -> int | None:
    """Whether a new result of this run becomes current for (photo, task): None when it must stay a version
    (a reviewed current result, and the run was not told to replace it); else the id of the result it
    supersedes (0 when there is none)."""
    row = db.execute(
        "SELECT r.id, r.edited, r.review, u.on_reviewed FROM runs u "
        "LEFT JOIN results r ON r.photo_id = ? AND r.task = ? AND r.current = 1 WHERE u.id = ?",
        (photo_id, task, run_id),
    ).fetchone()
    current_id, edited, review, on_reviewed = row
    if current_id is None:
        return 0
    if (edited or review in REVIEWED_STATES) and on_reviewed != "replace":
        return None
    return int(current_id)


def record_failure(
    catalog: Catalog, run_id: int, photo_id: int, error: str, kind: str, *, unreadable: bool = False
) -> None:
    """Mark the photo's queue item failed with ``error``; ``unreadable`` also marks the photo itself, like the
    scanner's verdict: not queued again until the file changes on disk."""
    with catalog.transaction() as db:
        db.execute(
            "UPDATE run_items SET state = 'failed', attempts = attempts + 1, error = ?, error_kind = ? "
            "WHERE run_id = ? AND photo_id = ?",
            (error, kind, run_id, photo_id),
        )
        if unreadable:
            db.execute(
                "UPDATE photos SET status = 'unreadable', error = ?, error_kind = ? "
                "WHERE id = ? AND status = 'present'",
                (error, kind, photo_id),
            )


def count_attempt(catalog: Catalog, run_id: int, photo_id: int) -> int:
    """Count one more attempt at the photo (it stays queued): how many there have been."""
    with catalog.transaction() as db:
        db.execute(
            "UPDATE run_items SET attempts = attempts + 1 WHERE run_id = ? AND photo_id = ?",
            (run_id, photo_id),
        )
        row = db.execute(
            "SELECT attempts FROM run_items WHERE run_id = ? AND photo_id = ?", (run_id, photo_id)
        ).fetchone()
    return int(row[0])
