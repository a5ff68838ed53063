"""Keyword hierarchies: paths, the three keyword-list formats (Captioneer's, digiKam's ``/`` paths,
Lightroom's exported keyword list), which leaves a list offers and with which path, and the conversion
to our format."""

from __future__ import annotations

from pathlib import Path

import pytest

from captioneer.backends.errors import ConfigurationError
from captioneer.desktop.cli import main
from captioneer.desktop.library.keyword_tree import (
    KeywordPath,
    parse_keyword_list,
    parse_lightroom,
    to_captioneer_text,
    vocabulary_parts,
)
from captioneer.desktop.library.keywords import read_vocabulary

# What Lightroom Classic's Metadata > Export Keywords... writes (UTF-8 with a BOM, CRLF, one TAB per level),
# hand-written as a user's catalog would have it: grouping levels in brackets, synonyms in braces, "Paris"
# both in France and in Texas, a keyword repeated, names with "/" and "|" in them.
LIGHTROOM_EXPORT = (
    "\ufeff[Places]\r\n"
    "\tEurope\r\n"
    "\t\tFrance\r\n"
    "\t\t\t{Frankreich}\r\n"
    "\t\t\tParis\r\n"
    "\t\t\t\t{Paree}\r\n"
    "\t\t\t\t{Ville Lumière}\r\n"
    "\t\t\tLyon\r\n"
    "\tUSA\r\n"
    "\t\tTexas\r\n"
    "\t\t\tParis\r\n"
    "\t\t\tAustin\r\n"
    "[People]\r\n"
    "\tFamily\r\n"
    "\t\tAnna\r\n"
    "\t\t\t{Annie}\r\n"
    "Animals\r\n"
    "\tDog\r\n"
    "\t\t{Hound}\r\n"
    "\t\t{Pooch}\r\n"
    "\tCat\r\n"
    "\tDog\r\n"
    "Music\r\n"
    "\tAC/DC\r\n"
    "sunset\r\n"
    "\r\n"
    "[Workflow]\r\n"
    "\tTo print\r\n"
    "\t[Rejected]\r\n"
)


@pytest.mark.parametrize(
    ("text", "levels", "hidden", "parents", "back"),
    [
        ("Places|Europe|France|Paris", ("Places", "Europe", "France", "Paris"), set(),
         ("Places", "Europe", "France"), "Places|Europe|France|Paris"),
        ("[Places]|Europe|Paris", ("Places", "Europe", "Paris"), {0}, ("Europe",), "[Places]|Europe|Paris"),
        (" Places | | Paris ", ("Places", "Paris"), set(), ("Places",), "Places|Paris"),
        ("sunset", ("sunset",), set(), (), "sunset"),
        ("[x]", ("x",), {0}, (), "[x]"),
        ("[]|a", ("[]", "a"), set(), ("[]",), "[]|a"),  # nothing inside the brackets: a name, not a marker
    ],
)  # fmt: skip
def test_paths_read_and_write_captioneer_form(text, levels, hidden, parents, back) -> None:
    path = KeywordPath.parse(text)
    assert path.levels == levels and path.hidden == frozenset(hidden)
    assert path.parents() == parents and path.text() == back


def test_a_bar_inside_a_level_never_adds_a_level() -> None:
    path = KeywordPath.parse("Bands/AC|DC", "/")
    assert path.levels == ("Bands", "AC|DC") and path.text() == "Bands|AC¦DC"
    assert KeywordPath.parse(path.text()) == path


