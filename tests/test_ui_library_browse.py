"""The library browsing core (desktop/library/browse.py) on a real catalog: filters over photos and their
newest result, pages, folder trees, keyword counts and completion, and reversible review steps."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from captioneer.backends.errors import CaptioneerError
from captioneer.desktop.library.browse import (
    BrowseFilter,
    LibraryPrefs,
    ReviewHistory,
    ReviewStep,
    change_keyword,
    compile_filter,
    completion_words,
    fetch_rows,
    filtered_results,
    folder_tree,
    keyword_counts,
    keyword_suggestions,
    library_trees,
    photo_ids,
    restore,
    resumable_runs,
    snapshot,
    split_keywords,
    status_counts,
)
from captioneer.desktop.library.catalog import Catalog, CatalogError, open_catalog
from captioneer.desktop.library.catalog.runs import record_failure
from captioneer.desktop.library.catalog.search import SearchSyntaxError
from captioneer.desktop.library.runs import RunSpec, execute_run, plan_run
from captioneer.desktop.library.scanner import scan_library
from tests.fakes.tagging_engine import FakeEngine, fake_config

PHOTOS = {
    "2023/beach.png": ("Family on the beach at sunset.", ["beach", "sunset", "Family"], "approved"),
    "2023/boat.png": ("A small boat in the harbour.", ["boat", "harbour", "sea"], "new"),
    "2023/dune.png": ("Sand dunes under a blue sky.", ["sand", "dune", "sky"], "rejected"),
    "2024/home/cat.png": ("A cat sleeping on a sofa.", ["cat", "sofa", "Café"], "needs_review"),
    "2024/home/dog.png": ("A dog on the beach path.", ["dog", "beach path", "Beach"], "written"),
}
UNTAGGED = "2024/new/late.png"


@pytest.fixture
def library(tmp_path: Path):
    root = tmp_path / "Photos"
    for i, name in enumerate([*PHOTOS, UNTAGGED]):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 32), (i * 40, 0, 0)).save(root / name)
    with open_catalog() as catalog:
        scan_library(catalog, root)
        config = fake_config()
        tagged = [p for p in catalog.photos_under(root) if not p.path.endswith("late.png")]
        plan = plan_run(catalog, str(root), tagged, RunSpec(image_tokens=16), config)
        execute_run(catalog, plan.run_id, FakeEngine(config))
        for result in catalog.results():
            caption, keywords, review = PHOTOS[Path(result.path).relative_to(root).as_posix()]
            catalog.edit_result(result.id, caption=caption, keywords=keywords, review=review)
        yield catalog, root


def names(catalog: Catalog, **fields: str) -> set[str]:
    rows = fetch_rows(catalog, photo_ids(catalog, BrowseFilter(**fields)))
    return {Path(row.path).stem for row in rows.values()}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, {"beach", "boat", "dune", "cat", "dog", "late"}),
        ({"status": "untagged"}, {"late"}),
        ({"status": "approved"}, {"beach"}),
        ({"status": "needs_review"}, {"cat"}),
        ({"status": "written"}, {"dog"}),
        ({"keyword": "BEACH"}, {"beach", "dog"}),
        ({"keyword": "café"}, {"cat"}),
        ({"keyword": "beach*"}, {"beach", "dog"}),
        ({"keyword": "bea"}, set()),
        ({"text": "HARBOUR"}, {"boat"}),
        ({"text": "sleeping"}, {"cat"}),
        ({"query": "beach -status:written"}, {"beach"}),
        ({"query": "cat OR boat"}, {"cat", "boat"}),
        ({"query": "NOT keyword:beach"}, {"boat", "dune", "cat", "late"}),
        ({"keyword": "beach", "status": "approved"}, {"beach"}),
    ],
)
def test_filters(library, fields: dict[str, str], expected: set[str]) -> None:
    catalog, _root = library
    assert names(catalog, **fields) == expected


def test_folder_filter_uses_whole_path_components(library) -> None:
    catalog, root = library
    assert names(catalog, folder=str(root / "2024")) == {"cat", "dog", "late"}
    assert names(catalog, folder=str(root / "2024" / "home")) == {"cat", "dog"}
    # A sibling folder whose name starts the same is not inside.
    (root / "2024x").mkdir()
    Image.new("RGB", (8, 8)).save(root / "2024x" / "other.png")
    scan_library(catalog, root)
    assert names(catalog, folder=str(root / "2024")) == {"cat", "dog", "late"}


def test_ids_are_in_path_order_and_rows_carry_the_newest_result(library) -> None:
    catalog, root = library
    ids = photo_ids(catalog, BrowseFilter())
    rows = fetch_rows(catalog, ids)
    paths = [rows[i].path for i in ids]
    assert paths == sorted(paths)
    late = next(row for row in rows.values() if row.path.endswith("late.png"))
    assert late.result_id is None and late.status == "untagged"
    beach = next(row for row in rows.values() if row.path.endswith("beach.png"))
    assert beach.keywords == ("beach", "sunset", "Family") and beach.review == "approved"


def test_bad_filters_say_why() -> None:
    with pytest.raises(SearchSyntaxError, match="never closed"):
        compile_filter(BrowseFilter(query='"open'))
    with pytest.raises(CatalogError, match="Unknown status filter"):
        compile_filter(BrowseFilter(status="maybe"))


def test_filtered_results_are_the_newest_per_shown_photo(library) -> None:
    catalog, _root = library
    results = filtered_results(catalog, BrowseFilter(keyword="beach"))
    assert sorted(Path(r.path).stem for r in results) == ["beach", "dog"]
    assert filtered_results(catalog, BrowseFilter(status="untagged")) == []


def test_folder_tree_counts(library) -> None:
    catalog, root = library
    (tree,) = library_trees(catalog)
    assert tree.path == str(root) and tree.count == 6
    assert [(n.name, n.count) for n in tree.sorted_children()] == [("2023", 3), ("2024", 3)]
    year = tree.children["2024"]
    assert {n.name: n.count for n in year.sorted_children()} == {"home": 2, "new": 1}
    assert year.children["home"].path == os.path.join(str(root), "2024", "home")
    flat = folder_tree("/r", ["/r/a.jpg", "/r/x/b.jpg"])
    assert flat.count == 2 and flat.children["x"].count == 1


def test_keyword_counts_skip_rejected_and_merge_case(library) -> None:
    catalog, _root = library
    counts = dict(keyword_counts(catalog))
    assert counts["beach"] == 2  # "beach" and "Beach"
    assert "sand" not in counts  # the rejected photo's keywords are not offered
    words = completion_words(keyword_counts(catalog), ["Sunset", "mountain"])
    assert words[0] == "beach" and words.count("sunset") + words.count("Sunset") == 1
    assert words[-1] == "mountain"


def test_split_keywords() -> None:
    assert split_keywords("beach;  sunset , Beach;; new  york") == ["beach", "sunset", "new york"]


def test_review_steps_restore_exactly(library) -> None:
    catalog, _root = library
    results = {Path(r.path).stem: r for r in catalog.results()}
    ids = [results["boat"].id, results["cat"].id]
    history = ReviewHistory(limit=2)
    history.push(ReviewStep("Approve 2", snapshot(catalog, ids)))
    catalog.set_review(ids, "approved", "by review")
    history.push(ReviewStep("Edit", snapshot(catalog, [results["boat"].id])))
    catalog.edit_result(results["boat"].id, caption="Changed", keywords=["x"])
    history.push(ReviewStep("Nothing", ()))  # an empty step is not kept
    assert len(history) == 2
    restore(catalog, history.pop().before)
    boat = catalog.result(results["boat"].id)
    assert boat.caption == "A small boat in the harbour." and boat.keywords == ("boat", "harbour", "sea")
    assert boat.review == "approved" and boat.review_reason == "by review"
    restore(catalog, history.pop().before)
    assert catalog.result(results["boat"].id).review == "new"
    assert catalog.result(results["boat"].id).review_reason == results["boat"].review_reason
    assert catalog.result(results["cat"].id).review == "needs_review"
    assert history.pop() is None


def test_resumable_runs_list_unfinished_runs_with_photos_left(library) -> None:
    catalog, root = library
    assert resumable_runs(catalog) == []
    late = [p for p in catalog.photos_under(root) if p.path.endswith("late.png")]
    plan = plan_run(catalog, "late", late, RunSpec(image_tokens=16), fake_config())
    (found,) = resumable_runs(catalog)
    assert found.run.id == plan.run_id and found.pending == 1 and "1 of 1" in found.describe()


def test_prefs_round_trip_and_survive_a_bad_file(caplog) -> None:
    prefs = LibraryPrefs(task="caption", vocabulary="/v.txt")
    prefs.save()
    assert LibraryPrefs.load() == prefs
    LibraryPrefs.path().write_text("{not json", encoding="utf-8")
    assert LibraryPrefs.load() == LibraryPrefs()
    assert "unreadable library window settings" in caplog.text


def test_status_counts_follow_the_rest_of_the_filter(library) -> None:
    catalog, root = library
    counts = status_counts(catalog, BrowseFilter())
    assert counts == {
        "all": 6, "untagged": 1, "failed": 0, "new": 1, "needs_review": 1,
        "approved": 1, "rejected": 1, "written": 1,
    }  # fmt: skip
    for status, count in counts.items():  # each count is what choosing that status shows
        assert len(photo_ids(catalog, BrowseFilter(status=status))) == count
    assert status_counts(catalog, BrowseFilter(folder=str(root / "2024"), status="approved"))["all"] == 3
    assert status_counts(catalog, BrowseFilter(query="name:b*"))["approved"] == 1


def test_failed_photos_stay_listed_with_their_error(library) -> None:
    catalog, root = library
    (root / "2024" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    report = scan_library(catalog, root)
    assert report.files == 7 and len(report.unreadable_files) == 1
    late = next(p for p in catalog.photos_under(root) if p.path.endswith("late.png"))
    run_id = catalog.results()[0].run_id
    catalog.db.execute(
        "INSERT INTO run_items (run_id, photo_id, position) VALUES (?, ?, 99)", (run_id, late.id)
    )
    record_failure(catalog, run_id, late.id, "image is too large to open safely", "too-large")
    assert names(catalog, status="failed") == {"broken", "late"}
    assert names(catalog, status="untagged") == set()
    counts = status_counts(catalog, BrowseFilter())
    assert counts["all"] == report.files and counts["failed"] == 2
    rows = fetch_rows(catalog, photo_ids(catalog, BrowseFilter(status="failed")))
    errors = {Path(row.path).stem: (row.status, row.unreadable, row.error) for row in rows.values()}
    assert errors["late"] == ("failed", False, "image is too large to open safely")
    assert errors["broken"][:2] == ("failed", True) and errors["broken"][2]
    (tree,) = library_trees(catalog)
    assert tree.count == report.files  # the folder tree counts what the grid and the scan count


def test_keyword_suggestions_put_the_photos_own_first() -> None:
    assert keyword_suggestions(["Porto", "grandma"], ["beach", "Grandma", "sea"], ["SEA"]) == [
        "Porto",
        "grandma",
        "beach",
    ]


def test_a_keyword_added_to_and_removed_from_several_photos_is_one_step(library) -> None:
    catalog, _root = library
    rows = list(fetch_rows(catalog, photo_ids(catalog, BrowseFilter(folder=str(_root / "2024")))).values())
    change = change_keyword(catalog, rows, "  Family   trip ", add=True)
    assert change.untagged == 1 and len(change.changed) == 2
    keywords = {Path(r.path).stem: r.keywords for r in catalog.results(current_only=True)}
    assert keywords["cat"][-1] == "Family trip" and keywords["dog"][-1] == "Family trip"
    again = change_keyword(catalog, rows, "family TRIP", add=True)  # already there, whatever the case
    assert again.changed == ()
    removed = change_keyword(catalog, rows, "FAMILY trip", add=False)
    assert len(removed.changed) == 2
    restore(catalog, removed.step.before)
    assert {Path(r.path).stem: r.keywords for r in catalog.results(current_only=True)} == keywords
    with pytest.raises(CaptioneerError, match="Type a keyword"):
        change_keyword(catalog, rows, "  ", add=True)
