"""The album catalog: one SQLite file (WAL, foreign keys, checked on open, migrated in order, one writer)."""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from captioneer.backends.errors import CaptioneerError
from captioneer.desktop.core.paths import data_dir

log = logging.getLogger(__name__)

CATALOG_NAME = "catalog.sqlite"
BACKUP_EVERY_SECONDS = 24 * 3600

REVIEW_STATES = ("new", "needs_review", "approved", "rejected", "written")
"""Review state of a result: fresh from the model, flagged, approved, rejected, or written into the files."""
REVIEWED_STATES = ("approved", "rejected", "written")
"""States a person put a result in (an edited result counts as reviewed too, whatever its state)."""


class CatalogError(CaptioneerError):
    """The catalog cannot be used."""


class CatalogLockedError(CatalogError):
    """Another Captioneer process has the catalog open for writing."""


class CatalogCorruptError(CatalogError):
    """The catalog file is damaged."""

    exit_code = 3


class CatalogReadOnlyError(CatalogError):
    """The catalog (or its folder) cannot be written: permissions, a read-only disk. The file is sound."""

    exit_code = 3


class CatalogDiskFullError(CatalogError):
    """The disk holding the catalog is full (or the file hit a size limit). The file is sound."""

    exit_code = 3


def default_catalog_path() -> Path:
    return data_dir() / CATALOG_NAME


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


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _m001_initial,
    _m002_write_operations,
    _m003_existing_keywords,
    _m004_current_results,
)


# ---------------------------------------------------------------------------------------------------------
# The single-writer lock: an OS file lock (released by the kernel when a process dies, so a stale lock is
# recovered by simply taking it), with the holder's pid written inside for the message.


class _WriterLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the catalog's life
        except OSError as exc:
            raise os_storage_error(exc, self.path.with_name(self.path.name.removesuffix(".lock"))) from None
        try:
            _lock_file(fh)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise CatalogLockedError(
                f"The catalog {self.path.with_suffix('')} is in use by another Captioneer ({holder}). "
                "Close the other window or wait for the other command to finish, then try again."
            ) from None
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(f"process {os.getpid()} on {socket.gethostname()}")
            fh.flush()
        except OSError as exc:
            _unlock_file(fh)
            fh.close()
            raise os_storage_error(exc, self.path.with_name(self.path.name.removesuffix(".lock"))) from None
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            self._fh.seek(0)
            self._fh.truncate()
            _unlock_file(self._fh)
            self._fh.close()
            self._fh = None


if os.name == "nt":
    import msvcrt

    def _lock_file(fh: IO[str]) -> None:
        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)

    def _unlock_file(fh: IO[str]) -> None:
        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock_file(fh: IO[str]) -> None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock_file(fh: IO[str]) -> None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


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


RESULT_COLUMNS = (
    "r.id, r.photo_id, r.run_id, p.path, r.task, r.language, r.caption, r.keywords, r.title, r.alt_text, "
    "r.engine, r.model, r.quant, r.prompt_hash, r.seconds, r.review, r.review_reason, r.edited, "
    "r.created_at, r.updated_at, r.current"
)


def result_from_row(row: sqlite3.Row | Sequence[Any], catalog_path: Path | None = None) -> Result:
    values = list(row)
    values[7] = tuple(keyword_list(values[7], f"result {values[0]}", catalog_path))
    values[17] = bool(values[17])
    values[20] = bool(values[20])
    return Result(*values)


def keyword_list(text: object, where: str, catalog_path: Path | None = None) -> list[str]:
    """A stored JSON list of keywords, checked: damaged catalog bytes become a :class:`CatalogCorruptError`
    naming ``where`` (``result 12``), never a traceback.

    Raises:
        CatalogCorruptError: the text is not a JSON list of strings.
    """
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _corrupt(catalog_path or default_catalog_path(), f"unreadable keywords in {where}")
    return value


