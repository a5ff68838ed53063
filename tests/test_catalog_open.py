"""The catalog file: WAL, foreign keys, migrations recorded, quick_check, the single-writer lock, damage."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from captioneer.desktop.library.catalog import (
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
        "import sys, time; from pathlib import Path; "
        "from captioneer.desktop.library.catalog import open_catalog; "
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


# ---- faults made for real: each becomes one line with the right advice and exit status -----------------


def tagged_library(tmp_path: Path) -> Path:
    """A library of four photos tagged by the stand-in engine, in the test's default catalog, with a backup
    that holds the results."""
    from PIL import Image

    from captioneer.desktop.library.runs import RunSpec, execute_run, plan_run
    from captioneer.desktop.library.scanner import scan_library
    from tests.fakes.tagging_engine import FakeEngine, fake_config

    root = tmp_path / "lib"
    root.mkdir()
    for i in range(4):
        Image.new("RGB", (64, 48), (i * 60, 120, 30)).save(root / f"p{i}.jpg")
    with open_catalog() as catalog:
        scan_library(catalog, root)
        config = fake_config(invalid_on=[])
        plan = plan_run(catalog, str(root), catalog.photos_under(root), RunSpec(image_tokens=16), config)
        execute_run(catalog, plan.run_id, FakeEngine(config))
    os.utime(backup_path(default_catalog_path()), (0, 0))
    with open_catalog():  # a day old: refreshed, now with the results
        pass
    return root


def run_cli(*args: str, preexec_fn=None, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "captioneer.desktop.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
        preexec_fn=preexec_fn,
        timeout=120,
        **kwargs,
    )


def without_root_powers() -> None:
    """In the child: lose the root's power to write anywhere (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH leave the
    bounding set, so the executed command has them no more), so folder permissions apply as to a user."""
    if os.geteuid() != 0:
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_read_only_catalog_folder_is_read_only_not_damaged(tmp_path: Path) -> None:
    root = tagged_library(tmp_path)
    folder = default_catalog_path().parent
    edits = tmp_path / "edits.csv"
    edits.write_text(f"path,caption\n{root / 'p0.jpg'},A new caption\n", encoding="utf-8")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    folder.chmod(0o555)
    try:
        written = run_cli("import", str(edits), preexec_fn=without_root_powers)
        # Reading still works: search and export do not need to write.
        found = run_cli("search", "--paths", "status:new", preexec_fn=without_root_powers)
    finally:
        folder.chmod(0o755)
    line = one_line(written.stderr)
    assert written.returncode == 3
    assert "read-only" in line and "not damaged" in line and "chmod" in line
    assert "restore" not in line
    assert found.returncode == 0, found.stderr
    assert len(found.stdout.splitlines()) == 4
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_empty_catalog_offers_the_backup_and_never_starts_over(
    tmp_path: Path, tiny_gguf: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from captioneer.desktop.cli import main

    root = tagged_library(tmp_path)
    path = default_catalog_path()
    backup = backup_path(path).read_bytes()
    path.write_bytes(b"")  # truncated by a crash or a sync tool
    model, mmproj = tiny_gguf
    assert main(["tag", str(root), "--model", str(model), "--mmproj", str(mmproj)]) == 3
    line = one_line(capsys.readouterr().err)
    assert "empty: 0 bytes" in line and str(backup_path(path)) in line and "restore the backup" in line
    assert f"mv '{path}' '{path}.damaged' && cp '{backup_path(path)}' '{path}'" in line
    assert main(["search", "beach"]) == 3
    assert "0 bytes" in one_line(capsys.readouterr().err)
    assert path.stat().st_size == 0 and backup_path(path).read_bytes() == backup  # nothing started over
    # Following the advice gets every result back.
    path.rename(f"{path}.damaged")
    path.write_bytes(backup)
    with open_catalog() as catalog:
        assert len(catalog.results()) == 4


def _flip(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert data.count(old) >= 1, old
    path.write_bytes(data.replace(old, new))


@pytest.mark.parametrize("damage", ["text", "keywords"])
def test_flipped_bytes_that_pass_quick_check_are_one_line_damaged(
    tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from captioneer.desktop.cli import main

    tagged_library(tmp_path)
    path = default_catalog_path()
    with open_catalog() as catalog:
        result = catalog.results()[0]
    if damage == "text":
        caption = result.caption.encode()
        _flip(path, caption, caption[:3] + b"\xff" + caption[4:])  # no longer UTF-8
    else:
        keywords = json.dumps(list(result.keywords), ensure_ascii=False).encode()
        _flip(path, keywords, b"{" + keywords[1:])  # no longer JSON
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA quick_check").fetchall() == [("ok",)]
    db.close()
    # A search that finds the damaged result (the full-text index holds its words as they were).
    word = next((w for w in reversed(result.caption.split()) if any(c.isalnum() for c in w)), "x")
    commands = (
        ["search", "--all-results", f'"{word}"'],
        ["export"],
        ["review", "list"],
        ["write", "--dry-run", "--unreviewed"],
    )
    for command in commands:
        assert main(command) == 3, command
        line = one_line(capsys.readouterr().err)
        assert "is damaged" in line and "restore the backup" in line, (command, line)


@pytest.mark.skipif(os.name == "nt", reason="POSIX resource limits")
def test_disk_full_is_one_line_with_advice(tmp_path: Path) -> None:
    root = tagged_library(tmp_path)
    edits = tmp_path / "edits.csv"
    with edits.open("w", encoding="utf-8") as fh:
        fh.write("path,caption\n")
        for i in range(4):
            fh.write(f"{root / f'p{i}.jpg'},{'a long caption ' * 4000}\n")

    def small_disk() -> None:
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead of killing
        limit = 64 * 1024
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = run_cli("import", str(edits), preexec_fn=small_disk)
    line = one_line(done.stderr)
    assert done.returncode == 3
    assert "may be full" in line and "free some space" in line and "intact" in line
    with open_catalog() as catalog:  # what was saved before is there, nothing half-imported
        assert all("a long caption" not in r.caption for r in catalog.results())
        assert len(catalog.results()) == 4


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB file system of its own (tmpfs), where the disk really fills up; skipped where it cannot be
    mounted (mounting needs root)."""
    mount = tmp_path / "tiny-disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tiny file system here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_database_or_disk_is_full_is_one_line_with_advice(
    tmp_path: Path, tiny_disk: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from captioneer.desktop.cli import main

    monkeypatch.setenv("CAPTIONEER_HOME", str(tiny_disk))
    root = tagged_library(tmp_path)
    edits = tmp_path / "edits.csv"
    with edits.open("w", encoding="utf-8") as fh:
        fh.write("path,caption\n")
        for i in range(4):
            fh.write(f"{root / f'p{i}.jpg'},{'a long caption ' * 4000}\n")
    free = os.statvfs(tiny_disk)
    # Room for the WAL index, not for the new captions: SQLite's own "database or disk is full".
    (tiny_disk / "filler").write_bytes(b"x" * (free.f_bavail * free.f_frsize - 128 * 1024))
    assert main(["import", str(edits)]) == 3
    line = one_line(capsys.readouterr().err)
    assert "is full" in line and "Free some space" in line and "intact" in line
    (tiny_disk / "filler").unlink()
    with open_catalog() as catalog:
        assert len(catalog.results()) == 4
        assert all("a long caption" not in r.caption for r in catalog.results())
