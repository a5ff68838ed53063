"""Keyword hierarchies: paths like ``Places|Europe|France|Paris`` and the readers of keyword-list files.

Three formats are read, all pure text → :class:`KeywordList`:

- Captioneer's own: one keyword a line, levels separated by ``|`` (Lightroom's separator), ``[Level]`` in
  square brackets for a grouping level that is not written as a keyword of its own, synonyms after ``=``
  (``Places|Europe|France|Paris = Paree, Ville Lumière``), ``#`` comments. A line without ``|`` is a flat
  keyword, exactly as before hierarchies existed.
- digiKam's paths (``Places/Europe/France/Paris``): the same format with ``/`` as the separator, which a file
  asks for with a first line ``# separator: /``. ``/`` never separates levels otherwise, because ordinary
  keywords contain it (``AC/DC``, ``24/7``).
- Lightroom Classic's "Metadata ▸ Export Keywords…" text: one keyword a line, each child indented by one TAB
  more than its parent, ``[Keyword]`` for "Include on Export" off, ``{Synonym}`` lines one TAB under their
  keyword. Recognised by those tabs and braces.

:func:`vocabulary_parts` decides what a list offers the model: its **leaves** (keywords with no children,
not bracketed), each with its path. A name found at two different paths (``Paris`` under France and under
Texas) is *ambiguous*: it is still offered, but written without a path, as a flat keyword, since nothing
tells which Paris a photo shows.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

from captioneer.backends.errors import ConfigurationError

SEPARATOR = "|"
"""Levels in Captioneer's format, Lightroom's lr:hierarchicalSubject and in what runs store."""
_SEPARATOR_HEADER = re.compile(r"#\s*separator\s*[:=]\s*(\S)\s*", re.IGNORECASE)
_STAND_IN = "\u00a6"  # ¦: a "|" inside one level's name, so that it never adds a level


def _clean(text: str) -> str:
    """NFC, no control characters, inner whitespace collapsed, trimmed."""
    text = unicodedata.normalize("NFC", text)
    kept = (ch for ch in text if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf"))
    return " ".join("".join(kept).split())


def _fold(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


@dataclass(frozen=True)
class KeywordPath:
    """A keyword's place in a hierarchy: its levels from the top, the keyword itself last.

    Attributes:
        levels: the names of the levels (``("Places", "Europe", "France", "Paris")``).
        hidden: indexes of the levels that are grouping levels only (Lightroom's "Include on Export" off,
            written ``[Places]``): part of the hierarchical path, never a flat keyword.
    """

    levels: tuple[str, ...]
    hidden: frozenset[int] = frozenset()

    @classmethod
    def parse(cls, text: str, separator: str = SEPARATOR) -> KeywordPath:
        """Read ``[Places]|Europe|France|Paris`` (empty levels are dropped; ``¦`` in a level is the ``|``
        that :meth:`text` wrote in its place)."""
        levels: list[str] = []
        hidden: set[int] = set()
        for raw in text.split(separator):
            name, shown = _level(raw.replace(_STAND_IN, SEPARATOR) if separator == SEPARATOR else raw)
            if name:
                if not shown:
                    hidden.add(len(levels))
                levels.append(name)
        return cls(tuple(levels), frozenset(hidden))

    @property
    def leaf(self) -> str:
        """The keyword itself: the last level."""
        return self.levels[-1]

    @property
    def exported(self) -> bool:
        """Whether the keyword itself is written (not a bracketed grouping level)."""
        return len(self.levels) - 1 not in self.hidden

    def parents(self) -> tuple[str, ...]:
        """The levels above the keyword that are keywords too, top first (Lightroom's "Export Containing
        Keywords"): ``[Places]|Europe|France|Paris`` → ``("Europe", "France")``."""
        return tuple(name for index, name in enumerate(self.levels[:-1]) if index not in self.hidden)

    def text(self) -> str:
        """The path in Captioneer's format: ``[Places]|Europe|France|Paris``."""
        return SEPARATOR.join(
            f"[{name}]" if index in self.hidden else name
            for index, name in enumerate(level.replace(SEPARATOR, _STAND_IN) for level in self.levels)
        )

    def key(self) -> tuple[str, ...]:
        """The levels compared case-insensitively (two spellings of one path are one path)."""
        return tuple(_fold(level) for level in self.levels)


def _level(raw: str) -> tuple[str, bool]:
    """(a level's name, whether it is exported) from ``Europe`` or ``[Places]``."""
    text = _clean(raw)
    if len(text) > 2 and text.startswith("[") and text.endswith("]"):
        return _clean(text[1:-1]), False
    return text, True


@dataclass(frozen=True)
class ListedKeyword:
    """One keyword of a list: where it sits and the other words that mean it."""

    path: KeywordPath
    synonyms: tuple[str, ...] = ()


@dataclass(frozen=True)
class KeywordList:
    """What a keyword-list file holds: every keyword with its path, parents before children, each path once.

    ``style`` names the format it was read in: ``captioneer``, ``digikam`` or ``lightroom``.
    """

    keywords: tuple[ListedKeyword, ...]
    style: str = "captioneer"

    def levels(self) -> int:
        """How deep the hierarchy goes (1 for a flat list)."""
        return max((len(item.path.levels) for item in self.keywords), default=0)


class _Collector:
    """Gathers paths in file order, adding the parents a line implies and merging repeated paths."""

    def __init__(self) -> None:
        self.order: list[tuple[str, ...]] = []
        self.paths: dict[tuple[str, ...], KeywordPath] = {}
        self.synonyms: dict[tuple[str, ...], list[str]] = {}

    def add(self, path: KeywordPath, synonyms: Iterable[str] = ()) -> None:
        for depth in range(1, len(path.levels) + 1):
            prefix = KeywordPath(path.levels[:depth], frozenset(i for i in path.hidden if i < depth))
            key = prefix.key()
            if key not in self.paths:  # the first line that names a level decides its spelling and brackets
                self.order.append(key)
                self.paths[key] = prefix
                self.synonyms[key] = []
        listed = self.synonyms[path.key()]
        for synonym in synonyms:
            synonym = _clean(synonym)
            if synonym and _fold(synonym) not in {_fold(s) for s in listed}:
                listed.append(synonym)

    def result(self, style: str) -> KeywordList:
        return KeywordList(
            tuple(ListedKeyword(self.paths[key], tuple(self.synonyms[key])) for key in self.order), style
        )


def parse_path_list(text: str, separator: str = SEPARATOR, source: str = "the vocabulary") -> KeywordList:
    """Captioneer's format (``separator`` ``|``) or digiKam's paths (``/``): a keyword or path a line,
    synonyms after ``=``, ``#`` comments.

    Raises:
        ConfigurationError: a line maps synonyms to no keyword.
    """
    collector = _Collector()
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        left, _, variants = line.partition("=")
        path = KeywordPath.parse(left, separator)
        if not path.levels:
            raise ConfigurationError(f"{source}, line {number}: a synonym line needs a keyword before '='.")
        collector.add(path, variants.split(","))
    return collector.result("digikam" if separator == "/" else "captioneer")


def parse_lightroom(text: str, source: str = "the keyword list") -> KeywordList:
    """Lightroom Classic's exported keyword list: children indented one TAB under their parent,
    ``[Keyword]`` with "Include on Export" off, ``{Synonym}`` one TAB under its keyword.

    Raises:
        ConfigurationError: a line is indented deeper than one level under the keyword above it, or a
            synonym comes before any keyword.
    """
    collector = _Collector()
    stack: list[KeywordPath] = []
    for number, raw_line in enumerate(text.splitlines(), start=1):
        body = raw_line.strip()
        if not body:
            continue
        depth = len(raw_line) - len(raw_line.lstrip("\t"))
        if len(body) > 2 and body.startswith("{") and body.endswith("}"):
            if not stack:
                raise ConfigurationError(
                    f"{source}, line {number}: the synonym {body} comes before any keyword."
                )
            owner = stack[min(max(depth, 1), len(stack)) - 1]
            collector.add(owner, [body[1:-1]])
            continue
        if depth > len(stack):
            raise ConfigurationError(
                f"{source}, line {number}: {body!r} is indented {depth} tabs under a keyword at level "
                f"{len(stack)}; Lightroom's format indents each child one tab more than its parent."
            )
        name, shown = _level(body)
        parent = stack[depth - 1] if depth else KeywordPath(())
        hidden = parent.hidden | ({len(parent.levels)} if not shown else set())
        path = KeywordPath((*parent.levels, name), frozenset(hidden))
        stack = [*stack[:depth], path]
        collector.add(path)
    return collector.result("lightroom")


def looks_like_lightroom(text: str) -> bool:
    """Whether a file is Lightroom's export: some line indented by a TAB, or a ``{synonym}`` line."""
    for line in text.splitlines():
        body = line.strip()
        if line.startswith("\t") and body:
            return True
        if len(body) > 2 and body.startswith("{") and body.endswith("}"):
            return True
    return False


def declared_separator(text: str) -> str | None:
    """The separator a ``# separator: /`` first line declares, or None."""
    for line in text.splitlines():
        if line.strip():
            match = _SEPARATOR_HEADER.fullmatch(line.strip())
            return match.group(1) if match else None
    return None


def parse_keyword_list(text: str, source: str = "the vocabulary") -> KeywordList:
    """Any supported keyword list, its format detected: a ``# separator: X`` first line, else Lightroom's
    tabs and braces, else Captioneer's format.

    Raises:
        ConfigurationError: the text is malformed (see :func:`parse_path_list`, :func:`parse_lightroom`).
    """
    text = text.removeprefix("\ufeff")
    separator = declared_separator(text)
    if separator is not None:
        return parse_path_list(text, separator, source)
    if looks_like_lightroom(text):
        return parse_lightroom(text, source)
    return parse_path_list(text, SEPARATOR, source)


@dataclass(frozen=True)
class VocabularyParts:
    """What a keyword list gives a vocabulary.

    Attributes:
        terms: the leaves offered to the model (keywords with no children, not bracketed), in file order,
            each name once.
        synonyms: the synonyms of those leaves, ``(variant, term)`` in file order.
        paths: the path of every keyword with more than one level whose name has a single path (leaves and
            the levels above them, so a keyword added in review gets its path too).
        ambiguous: names found at more than one path: offered (when a leaf) but written without one.
        hidden: how many bracketed grouping levels the list has.
    """

    terms: tuple[str, ...] = ()
    synonyms: tuple[tuple[str, str], ...] = ()
    paths: dict[str, KeywordPath] = field(default_factory=dict)
    ambiguous: dict[str, tuple[KeywordPath, ...]] = field(default_factory=dict)
    hidden: int = 0


def vocabulary_parts(listing: KeywordList) -> VocabularyParts:
    """Decide the leaves, synonyms and paths of a keyword list (see :class:`VocabularyParts`)."""
    keys = [item.path.key() for item in listing.keywords]
    parents = {key[:-1] for key in keys}
    by_name: dict[str, list[KeywordPath]] = {}
    for item in listing.keywords:
        if item.path.exported:
            by_name.setdefault(_fold(item.path.leaf), []).append(item.path)
    terms: dict[str, str] = {}
    synonyms: list[tuple[str, str]] = []
    for item, key in zip(listing.keywords, keys, strict=True):
        if key in parents or not item.path.exported:
            continue
        term = terms.setdefault(_fold(item.path.leaf), item.path.leaf)
        synonyms += [(synonym, term) for synonym in item.synonyms]
    paths = {
        found[0].leaf: found[0] for found in by_name.values() if len(found) == 1 and len(found[0].levels) > 1
    }
    ambiguous = {found[0].leaf: tuple(found) for found in by_name.values() if len(found) > 1}
    hidden = sum(len(item.path.levels) - 1 in item.path.hidden for item in listing.keywords)
    return VocabularyParts(tuple(terms.values()), tuple(synonyms), paths, ambiguous, hidden)


def to_captioneer_text(listing: KeywordList, header: str = "") -> str:
    """A keyword list in Captioneer's format: a line per leaf and per keyword with synonyms (the levels
    above are implied by the paths), ``header`` first as ``#`` comments."""
    keys = [item.path.key() for item in listing.keywords]
    parents = {key[:-1] for key in keys}
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    for item, key in zip(listing.keywords, keys, strict=True):
        if key in parents and not item.synonyms:
            continue
        synonyms = ", ".join(s.replace(",", " ") for s in item.synonyms)
        lines.append(f"{item.path.text()} = {synonyms}" if synonyms else item.path.text())
    return "\n".join(lines) + "\n"