class Catalog:
    """An open catalog. Use :func:`open_catalog`; close it (or use ``with``) to release the writer lock.

    Every method that writes commits before it returns (or inside :meth:`transaction`), so a killed process
    loses at most the transaction in flight.
    """

    def __init__(self, db: sqlite3.Connection, path: Path, lock: _WriterLock | None) -> None:
        self.db = db
        self.path = path
        self._lock = lock

    @property
    def writable(self) -> bool:
        return self._lock is not None

    def close(self) -> None:
        self.db.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def open_sibling(self) -> Catalog:
        """Another connection to this catalog for another thread of this process (an SQLite connection stays
        in the thread that made it). It works under this catalog's writer lock: close it before this one.
        The file was checked when this catalog opened, so the sibling skips the (slow) check."""
        return Catalog(_connect(self.path, readonly=not self.writable, quick_check=False), self.path, None)

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
        return _schema_version(self.db)

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
        row = self.db.execute(f"SELECT {_PHOTO_COLUMNS} FROM photos WHERE path = ?", (path,)).fetchone()
        return Photo(*row) if row else None

    def photo(self, photo_id: int) -> Photo | None:
        row = self.db.execute(f"SELECT {_PHOTO_COLUMNS} FROM photos WHERE id = ?", (photo_id,)).fetchone()
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
        sql = f"SELECT {_PHOTO_COLUMNS} FROM photos WHERE substr(path, 1, ?) = ?"
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
        current_only: bool = False,
        where: str = "",
        params: Sequence[Any] = (),
    ) -> list[Result]:
        """Results joined with their photo path, oldest first. ``current_only`` keeps each photo's current
        result per task (leaving out superseded versions); ``where`` adds an SQL condition (from
        :mod:`captioneer.desktop.library.search`)."""
        clauses: list[str] = []
        values: list[Any] = []
        if run_id is not None:
            clauses.append("r.run_id = ?")
            values.append(run_id)
        if review:
            clauses.append(f"r.review IN ({','.join('?' * len(review))})")
            values.extend(review)
        if ids is not None:
            clauses.append(f"r.id IN ({','.join('?' * len(ids))})" if ids else "0")
            values.extend(ids)
        if current_only:
            clauses.append("r.current = 1")
        if where:
            clauses.append(f"({where})")
            values.extend(params)
        sql = f"SELECT {RESULT_COLUMNS} FROM results r JOIN photos p ON p.id = r.photo_id"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        return [result_from_row(row, self.path) for row in self.db.execute(sql + " ORDER BY r.id", values)]

    def result(self, result_id: int) -> Result | None:
        found = self.results(ids=[result_id])
        return found[0] if found else None

    def current_results(self, photo_id: int) -> list[Result]:
        """A photo's current result of each task, oldest first: what review shows and write combines."""
        return self.results(current_only=True, where="r.photo_id = ?", params=(photo_id,))

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

    def log_write(
        self,
        result: Result,
        mode: str,
        outcome: str,
        detail: str | None = None,
        journal_ref: str | None = None,
        op_id: int | None = None,
    ) -> None:
        """Record what the metadata step (write operation ``op_id``) did to one result's file; written or
        already there: ``written``."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO write_log "
                "(result_id, run_id, path, mode, outcome, detail, journal_ref, at, op_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    result.id,
                    result.run_id,
                    result.path,
                    mode,
                    outcome,
                    detail,
                    journal_ref,
                    time.time(),
                    op_id,
                ),
            )
            if outcome in ("written", "unchanged"):
                db.execute(
                    "UPDATE results SET review = 'written', updated_at = ? WHERE id = ?",
                    (time.time(), result.id),
                )


_PHOTO_COLUMNS = "id, library_id, path, size, mtime_ns, content_key, status, error, error_kind"


def _schema_version(db: sqlite3.Connection) -> int:
    exists = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if not exists:
        return 0
    row = db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def _migrate(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        "applied_at REAL NOT NULL)"
    )
    current = _schema_version(db)
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


def _connect(path: Path, readonly: bool, quick_check: bool = True) -> sqlite3.Connection:
    try:
        if readonly:
            # In a folder we cannot write, SQLite cannot make the WAL index it needs even to read: open the
            # file as immutable (nobody can be writing it there either), so searches and exports still work.
            flags = "mode=ro" if _folder_writable(path) else "mode=ro&immutable=1"
            db = sqlite3.connect(f"{path.as_uri()}?{flags}", uri=True, isolation_level=None, timeout=10)
        else:
            db = sqlite3.connect(path, isolation_level=None, timeout=10)
    except sqlite3.Error as exc:
        raise storage_error(exc, path, opening=True) from None
    # Damaged bytes inside a text cell pass quick_check; reading them must say "damaged", not raise
    # UnicodeDecodeError from deep inside whichever command touched the row.
    db.text_factory = _text_reader(path)
    # Case-insensitive matching that is right beyond ASCII (SQLite's lower() is ASCII-only).
    db.create_function("casefold", 1, _casefold, deterministic=True)
    try:
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA busy_timeout = 10000")
        if not readonly:
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise CatalogError(
                    f"The catalog {path} cannot use write-ahead logging (journal mode {mode})."
                )
            db.execute("PRAGMA synchronous = NORMAL")
        check = [row[0] for row in db.execute("PRAGMA quick_check")] if quick_check else ["ok"]
    except sqlite3.Error as exc:
        db.close()
        raise storage_error(exc, path, opening=True) from None
    except BaseException:
        db.close()
        raise
    if check != ["ok"]:
        db.close()
        raise _corrupt(path, "; ".join(check[:3]))
    return db


def _casefold(value: object) -> object:
    return value.casefold() if isinstance(value, str) else value


_NOT_UTF8 = "a stored text is not valid UTF-8"


def _text_reader(path: Path) -> Callable[[bytes], str]:
    def read(data: bytes) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise _corrupt(path, _NOT_UTF8) from None

    return read


# SQLite's primary result codes (the low byte of an extended code).
_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN = (
    3,
    8,
    10,
    11,
    13,
    14,
)
_SQLITE_NOTADB = 26
_SQLITE_IOERR_SHMSIZE = _SQLITE_IOERR | 19 << 8  # the WAL index could not grow: no space left


def _folder_writable(path: Path) -> bool:
    folder = path.parent
    return os.access(folder, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


def os_storage_error(exc: OSError, path: Path) -> CatalogError:
    """The one-line diagnosis for a file-system failure on the catalog's own files."""
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG):
        return _disk_full(path)
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return _read_only(path, exc.strerror or str(exc))
    return CatalogError(
        f"The catalog {path} cannot be used ({exc.strerror or exc}): check the disk and its folder."
    )


