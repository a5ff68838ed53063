"""Opening the catalog file: the writer lock, SQLite settings, the check on open, migration, backups.

WAL and foreign keys on every connection; one writer process at a time, by an OS file lock."""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from captioneer.desktop.library.catalog.errors import (
    NOT_UTF8,
    CatalogError,
    CatalogLockedError,
    backup_path,
    corrupt,
    os_storage_error,
    storage_error,
)
from captioneer.desktop.library.catalog.fts import NO_FTS5, sync_index
from captioneer.desktop.library.catalog.migrations import MIGRATIONS, migrate, schema_version

log = logging.getLogger(__name__)

BACKUP_EVERY_SECONDS = 24 * 3600

# ---------------------------------------------------------------------------------------------------------
# The single-writer lock: an OS file lock (released by the kernel when a process dies, so a stale lock is
# recovered by simply taking it), with the holder's pid written inside for the message.


class WriterLock:
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


def connect(path: Path, readonly: bool, quick_check: bool = True) -> sqlite3.Connection:
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
    # A photo's file name, for searching by name (SQLite has no basename).
    db.create_function("file_name", 1, _file_name, deterministic=True)
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
        raise corrupt(path, "; ".join(check[:3]))
    return db


def _casefold(value: object) -> object:
    return value.casefold() if isinstance(value, str) else value


def _file_name(value: object) -> object:
    return os.path.basename(value) if isinstance(value, str) else value


def _text_reader(path: Path) -> Callable[[bytes], str]:
    def read(data: bytes) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise corrupt(path, NOT_UTF8) from None

    return read


def _folder_writable(path: Path) -> bool:
    folder = path.parent
    return os.access(folder, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


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


def open_connection(path: Path, *, readonly: bool) -> tuple[sqlite3.Connection, WriterLock | None]:
    """The checked connection to the catalog at ``path`` (created and migrated if needed) and the writer lock
    it holds; ``readonly`` opens for queries only, without the lock.

    Raises:
        CatalogLockedError: another process holds the writer lock.
        CatalogCorruptError: the file is not a sound SQLite database.
        CatalogError: the catalog is missing (read-only) or from a newer Captioneer.
    """
    if readonly:
        if not path.exists():
            raise CatalogError(
                f"There is no catalog yet at {path}: tag a folder first (captioneer tag FOLDER)."
            )
        _refuse_empty(path)
        db = connect(path, readonly=True)
        version = schema_version(db)
        if version != len(MIGRATIONS):
            db.close()
            raise CatalogError(
                f"The catalog {path} has schema {version}, this Captioneer expects {len(MIGRATIONS)}: "
                "run a command that writes to it (captioneer tag) to upgrade it."
            )
        return db, None
    lock = WriterLock(path.with_name(path.name + ".lock"))
    lock.acquire()
    try:
        _refuse_empty(path)
        db = connect(path, readonly=False)
        try:
            migrate(db)
            if not sync_index(db):
                log.warning(NO_FTS5)
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
    return db, lock


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
        raise corrupt(path, "the file is empty: 0 bytes")
