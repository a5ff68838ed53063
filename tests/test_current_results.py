"""One current result per photo and task: the migration, re-tagging reviewed photos (skip / replace / keep),
and Write = panel: the write takes only current approved results, one combined change per file, the same
content the review panel says will be written, read back with exiftool. Runs use the stand-in engine of
tests/fakes (a real Backend answering from pixel colours)."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from captioneer.backends.errors import ConfigurationError
from captioneer.desktop.cli import main
from captioneer.desktop.commands.tag import ask_about_reviewed
from captioneer.desktop.library.browse import (
    BrowseFilter,
    filtered_results,
    keyword_counts,
    photo_ids,
    photo_review,
)
from captioneer.desktop.library.catalog import MIGRATIONS, Catalog, open_catalog
from captioneer.desktop.library.catalog.search import search
from captioneer.desktop.library.publishing import photo_changes, undo_write, writable_results, write_results
from captioneer.desktop.library.runs import (
    RunSpec,
    execute_run,
    photo_decision,
    plan_run,
    reviewed_in_selection,
)
from captioneer.desktop.library.scanner import scan_library
from captioneer.desktop.library.sidecars import WriteMode
from tests.fakes.tagging_engine import FakeEngine, fake_config

EXIFTOOL = shutil.which("exiftool")
needs_exiftool = pytest.mark.skipif(EXIFTOOL is None, reason="exiftool is the independent reader")


def make_photos(root: Path, count: int = 3) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", (64, 48), (i * 70, 120, 30)).save(root / f"p{i}.jpg", quality=90)
    return root


def tag(
    catalog: Catalog,
    root: Path,
    task: str = "keywords",
    *,
    redo: bool = False,
    on_reviewed: str = "skip",
):
    """Plan and run a tagging run over the library (as `captioneer tag` does) with the stand-in engine."""
    scan_library(catalog, root)
    config = fake_config()
    plan = plan_run(
        catalog,
        str(root),
        catalog.photos_under(root),
        RunSpec(task=task, image_tokens=16),
        config,
        redo=redo,
        on_reviewed=on_reviewed,
    )
    if plan.run_id is not None:
        execute_run(catalog, plan.run_id, FakeEngine(config))
    return plan


def current_map(catalog: Catalog) -> dict[tuple[str, str, int], bool]:
    return {(Path(r.path).name, r.task, r.run_id): r.current for r in catalog.results()}


def exiftool_read(path: Path) -> dict:
    out = subprocess.run(
        [EXIFTOOL, "-j", "-struct", "-XMP-dc:Subject", "-XMP-dc:Description", "-XMP-dc:Title",
         "-XMP-lr:HierarchicalSubject", "-XMP-digiKam:TagsList", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)[0]


def as_list(value: object) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


# ---- the decision, as a table ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tagged_by_model", "current_reviewed", "redo", "on_reviewed", "expected"),
    [
        (False, False, False, "ask", "tag"),  # never tagged for this task
        (True, False, False, "ask", "done"),  # this model did it already
        (True, True, False, "replace", "done"),  # ... reviewed or not: only --redo tags it again
        (True, False, True, "ask", "tag"),  # --redo on an unreviewed result: nothing to ask
        (True, True, True, "ask", "ask"),  # --redo on a reviewed result: ask
        (True, True, True, "skip", "reviewed"),
        (True, True, True, "replace", "tag"),
        (True, True, True, "keep", "tag"),
        (False, True, False, "ask", "ask"),  # another model, same task, reviewed result
        (False, True, False, "skip", "reviewed"),
        (False, True, False, "keep", "tag"),
    ],
)
def test_photo_decision(
    tagged_by_model: bool, current_reviewed: bool, redo: bool, on_reviewed: str, expected: str
) -> None:
    decision = photo_decision(
        tagged_by_model=tagged_by_model, current_reviewed=current_reviewed, redo=redo, on_reviewed=on_reviewed
    )
    assert decision == expected


# ---- the migration --------------------------------------------------------------------------------------


def test_migration_makes_the_newest_result_per_photo_and_task_current(tmp_path: Path) -> None:
    """A catalog from before current results: the newest result of each (photo, task) becomes current, the
    older ones superseded versions; a run that was going on keeps reviewed results when it goes on."""
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    MIGRATIONS[0](db)
    db.executescript(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL);"
        "INSERT INTO schema_migrations VALUES (1, 'm001_initial', 0);"
        "INSERT INTO libraries (id, root, added_at) VALUES (1, '/lib', 0);"
        "INSERT INTO photos (id, library_id, path, size, mtime_ns, first_seen, last_seen) VALUES "
        "(1, 1, '/lib/a.jpg', 1, 1, 0, 0), (2, 1, '/lib/b.jpg', 1, 1, 0, 0);"
    )
    for run_id, task in ((1, "keywords"), (2, "keywords"), (3, "caption")):
        db.execute(
            "INSERT INTO runs (id, scope, task, language, engine, model, prompt_hash, created_at) "
            "VALUES (?, '/lib', ?, 'English', 'gguf', 'm', 'h', ?)",
            (run_id, task, run_id),
        )
    rows = [  # id, photo, run, task, created_at, review
        (1, 1, 1, "keywords", 10.0, "approved"),
        (2, 1, 2, "keywords", 20.0, "new"),
        (3, 1, 3, "caption", 30.0, "new"),
        (4, 2, 2, "keywords", 20.0, "written"),
        (5, 2, 1, "keywords", 20.0, "approved"),  # same time as #4: the higher id wins
    ]
    for rid, photo, run, task, created, review in rows:
        db.execute(
            "INSERT INTO results (id, photo_id, run_id, task, language, engine, model, prompt_hash, review, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, 'English', 'gguf', 'm', 'h', ?, ?, ?)",
            (rid, photo, run, task, review, created, created),
        )
    db.commit()
    db.close()

    with open_catalog(path) as catalog:
        assert catalog.schema_version() == len(MIGRATIONS)
        current = {r.id: r.current for r in catalog.results()}
        assert current == {1: False, 2: True, 3: True, 4: False, 5: True}
        assert [r.id for r in catalog.current_results(1)] == [2, 3]
        # The database itself refuses two current results for one photo and task.
        with pytest.raises(sqlite3.IntegrityError), catalog.transaction() as tx:
            tx.execute("UPDATE results SET current = 1 WHERE id = 1")
        assert {row[0] for row in catalog.db.execute("SELECT on_reviewed FROM runs")} == {"keep"}


# ---- re-tagging reviewed photos -------------------------------------------------------------------------


def test_retagging_reviewed_photos_skip_replace_and_keep(tmp_path: Path) -> None:
    root = make_photos(tmp_path / "lib")
    with open_catalog() as catalog:
        first = tag(catalog, root)
        results = catalog.results(run_id=first.run_id)
        catalog.set_review([results[0].id], "approved")
        catalog.edit_result(results[1].id, caption="Edited by hand.")  # edited counts as reviewed
        photos = catalog.photos_under(root)
        spec = RunSpec(image_tokens=16)
        assert reviewed_in_selection(catalog, photos, spec, fake_config(), redo=True) == 2
        assert reviewed_in_selection(catalog, photos, spec, fake_config(), redo=False) == 0
        with pytest.raises(ConfigurationError, match="reviewed photos"):
            plan_run(catalog, str(root), photos, spec, fake_config(), redo=True, on_reviewed="ask")

        # skip: only the unreviewed photo is tagged again; the reviewed ones keep their result.
        skipped = tag(catalog, root, redo=True, on_reviewed="skip")
        assert (skipped.added, skipped.skipped_reviewed) == (1, 2)
        current = {Path(r.path).name: r.run_id for r in catalog.results(current_only=True)}
        assert current == {"p0.jpg": first.run_id, "p1.jpg": first.run_id, "p2.jpg": skipped.run_id}

        # keep both: the reviewed results stay current (and are what is written); the new ones are versions.
        kept = tag(catalog, root, redo=True, on_reviewed="keep")
        assert kept.added == 3
        by_run = {r.photo_id: r for r in catalog.results(run_id=kept.run_id)}
        assert [by_run[p.id].current for p in photos] == [False, False, True]
        assert [r.id for r in writable_results(catalog)] == [results[0].id]
        assert "Edited by hand." in [r.caption for r in catalog.results(current_only=True)]

        # replace: the new results become current; the reviewed ones become versions, never written.
        replaced = tag(catalog, root, redo=True, on_reviewed="replace")
        current = {r.photo_id: r.run_id for r in catalog.results(current_only=True)}
        assert set(current.values()) == {replaced.run_id}
        old = catalog.result(results[0].id)
        assert old is not None and old.review == "approved" and not old.current
        assert writable_results(catalog) == []
        assert len(catalog.results()) == 3 + 1 + 3 + 3  # every version is kept

        # A kept version can be made current again; the one it displaces becomes a version.
        catalog.make_current(results[0].id)
        assert [r.id for r in writable_results(catalog)] == [results[0].id]
        assert len(catalog.results(current_only=True)) == 3


def test_a_result_reviewed_while_the_run_goes_on_is_not_replaced(tmp_path: Path) -> None:
    """Planned when nothing was reviewed, the photo is approved before its new result lands: without an
    explicit replace the approved result stays current."""
    root = make_photos(tmp_path / "lib", 1)
    with open_catalog() as catalog:
        first = tag(catalog, root)
        scan_library(catalog, root)
        plan = plan_run(
            catalog, str(root), catalog.photos_under(root), RunSpec(image_tokens=16), fake_config(), redo=True
        )
        assert plan.added == 1
        approved = catalog.results(run_id=first.run_id)[0]
        catalog.set_review([approved.id], "approved")
        execute_run(catalog, plan.run_id, FakeEngine(fake_config()))
        assert [r.id for r in catalog.results(current_only=True)] == [approved.id]
        assert len(catalog.results()) == 2


def test_ask_once_on_a_terminal_and_skip_without_one(capsys: pytest.CaptureFixture[str]) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert ask_about_reviewed(4, "keywords", io.StringIO("r\n")) == "skip"  # not a terminal: nobody to ask
    assert ask_about_reviewed(4, "keywords", Terminal("maybe\nk\n")) == "keep"
    assert ask_about_reviewed(4, "keywords", Terminal("r\n")) == "replace"
    assert ask_about_reviewed(4, "keywords", Terminal("\n")) == "skip"
    assert ask_about_reviewed(4, "keywords", Terminal("")) == "skip"
    asked = capsys.readouterr().err
    assert "4 photos already have a reviewed keywords result" in asked and "[S/r/k]" in asked


# ---- Write = panel ---------------------------------------------------------------------------------------


@needs_exiftool
def test_write_is_what_the_panel_shows_after_retagging_with_another_task(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's case: approve a result, tag again with another task. The panel lists both tasks'
    results and says what will be written; the preview has one change per file; exiftool reads back
    exactly what the panel said, and nothing superseded."""
    root = make_photos(tmp_path / "lib", 2)
    with open_catalog() as catalog:
        first = tag(catalog, root, "keywords")
        catalog.set_review([r.id for r in catalog.results(run_id=first.run_id)], "approved")
        second = tag(catalog, root, "caption")  # another task: a second current result per photo
        assert second.added == 2
        photo = catalog.photos_under(root)[0]
        review = photo_review(catalog, photo.id)
        assert [r.task for r in review.results] == ["keywords", "caption"]
        assert review.will_write is not None  # only the approved keywords result, so far
        keywords_result = catalog.results(run_id=first.run_id)[0]
        assert review.will_write.caption == keywords_result.caption
        assert "Will be written:" in review.describe_write()

        # Approve the new result too: one combined change per file, caption from the newer result.
        catalog.set_review([r.id for r in catalog.results(run_id=second.run_id)], "approved")
        review = photo_review(catalog, photo.id)
        caption_result = catalog.results(run_id=second.run_id)[0]
        assert review.will_write.caption == caption_result.caption
        assert set(review.will_write.keywords) == set(keywords_result.keywords)
        lines: list[str] = []
        results = writable_results(catalog)
        assert len(results) == 4 and len(photo_changes(results)) == 2
        summary = write_results(catalog, results, mode=WriteMode.SIDECAR, dry_run=True, report=lines.append)
        assert summary.would_change == 2 and len(lines) == 2
        assert sum(str(photo.path) == line.splitlines()[0] for line in lines) == 1

        # Re-tag the keywords task and replace: the old keywords must not reach the file.
        third = tag(catalog, root, "keywords", redo=True, on_reviewed="replace")
        catalog.edit_result(
            catalog.results(run_id=third.run_id)[0].id, keywords=["harbour", "boats"], review="approved"
        )
        review = photo_review(catalog, photo.id)
        assert set(review.will_write.keywords) == {"harbour", "boats"}
        panel = review.describe_write()
    assert main(["write", "--mode", "sidecar"]) == 0
    read = exiftool_read(Path(f"{photo.path}.xmp"))
    assert sorted(as_list(read.get("Subject"))) == sorted(review.will_write.keywords)
    assert sorted(as_list(read.get("TagsList"))) == sorted(review.will_write.keywords)
    assert read.get("Description") == review.will_write.caption
    assert f"keywords: {'; '.join(review.will_write.keywords)}" in panel
    assert f"caption: {review.will_write.caption}" in panel
    with open_catalog(readonly=True) as catalog:
        states = {(r.run_id, r.current): r.review for r in catalog.results() if r.photo_id == photo.id}
        assert "nothing new" in photo_review(catalog, photo.id).describe_write()
    # The combined change is logged for both results it carries; the superseded one stays approved, unwritten.
    assert states == {(first.run_id, False): "approved", (second.run_id, True): "written",
                      (third.run_id, True): "written"}  # fmt: skip


