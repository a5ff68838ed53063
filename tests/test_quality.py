"""Degenerate-output detection: tables of answers and the problems they must (or must not) raise."""

from __future__ import annotations

import pytest

from captioneer.desktop.library.quality import answer_problems, in_language, repeated_caption

GOOD = "A red fishing boat moored in a small harbour at dawn."
DE = "Ein rotes Fischerboot liegt im kleinen Hafen bei der Dämmerung."
FR = "Un bateau de pêche rouge amarré dans le petit port à l'aube."


@pytest.mark.parametrize(
    ("caption", "keywords", "language", "problem"),
    [
        (GOOD, ["boat"], "English", None),
        ("", ["boat"], "English", "empty caption"),
        ("  .", ["boat"], "English", "empty caption"),
        (GOOD, [], "English", "no usable keywords"),
        ("A red fishing boat moored in the", ["boat"], "English", "caption looks cut off"),
        ("A red fishing boat moored,", ["boat"], "English", "caption looks cut off"),
        ("boat " * 12, ["boat"], "English", "caption repeats itself"),
        ("a boat and a boat and a boat and a boat and a boat and a boat", ["boat"], "English", "repeats"),
        (DE, ["Boot"], "English", "not in English"),
        (DE, ["Boot"], "German", None),
        (FR, ["bateau"], "French", None),
        (FR, ["bateau"], "German", "not in German"),
        ("Красная рыбацкая лодка в маленькой гавани на рассвете.", ["лодка"], "Russian", None),
        ("Красная рыбацкая лодка в маленькой гавани на рассвете.", ["лодка"], "English", "not in English"),
        (GOOD, ["boat"], "Japanese", "not in Japanese"),
        ("夜明けの小さな港に停泊している赤い漁船です。", ["漁船"], "Japanese", None),
        (GOOD, ["boat"], "Klingon", None),  # unknown language: no evidence, no flag
    ],
)
def test_answer_problems(caption: str, keywords: list[str], language: str, problem: str | None) -> None:
    problems = answer_problems(caption, keywords, language=language)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


def test_caption_at_the_schema_limit_is_cut_off() -> None:
    caption = ("A long caption " * 20)[:299] + "x"
    problems = answer_problems(caption, ["x"], language="English", max_caption_chars=300)
    assert "caption looks cut off" in problems


def test_short_texts_are_not_judged_for_language() -> None:
    assert in_language("Ok", "German") and in_language("Hafen", "English")


def test_repeated_caption_counts_neighbours_case_and_punctuation_blind() -> None:
    neighbours = ["A photo of something.", "a photo of something", "A different one."]
    assert repeated_caption("A PHOTO of something!", neighbours)
    assert not repeated_caption("A different one.", neighbours)
    assert not repeated_caption("", ["", "", ""])
