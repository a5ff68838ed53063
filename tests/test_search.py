"""The search language: parsing, errors with positions, matching against a real catalog, and the library
window's filters finding the same photos as a search for the same words."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from captioneer.desktop.library.browse import BrowseFilter, fetch_rows, photo_ids
from captioneer.desktop.library.catalog import Catalog, open_catalog
from captioneer.desktop.library.catalog.search import SearchSyntaxError, compile_query, search, tokenize
from captioneer.desktop.library.runs import RunSpec, execute_run, plan_run
from captioneer.desktop.library.scanner import scan_library
from tests.fakes.tagging_engine import FakeEngine, fake_config

PHOTOS = {
    "trip/beach.png": ("Family on the beach at sunset.", ["beach", "sunset", "Family"], "approved"),
    "trip/boat.png": ("A small boat in the harbour.", ["boat", "harbour", "sea"], "new"),
    "trip/dune.png": ("Sand dunes under a blue sky.", ["sand", "dune", "sky"], "rejected"),
    "home/cat.png": ("A cat sleeping on a sofa.", ["cat", "sofa", "Café"], "needs_review"),
    "home/dog.png": ("A dog on the beach path.", ["dog", "New York", "beach path"], "written"),
}


def tag_photos(catalog: Catalog, root: Path, names: list[str]) -> None:
    """Make a photo (each a different colour) for each name under ``root``, scan and tag them."""
    for i, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 32), (i * 40, 0, 0)).save(root / name)
    scan_library(catalog, root)
    config = fake_config()
    plan = plan_run(catalog, str(root), catalog.photos_under(root), RunSpec(image_tokens=16), config)
    execute_run(catalog, plan.run_id, FakeEngine(config))


@pytest.fixture
def catalog(tmp_path: Path):
    root = tmp_path / "lib"
    with open_catalog() as catalog:
        tag_photos(catalog, root, list(PHOTOS))
        for result in catalog.results():
            caption, keywords, review = PHOTOS[str(Path(result.path).relative_to(root))]
            catalog.edit_result(result.id, caption=caption, keywords=keywords, review=review)
        yield catalog


def names(catalog: Catalog, text: str) -> set[str]:
    return {Path(result.path).stem for result in search(catalog, text)}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("beach", {"beach", "dog"}),  # keyword, or caption text ("the beach path")
        ("keyword:beach", {"beach"}),
        ("kw:BEACH", {"beach"}),
        ("keyword:beach*", {"beach", "dog"}),
        ('keyword:"new york"', {"dog"}),
        ("keyword:café", {"cat"}),
        ("KEYWORD:CAFÉ", {"cat"}),
        ("beach sunset", {"beach"}),
        ("beach AND sunset", {"beach"}),
        ("cat OR boat", {"cat", "boat"}),
        ("beach -sunset", {"dog"}),
        ("beach NOT sunset", {"dog"}),
        ("NOT beach", {"boat", "dune", "cat"}),
        ("(cat OR boat) harbour", {"boat"}),
        ("cat OR boat harbour", {"cat", "boat"}),  # AND binds tighter than OR
        ('caption:"on the beach"', {"beach", "dog"}),
        ('"blue sky"', {"dune"}),
        ("status:approved", {"beach"}),
        ("status:needs-review", {"cat"}),
        ("NOT status:rejected NOT status:written", {"beach", "boat", "cat"}),
        ("folder:trip", {"beach", "boat", "dune"}),
        ("folder:home keyword:cat", {"cat"}),
        ("model:fake engine:gguf run:1 task:keywords", {"beach", "boat", "dune", "cat", "dog"}),
        ("title:square", {"beach", "boat", "dune", "cat", "dog"}),
        ("", {"beach", "boat", "dune", "cat", "dog"}),
        ("giraffe", set()),
        # File names: name: with * as the only wildcard (the whole name), else any part of the name; a plain
        # word matches the file name too.
        ("name:d*", {"dune", "dog"}),
        ("file:D*.PNG", {"dune", "dog"}),
        ("name:do", {"dog"}),
        ("name:o*", set()),  # a folder's name ("home") is not the file's
        ("name:h*", set()),
        ("name:?og.png", set()),  # ? is a plain character
        ("dune.png", {"dune"}),
    ],
)
def test_queries(catalog: Catalog, query: str, expected: set[str]) -> None:
    assert names(catalog, query) == expected


def test_absolute_folder(catalog: Catalog, tmp_path: Path) -> None:
    assert names(catalog, f'folder:"{tmp_path / "lib" / "home"}"') == {"cat", "dog"}
    assert names(catalog, f'folder:"{tmp_path / "lib" / "hom"}"') == set()


def test_only_newest_result_unless_asked(catalog: Catalog) -> None:
    assert len(search(catalog, "")) == 5
    assert len(search(catalog, "", current_only=False)) == 5


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("(beach", "parenthesis at character 1 is never closed"),
        ("beach)", "Unexpected"),
        ('"open', "quote opened at character 1"),
        ("colour:red", "Unknown search field 'colour:'"),
        ("status:maybe", "Unknown status 'maybe'"),
        ("run:abc", "run number"),
        ("beach OR", "ends where a word"),
        ("AND beach", "Expected a word at character 1"),
    ],
)
def test_syntax_errors_say_where(query: str, message: str) -> None:
    with pytest.raises(SearchSyntaxError, match=message.replace("(", r"\(").replace(")", r"\)")):
        compile_query(query)


def test_tokens_and_parameters_never_inline_text() -> None:
    query = compile_query('keyword:"x\'); DROP TABLE results; --"')
    assert "DROP" not in query.where and set(query.params) == {"x'); drop table results; --"}
    kinds = [token.kind for token in tokenize('a -b (c OR "d e") NOT kw:g')]
    assert kinds == ["TERM", "NOT", "TERM", "(", "TERM", "OR", "TERM", ")", "NOT", "TERM"]


TRICKY = {
    "snow.png": ("Snow 100% white_ish.", "", "", ["snow", "50%_off"]),
    "slash.png": ("A back\\slash path.", "under_score", "", ["back\\slash"]),
    "abc.png": ("Letters.", "", "a?c", ["abc"]),
    "literal.png": ("Marks.", "", "", ["a?c-x", "[x]y"]),
    "plain.png": ("Plain 100 percent.", "", "", ["fifty off"]),
}


@pytest.fixture
def tricky(tmp_path: Path):
    """A catalog whose texts and keywords hold the characters LIKE and GLOB treat specially."""
    root = tmp_path / "tricky"
    with open_catalog() as catalog:
        tag_photos(catalog, root, list(TRICKY))
        for result in catalog.results():
            caption, title, alt_text, keywords = TRICKY[Path(result.path).name]
            catalog.edit_result(result.id, caption=caption, title=title, alt_text=alt_text, keywords=keywords)
        yield catalog


def browsed(catalog: Catalog, browse: BrowseFilter) -> set[str]:
    rows = fetch_rows(catalog, photo_ids(catalog, browse))
    return {Path(row.path).stem for row in rows.values()}


def keyword_search(keyword: str) -> tuple[str, BrowseFilter]:
    return f'keyword:"{keyword}"', BrowseFilter(keyword=keyword)


def text_search(words: str) -> tuple[str, BrowseFilter]:
    return f'caption:"{words}" OR title:"{words}" OR alt:"{words}"', BrowseFilter(text=words)


@pytest.mark.parametrize(
    ("same_search", "value", "expected"),
    [
        (keyword_search, "50%_off", {"snow"}),
        (keyword_search, "50%*", {"snow"}),
        (keyword_search, "50_*", set()),  # "_" is a plain character, not "any one character"
        (keyword_search, "back\\slash", {"slash"}),
        (keyword_search, "a?c*", {"literal"}),  # "?" is a plain character: "abc" does not match
        (keyword_search, "[x]*", {"literal"}),  # "[x]" is plain text, not a character class
        (keyword_search, "*off", {"snow", "plain"}),
        (text_search, "100%", {"snow"}),
        (text_search, "%", {"snow"}),
        (text_search, "white_ish", {"snow"}),
        (text_search, "_", {"snow", "slash"}),
        (text_search, "\\", {"slash"}),
        (text_search, "back\\slash", {"slash"}),
        (text_search, "a?c", {"abc"}),
        (text_search, "R_S", {"slash"}),  # case-insensitive, the title "under_score"
    ],
)
def test_the_window_filter_and_the_search_find_the_same_photos(
    tricky: Catalog, same_search, value: str, expected: set[str]
) -> None:
    """The filter field, the same words in the search language, and that search typed in the window's search
    box all go through one builder, with one rule for special characters. The text filter matches substrings
    as the search does without its full-text index (with it, text is matched by words: test_search_fts.py)."""
    text, browse = same_search(value)
    if same_search is text_search:
        query = compile_query(text, text_index=False)
        assert {Path(r.path).stem for r in tricky.results(current_only=True, query=query)} == expected
        assert browsed(tricky, browse) == expected
        return
    assert names(tricky, text) == expected
    assert browsed(tricky, browse) == expected
    assert browsed(tricky, BrowseFilter(query=text)) == expected
