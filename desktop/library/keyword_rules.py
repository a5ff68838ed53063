"""Keyword control for a run: how many keywords, required and banned ones, singular/plural, "x and y" split,
prompt echoes and the output language's script. Pure functions on top of :func:`clean_keywords`.

The rules, in the order :func:`control_keywords` applies them:

1. ``split_and``: "sun and sea" / "sun & sea" become "sun" and "sea", unless the phrase is a vocabulary term
   or a fixed phrase (:data:`FIXED_PHRASES`: "black and white", "rock and roll"…).
2. Banned words (``excluded``) are never kept: a keyword is dropped when a banned word or phrase equals it or
   appears in it as whole words, case- and singular/plural-insensitively (banning "dog" drops "Dogs" and
   "hot dog", not "dogma" or "hotdog").
3. ``drop_prompt_words``: a keyword that is a word or phrase of the task's own prompt ("library",
   "searching", "short phrases") is dropped. Only the task's prompt counts, never what is filled into it:
   vocabulary terms and context (a place name, an event) stay legitimate keywords.
4. ``script_only``: a keyword with a letter outside the output language's script is dropped (an English run
   drops Cyrillic and CJK keywords). Latin letters are always allowed, so a Japanese or Russian run keeps
   brand names and acronyms ("iPhone", "BMW"); Han, Hiragana and Katakana count as one script (Japanese
   mixes them). Languages whose script is not known are not filtered.
5. :func:`clean_keywords` (trimming, junk, vocabulary, duplicates).
6. ``number``: ``singular`` or ``plural`` rewrites the last word of English keywords (runs in English only);
   vocabulary terms, required keywords, capitalised names ("Athens", "Alps"), phrases with a linking word
   ("man in a suit"), ``-ing`` words (plural only) and the words in :data:`NO_NUMBER` stay as they are.
7. Required keywords come first, always (never filtered, never counted out); then the cap (``max_count``)
   applies to the rest.
8. Fewer than ``min_count`` keywords in all: the result is flagged for review with the reason; nothing is
   invented to pad it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from captioneer.backends.errors import ConfigurationError
from captioneer.desktop.core.tasks import DEFAULT_LANGUAGE, Task
from captioneer.desktop.library.keywords import (
    _IRREGULAR_PLURALS,
    DEFAULT_MAX_LENGTH,
    CleanupRules,
    Vocabulary,
    _fold,
    _singular_forms,
    _tidy,
    clean_keywords,
    is_junk_keyword,
)
from captioneer.desktop.library.quality import english_name, language_script, script_of

NUMBER_CHOICES = ("keep", "singular", "plural")
"""How keywords' grammatical number is normalised: as the model said, all singular, all plural."""

FIXED_PHRASES = frozenset(
    {
        "arts and crafts",
        "bed and breakfast",
        "black and white",
        "bread and butter",
        "fish and chips",
        "hide and seek",
        "research and development",
        "rock and roll",
        "salt and pepper",
        "sweet and sour",
        "law and order",
        "pros and cons",
    }
)
"""Phrases with "and" that name one thing and are never split (a vocabulary term is never split either)."""

NO_NUMBER = frozenset(
    {
        # Singular words that end like plurals, and plural-only words: never made singular.
        "news", "jeans", "glasses", "sunglasses", "scissors", "trousers", "pants", "shorts", "clothes",
        "series", "species", "physics", "mathematics", "athletics", "gymnastics", "politics", "economics",
        "lens", "canvas", "chaos", "gas", "atlas", "christmas", "billiards", "headquarters", "stairs",
        "goods", "outdoors", "surroundings", "binoculars", "means",
        # The same in both numbers.
        "sheep", "deer", "fish", "aircraft", "salmon", "trout", "offspring",
        # Mass nouns: never made plural.
        "water", "snow", "sand", "grass", "sky", "nature", "architecture", "food", "music", "art", "light",
        "sunlight", "moonlight", "rain", "fog", "mist", "ice", "wood", "hair", "fur", "furniture",
        "equipment", "clothing", "scenery", "weather", "traffic", "wildlife", "foliage", "greenery", "travel",
        "nightlife", "steam", "smoke", "dust", "mud", "information", "luggage", "jewelry", "jewellery",
    }
)  # fmt: skip
"""Words :func:`singular_of` and :func:`plural_of` leave alone."""

_EXTRA_PLURALS = {"tomatoes": "tomato", "potatoes": "potato", "heroes": "hero", "buses": "bus"}
# A phrase with one of these ("man in a suit") has no single number to change: it stays as it is.
_LINKING = frozenset({"a", "an", "the", "in", "on", "at", "with", "of", "and", "for", "by", "under", "over"})
_SINGULAR_OF = {**_IRREGULAR_PLURALS, **_EXTRA_PLURALS}
_PLURAL_OF = {singular: plural for plural, singular in _SINGULAR_OF.items()}
_AND = re.compile(r"\s+(?:and|&)\s+", re.IGNORECASE)
_WORDS = re.compile(r"\w+(?:['’]\w+)*")
_PLACEHOLDER = re.compile(r"\{[^}]*\}")


