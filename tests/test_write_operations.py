"""Write operations in the catalog: a catalog from before them (writes journaled per run) is upgraded so its
earlier write is listed and undone as one operation, byte for byte."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path

import pytest
from PIL import Image

from captioneer.desktop.cli import main
from captioneer.desktop.core.paths import data_dir
from captioneer.desktop.library.catalog import MIGRATIONS, default_catalog_path, open_catalog
from captioneer.desktop.library.journal import Journal
from captioneer.desktop.library.merge import Generated
from captioneer.desktop.library.sidecars import WriteMode
from captioneer.desktop.library.writer import WriteOptions, apply, plan_write


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_write_journaled_per_run_before_the_upgrade_is_one_undoable_operation(
    tmp_path: Path, capsys
) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    photo = root / "a.jpg"
    Image.new("RGB", (64, 48), (10, 200, 30)).save(photo, quality=90)
    original, now = sha(photo), time.time()
    # The write as the old version did it: its journal under journal/<run id>.
    journal = data_dir() / "journal" / "1"
    options = WriteOptions(mode=WriteMode.EMBEDDED)
    apply(
        plan_write(photo, Generated(keywords=("lawn",)), library_root=root, options=options), Journal(journal)
    )
    assert sha(photo) != original

    # A schema-1 catalog holding that run, its written result and the write_log row.
    path = default_catalog_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    MIGRATIONS[0](db)
    db.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL)"
    )
    db.execute("INSERT INTO schema_migrations VALUES (1, 'm001_initial', ?)", (now,))
    db.execute("INSERT INTO libraries (id, root, added_at) VALUES (1, ?, ?)", (str(root), now))
    db.execute(
        "INSERT INTO photos (id, library_id, path, size, mtime_ns, first_seen, last_seen) "
        "VALUES (1, 1, ?, 1, 1, ?, ?)",
        (str(photo), now, now),
    )
    db.execute(
        "INSERT INTO runs (id, library_id, scope, task, language, engine, model, prompt_hash, state, "
        "created_at) VALUES (1, 1, ?, 'keywords', 'English', 'gguf', 'm', 'h', 'done', ?)",
        (str(root), now),
    )
    db.execute(
        "INSERT INTO results (id, photo_id, run_id, task, language, keywords, engine, model, prompt_hash, "
        "review, created_at, updated_at) VALUES (1, 1, 1, 'keywords', 'English', '[\"lawn\"]', 'gguf', 'm', "
        "'h', 'written', ?, ?)",
        (now, now),
    )
    db.execute(
        "INSERT INTO write_log (result_id, run_id, path, mode, outcome, journal_ref, at) "
        "VALUES (1, 1, ?, 'embedded', 'written', ?, ?)",
        (str(photo), str(journal), now),
    )
    db.close()

    assert main(["undo"]) == 0  # opening it upgrades it
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 1 and listed[0].startswith("write 1 · ")
    assert "1 photo (embedded) · written · runs 1" in listed[0]

    assert main(["undo", "1"]) == 0
    assert "1 restored" in capsys.readouterr().err
    assert sha(photo) == original
    with open_catalog(readonly=True) as catalog:
        assert [r.review for r in catalog.results()] == ["approved"]


@pytest.mark.parametrize("argv", [["undo", "1"], ["undo"]])
def test_undo_with_nothing_written_says_so(argv: list[str], capsys) -> None:
    assert main(argv) == (1 if len(argv) == 2 else 0)
    assert "nothing" in capsys.readouterr().err.lower()
