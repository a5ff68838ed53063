"""Keyword control: a table per rule (banned words, required ones, number, "and" split, prompt echoes,
script, the minimum), then the rules together as a run's spec applies them."""

from __future__ import annotations

import pytest

from captioneer.backends.errors import ConfigurationError
from captioneer.desktop.core.tasks import get_task
from captioneer.desktop.library.keyword_rules import (
    KeywordRules,
    check_rules,
    control_keywords,
    echoes_prompt,
    in_script,
    is_banned,
    parse_keyword_list,
    plural_of,
    prompt_words,
    set_number,
    singular_of,
    split_and,
)
from captioneer.desktop.library.keywords import CleanupRules, Vocabulary, clean_keywords
from captioneer.desktop.library.run_spec import RunSpec
from captioneer.desktop.library.runs import spec_prompt_hash


@pytest.mark.parametrize(
    ("keyword", "banned", "expected"),
    [
        ("dog", ["dog"], True),
        ("Dogs", ["dog"], True),  # case and plural
        ("dog", ["DOGS"], True),  # the banned word's own plural form
        ("hot dog", ["dog"], True),  # a whole word inside a phrase
        ("dog park", ["dogs"], True),
        ("dogma", ["dog"], False),  # not a whole word
        ("hotdog", ["dog"], False),
        ("hot dogs stand", ["hot dog"], True),  # a banned phrase inside a longer one
        ("hot stand", ["hot dog"], False),  # only some of the phrase's words
        ("glasses", ["glass"], True),
        ("people", ["person"], True),  # irregular plural
        ("beach", [], False),
        ("beach", ["", "  "], False),  # empty entries ban nothing
    ],
)
def test_banned_words(keyword: str, banned: list[str], expected: bool) -> None:
    assert is_banned(keyword, banned) is expected


@pytest.mark.parametrize(
    ("keyword", "expected"),
    [
        ("sun and sea", ["sun", "sea"]),
        ("sun & sea", ["sun", "sea"]),
        ("Cats AND Dogs", ["Cats", "Dogs"]),
        ("black and white", ["black and white"]),  # a fixed phrase
        ("Rock and Roll", ["Rock and Roll"]),
        ("salt & pepper", ["salt & pepper"]),  # fixed phrase spelled with &
        ("R&D", ["R&D"]),  # no spaces: one word
        ("sandy beach", ["sandy beach"]),  # "and" inside a word
        ("mother and child", ["mother", "child"]),
        ("and", ["and"]),
    ],
)
def test_split_and(keyword: str, expected: list[str]) -> None:
    assert split_and(keyword) == expected


def test_split_and_keeps_vocabulary_phrases_whole() -> None:
    vocabulary = Vocabulary(terms=("Bride and Groom",))
    assert split_and("bride and groom", vocabulary) == ["bride and groom"]
    assert split_and("bride and cake", vocabulary) == ["bride", "cake"]


@pytest.mark.parametrize(
    ("word", "singular", "plural"),
    [
        ("dog", "dog", "dogs"),
        ("dogs", "dog", "dogs"),
        ("city", "city", "cities"),
        ("cities", "city", "cities"),
        ("beach", "beach", "beaches"),
        ("beaches", "beach", "beaches"),
        ("box", "box", "boxes"),
        ("boxes", "box", "boxes"),
        ("horses", "horse", "horses"),
        ("trees", "tree", "trees"),
        ("person", "person", "people"),
        ("people", "person", "people"),
        ("leaf", "leaf", "leaves"),
        ("tomatoes", "tomato", "tomatoes"),
        ("bus", "bus", "buses"),
        ("glass", "glass", "glasses"),
        ("boy", "boy", "boys"),
        ("news", "news", "news"),  # singular although it ends in s
        ("jeans", "jeans", "jeans"),  # plural only
        ("water", "water", "water"),  # mass noun
        ("sheep", "sheep", "sheep"),
        ("cactus", "cactus", "cactuses"),
        ("tennis", "tennis", "tennis" + "es"),
        ("hiking", "hiking", "hiking"),  # -ing words are not made plural
    ],
)
def test_singular_and_plural_of_english_words(word: str, singular: str, plural: str) -> None:
    assert singular_of(word) == singular
    assert plural_of(word) == plural


