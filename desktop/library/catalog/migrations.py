"""The catalog's schema: an ordered list of migrations, applied in order, recorded in schema_migrations."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from captioneer.desktop.library.catalog.errors import CatalogError
from captioneer.desktop.library.catalog.fts import TEXT_TASKS, sync_index

# ---------------------------------------------------------------------------------------------------------
# Migrations: an ordered list; each entry's position + 1 is its version, recorded in schema_migrations.
# Never edit or reorder a released entry: append a new one.


def _m001_initial(db: sqlite3.Connection) -> None:
    db.executescript(
        """
        CREATE TABLE libraries (
            id INTEGER PRIMARY KEY,
            root TEXT NOT NULL UNIQUE,
            added_at REAL NOT NULL,
            last_scan_at REAL
        );
        CREATE TABLE photos (
            id INTEGER PRIMARY KEY,
            library_id INTEGER NOT NULL REFERENCES libraries(id) ON DELETE CASCADE,
            path TEXT NOT NULL UNIQUE,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            content_key TEXT,
            status TEXT NOT NULL DEFAULT 'present' CHECK (status IN ('present', 'missing', 'unreadable')),
            error TEXT,
            error_kind TEXT,
            first_seen REAL NOT NULL,
            last_seen REAL NOT NULL
        );
        CREATE INDEX photos_content_key ON photos(content_key);
        CREATE INDEX photos_library ON photos(library_id, path);
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            library_id INTEGER REFERENCES libraries(id) ON DELETE SET NULL,
            scope TEXT NOT NULL,
            task TEXT NOT NULL,
            language TEXT NOT NULL,
            engine TEXT NOT NULL,
            model TEXT NOT NULL,
            quant TEXT,
            prompt_hash TEXT NOT NULL,
            options TEXT NOT NULL DEFAULT '{}',
            state TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'running', 'paused', 'cancelled', 'done', 'failed')),
            message TEXT,
            created_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL
        );
        CREATE TABLE run_items (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            error_kind TEXT,
            PRIMARY KEY (run_id, photo_id)
        );
        CREATE INDEX run_items_pending ON run_items(run_id, state, position);
        CREATE TABLE results (
            id INTEGER PRIMARY KEY,
            photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            task TEXT NOT NULL,
            language TEXT NOT NULL,
            caption TEXT NOT NULL DEFAULT '',
            keywords TEXT NOT NULL DEFAULT '[]',
            title TEXT,
            alt_text TEXT,
            raw TEXT,
            engine TEXT NOT NULL,
            model TEXT NOT NULL,
            quant TEXT,
            prompt_hash TEXT NOT NULL,
            seconds REAL,
            image_tokens INTEGER,
            attempts INTEGER NOT NULL DEFAULT 1,
            review TEXT NOT NULL DEFAULT 'new'
                CHECK (review IN ('new', 'needs_review', 'approved', 'rejected', 'written')),
            review_reason TEXT,
            edited INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            UNIQUE (run_id, photo_id)
        );
        CREATE INDEX results_photo ON results(photo_id, task, model);
        CREATE INDEX results_review ON results(review);
        CREATE TABLE write_log (
            id INTEGER PRIMARY KEY,
            result_id INTEGER NOT NULL REFERENCES results(id) ON DELETE CASCADE,
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            mode TEXT NOT NULL,
            outcome TEXT NOT NULL,
            detail TEXT,
            journal_ref TEXT,
            at REAL NOT NULL
        );
        CREATE INDEX write_log_run ON write_log(run_id);
        """
    )


def _m002_write_operations(db: sqlite3.Connection) -> None:
    """One row per `write` (its own journal, undone as a whole); earlier writes, journaled per run, become one
    operation per run."""
    for statement in (
        """CREATE TABLE write_ops (
            id INTEGER PRIMARY KEY,
            started_at REAL NOT NULL,
            mode TEXT NOT NULL,
            journal_ref TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'written' CHECK (state IN ('written', 'undone')),
            undone_at REAL
        )""",
        "ALTER TABLE write_log ADD COLUMN op_id INTEGER REFERENCES write_ops(id) ON DELETE SET NULL",
        "CREATE INDEX write_log_op ON write_log(op_id)",
        """INSERT INTO write_ops (started_at, mode, journal_ref)
            SELECT MIN(at), MIN(mode), journal_ref FROM write_log WHERE journal_ref IS NOT NULL
            GROUP BY journal_ref ORDER BY MIN(at)""",
        """UPDATE write_log
            SET op_id = (SELECT o.id FROM write_ops o WHERE o.journal_ref = write_log.journal_ref)
            WHERE journal_ref IS NOT NULL""",
    ):
        db.execute(statement)


def _m003_existing_keywords(db: sqlite3.Connection) -> None:
    """The keywords each photo already has in its files (any keyword field, embedded or in a sidecar), read by
    the scanner: shown read-only in review, searched, filtered and offered by autocomplete.

    ``existing_keywords_stamp`` says which sidecars (name, size, mtime) they were read with, so a rescan
    reads them again when a sidecar changes; NULL means not read yet. ``existing_keywords_note`` says why
    some could not be read (a malformed sidecar)."""
    # One statement at a time: executescript() would commit the migration's transaction half-way.
    db.execute("ALTER TABLE photos ADD COLUMN existing_keywords TEXT NOT NULL DEFAULT '[]'")
    db.execute("ALTER TABLE photos ADD COLUMN existing_keywords_stamp TEXT")
    db.execute("ALTER TABLE photos ADD COLUMN existing_keywords_note TEXT")


def _m004_current_results(db: sqlite3.Connection) -> None:
    """One current result per photo and task: the one shown, reviewed and written. Older results stay as
    superseded versions (history), never written. Until now the newest result silently won; it becomes
    current. Runs remember what to do when a new result meets a reviewed current one (``replace`` or
    ``keep``)."""
    # One statement at a time: executescript would commit first and leave a half-migrated catalog behind a
    # crash; these stay inside the migration's transaction.
    for statement in (
        "ALTER TABLE results ADD COLUMN current INTEGER NOT NULL DEFAULT 0 CHECK (current IN (0, 1))",
        "UPDATE results SET current = 1 WHERE id = ("
        " SELECT r2.id FROM results r2 WHERE r2.photo_id = results.photo_id AND r2.task = results.task"
        " ORDER BY r2.created_at DESC, r2.id DESC LIMIT 1)",
        "CREATE UNIQUE INDEX results_current ON results(photo_id, task) WHERE current = 1",
        "ALTER TABLE runs ADD COLUMN on_reviewed TEXT NOT NULL DEFAULT 'keep' "
        "CHECK (on_reviewed IN ('replace', 'keep'))",
    ):
        db.execute(statement)


def _m005_text_search(db: sqlite3.Connection) -> None:
    """The text a task read in the image (OCR) is kept per result, and every result's text goes into the
    full-text index (:mod:`~captioneer.desktop.library.catalog.fts`), filled here for the results already
    stored and kept in step by triggers from now on."""
    db.execute("ALTER TABLE results ADD COLUMN ocr_text TEXT")
    marks = ",".join("?" * len(TEXT_TASKS))
    db.execute(f"UPDATE results SET ocr_text = caption WHERE task IN ({marks})", TEXT_TASKS)
    sync_index(db)


def _m006_result_context(db: sqlite3.Connection) -> None:
    """The context each result's prompt was sent with (a JSON object: folder, date, place, event, …; ``{}``
    for none), so review and exports show what the model was told about the photo."""
    db.execute("ALTER TABLE results ADD COLUMN context TEXT NOT NULL DEFAULT '{}'")


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _m001_initial,
    _m002_write_operations,
    _m003_existing_keywords,
    _m004_current_results,
    _m005_text_search,
    _m006_result_context,
)


def schema_version(db: sqlite3.Connection) -> int:
    exists = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if not exists:
        return 0
    row = db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def migrate(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        "applied_at REAL NOT NULL)"
    )
    current = schema_version(db)
    if current > len(MIGRATIONS):
        raise CatalogError(
            f"The catalog was made by a newer Captioneer (schema {current}, this version knows "
            f"{len(MIGRATIONS)}). Update Captioneer."
        )
    for version, migration in enumerate(MIGRATIONS[current:], start=current + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            migration(db)
            db.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (version, migration.__name__.lstrip("_"), time.time()),
            )
        except BaseException:
            db.rollback()
            raise
        db.commit()