def _disk_full(path: Path) -> CatalogDiskFullError:
    return CatalogDiskFullError(
        f"The disk holding the catalog {path} is full, so nothing more could be saved; what was saved "
        "before is intact. Free some space on that disk (or move Captioneer's data folder with "
        "CAPTIONEER_HOME), then run the command again."
    )


def _read_only(path: Path, detail: str) -> CatalogReadOnlyError:
    return CatalogReadOnlyError(
        f"The catalog {path} cannot be written ({detail}): its folder {path.parent} or the file is read-only "
        "or on a read-only disk. It is not damaged. Give yourself write permission on the folder and its "
        "catalog files (for example: chmod u+w on them), or point CAPTIONEER_HOME at a writable folder, then "
        "run the command again."
    )


def storage_error(exc: sqlite3.Error, path: Path | None = None, *, opening: bool = False) -> CatalogError:
    """The one-line diagnosis for an SQLite failure on the catalog: disk full, read-only, damaged, or another
    failure, each with what to do. Used when opening (where any other failure means the file is not a sound
    database) and by the command line for failures later on.
    """
    path = path or default_catalog_path()
    extended = getattr(exc, "sqlite_errorcode", None) or 0
    code = extended & 0xFF
    text = str(exc)
    if code == _SQLITE_FULL or extended == _SQLITE_IOERR_SHMSIZE or "disk is full" in text:
        return _disk_full(path)
    if code in (_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_CANTOPEN):
        return _read_only(path, text)
    if code == _SQLITE_IOERR:
        return CatalogDiskFullError(
            f"The catalog {path} could not be read or written ({text}); what was saved before is intact. The "
            "disk may be full (or the file over a size limit), failing or disconnected: free some space or "
            "check the disk, then run the command again."
        )
    # Damage quick_check cannot see shows up later: stored JSON that no longer parses, or text that is not
    # UTF-8 reaching our casefold() (the only way that function fails).
    damage = ("malformed", "decode", "user-defined function raised exception")
    if opening or code in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or any(word in text for word in damage):
        return _corrupt(path, _NOT_UTF8 if damage[-1] in text else text)
    return CatalogError(
        f"The catalog {path} could not be used ({text}). Run the command again; if it keeps failing, report "
        "this message."
    )


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + ".backup")


