"""The catalog file: WAL, foreign keys, migrations recorded, quick_check, the single-writer lock, damage."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from desktop.library.catalog import (
    MIGRATIONS,
    CatalogCorruptError,
    CatalogError,
    CatalogLockedError,
    backup_path,
    default_catalog_path,
    open_catalog,
)


def test_new_catalog_in_data_dir_with_wal_fk_and_migrations(captioneer_home: Path) -> None:
    with open_catalog() as catalog:
        assert catalog.path == captioneer_home / "data" / "catalog.sqlite"
        assert catalog.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert catalog.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        versions = catalog.db.execute(
            "SELECT version, name FROM schema_migrations ORDER BY version"
        ).fetchall()
        assert [v for v, _ in versions] == list(range(1, len(MIGRATIONS) + 1))
        assert versions[0][1] == "m001_initial"
        assert catalog.integrity_check() == []
        with pytest.raises(sqlite3.IntegrityError):
            catalog.db.execute(
                "INSERT INTO photos (library_id, path, size, mtime_ns, first_seen, last_seen) "
                "VALUES (999, '/x.jpg', 1, 1, 0, 0)"
            )
    # Reopening applies nothing twice.
    with open_catalog() as catalog:
        assert catalog.schema_version() == len(MIGRATIONS)
        count = catalog.db.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0]
        assert count == len(MIGRATIONS)


def test_second_writer_gets_a_clear_message_and_readers_still_work() -> None:
    with open_catalog():
        with pytest.raises(
            CatalogLockedError, match=f"in use by another Captioneer \\(process {os.getpid()}"
        ):
            open_catalog()
        with open_catalog(readonly=True) as reader:
            assert reader.libraries() == []
            with pytest.raises(sqlite3.OperationalError):
                reader.db.execute("INSERT INTO libraries (root, added_at) VALUES ('/x', 0)")
    with open_catalog() as catalog:  # released on close
        assert catalog.writable


def test_lock_of_a_killed_process_is_recovered(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    script = (
        "import sys, time; from pathlib import Path; from desktop.library.catalog import open_catalog; "
        f"c = open_catalog(Path({str(path)!r})); print('locked', flush=True); time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        with pytest.raises(CatalogLockedError, match=f"process {child.pid}"):
            open_catalog(path)
    finally:
        child.kill()
        child.wait()
    assert (
        "process" in (tmp_path / "catalog.sqlite.lock").read_text()
    )  # the dead holder's note is still there
    with open_catalog(path) as catalog:
        assert catalog.writable


def test_readonly_without_catalog_says_what_to_do() -> None:
    with pytest.raises(CatalogError, match="captioneer tag"):
        open_catalog(readonly=True)


@pytest.mark.parametrize("damage", ["random", "truncated", "garbage-wal"])
def test_damaged_catalog_is_detected_without_a_crash(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "catalog.sqlite"
    with open_catalog(path) as catalog:
        for i in range(300):
            catalog.library_id(tmp_path / f"lib{i}")
        catalog.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = path.read_bytes()
    if damage == "random":
        path.write_bytes(os.urandom(len(data)))
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:
        # A torn write-ahead log must not break opening: SQLite ignores frames that fail their checksum.
        Path(f"{path}-wal").write_bytes(os.urandom(5000))
        with open_catalog(path) as catalog:
            assert len(catalog.libraries()) == 300
        return
    with pytest.raises(CatalogCorruptError, match="damaged.*rebuild"):
        open_catalog(path)
    with pytest.raises(CatalogCorruptError):
        open_catalog(path, readonly=True)
    # The lock was released: after moving the file aside a fresh catalog opens.
    path.rename(tmp_path / "catalog.sqlite.damaged")
    with open_catalog(path) as catalog:
        assert catalog.libraries() == []


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    with open_catalog(path) as catalog:
        catalog.db.execute("INSERT INTO schema_migrations VALUES (99, 'future', 0)")
    with pytest.raises(CatalogError, match="newer Captioneer"):
        open_catalog(path)


def test_default_path_follows_captioneer_home(captioneer_home: Path) -> None:
    assert default_catalog_path() == captioneer_home / "data" / "catalog.sqlite"


def test_sibling_connection_for_a_worker_thread(tmp_path: Path) -> None:
    with open_catalog() as catalog:
        found: list[object] = []

        def worker() -> None:
            sibling = catalog.open_sibling()
            try:
                found.append(sibling.library_id(tmp_path / "from-worker"))
            finally:
                sibling.close()

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        assert found and catalog.libraries() == [(found[0], str(tmp_path / "from-worker"))]
        with pytest.raises(CatalogLockedError):  # closing the sibling kept the process's writer lock
            open_catalog()


def test_damaged_catalog_offers_the_daily_backup(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    with open_catalog(path) as catalog:
        catalog.library_id(tmp_path / "photos")
    backup = backup_path(path)
    assert backup.exists()
    with open_catalog(path) as catalog:  # the backup is fresh: not rewritten on every open
        catalog.library_id(tmp_path / "more")
    copy = sqlite3.connect(backup)
    assert copy.execute("SELECT COUNT(*) FROM libraries").fetchone()[0] == 0  # as it was when first opened
    copy.close()
    os.utime(backup, (0, 0))
    with open_catalog(path):  # a day old: refreshed, now with both libraries
        pass
    path.write_bytes(os.urandom(path.stat().st_size))
    with pytest.raises(CatalogCorruptError, match="restore the backup") as caught:
        open_catalog(path)
    assert backup.name in str(caught.value)
    path.rename(tmp_path / "catalog.sqlite.damaged")
    Path(f"{path}-wal").unlink(missing_ok=True)
    path.write_bytes(backup.read_bytes())
    with open_catalog(path) as catalog:
        assert {root for _, root in catalog.libraries()} == {str(tmp_path / "photos"), str(tmp_path / "more")}