@dataclass(frozen=True)
class KeywordRules:
    """A run's keyword control (defaults change nothing: a run without choices keeps today's keywords).

    Attributes:
        min_count: fewer keywords than this (in all) flags the result for review.
        required: keywords every result gets, first, in this spelling.
        excluded: banned words and phrases (see the module's rule 2).
        number: one of :data:`NUMBER_CHOICES`.
        split_and: split "x and y" / "x & y" into two keywords.
        script_only: keep only keywords in the output language's script.
        language: the run's output language (for ``number`` and ``script_only``).
        prompt_words: the task's prompt, as :func:`prompt_words` gives it; empty = no prompt echo check.
    """

    min_count: int = 0
    required: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    number: str = "keep"
    split_and: bool = False
    script_only: bool = False
    language: str = DEFAULT_LANGUAGE
    prompt_words: tuple[str, ...] = ()


def check_rules(rules: KeywordRules, max_count: int) -> None:
    """Refuse choices that contradict each other, before a run starts.

    Raises:
        ConfigurationError: an unknown ``number``, a minimum above the maximum, or a word both required and
            banned.
    """
    if rules.number not in NUMBER_CHOICES:
        raise ConfigurationError(
            f"Unknown keyword number '{rules.number}': choose one of {', '.join(NUMBER_CHOICES)}."
        )
    if rules.min_count < 0 or rules.min_count > max_count:
        raise ConfigurationError(
            f"The minimum number of keywords ({rules.min_count}) must be between 0 and the maximum "
            f"({max_count}): lower the minimum or raise the maximum."
        )
    both = [word for word in rules.required if is_banned(word, rules.excluded)]
    if both:
        raise ConfigurationError(
            f"'{both[0]}' is both required and banned: take it out of one of the two lists."
        )


