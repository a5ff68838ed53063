"""Text search through the catalog's FTS5 index: search terms made into safe MATCH expressions (a pure
function), stemming, phrases, prefixes and accents on a real catalog, relevance order, snippets, the index
following every edit, supersede and delete, an old catalog's migration filling it, and the substring fallback
where SQLite has no FTS5."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from captioneer.desktop.cli import main
from captioneer.desktop.core.answering import Answer
from captioneer.desktop.core.tasks import get_task
from captioneer.desktop.library.browse import BrowseFilter, fetch_rows, photo_ids
from captioneer.desktop.library.catalog import Catalog, default_catalog_path, fts, open_catalog
from captioneer.desktop.library.catalog.search import compile_query, search, snippets
from captioneer.desktop.library.runs import RunSpec, execute_run, plan_run
from tests.fakes.tagging_engine import FakeEngine, fake_config
from tests.test_search import tag_photos

# ---- the pure translation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "column", "quoted", "expected"),
    [
        ("sunset", None, False, '"sunset"'),
        ("sunset", "caption", False, 'caption : "sunset"'),
        ("sun*", None, False, '"sun" *'),
        ("sun**", "ocr", False, 'ocr : "sun" *'),
        ("sun*", None, True, '"sun*"'),  # inside quotes a * is text (tokenised away), never a prefix
        ("on the beach", "title", True, 'title : "on the beach"'),
        ('say"hi', None, False, '"say""hi"'),  # a quote inside is doubled: still one FTS5 string
        ('"', None, False, None),  # nothing to look up: searched as a substring
        ("*", None, False, None),
        ("-", None, False, None),
        ("e-mail", None, False, '"e-mail"'),
        ("a:b", None, False, '"a:b"'),
        ("NEAR", None, False, '"NEAR"'),  # FTS5 operators are plain words inside the string
        ("AND", None, False, '"AND"'),
        ("x AND y", None, True, '"x AND y"'),
        ("NEAR(a b)", None, False, '"NEAR(a b)"'),
        ("^start", None, False, '"^start"'),
        ("Ünïcödé", None, False, '"Ünïcödé"'),
        ("東京", None, False, '"東京"'),
        ("100%", None, False, '"100%"'),
    ],
)
def test_match_expression(value: str, column: str | None, quoted: bool, expected: str | None) -> None:
    assert fts.match_expression(value, column, quoted=quoted) == expected


@pytest.mark.parametrize(
    "text",
    ['"', 'caption:"a "b"', "NEAR(x y)", "x AND y*", 'ocr:"AND OR NOT"', "a:b", "-*", "title:^x", "é*"],
)
def test_user_text_never_reaches_the_sql_or_the_match_syntax(text: str) -> None:
    """Whatever the user types becomes parameters: a MATCH expression made only of quoted strings (or a
    substring), never SQL text; and each expression is one FTS5 query SQLite accepts."""
    try:
        query = compile_query(text)
    except Exception as exc:  # noqa: BLE001 - a syntax error is a fine answer to broken quotes
        assert "quote" in str(exc) or "Unknown search field" in str(exc), exc
        return
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE f USING fts5(caption, title, alt, keywords, ocr)")
    for param in query.params:
        if isinstance(param, str) and param.startswith(('"', "caption :", "title :", "ocr :")):
            db.execute("SELECT rowid FROM f WHERE f MATCH ?", (param,)).fetchall()  # no syntax error
    assert "NEAR" not in query.where and "AND y" not in query.where


@pytest.mark.parametrize(
    ("task_id", "expected"),
    [("ocr", "SOUPE DU JOUR\nCrêpes 4,50 €"), ("caption", None), ("keywords", None), ("question", None)],
)
def test_the_field_table_says_which_tasks_read_text(task_id: str, expected: str | None) -> None:
    """tasks.toml's ``ocr_text`` field: the ocr task's whole answer is the text it read (lines kept)."""
    text = (
        "SOUPE DU JOUR\nCrêpes 4,50 €"
        if task_id != "keywords"
        else '{"caption": "A menu.", "keywords": ["menu"]}'
    )
    data = json.loads(text) if task_id == "keywords" else None
    assert get_task(task_id).fields(Answer(text=text, data=data)).ocr_text == expected


def test_words_under_not_do_not_rank() -> None:
    query = compile_query("sunset -dog NOT (cat OR ocr:menu) caption:beach sun* -moon*")
    assert query.rank == '("sunset") OR (caption : "beach")'
    assert query.prefix_rank == '("sun" *)'  # prefixes rank in the unstemmed index
    assert query.fallback is not None and "results_fts" not in query.fallback.where
    assert compile_query("status:new keyword:beach").fallback is None  # no text: nothing to fall back from


# ---- a real catalog ----------------------------------------------------------------------------------------

PHOTOS = {
    "trip/beach.png": ("Family on the beach at sunset.", "Golden evening", "", ["beach", "Family"]),
    "trip/boat.png": ("A small boat in the harbour.", "", "Boat moored", ["boat", "sea"]),
    "trip/run.png": ("Two dogs running on the sand; the dog runs fast, dogs everywhere.", "", "", ["dog"]),
    "home/cat.png": ("A cat sleeping on a sofa.", "", "", ["cat", "Café"]),
    "home/dog.png": ("A dog on the beach path.", "", "", ["dog", "New York"]),
    "home/menu.png": ("A restaurant menu.", "", "", ["menu"]),
}
OCR = {"menu.png": "SOUPE DU JOUR\nCrêpes 4,50 €\nOpening hours 9-17"}


@pytest.fixture
def catalog(tmp_path: Path):
    root = tmp_path / "lib"
    with open_catalog() as catalog:
        tag_photos(catalog, root, list(PHOTOS))
        for result in catalog.results():
            relative = str(Path(result.path).relative_to(root))
            caption, title, alt_text, keywords = PHOTOS[relative]
            catalog.edit_result(result.id, caption=caption, title=title, alt_text=alt_text, keywords=keywords)
            if Path(relative).name in OCR:
                catalog.db.execute(
                    "UPDATE results SET ocr_text = ? WHERE id = ?", (OCR[Path(relative).name], result.id)
                )
        yield catalog


def names(catalog: Catalog, text: str, **options) -> set[str]:
    return {Path(result.path).stem for result in search(catalog, text, **options)}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("sunsets", {"beach"}),  # stemming: the caption says "sunset"
        ("caption:boats", {"boat"}),
        ("running", {"run"}),
        ("evening", {"beach"}),  # the title
        ("title:evening", {"beach"}),
        ("caption:evening", set()),
        ("alt:moored", {"boat"}),
        ("moor*", {"boat"}),  # prefix
        ("harb*", {"boat"}),
        # Prefixes longer than a word's stem: the stemmed index holds "running" as "run", "sleeping" as
        # "sleep"; the unstemmed one still has them whole.
        ("runni*", {"run"}),
        ("sleepin*", {"cat"}),
        ("caption:everywh*", {"run"}),
        ("title:evenin*", {"beach"}),
        ("caption:evenin*", set()),
        ("ha*", {"boat"}),  # "harbour" is the only word starting with "ha"
        ('"on the beach"', {"beach", "dog"}),
        ('"beach the on"', set()),  # a phrase keeps its order
        ('caption:"small boat"', {"boat"}),
        ("cafe", {"cat"}),  # accents ignored: the keyword Café
        ("CAFÉ", {"cat"}),
        ("york", {"dog"}),  # a word of a keyword ("New York"), through the index
        ("keyword:york", set()),  # keyword: stays the exact keyword
        ('keyword:"new york"', {"dog"}),
        ("ocr:soupe", {"menu"}),
        ("ocr:crepes", {"menu"}),
        ("ocr:restaurant", set()),  # the caption is not OCR text
        ("restaurant", {"menu"}),
        ("text:jour", {"menu"}),
        ("text:sunset", {"beach"}),
        ("soupe", {"menu"}),  # a bare word searches the OCR text too
        ("dog -beach", {"run"}),
        ("dog NOT beach", {"run"}),
        ("(cat OR boat) sofa", {"cat"}),
        ("sunset OR harbour", {"beach", "boat"}),
        ("NOT sunset NOT dog", {"boat", "cat", "menu"}),
        ("dune.png", set()),
        ("menu.png", {"menu"}),  # the file name still matches a bare word
        ("100%", set()),
        ("&", set()),  # no word to look up: a substring search, no error
        ("NEAR", set()),
        ('"AND"', set()),
        ("4,50", {"menu"}),
        ("9-17", {"menu"}),
    ],
)
def test_text_search(catalog: Catalog, query: str, expected: set[str]) -> None:
    assert names(catalog, query) == expected


def test_the_window_search_box_finds_the_same_photos(catalog: Catalog) -> None:
    for query, expected in (
        ("sunsets", {"beach"}),
        ("moor*", {"boat"}),
        ("NOT sunset NOT dog", {"boat", "cat", "menu"}),
    ):
        rows = fetch_rows(catalog, photo_ids(catalog, BrowseFilter(query=query)))
        assert {Path(row.path).stem for row in rows.values()} == expected, query


def test_best_matches_come_first(catalog: Catalog) -> None:
    order = [Path(result.path).stem for result in search(catalog, "dog")]
    assert order[0] == "run"  # "dogs" four times in a short caption: the best match
    assert set(order) == {"run", "dog"}
    # A match only through the file name (no text to rank) comes after the text matches.
    assert [Path(result.path).stem for result in search(catalog, "boat.png OR sofa")] == ["cat", "boat"]
    assert [result.id for result in search(catalog, "status:new")] == sorted(r.id for r in catalog.results())


def test_snippets_mark_the_matched_words(catalog: Catalog) -> None:
    query = compile_query("sunsets OR ocr:crepes")
    results = search(catalog, "sunsets OR ocr:crepes")
    cut = snippets(catalog, query, [result.id for result in results])
    by_name = {Path(result.path).stem: cut[result.id] for result in results}
    assert by_name["beach"] == "Family on the beach at [sunset]."
    assert "[Crêpes]" in by_name["menu"]
    assert snippets(catalog, compile_query("status:new"), [result.id for result in results]) == {}
    # A prefix's snippet comes from the unstemmed index, the whole word marked.
    (run,) = search(catalog, "runni*")
    assert snippets(catalog, compile_query("runni*"), [run.id]) == {
        run.id: "Two dogs [running] on the sand; the dog runs fast, dogs everywhere."
    }


# ---- the index follows the results -------------------------------------------------------------------------


def index_rows(catalog: Catalog) -> int:
    return catalog.db.execute(f"SELECT COUNT(*) FROM {fts.FTS_TABLE}").fetchone()[0]


def test_edits_supersedes_and_deletes_keep_the_index_in_step(catalog: Catalog, tmp_path: Path) -> None:
    (cat,) = search(catalog, "sofa")
    catalog.edit_result(cat.id, caption="A cat asleep on a cushion.")
    assert names(catalog, "sofa") == names(catalog, "sof*") == set()
    assert names(catalog, "cushions") == names(catalog, "cushi*") == {"cat"}
    catalog.edit_result(cat.id, keywords=["cat", "pillow"], title="Nap time", alt_text="Sleepy cat")
    assert names(catalog, "pillows") == names(catalog, "title:nap") == names(catalog, "alt:sleepy") == {"cat"}
    assert names(catalog, "cafe") == set()
    catalog.edit_result(cat.id, review="approved")  # not a text change: the index row stays
    assert names(catalog, "cushion") == {"cat"}

    # A second run supersedes every result: only the current ones are found, unless asked for all.
    root = tmp_path / "lib"
    config = fake_config()
    plan = plan_run(
        catalog,
        str(root),
        catalog.photos_under(root),
        RunSpec(image_tokens=16),
        config,
        redo=True,
        on_reviewed="replace",
    )
    execute_run(catalog, plan.run_id, FakeEngine(config))
    assert len(catalog.results()) == 2 * len(PHOTOS)
    assert names(catalog, "cushion") == set()
    assert names(catalog, "cushion", current_only=False) == {"cat"}
    assert index_rows(catalog) == 2 * len(PHOTOS)

    # A photo deleted from the catalog takes its results (both versions) out of the index.
    with catalog.transaction() as db:
        db.execute("DELETE FROM photos WHERE id = ?", (cat.photo_id,))
    assert names(catalog, "cushion", current_only=False) == set()
    assert index_rows(catalog) == 2 * (len(PHOTOS) - 1)
    indexed = {row[0] for row in catalog.db.execute(f"SELECT rowid FROM {fts.FTS_TABLE}")}
    assert indexed == {result.id for result in catalog.results()}
    for table in (fts.FTS_TABLE, fts.WORDS_TABLE):  # FTS5's own check of each index against its text
        catalog.db.execute(f"INSERT INTO {table} ({table}) VALUES ('integrity-check')")
    assert names(catalog, "cushi*", current_only=False) == set()


# ---- migration and fallback --------------------------------------------------------------------------------


def test_an_old_catalog_gets_its_results_indexed(tmp_path: Path) -> None:
    from tests.test_catalog_migrations import restore

    path = restore("catalog-schema4.sql", default_catalog_path())
    db = sqlite3.connect(path)
    db.execute(
        "INSERT INTO results VALUES(5,2,2,'ocr','English','EXIT\nNotausgang','[]',NULL,NULL,NULL,'gguf',"
        "'Qwen3-VL-2B',NULL,'abc',NULL,NULL,1,'new',NULL,0,1700000010.0,1700000010.0,1)"
    )
    db.commit()
    db.close()
    with open_catalog() as catalog:
        assert index_rows(catalog) == 5
        assert catalog.db.execute(
            "SELECT id, ocr_text FROM results WHERE ocr_text IS NOT NULL"
        ).fetchall() == [(5, "EXIT\nNotausgang")]
        assert names(catalog, "ocr:notausgang") == {"100% pure_snow"}
        assert names(catalog, "dogs") == {"beach"}  # "Sand, sea and a dog."
        assert names(catalog, "sand") == {"beach"}  # the superseded result is not current
        assert {r.id for r in search(catalog, "sand", current_only=False)} == {1, 4}


def test_without_fts5_search_falls_back_to_substrings_and_the_index_is_rebuilt_later(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An SQLite without FTS5 cannot be made here, so its answer to "have you FTS5?" is faked."""
    catalog.close()
    with monkeypatch.context() as patch:
        patch.setattr(fts, "fts5_available", lambda db: False)
        with open_catalog() as plain:
            assert not plain.text_index
            assert names(plain, "sunsets") == set()  # no stemming: a substring search
            assert names(plain, "sunse") == {"beach"}
            (cat,) = search(plain, "sofa")
            plain.edit_result(cat.id, caption="A cat on a cushion.")  # writes still work: no trigger left
            assert names(plain, "cushion") == {"cat"}
        assert main(["search", "sunse"]) == 0
        captured = capsys.readouterr()
        assert "no full-text search (FTS5)" in captured.err and "beach.png" in captured.out
    # Read-only, the stale index is neither trusted nor rebuilt: substrings find the edit, not stems.
    assert main(["search", "cushion"]) == 0 and "cat.png" in capsys.readouterr().out
    assert main(["search", "cushions"]) == 1
    assert "left behind by an SQLite without FTS5" in capsys.readouterr().err
    with open_catalog() as rebuilt:  # a writable open rebuilds it, with the edit made meanwhile
        assert rebuilt.text_index
        assert names(rebuilt, "cushions") == {"cat"}
        assert names(rebuilt, "sofa") == set()


# ---- the command -------------------------------------------------------------------------------------------


def test_search_command_shows_snippets(catalog: Catalog, capsys: pytest.CaptureFixture[str]) -> None:
    catalog.close()
    assert main(["search", "ocr:crepes"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("#") and "menu.png" in out[0]
    assert out[1] == "    SOUPE DU JOUR [Crêpes] 4,50 € Opening hours 9-17"
    assert main(["search", "--json", "sunsets"]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["snippet"] == "Family on the beach at [sunset]."
    assert main(["search", "--json", "status:approved OR status:new"]) == 0
    assert all(json.loads(line)["snippet"] is None for line in capsys.readouterr().out.splitlines())
