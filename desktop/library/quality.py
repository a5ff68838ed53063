"""Degenerate-output detection: empty, cut-off, looping or wrong-language answers, and one caption
repeated over neighbouring photos. Pure functions; a run retries once, then flags "needs review"."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

from captioneer.desktop.core.languages import find_language

MIN_CAPTION_CHARS = 3
REPEAT_WINDOW = 8
"""How many preceding photos of a run a caption is compared with."""
REPEAT_LIMIT = 2
"""A caption already given to this many of the preceding photos is degenerate."""

# Script each language is written in; languages not listed are not checked for script.
_SCRIPTS = {
    "arabic": "ARABIC",
    "persian": "ARABIC",
    "farsi": "ARABIC",
    "urdu": "ARABIC",
    "bulgarian": "CYRILLIC",
    "russian": "CYRILLIC",
    "serbian": "CYRILLIC",
    "ukrainian": "CYRILLIC",
    "chinese": "CJK",
    "japanese": "CJK",
    "korean": "HANGUL",
    "greek": "GREEK",
    "hebrew": "HEBREW",
    "hindi": "DEVANAGARI",
    "marathi": "DEVANAGARI",
    "nepali": "DEVANAGARI",
    "thai": "THAI",
    "english": "LATIN",
    "german": "LATIN",
    "french": "LATIN",
    "spanish": "LATIN",
    "italian": "LATIN",
    "portuguese": "LATIN",
    "dutch": "LATIN",
    "swedish": "LATIN",
    "danish": "LATIN",
    "norwegian": "LATIN",
    "finnish": "LATIN",
    "polish": "LATIN",
    "czech": "LATIN",
    "turkish": "LATIN",
    "indonesian": "LATIN",
    "vietnamese": "LATIN",
    "romanian": "LATIN",
    "hungarian": "LATIN",
}
# Frequent function words, to tell Latin-script languages apart in a sentence-long caption.
_STOPWORDS = {
    "english": frozenset(
        ["the", "a", "an", "of", "and", "in", "on", "with", "at", "is", "are", "by", "from", "to"]
    ),
    "german": frozenset(
        [
            "der",
            "die",
            "das",
            "ein",
            "eine",
            "und",
            "mit",
            "auf",
            "im",
            "ist",
            "sind",
            "von",
            "zu",
            "den",
            "dem",
        ]
    ),
    "french": frozenset(
        ["le", "la", "les", "un", "une", "des", "et", "avec", "sur", "dans", "est", "sont", "du", "au"]
    ),
    "spanish": frozenset(
        ["el", "la", "los", "las", "un", "una", "y", "con", "en", "es", "son", "del", "al", "sobre"]
    ),
    "italian": frozenset(
        ["il", "lo", "la", "gli", "le", "un", "una", "e", "con", "su", "nel", "della", "sono", "di"]
    ),
    "portuguese": frozenset(
        ["o", "a", "os", "as", "um", "uma", "e", "com", "em", "no", "na", "é", "são", "do", "da"]
    ),
    "dutch": frozenset(["de", "het", "een", "en", "met", "op", "in", "is", "zijn", "van", "bij"]),
}
_CUT_OFF_ENDINGS = frozenset(
    ["a", "an", "the", "and", "or", "of", "with", "to", "in", "on", "at", "by", "for", "from"]
)
_WORD = re.compile(r"\w+", re.UNICODE)


def normalise_caption(caption: str) -> str:
    """The form compared for repetition: case-folded words only."""
    return " ".join(_WORD.findall(caption.casefold()))


def answer_problems(
    caption: str,
    keywords: Sequence[str],
    *,
    language: str,
    max_caption_chars: int | None = None,
    needs_keywords: bool = True,
) -> list[str]:
    """Why an answer is not good enough to keep as it is; an empty list means it looks sound."""
    problems: list[str] = []
    text = caption.strip()
    if len(text) < MIN_CAPTION_CHARS:
        problems.append("empty caption")
        return problems
    if needs_keywords and not keywords:
        problems.append("no usable keywords")
    if (max_caption_chars is not None and len(text) >= max_caption_chars) or _looks_cut_off(text):
        problems.append("caption looks cut off")
    if _looks_looping(text):
        problems.append("caption repeats itself")
    if not in_language(text, language):
        problems.append(f"caption is not in {language}")
    return problems


def repeated_caption(caption: str, previous: Iterable[str], limit: int = REPEAT_LIMIT) -> bool:
    """Whether ``caption`` equals at least ``limit`` of the ``previous`` neighbours' captions."""
    norm = normalise_caption(caption)
    if not norm:
        return False
    return sum(1 for other in previous if normalise_caption(other) == norm) >= limit


def in_language(text: str, language: str) -> bool:
    """A cheap check that ``text`` is written in ``language``: its script, and for Latin-script languages
    its function words. Unknown languages and short texts pass (too little evidence to flag)."""
    name = english_name(language)
    script = _SCRIPTS.get(name)
    if script is None:
        return True
    letters = [ch for ch in text if ch.isalpha()]
    if len(letters) < 8:
        return True
    in_script = sum(1 for ch in letters if script_of(ch) == script)
    if in_script / len(letters) < 0.6:
        return False
    if script != "LATIN" or name not in _STOPWORDS:
        return True
    words = _WORD.findall(text.casefold())
    if len(words) < 6:
        return True
    own = sum(1 for word in words if word in _STOPWORDS[name])
    best_other = max(
        sum(1 for word in words if word in stopwords)
        for other, stopwords in _STOPWORDS.items()
        if other != name
    )
    return own > 0 or best_other < 2


def language_script(language: str) -> str | None:
    """The script ``language`` is written in (``LATIN``, ``CYRILLIC``, ``CJK``…), None when not known."""
    return _SCRIPTS.get(english_name(language))


def script_of(ch: str) -> str:
    """The script of letter ``ch`` as :func:`language_script` names it (Han, Hiragana and Katakana: CJK)."""
    name = unicodedata.name(ch, "")
    if name.startswith(("CJK", "HIRAGANA", "KATAKANA")):
        return "CJK"
    return name.split(" ", 1)[0]


def english_name(language: str) -> str:
    """``language``'s English name, lower case (``Deutsch`` -> ``german``; an unlisted one as typed)."""
    known = find_language(language)  # "Deutsch" as the window offers it, or "German"
    return known.english if known is not None else language.strip().casefold()


def _looks_cut_off(text: str) -> bool:
    words = _WORD.findall(text.casefold())
    return text.endswith((",", ":", ";", "-", "(")) or (len(words) > 3 and words[-1] in _CUT_OFF_ENDINGS)


def _looks_looping(text: str) -> bool:
    """The same word or short phrase over and over (a classic greedy-decoding failure)."""
    words = _WORD.findall(text.casefold())
    if len(words) < 12:
        return False
    if len(set(words)) / len(words) < 0.3:
        return True
    run = 1
    for previous, word in zip(words, words[1:], strict=False):
        run = run + 1 if word == previous else 1
        if run >= 5:
            return True
    return False
