"""Keyword clean-up and vocabulary mapping: pure functions that tidy a model's keyword list."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from captioneer.backends.errors import ConfigurationError
from captioneer.desktop.core.tasks import DEFAULT_MAX_KEYWORDS
from captioneer.desktop.core.user_files import read_user_text
from captioneer.desktop.library.keyword_tree import parse_keyword_list, vocabulary_parts

DEFAULT_MAX_LENGTH = 40
"""Longest keyword kept, in characters (IPTC allows 64 bytes; long "keywords" are sentences)."""


# Words of the keywords prompt and generic non-answers that models echo back instead of describing the photo.
PROMPT_ECHOES = frozenset(
    [
        "keyword",
        "keywords",
        "caption",
        "captions",
        "title",
        "titles",
        "image",
        "images",
        "photo",
        "photos",
        "photograph",
        "photographs",
        "picture",
        "pictures",
        "json",
        "tag",
        "tags",
        "subject",
        "subjects",
        "object",
        "objects",
        "setting",
        "settings",
        "activity",
        "activities",
        "colour",
        "colours",
        "color",
        "colors",
        "mood",
        "moods",
        "file",
        "filename",
        "file",
        "name",
        "number",
        "numbers",
        "date",
        "dates",
        "none",
        "n/a",
        "na",
        "null",
        "unknown",
        "other",
        "misc",
        "miscellaneous",
        "description",
    ]
) | frozenset({"file name", "alt text", "photo library", "short phrases", "single words", "no numbers"})

_MONTHS = (
    "jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec|january|february|march|april|june|july|august|"
    "september|october|november|december"
)
_DATE_PATTERNS = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        r"\d{4}[-/.]\d{1,2}([-/.]\d{1,2})?",  # 2023-05-01, 2023/05
        r"\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}",  # 01.05.2023, 5/1/23
        rf"(\d{{1,2}}(st|nd|rd|th)?\s+)?({_MONTHS})\.?,?\s+\d{{2,4}}",  # 1 May 2023, May 2023
        rf"({_MONTHS})\.?\s+\d{{1,2}}(st|nd|rd|th)?,?\s+\d{{4}}",  # May 1, 2023
        r"\d{1,2}:\d{2}(:\d{2})?\s*(am|pm)?",  # 10:30, 10:30 pm
        r"\d{4}s?",  # 1990, 1990s
    )
)
_COORDINATE_PATTERNS = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        r"[-+]?\d{1,3}\.\d+\s*[,;]\s*[-+]?\d{1,3}\.\d+",  # 48.8566, 2.3522
        r"([NSEW]\s*)?\d{1,3}\s*°(\s*\d{1,2}\s*['′])?(\s*\d{1,2}(\.\d+)?\s*[\"″])?\s*[NSEW]?"
        r"(\s*[,;]?\s*([NSEW]\s*)?\d{1,3}\s*°(\s*\d{1,2}\s*['′])?(\s*\d{1,2}(\.\d+)?\s*[\"″])?\s*[NSEW]?)?",
        r"[NSEW]\s*[-+]?\d{1,3}(\.\d+)?(\s*[,;]?\s*[NSEW]\s*[-+]?\d{1,3}(\.\d+)?)?",
        r"(lat|lon|lng|latitude|longitude|gps)\s*[:=]?\s*[-+]?\d.*",
    )
)
_NUMERIC = re.compile(r"[\d\s.,:;/#%+\-–—°'\"]+")
# Characters trimmed from both ends: quotes, list markers, hashtags, brackets, trailing punctuation.
_TRIM = " \t\r\n\"'`“”‘’«»#*•·-–—_.,;:!?()[]{}<>"

_IRREGULAR_PLURALS = {
    "people": "person",
    "children": "child",
    "men": "man",
    "women": "woman",
    "mice": "mouse",
    "geese": "goose",
    "feet": "foot",
    "teeth": "tooth",
    "oxen": "ox",
    "leaves": "leaf",
    "knives": "knife",
    "wolves": "wolf",
    "calves": "calf",
    "shelves": "shelf",
    "lives": "life",
    "wives": "wife",
}


@dataclass(frozen=True)
class Vocabulary:
    """The keyword list a user keeps: canonical terms and the synonyms that map onto them.

    Attributes:
        terms: canonical keywords in the user's spelling and case.
        synonyms: lower-cased variant -> canonical term.
        paths: keyword -> its place in the user's hierarchy, in Captioneer's form
            (``Paris`` -> ``[Places]|Europe|France|Paris``); keywords without one are flat.
        ambiguous: names the file has at more than one place (Paris in France and in Texas): without a path.
    """

    terms: tuple[str, ...] = ()
    synonyms: dict[str, str] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    ambiguous: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.terms)

    def lookup(self, keyword: str) -> str | None:
        """The canonical term for ``keyword`` (case-insensitive, singular/plural-tolerant), or None."""
        folded = _fold(keyword)
        index = self._index()
        for candidate in (folded, *_singular_forms(folded)):
            if candidate in index:
                return index[candidate]
        return None

    def _index(self) -> dict[str, str]:
        index: dict[str, str] = {}
        for variant, term in self.synonyms.items():
            index.setdefault(_fold(variant), term)
        for term in self.terms:
            index[_fold(term)] = term
            for singular in _singular_forms(_fold(term)):
                index.setdefault(singular, term)
        return index


def parse_vocabulary(text: str, source: str = "the vocabulary") -> Vocabulary:
    """Read a vocabulary file: one keyword a line, ``#`` comments, optional synonyms as
    ``canonical = variant, variant``, and optional paths (``Places|Europe|France|Paris``, or Lightroom's
    exported keyword list, or digiKam's ``/`` paths: see :mod:`~captioneer.desktop.library.keyword_tree`).
    The terms are the list's leaves; ``paths`` holds where each keyword with a path sits.

    Raises:
        ConfigurationError: the file names no keyword, or a line maps synonyms to nothing.
    """
    parts = vocabulary_parts(parse_keyword_list(text, source))
    terms: dict[str, str] = {}
    for leaf in parts.terms:
        term = _tidy(leaf)
        if term:
            terms.setdefault(_fold(term), term)
    synonyms: dict[str, str] = {}
    for raw_variant, leaf in parts.synonyms:
        variant, canonical = _tidy(raw_variant), terms.get(_fold(_tidy(leaf)))
        if variant and canonical:
            synonyms[_fold(variant)] = canonical
    if not terms:
        raise ConfigurationError(f"{source} has no keywords.")
    paths = {_tidy(name): path.text() for name, path in parts.paths.items() if _tidy(name)}
    ambiguous = tuple(_tidy(name) for name in parts.ambiguous)
    return Vocabulary(terms=tuple(terms.values()), synonyms=synonyms, paths=paths, ambiguous=ambiguous)


def read_vocabulary(path: Path, what: str = "the vocabulary file") -> Vocabulary:
    """Read and parse the vocabulary file at ``path`` (``tag --vocabulary``, a run's vocabulary in the window,
    evaluate's keyword map); ``what`` names it in errors.

    Raises:
        ConfigurationError: it cannot be read, is not UTF-8, or names no keyword.
    """
    return parse_vocabulary(read_user_text(path, what), f"{what[0].upper()}{what[1:]} {path}")


@dataclass(frozen=True)
class CleanupRules:
    """What :func:`clean_keywords` keeps. Defaults follow what photo-library users ask for."""

    max_length: int = DEFAULT_MAX_LENGTH
    max_count: int = DEFAULT_MAX_KEYWORDS
    echoes: frozenset[str] = PROMPT_ECHOES
    vocabulary: Vocabulary = field(default_factory=Vocabulary)
    vocabulary_only: bool = True


def clean_keywords(keywords: Iterable[object], rules: CleanupRules = CleanupRules()) -> list[str]:
    """Tidy a model's keywords.

    Trims whitespace, quotes and list markers; removes control characters; drops digit-only, date,
    time and coordinate keywords, prompt echoes and over-long entries; maps onto the vocabulary (and drops
    words outside it when ``vocabulary_only``); merges case variants and singular/plural pairs, keeping the
    first spelling seen; caps the count. Order is kept.
    """
    kept: list[str] = []
    seen: dict[str, int] = {}
    for value in keywords:
        if not isinstance(value, str):
            continue
        keyword = _tidy(value)
        if not keyword or len(keyword) > rules.max_length or is_junk_keyword(keyword, rules.echoes):
            continue
        if rules.vocabulary:
            mapped = rules.vocabulary.lookup(keyword)
            if mapped is None and rules.vocabulary_only:
                continue
            keyword = mapped or keyword
        folded = _fold(keyword)
        if folded in seen:
            continue
        twin = next((seen[form] for form in _number_variants(folded) if form in seen), None)
        if twin is not None:
            seen[folded] = twin
            continue
        seen[folded] = len(kept)
        kept.append(keyword)
        if len(kept) >= rules.max_count:
            break
    return kept


def is_junk_keyword(keyword: str, echoes: frozenset[str] = PROMPT_ECHOES) -> bool:
    """Whether a (tidied) keyword carries no search value: numbers, dates, coordinates, prompt echoes."""
    folded = _fold(keyword)
    if len(folded) < 2 or folded in echoes:
        return True
    if _NUMERIC.fullmatch(folded):
        return True
    patterns = _DATE_PATTERNS + _COORDINATE_PATTERNS
    return any(pattern.fullmatch(folded) for pattern in patterns)


def merge_keywords(existing: Sequence[str], generated: Sequence[str]) -> list[str]:
    """Existing keywords first, exactly as they are, then generated ones not already there
    (case-insensitive): ``[Family, Beach] + [beach, sunset] -> [Family, Beach, sunset]``."""
    result = list(existing)
    seen = {_fold(keyword) for keyword in existing}
    for keyword in generated:
        folded = _fold(keyword)
        if folded not in seen:
            seen.add(folded)
            result.append(keyword)
    return result


def _tidy(value: str) -> str:
    text = unicodedata.normalize("NFC", value)
    text = "".join(
        " " if unicodedata.category(ch) in ("Zs", "Zl", "Zp") or ch in "\t\r\n" else ch for ch in text
    )
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn"))
    text = " ".join(text.split())
    return text.strip(_TRIM)


def _fold(value: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", value).casefold().split())


def _singular_forms(word: str) -> list[str]:
    """Possible singulars of the last word of ``word`` (English rules; other languages merge by case only)."""
    head, _, last = word.rpartition(" ")
    prefix = f"{head} " if head else ""
    forms: list[str] = []
    if last in _IRREGULAR_PLURALS:
        forms.append(_IRREGULAR_PLURALS[last])
    if len(last) > 4 and last.endswith("ies"):
        forms.append(last[:-3] + "y")
    if (len(last) > 3 and last.endswith("es") and last[-3] in "sxz") or last.endswith(("ches", "shes")):
        forms.append(last[:-2])
    if len(last) > 3 and last.endswith("s") and not last.endswith("ss"):
        forms.append(last[:-1])
    return [prefix + form for form in forms]


def _number_variants(word: str) -> list[str]:
    """Singular and plural spellings of ``word`` to detect ``dog``/``dogs`` pairs in either order."""
    head, _, last = word.rpartition(" ")
    prefix = f"{head} " if head else ""
    plurals = [last + "s", last + "es"]
    if last.endswith("y") and len(last) > 2 and last[-2] not in "aeiou":
        plurals.append(last[:-1] + "ies")
    plurals.extend(plural for plural, singular in _IRREGULAR_PLURALS.items() if singular == last)
    return _singular_forms(word) + [prefix + plural for plural in plurals]