def test_lightroom_export_is_detected_and_read() -> None:
    listing = parse_keyword_list(LIGHTROOM_EXPORT)
    assert listing.style == "lightroom" and listing.levels() == 4
    by_text = {item.path.text(): item.synonyms for item in listing.keywords}
    assert list(by_text)[:5] == [
        "[Places]", "[Places]|Europe", "[Places]|Europe|France", "[Places]|Europe|France|Paris",
        "[Places]|Europe|France|Lyon",
    ]  # fmt: skip
    assert by_text["[Places]|Europe|France"] == ("Frankreich",)
    assert by_text["[Places]|Europe|France|Paris"] == ("Paree", "Ville Lumière")
    assert by_text["Animals|Dog"] == ("Hound", "Pooch")  # listed twice, kept once
    assert "[Workflow]|[Rejected]" in by_text and "Music|AC/DC" in by_text
    assert sum(text == "Animals|Dog" for text in by_text) == 1


def test_which_leaves_a_list_offers_and_with_which_path() -> None:
    parts = vocabulary_parts(parse_keyword_list(LIGHTROOM_EXPORT))
    # Leaves only; bracketed ones ("Include on Export" off) are never offered; Paris once.
    assert parts.terms == ("Paris", "Lyon", "Austin", "Anna", "Dog", "Cat", "AC/DC", "sunset", "To print")
    assert dict(parts.synonyms) == {
        "Paree": "Paris", "Ville Lumière": "Paris", "Annie": "Anna", "Hound": "Dog", "Pooch": "Dog",
    }  # fmt: skip  # Frankreich belongs to France, a level, not an offered leaf
    texts = {name: path.text() for name, path in parts.paths.items()}
    assert texts["Lyon"] == "[Places]|Europe|France|Lyon"
    assert texts["France"] == "[Places]|Europe|France"  # a level has its path, for keywords added in review
    assert texts["To print"] == "[Workflow]|To print"
    # Paris is in France and in Texas: nothing says which a photo shows, so it is written without a path.
    assert "Paris" not in parts.paths
    assert [p.text() for p in parts.ambiguous["Paris"]] == [
        "[Places]|Europe|France|Paris", "[Places]|USA|Texas|Paris",
    ]  # fmt: skip
    assert "sunset" not in parts.paths  # a flat keyword stays flat
    assert parts.hidden == 4  # Places, People, Workflow, Rejected


@pytest.mark.parametrize(
    ("text", "style", "terms", "paths"),
    [
        # Captioneer's format: "|" always separates levels; "/" never does without the header.
        ("Places|France|Paris = Paree\nAC/DC\n", "captioneer", ("Paris", "AC/DC"),
         {"France": "Places|France", "Paris": "Places|France|Paris"}),
        # digiKam's paths, asked for by the header.
        ("# separator: /\nPlaces/France/Paris\nBands/AC|DC\n", "digikam", ("Paris", "AC|DC"),
         {"France": "Places|France", "Paris": "Places|France|Paris", "AC|DC": "Bands|AC¦DC"}),
        # A flat list is exactly what it was before hierarchies.
        ("dog\ncat = kitty\n# note\n", "captioneer", ("dog", "cat"), {}),
        # A keyword that is also a parent is a level, not a leaf.
        ("Animals\nAnimals|Dog\n", "captioneer", ("Dog",), {"Dog": "Animals|Dog"}),
        # The same path in two spellings is one path, first spelling kept.
        ("Places|Paris\nplaces|PARIS\n", "captioneer", ("Paris",), {"Paris": "Places|Paris"}),
        # A flat Paris and a Paris with a path are two places: ambiguous, written flat.
        ("Paris\nPlaces|Paris\n", "captioneer", ("Paris",), {}),
        # Lightroom without a BOM, LF only, a single level of children.
        ("Animals\n\tDog\n", "lightroom", ("Dog",), {"Dog": "Animals|Dog"}),
        # Braces at the top level belong to the keyword above.
        ("Animals\n{Beasts}\n", "lightroom", ("Animals",), {}),
    ],
)  # fmt: skip
def test_formats_table(text, style, terms, paths) -> None:
    listing = parse_keyword_list(text)
    parts = vocabulary_parts(listing)
    assert listing.style == style and parts.terms == terms
    assert {name: path.text() for name, path in parts.paths.items()} == paths


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Animals\n\t\tDog\n", "line 2: 'Dog' is indented 2 tabs under a keyword at level 1"),
        ("\t{Beasts}\n", "line 1: the synonym {Beasts} comes before any keyword"),
    ],
)
def test_malformed_lightroom_lists_say_which_line(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("{", r"\{").replace("}", r"\}")):
        parse_lightroom(text, "keywords.txt")