def test_browse_search_and_export_use_current_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_photos(tmp_path / "lib", 2)
    with open_catalog() as catalog:
        first = tag(catalog, root)
        old = catalog.results(run_id=first.run_id)
        catalog.edit_result(old[0].id, keywords=["lighthouse"], review="approved")
        replaced = tag(catalog, root, redo=True, on_reviewed="replace")
        assert search(catalog, "keyword:lighthouse") == []
        assert [r.run_id for r in search(catalog, "keyword:lighthouse", current_only=False)] == [first.run_id]
        assert photo_ids(catalog, BrowseFilter(keyword="lighthouse")) == []
        assert photo_ids(catalog, BrowseFilter(status="approved")) == []
        assert "lighthouse" not in dict(keyword_counts(catalog))
        assert {r.run_id for r in filtered_results(catalog, BrowseFilter())} == {replaced.run_id}
        # A second task's result is current too: filters find the photo by either.
        other = tag(catalog, root, "caption")
        shown = photo_ids(catalog, BrowseFilter(query="task:keywords"))
        assert len(shown) == 2 and {r.run_id for r in filtered_results(catalog, BrowseFilter())} == {
            replaced.run_id,
            other.run_id,
        }
    assert main(["export", "--format", "json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert sorted((item["run_id"], item["current"]) for item in exported) == sorted(
        [(first.run_id, False)] * 2 + [(replaced.run_id, True)] * 2 + [(other.run_id, True)] * 2
    )
    assert main(["export", "--format", "csv", "--current"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].endswith(',"current"') and len(rows) == 5  # every cell is quoted
    assert all(row.endswith(',"yes"') for row in rows[1:])


def test_review_cli_acts_on_current_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_photos(tmp_path / "lib", 2)
    with open_catalog() as catalog:
        first = tag(catalog, root)
        catalog.set_review([r.id for r in catalog.results(run_id=first.run_id)], "approved")
        kept = tag(catalog, root, redo=True, on_reviewed="keep")
        version = catalog.results(run_id=kept.run_id)[0]
        assert not version.current
    assert main(["review", "list", "--status", "approved"]) == 0
    listed = capsys.readouterr()
    assert listed.out.count("#") == 2 and "not current" not in listed.out
    assert main(["review", "list", "--status", "new", "--versions"]) == 0
    assert f"#{version.id} [new, version (not current)] keywords:" in capsys.readouterr().out
    assert main(["review", "approve", str(version.id)]) == 2
    assert f"review use {version.id}" in capsys.readouterr().err
    assert main(["review", "edit", str(version.id), "--caption", "x"]) == 2
    capsys.readouterr()
    assert main(["review", "approve", "--all"]) == 0  # the versions are not current: nothing to approve
    assert "0 results approved" in capsys.readouterr().err
    assert main(["runs", "--json"]) == 0
    assert [row["versions"] for row in json.loads(capsys.readouterr().out)] == [0, 2]
    assert main(["review", "use", str(version.id)]) == 0
    assert "now the current keywords result" in capsys.readouterr().err
    with open_catalog(readonly=True) as catalog:
        assert catalog.result(version.id).current
        assert version.id not in [r.id for r in writable_results(catalog)]  # new, not approved
        assert len(writable_results(catalog)) == 1


def test_undoing_a_combined_write_puts_back_every_result_it_carried(tmp_path: Path) -> None:
    """One change carries two tasks' results from two runs; undoing the write operation restores the file
    and makes both results approved again, so the next write carries them again."""
    root = make_photos(tmp_path / "lib", 1)
    with open_catalog() as catalog:
        first = tag(catalog, root, "keywords")
        second = tag(catalog, root, "caption")
        catalog.set_review([r.id for r in catalog.results()], "approved")
        summary = write_results(catalog, writable_results(catalog), mode=WriteMode.SIDECAR)
        assert summary.written == 1
        assert {r.review for r in catalog.results()} == {"written"}
        assert summary.op_id is not None
        report = undo_write(catalog, summary.op_id)
        assert report.ok and not (root / "p0.jpg.xmp").exists()
        assert {r.run_id: r.review for r in catalog.results()} == {
            first.run_id: "approved",
            second.run_id: "approved",
        }