@pytest.mark.parametrize(
    ("keyword", "number", "expected"),
    [
        ("red cars", "singular", "red car"),  # the last word of a phrase
        ("red car", "plural", "red cars"),
        ("man in a suit", "plural", "man in a suit"),  # a linking word: no single number
        ("Athens", "singular", "Athens"),  # capitalised: a name
        ("Alps", "singular", "Alps"),
        ("dogs", "keep", "dogs"),
    ],
)
def test_set_number(keyword: str, number: str, expected: str) -> None:
    assert set_number(keyword, number) == expected


def test_prompt_words_are_the_tasks_own_words_not_what_is_filled_in() -> None:
    words = prompt_words(get_task("keywords"))
    assert {"library", "searching", "phrases", "json"} <= set(words)
    assert "max_keywords" not in words and "vocabulary" not in words and "language" not in words


@pytest.mark.parametrize(
    ("keyword", "expected"),
    [
        ("library", True),
        ("Photo Library", True),  # a phrase of the prompt
        ("short phrases", True),
        ("short phrase", True),  # plural-insensitive
        ("library books", False),  # more than the prompt says
        ("Paris", False),  # what context fills in is a real keyword
        ("dog", False),
    ],
)
def test_prompt_echoes(keyword: str, expected: bool) -> None:
    assert echoes_prompt(keyword, prompt_words(get_task("keywords"))) is expected


def test_a_vocabulary_term_is_never_a_prompt_echo() -> None:
    vocabulary = Vocabulary(terms=("Library",))
    assert not echoes_prompt("library", prompt_words(get_task("keywords")), vocabulary)


@pytest.mark.parametrize(
    ("keyword", "language", "expected"),
    [
        ("beach", "English", True),
        ("café", "French", True),
        ("Москва", "English", False),  # Cyrillic in an English run
        ("東京", "English", False),  # Han in an English run
        ("東京", "Japanese", True),
        ("ひらがな", "Japanese", True),
        ("カタカナ", "日本語", True),  # the language named in its own words
        ("iPhone", "Japanese", True),  # Latin brand names pass everywhere
        ("Москва", "Русский", True),
        ("beach", "Русский", True),
        ("東京", "Русский", False),
        ("Ελλάδα", "English", False),
        ("2024 ★", "English", True),  # no letters: nothing to judge
        ("東京", "Klingon", True),  # an unknown language is not filtered
    ],
)
def test_script(keyword: str, language: str, expected: bool) -> None:
    assert in_script(keyword, language) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Client X, Event 2024", ("Client X", "Event 2024")),
        ("a,, b ,A", ("a", "b")),
        ("# banned words\nbeer\ncigarette, Cigarettes\n", ("beer", "cigarette", "Cigarettes")),
        ("", ()),
    ],
)
def test_parse_keyword_list(text: str, expected: tuple[str, ...]) -> None:
    assert parse_keyword_list(text) == expected


RAW = ["Dogs", "hot dog", "sun and sea", "cats", "東京", "library", "beaches", "Paris"]