def _refresh_backup(db: sqlite3.Connection, path: Path) -> None:
    """Keep a copy of the (just checked, sound) catalog, at most a day old, to restore if the file is damaged.

    Written to a temp file and renamed, so a crash never leaves a half backup in place of a good one."""
    backup = backup_path(path)
    try:
        if backup.exists() and time.time() - backup.stat().st_mtime < BACKUP_EVERY_SECONDS:
            return
        temp = backup.with_name(backup.name + ".tmp")
        temp.unlink(missing_ok=True)
        target = sqlite3.connect(temp)
        try:
            db.backup(target)
        finally:
            target.close()
        os.replace(temp, backup)
    except (OSError, sqlite3.Error) as exc:
        # A missing backup must not stop the user's work; it is logged and the next open tries again.
        log.warning("Could not back up the catalog to %s: %s", backup, exc)


def _corrupt(path: Path, detail: str) -> CatalogCorruptError:
    backup = backup_path(path)
    if backup.exists() and backup.stat().st_size > 0:
        when = datetime.fromtimestamp(backup.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
        remedy = (
            f"To restore the backup from {when} ({backup}), close Captioneer, rename the damaged file to "
            f"{path.name}.damaged and copy {backup.name} to {path.name} in {path.parent} (for example: "
            f"mv '{path}' '{path}.damaged' && cp '{backup}' '{path}'; results since then are lost); or "
            "move the file aside and run the scan again to rebuild a fresh catalog."
        )
    else:
        remedy = (
            f"Move the file aside (for example rename it to {path.name}.damaged) and run the scan again to "
            "rebuild it; results and reviews stored only in the damaged catalog are lost."
        )
    return CatalogCorruptError(
        f"The catalog {path} is damaged ({detail}). Your photos are not affected. {remedy}"
    )


def open_catalog(path: Path | None = None, *, readonly: bool = False) -> Catalog:
    """Open (creating and migrating if needed) the catalog.

    A writable catalog takes the single-writer lock; ``readonly`` opens for queries only, without the lock.

    Raises:
        CatalogLockedError: another process holds the writer lock.
        CatalogCorruptError: the file is not a sound SQLite database.
        CatalogError: the catalog is missing (read-only) or from a newer Captioneer.
    """
    path = path or default_catalog_path()
    if readonly:
        if not path.exists():
            raise CatalogError(
                f"There is no catalog yet at {path}: tag a folder first (captioneer tag FOLDER)."
            )
        _refuse_empty(path)
        db = _connect(path, readonly=True)
        version = _schema_version(db)
        if version != len(MIGRATIONS):
            db.close()
            raise CatalogError(
                f"The catalog {path} has schema {version}, this Captioneer expects {len(MIGRATIONS)}: "
                "run a command that writes to it (captioneer tag) to upgrade it."
            )
        return Catalog(db, path, None)
    lock = _WriterLock(path.with_name(path.name + ".lock"))
    lock.acquire()
    try:
        _refuse_empty(path)
        db = _connect(path, readonly=False)
        try:
            _migrate(db)
            _refresh_backup(db, path)
        except sqlite3.Error as exc:
            db.close()
            raise storage_error(exc, path) from None
        except BaseException:
            db.close()
            raise
    except BaseException:
        lock.release()
        raise
    return Catalog(db, path, lock)


def _refuse_empty(path: Path) -> None:
    """A catalog file that exists with 0 bytes lost everything in it (truncated by a crash, a sync tool or
    a full disk). SQLite would take it for a new database and start over, silently dropping every result and
    later the good backup; refuse it and offer the backup instead."""
    try:
        empty = path.stat().st_size == 0
    except FileNotFoundError:
        return
    except OSError as exc:
        raise os_storage_error(exc, path) from None
    if empty:
        raise _corrupt(path, "the file is empty: 0 bytes")
