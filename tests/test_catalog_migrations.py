"""Catalogs made by earlier Captioneer versions open and migrate the same way now the catalog is a package.

``fixtures/catalog-schema1.sql`` and ``fixtures/catalog-schema4.sql`` are dumps of one catalog made by the
single-module catalog code (commit ebd4afa): first at schema 1 with photos, two runs of the same task, results
and a per-run write log; then the same file after that code migrated it to schema 4.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from captioneer.desktop.library.catalog import MIGRATIONS, default_catalog_path, open_catalog

FIXTURES = Path(__file__).parent / "fixtures"
OLD_NAMES = ["m001_initial", "m002_write_operations", "m003_existing_keywords", "m004_current_results"]


def restore(dump: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.executescript((FIXTURES / dump).read_text(encoding="utf-8"))
    db.close()
    return path


def content(path: Path) -> list[str]:
    """Every schema statement and row of the catalog, with the migration times left out."""
    db = sqlite3.connect(path)
    db.execute("UPDATE schema_migrations SET applied_at = 0")
    lines = list(db.iterdump())
    db.rollback()
    db.close()
    return lines


def test_migrations_keep_their_numbers_names_and_order() -> None:
    assert [migration.__name__.lstrip("_") for migration in MIGRATIONS[: len(OLD_NAMES)]] == OLD_NAMES


def test_an_old_catalog_migrates_exactly_as_the_old_code_migrated_it(tmp_path: Path) -> None:
    by_old_code = restore("catalog-schema4.sql", tmp_path / "old" / "catalog.sqlite")
    by_new_code = restore("catalog-schema1.sql", default_catalog_path())
    with open_catalog() as catalog:
        assert catalog.schema_version() == len(MIGRATIONS)
        names = [row[0] for row in catalog.db.execute("SELECT name FROM schema_migrations ORDER BY version")]
        assert names[: len(OLD_NAMES)] == OLD_NAMES
        # The newest result of each photo became current; the per-run write became one undoable operation.
        assert {r.id: r.current for r in catalog.results()} == {1: False, 2: True, 3: True, 4: True}
        assert [row[0] for row in catalog.db.execute("SELECT op_id FROM write_log")] == [1]
    with open_catalog(by_old_code) as catalog:  # migrations appended since then run on it too
        assert catalog.schema_version() == len(MIGRATIONS)
    assert content(by_new_code) == content(by_old_code)


def test_a_fresh_catalog_has_the_schema_an_old_one_migrates_to(tmp_path: Path) -> None:
    migrated = restore("catalog-schema1.sql", tmp_path / "old" / "catalog.sqlite")
    open_catalog(migrated).close()
    open_catalog().close()

    def schema(path: Path) -> list[str]:
        db = sqlite3.connect(path)
        rows = [
            row[0] for row in db.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
        ]
        db.close()
        return rows

    assert schema(default_catalog_path()) == schema(migrated)
