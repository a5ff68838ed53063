"""Keyword clean-up and vocabulary mapping: tables of model output and what must come out of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from captioneer.backends.errors import ConfigurationError
from captioneer.desktop.library.keywords import (
    CleanupRules,
    Vocabulary,
    clean_keywords,
    is_junk_keyword,
    merge_keywords,
    parse_vocabulary,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (["  beach ", "sunset\n"], ["beach", "sunset"]),
        (['"Beach"', "#sunset", "- dog.", "• tree,"], ["Beach", "sunset", "dog", "tree"]),
        (["Beach", "beach", "BEACH"], ["Beach"]),
        (["dog", "dogs", "Dogs"], ["dog"]),
        (["cities", "city"], ["cities"]),
        (["church", "churches"], ["church"]),
        (["person", "people", "child", "children"], ["person", "child"]),
        (["glass", "grass"], ["glass", "grass"]),
        (["red car", "red cars"], ["red car"]),
        (["new\x00york", "caf\u00e9", "cafe\u0301"], ["newyork", "caf\u00e9"]),
        (["a", "", "   ", None, 5, ["x"]], []),
        (["sea" * 20], []),
    ],
)
def test_trim_dedupe_and_plurals(raw: list[object], expected: list[str]) -> None:
    assert clean_keywords(raw) == expected


@pytest.mark.parametrize(
    "keyword",
    [
        "2023",
        "42",
        "3.14",
        "1,000",
        "#12",
        "2023-05-01",
        "01.05.2023",
        "5/1/23",
        "May 2023",
        "1 May 2023",
        "May 1, 2023",
        "10:30",
        "10:30 pm",
        "1990s",
        "48.8566, 2.3522",
        "48°51′N 2°21′E",
        "N 48.85 E 2.35",
        "lat 48.85",
        "keywords",
        "Photo",
        "image",
        "caption",
        "JSON",
        "none",
        "N/A",
        "unknown",
        "file name",
    ],
)
def test_junk_is_dropped(keyword: str) -> None:
    assert is_junk_keyword(keyword)
    assert clean_keywords([keyword, "harbour"]) == ["harbour"]


@pytest.mark.parametrize("keyword", ["beach", "New York", "4x4 truck", "Route 66", "F1 car", "May", "sunset"])
def test_real_keywords_are_kept(keyword: str) -> None:
    assert not is_junk_keyword(keyword)
    assert clean_keywords([keyword]) == [keyword]


def test_length_and_count_caps() -> None:
    words = [f"word{chr(97 + i)}" for i in range(26)]
    assert clean_keywords(words, CleanupRules(max_count=5)) == words[:5]
    assert clean_keywords(["x" * 41, "y" * 40], CleanupRules()) == ["y" * 40]
    assert clean_keywords(["abcdef", "abc"], CleanupRules(max_length=4)) == ["abc"]


def test_vocabulary_maps_case_plurals_and_synonyms() -> None:
    vocabulary = parse_vocabulary("# my keywords\nDog = puppy, doggy\nbeach\nNew York City = NYC\n")
    assert vocabulary.terms == ("Dog", "beach", "New York City")
    rules = CleanupRules(vocabulary=vocabulary)
    assert clean_keywords(["puppies", "BEACHES", "nyc", "cat", "dogs"], rules) == [
        "Dog",
        "beach",
        "New York City",
    ]
    loose = CleanupRules(vocabulary=vocabulary, vocabulary_only=False)
    assert clean_keywords(["puppy", "cat"], loose) == ["Dog", "cat"]
    assert clean_keywords(["puppy"], CleanupRules(vocabulary=Vocabulary())) == ["puppy"]


@pytest.mark.parametrize("text", ["", "# only a comment\n", "= orphan synonym\n"])
def test_bad_vocabulary_files(text: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_vocabulary(text, "words.txt")


def test_merge_keeps_existing_first_and_exact() -> None:
    assert merge_keywords(["Family", "Beach"], ["beach", "sunset"]) == ["Family", "Beach", "sunset"]
    assert merge_keywords([], ["a1", "A1"]) == ["a1"]


def test_a_vocabulary_file_is_read_once_for_every_command(tmp_path: Path) -> None:
    """tag, the library window and evaluate read vocabulary files alike: a BOM dropped, errors in one line."""
    from captioneer.desktop.library.keywords import read_vocabulary

    saved = tmp_path / "words.txt"
    saved.write_bytes("\ufeffbeach = seaside\ncafé\n".encode())  # Notepad's UTF-8 starts with a BOM
    assert read_vocabulary(saved).terms == ("beach", "café")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café\n".encode("latin-1"))
    with pytest.raises(ConfigurationError, match=r"^The vocabulary file .*latin\.txt is not UTF-8 text"):
        read_vocabulary(latin)
    with pytest.raises(ConfigurationError, match=r"^Cannot read the keyword map .*missing\.txt"):
        read_vocabulary(tmp_path / "missing.txt", "the keyword map")
    (tmp_path / "empty.txt").write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"^The vocabulary file .*empty\.txt has no keywords"):
        read_vocabulary(tmp_path / "empty.txt")