def parse_keyword_list(text: str) -> tuple[str, ...]:
    """Keywords typed or kept in a file: separated by commas or new lines, ``#`` starts a comment line;
    tidied, duplicates (case-insensitive) dropped, order kept."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        for part in line.split(","):
            keyword = _tidy(part)
            if keyword:
                found.setdefault(_fold(keyword), keyword)
    return tuple(found.values())


def prompt_words(task: Task) -> tuple[str, ...]:
    """The words of ``task``'s own prompt and system prompt, folded, in order, without what is filled in
    (language, vocabulary, context): what a keyword must not merely repeat."""
    text = _PLACEHOLDER.sub(" ", f"{task.prompt} {task.system or ''}")
    return tuple(_WORDS.findall(_fold(text)))


def control_keywords(
    keywords: Iterable[object], cleanup: CleanupRules, rules: KeywordRules
) -> tuple[list[str], list[str]]:
    """A model's keywords under the run's keyword control: the keywords kept and the problems found
    (the module's docstring lists the rules in order)."""
    candidates = [_tidy(value) for value in keywords if isinstance(value, str)]
    if rules.split_and:
        candidates = [part for keyword in candidates for part in split_and(keyword, cleanup.vocabulary)]
    required_folded = {_fold(word) for word in rules.required}
    candidates = [
        keyword
        for keyword in candidates
        if _fold(keyword) in required_folded
        or not (
            is_banned(keyword, rules.excluded)
            or (rules.prompt_words and echoes_prompt(keyword, rules.prompt_words, cleanup.vocabulary))
            or (rules.script_only and not in_script(keyword, rules.language))
        )
    ]
    cleaned = clean_keywords(candidates, replace(cleanup, max_count=len(candidates) + 1))
    if rules.number != "keep" and english_name(rules.language) == "english":
        keep_as_is = required_folded | {_fold(term) for term in cleanup.vocabulary.terms}
        cleaned = _dedupe(
            keyword if _fold(keyword) in keep_as_is else set_number(keyword, rules.number)
            for keyword in cleaned
        )
    required = list(_dedupe(_tidy(word) for word in rules.required))
    others = [keyword for keyword in cleaned if _fold(keyword) not in required_folded]
    kept = required + others[: max(0, cleanup.max_count - len(required))]
    problems = []
    if len(kept) < rules.min_count:
        problems.append(f"only {len(kept)} keywords, fewer than the {rules.min_count} asked for")
    return kept, problems


def top_vocabulary(counts: Iterable[tuple[str, int]], top: int) -> Vocabulary:
    """The ``top`` most-used keywords of a library as a vocabulary, from its keyword counts (most used first,
    as :func:`~captioneer.desktop.library.browse.keyword_counts` gives them); junk, over-long and duplicate
    entries left out.

    Raises:
        ConfigurationError: ``top`` is below 1, or the library has no keywords yet.
    """
    if top < 1:
        raise ConfigurationError(f"The vocabulary needs at least 1 keyword, not {top}.")
    terms: dict[str, str] = {}
    for value, _count in counts:
        keyword = _tidy(value)
        if keyword and len(keyword) <= DEFAULT_MAX_LENGTH and not is_junk_keyword(keyword):
            terms.setdefault(_fold(keyword), keyword)
        if len(terms) >= top:
            break
    if not terms:
        raise ConfigurationError(
            "The library has no keywords yet to make a vocabulary of: tag or import some photos first, or "
            "choose a vocabulary file."
        )
    return Vocabulary(terms=tuple(terms.values()))


def split_and(keyword: str, vocabulary: Vocabulary | None = None) -> list[str]:
    """``keyword`` split at "and" / "&" into its parts, or whole when it is a fixed phrase or a vocabulary
    term."""
    parts = [part for part in _AND.split(keyword) if part.strip()]
    fixed = _AND.sub(" and ", _fold(keyword)) in FIXED_PHRASES
    if len(parts) < 2 or fixed or (vocabulary is not None and vocabulary.lookup(keyword)):
        return [keyword]
    return parts


def is_banned(keyword: str, excluded: Sequence[str]) -> bool:
    """Whether a banned word or phrase equals ``keyword`` or appears in it as whole words (case- and
    singular/plural-insensitive)."""
    words = _WORDS.findall(_fold(keyword))
    for banned in excluded:
        banned_words = _WORDS.findall(_fold(banned))
        if banned_words and _contains(words, banned_words):
            return True
    return False


def echoes_prompt(keyword: str, words: Sequence[str], vocabulary: Vocabulary | None = None) -> bool:
    """Whether ``keyword`` is only a word or a phrase of the prompt (``words``, see :func:`prompt_words`);
    vocabulary terms never are."""
    if vocabulary is not None and vocabulary.lookup(keyword):
        return False
    own = _WORDS.findall(_fold(keyword))
    return bool(own) and _contains(list(words), own)


def in_script(keyword: str, language: str) -> bool:
    """Whether every letter of ``keyword`` is in ``language``'s script or Latin (brand names, acronyms); true
    for languages whose script is not known."""
    script = language_script(language)
    if script is None:
        return True
    return all(script_of(ch) in (script, "LATIN") for ch in keyword if ch.isalpha())


def set_number(keyword: str, number: str) -> str:
    """``keyword`` with its last word made ``singular`` or ``plural`` (English rules); ``keep``, capitalised
    names and :data:`NO_NUMBER` words unchanged."""
    head, space, last = keyword.rpartition(" ")
    if number == "keep" or not last.islower() or last in NO_NUMBER or _LINKING & set(head.casefold().split()):
        return keyword
    changed = singular_of(last) if number == "singular" else plural_of(last)
    return f"{head}{space}{changed}"


def singular_of(word: str) -> str:
    """The singular of an English (lower-case) word; words that do not look plural come back unchanged."""
    if word in NO_NUMBER or word.endswith(("ss", "us", "is")):
        return word
    if word in _SINGULAR_OF:
        return _SINGULAR_OF[word]
    forms = _singular_forms(word)
    if not forms:
        return word
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("ies") and word[:-3] + "y" in forms:
        return word[:-3] + "y"
    return word[:-1] if word[:-1] in forms else forms[-1]


def plural_of(word: str) -> str:
    """The plural of an English (lower-case) word; words that already look plural, mass nouns and ``-ing``
    words come back unchanged."""
    if word in NO_NUMBER or word in _SINGULAR_OF or (word.endswith("ing") and len(word) > 5):
        return word
    if word in _PLURAL_OF:
        return _PLURAL_OF[word]
    if singular_of(word) != word:
        return word
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and len(word) > 2 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def _contains(words: Sequence[str], phrase: Sequence[str]) -> bool:
    """Whether ``phrase`` occurs in ``words`` as consecutive whole words, each singular/plural-insensitive."""
    width = len(phrase)
    return any(
        all(_same_word(words[start + index], phrase[index]) for index in range(width))
        for start in range(len(words) - width + 1)
    )


def _same_word(left: str, right: str) -> bool:
    return left == right or left in _singular_forms(right) or right in _singular_forms(left)


def _dedupe(keywords: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    kept = []
    for keyword in keywords:
        if _fold(keyword) not in seen:
            seen.add(_fold(keyword))
            kept.append(keyword)
    return kept