@pytest.mark.parametrize(
    ("rules", "max_count", "expected", "problems"),
    [
        (
            KeywordRules(),
            20,
            ["Dogs", "hot dog", "sun and sea", "cats", "東京", "library", "beaches", "Paris"],
            [],
        ),  # fmt: skip
        (
            KeywordRules(excluded=("dog",)),
            20,
            ["sun and sea", "cats", "東京", "library", "beaches", "Paris"],
            [],
        ),  # fmt: skip
        (
            KeywordRules(split_and=True, script_only=True, excluded=("dog",)),
            20,
            ["sun", "sea", "cats", "library", "beaches", "Paris"],
            [],
        ),  # fmt: skip
        (
            KeywordRules(
                number="singular", excluded=("dog",), script_only=True, prompt_words=("photo", "library")
            ),
            20,
            ["sun and sea", "cat", "beach", "Paris"],
            [],
        ),  # fmt: skip
        (KeywordRules(number="plural", language="German"), 3, ["Dogs", "hot dog", "sun and sea"], []),
        (KeywordRules(required=("Client X", "dogs")), 4, ["Client X", "dogs", "hot dog", "sun and sea"], []),
        (
            KeywordRules(
                required=("Client X",), min_count=3, excluded=("dog", "sea", "cat", "library", "beach")
            ),
            20,
            ["Client X", "東京", "Paris"],
            [],
        ),  # fmt: skip
        (
            KeywordRules(min_count=4, excluded=("dog", "sea", "cat", "library", "beach")),
            20,
            ["東京", "Paris"],
            ["only 2 keywords, fewer than the 4 asked for"],
        ),  # fmt: skip
        (KeywordRules(required=("a1", "b2", "c3")), 2, ["a1", "b2", "c3"], []),  # required beat the cap
    ],
)
def test_control_keywords(
    rules: KeywordRules, max_count: int, expected: list[str], problems: list[str]
) -> None:
    assert control_keywords(RAW, CleanupRules(max_count=max_count), rules) == (expected, problems)


def test_required_keywords_survive_the_vocabulary_and_every_filter() -> None:
    cleanup = CleanupRules(vocabulary=Vocabulary(terms=("beach",)), vocabulary_only=True)
    rules = KeywordRules(required=("Хельсинки",), script_only=True, number="plural")
    assert control_keywords(["beaches", "dog"], cleanup, rules) == (["Хельсинки", "beach"], [])


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (KeywordRules(number="dual"), "Unknown keyword number 'dual'"),
        (KeywordRules(min_count=30), "minimum number of keywords \\(30\\)"),
        (KeywordRules(min_count=-1), "minimum number of keywords \\(-1\\)"),
        (KeywordRules(required=("Dogs",), excluded=("dog",)), "'Dogs' is both required and banned"),
    ],
)
def test_contradictory_choices_are_refused(rules: KeywordRules, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        check_rules(rules, max_count=20)


def test_spec_defaults_keep_the_prompt_hash_and_choices_make_another_run() -> None:
    plain = RunSpec()
    assert plain.keyword_control() == ""
    assert spec_prompt_hash(plain) == spec_prompt_hash(RunSpec(rule="Products"))
    banned = RunSpec(excluded=("dog",))
    assert spec_prompt_hash(banned) != spec_prompt_hash(plain)
    assert spec_prompt_hash(banned) != spec_prompt_hash(RunSpec(excluded=("cat",)))


def test_spec_stores_its_keyword_control_and_old_specs_still_load() -> None:
    spec = RunSpec(min_keywords=3, required=("Client X",), excluded=("dog",), number="plural", split_and=True,
                   script_only=True, drop_prompt_words=True, vocabulary_top=50, rule="Products")  # fmt: skip
    assert RunSpec.from_json(spec.to_json()) == spec
    old = '{"task": "keywords", "language": "English", "max_keywords": 20, "vocabulary": []}'
    assert RunSpec.from_json(old).keyword_rules() == KeywordRules()


def test_a_task_without_keywords_is_never_short_of_them() -> None:
    assert RunSpec(task="product", min_keywords=5).keyword_rules().min_count == 0
    assert RunSpec(task="keywords", min_keywords=5).keyword_rules().min_count == 5


@pytest.mark.parametrize(
    "raw",
    [
        ["  beach ", '"Beach"', "#sunset", "dogs", "dog", "2024", "keywords", "a", None, 5, "sea" * 20],
        [f"word{index}" for index in range(30)],  # past the cap
        ["red car", "red cars", "café", "cafe\u0301", "new\x00york"],
    ],
)
def test_no_keyword_control_keeps_todays_clean_up(raw: list[object]) -> None:
    vocabulary = Vocabulary(("beach",))
    for cleanup in (CleanupRules(), CleanupRules(max_count=5), CleanupRules(vocabulary=vocabulary)):
        assert control_keywords(raw, cleanup, KeywordRules()) == (clean_keywords(raw, cleanup), [])