def test_conversion_to_captioneer_text_keeps_every_path_and_synonym() -> None:
    listing = parse_keyword_list(LIGHTROOM_EXPORT)
    text = to_captioneer_text(listing, "from Lightroom")
    assert text.startswith("# from Lightroom\n")
    assert "[Places]|Europe|France = Frankreich\n" in text
    assert "[Places]|Europe|France|Paris = Paree, Ville Lumière\n" in text
    assert "[Places]|Europe\n" not in text  # implied by the paths below it
    again = parse_keyword_list(text)
    assert again.style == "captioneer"
    assert [(i.path.text(), i.synonyms) for i in again.keywords] == [
        (i.path.text(), i.synonyms) for i in listing.keywords
    ]


def test_read_vocabulary_detects_lightroom_and_keeps_paths(tmp_path: Path) -> None:
    path = tmp_path / "Keywords.txt"
    path.write_bytes(LIGHTROOM_EXPORT.encode("utf-8"))
    vocabulary = read_vocabulary(path)
    assert vocabulary.terms[0] == "Paris"  # no BOM glued to the first keyword
    assert vocabulary.lookup("pooch") == "Dog" and vocabulary.lookup("Paree") == "Paris"
    assert vocabulary.paths["Dog"] == "Animals|Dog" and "Paris" not in vocabulary.paths
    assert vocabulary.lookup("Europe") is None  # levels are not offered to the model


def test_vocabulary_import_converts_a_lightroom_list_and_counts_it(tmp_path: Path, capsys) -> None:
    exported = tmp_path / "Keywords.txt"
    exported.write_bytes(LIGHTROOM_EXPORT.encode("utf-8"))
    out = tmp_path / "vocabulary.txt"
    assert main(["vocabulary", "import", str(exported), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "read the Lightroom keyword list Keywords.txt: 21 keywords in 4 levels (4 grouping levels" in err
    assert "6 synonyms; 9 keywords offered to the model" in err
    assert "'Paris' is at 2 places ([Places]|Europe|France|Paris, [Places]|USA|Texas|Paris)" in err
    converted, original = read_vocabulary(out), read_vocabulary(exported)
    assert (converted.terms, converted.synonyms, converted.paths) == (
        original.terms, original.synonyms, original.paths,
    )  # fmt: skip
    # An existing file is never replaced without --force.
    before = out.read_bytes()
    assert main(["vocabulary", "import", str(exported), "-o", str(out)]) == 2
    assert "exists: choose another name, or pass --force" in capsys.readouterr().err
    assert out.read_bytes() == before


def test_vocabulary_import_reads_digikam_paths_to_standard_output(tmp_path: Path, capsys) -> None:
    paths = tmp_path / "tags.txt"
    # With "/" as the separator, "AC/DC is a band" is two levels: why "/" must be asked for.
    paths.write_text("Places/France/Paris\nBands/AC|DC\nAC/DC is a band\n", encoding="utf-8")
    assert main(["vocabulary", "import", str(paths), "--separator", "/"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[1:] == ["Places|France|Paris", "Bands|AC¦DC", "AC|DC is a band"]
    assert "digiKam path list tags.txt: 7 keywords in 3 levels" in captured.err


def test_vocabulary_import_of_only_grouping_levels_says_so(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "Keywords.txt"
    empty.write_text("[Places]\n\t[Europe]\n", encoding="utf-8")
    assert main(["vocabulary", "import", str(empty)]) == 2
    assert "has no keywords to offer (every keyword is in [brackets])" in capsys.readouterr().err
