"""Keyword precision, recall and F1 against the keywords the user's photos already carry: pure functions.

Both lists go through the library's keyword clean-up
(:func:`~captioneer.desktop.library.keywords.clean_keywords`: whitespace, quotes, dates and numbers, prompt
echoes, case and singular/plural variants merged) and the user's keyword map, a vocabulary file as
``captioneer tag --vocabulary`` reads it (``keyword = synonym, synonym``), with words outside it kept. A
predicted keyword matches a true one case-insensitively and singular/plural-tolerantly. Scores are
micro-averaged: summed over the photos that carry keywords of their own.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from captioneer.desktop.library.keywords import CleanupRules, Vocabulary, clean_keywords, read_vocabulary


@dataclass(frozen=True)
class KeywordCounts:
    """Matches summed over photos: ``hits`` true keywords found, of ``predicted`` keywords given and
    ``truth`` true ones, over ``photos`` photos."""

    hits: int = 0
    predicted: int = 0
    truth: int = 0
    photos: int = 0

    def __add__(self, other: KeywordCounts) -> KeywordCounts:
        return KeywordCounts(
            self.hits + other.hits, self.predicted + other.predicted, self.truth + other.truth,
            self.photos + other.photos,
        )

    @property
    def precision(self) -> float | None:
        """Share of the predicted keywords that are true (None: nothing predicted)."""
        return self.hits / self.predicted if self.predicted else None

    @property
    def recall(self) -> float | None:
        """Share of the true keywords that were predicted (None: no true keywords)."""
        return self.hits / self.truth if self.truth else None

    @property
    def f1(self) -> float | None:
        """Harmonic mean of precision and recall, 2·hits / (predicted + truth) (None: neither has any)."""
        total = self.predicted + self.truth
        return 2 * self.hits / total if total else None


def normalise_keywords(keywords: Iterable[object], keyword_map: Vocabulary | None = None) -> list[str]:
    """``keywords`` cleaned up as the library cleans a model's keywords and mapped through ``keyword_map``
    (words outside it are kept), with no cap on their number."""
    rules = CleanupRules(max_count=sys.maxsize, vocabulary=keyword_map or Vocabulary(), vocabulary_only=False)
    return clean_keywords(keywords, rules)


def photo_counts(
    predicted: Iterable[object], truth: Iterable[object], keyword_map: Vocabulary | None = None
) -> KeywordCounts:
    """How ``predicted`` keywords did against one photo's ``truth``; a photo without true keywords (after
    clean-up) counts nothing, not even its predictions."""
    true_keywords = normalise_keywords(truth, keyword_map)
    if not true_keywords:
        return KeywordCounts()
    given = normalise_keywords(predicted, keyword_map)
    index = Vocabulary(terms=tuple(true_keywords))
    hits = {found for keyword in given if (found := index.lookup(keyword)) is not None}
    return KeywordCounts(len(hits), len(given), len(true_keywords), 1)


def micro_average(counts: Iterable[KeywordCounts]) -> KeywordCounts:
    """The counts of several photos summed (read precision, recall and F1 off the result)."""
    return sum(counts, KeywordCounts())


def load_keyword_map(path: Path) -> Vocabulary:
    """Read a keyword map: a vocabulary file (one keyword a line, ``keyword = synonym, synonym``, ``#``
    comments).

    Raises:
        ConfigurationError: the file cannot be read or names no keyword.
    """
    return read_vocabulary(path, "the keyword map")
