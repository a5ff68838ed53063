"""The search language compiled to SQL, and the one text and keyword matching that filters use too.

Words, "quoted phrases", field:value, AND / OR / NOT, -term, parentheses.

``beach sunset`` = both; ``dog OR cat``; ``NOT status:rejected``;
``keyword:"new york" (caption:boat OR -title:ship)``.
Fields: ``keyword:`` (``kw:``, ``tag:``; ``*`` wildcard; the result's keywords and those already in the
photo's files), ``name:`` (``file:``; the file name, ``*`` wildcard: ``name:IMG_12*``), ``caption:``,
``title:``, ``alt:``, ``ocr:`` (the text a task read in the image), ``text:`` (any of the result's text),
``status:``, ``folder:``, ``model:``, ``engine:``, ``run:``, ``task:``, ``type:`` (``photo`` or ``video``, by
the file's suffix). A bare word matches a keyword, any of the result's text or the file name.

Text (bare words and the text fields) is matched through the full-text index
(:mod:`~captioneer.desktop.library.catalog.fts`): whole words, stemmed (``sunsets`` finds ``sunset``),
accents ignored, ``"quoted phrases"`` as phrases, ``sun*`` as a prefix. Where SQLite has no FTS5 the same
search falls back to substring matching.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from captioneer.backends.errors import CaptioneerError
from captioneer.desktop.core.video import VIDEO_SUFFIXES
from captioneer.desktop.library.catalog.fts import FTS_TABLE, WORDS_TABLE, is_prefix, match_expression
from captioneer.desktop.library.catalog.records import REVIEW_STATES, Query, Result
from captioneer.desktop.library.catalog.store import Catalog


class SearchSyntaxError(CaptioneerError):
    """The search text cannot be understood."""

    exit_code = 2


FIELDS = {
    "keyword": "keyword",
    "keywords": "keyword",
    "kw": "keyword",
    "tag": "keyword",
    "caption": "caption",
    "title": "title",
    "alt": "alt",
    "alt_text": "alt",
    "ocr": "ocr",
    "text": "text",
    "status": "status",
    "review": "status",
    "folder": "folder",
    "path": "folder",
    "model": "model",
    "engine": "engine",
    "run": "run",
    "task": "task",
    "name": "name",
    "file": "name",
    "filename": "name",
    "type": "type",
    "kind": "type",
}
_TYPES = {"photo": "photo", "photos": "photo", "image": "photo", "video": "video", "videos": "video"}
_STATUS_ALIASES = {"needs-review": "needs_review", "review": "needs_review", "needsreview": "needs_review"}


@dataclass(frozen=True)
class _Token:
    kind: str  # "(", ")", "AND", "OR", "NOT", "TERM"
    position: int
    field: str | None = None
    value: str = ""
    quoted: bool = False


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<paren>[()])
      | (?P<minus>-)(?=[\w"(])
      | (?:(?P<field>[A-Za-z_]+):)?(?:"(?P<quoted>[^"]*)(?P<closed>")?|(?P<word>[^\s()"]+))
    )""",
    re.VERBOSE,
)


def tokenize(query: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(query):
        if query[position:].strip() == "":
            break
        match = _TOKEN.match(query, position)
        if match is None or match.end() == position:
            raise SearchSyntaxError(
                f"Cannot read the search at character {position + 1}: {query[position:]!r}"
            )
        start = match.start() + (len(match.group(0)) - len(match.group(0).lstrip()))
        if match.group("paren"):
            tokens.append(_Token(match.group("paren"), start))
        elif match.group("minus"):
            tokens.append(_Token("NOT", start))
        else:
            field = match.group("field")
            if match.group("quoted") is not None:
                if not match.group("closed"):
                    raise SearchSyntaxError(f"A quote opened at character {start + 1} is never closed.")
                value = match.group("quoted")
            else:
                value = match.group("word")
                if field is None and value in ("AND", "OR", "NOT"):
                    tokens.append(_Token(value, start))
                    position = match.end()
                    continue
            if field is not None:
                canonical = FIELDS.get(field.lower())
                if canonical is None:
                    known = ", ".join(sorted(set(FIELDS.values())))
                    raise SearchSyntaxError(f"Unknown search field '{field}:'. Use one of: {known}.")
                field = canonical
            tokens.append(_Token("TERM", start, field, value, match.group("quoted") is not None))
        position = match.end()
    return tokens


# The index column each text field searches (None: any of them), and the result columns the substring
# fallback reads for it.
_TEXT_FIELDS: dict[str, str | None] = {
    "caption": "caption",
    "title": "title",
    "alt": "alt",
    "ocr": "ocr",
    "text": None,
}
_FALLBACK_COLUMNS = {
    "caption": ("r.caption",),
    "title": ("r.title",),
    "alt": ("r.alt_text",),
    "ocr": ("r.ocr_text",),
    "text": ("r.caption", "r.title", "r.alt_text", "r.ocr_text", "r.keywords"),
}


class _Parser:
    def __init__(self, tokens: list[_Token], text_index: bool) -> None:
        self.tokens = tokens
        self.index = 0
        self.params: list[Any] = []
        self.text_index = text_index
        self.uses_index = False
        self.negated = 0
        self.rank_terms: dict[str, list[str]] = {FTS_TABLE: [], WORDS_TABLE: []}

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def parse(self) -> str:
        if not self.tokens:
            return "1"
        sql = self.or_expr()
        extra = self.peek()
        if extra is not None:
            raise SearchSyntaxError(
                f"Unexpected '{extra.value or extra.kind}' at character {extra.position + 1}."
            )
        return sql

    def or_expr(self) -> str:
        parts = [self.and_expr()]
        while (token := self.peek()) is not None and token.kind == "OR":
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def and_expr(self) -> str:
        parts = [self.not_expr()]
        while (token := self.peek()) is not None and token.kind in ("AND", "NOT", "TERM", "("):
            if token.kind == "AND":
                self.take()
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def not_expr(self) -> str:
        token = self.peek()
        if token is not None and token.kind == "NOT":
            self.take()
            self.negated += 1
            inner = self.not_expr()
            self.negated -= 1
            return f"NOT {inner}"
        return self.atom()

    def atom(self) -> str:
        token = self.peek()
        if token is None:
            raise SearchSyntaxError("The search ends where a word or a parenthesis was expected.")
        if token.kind == "(":
            self.take()
            inner = self.or_expr()
            closing = self.peek()
            if closing is None or closing.kind != ")":
                raise SearchSyntaxError(f"The parenthesis at character {token.position + 1} is never closed.")
            self.take()
            return inner
        if token.kind != "TERM":
            raise SearchSyntaxError(
                f"Expected a word at character {token.position + 1}, found '{token.kind}'."
            )
        self.take()
        return self.term(token)

    def term(self, token: _Token) -> str:
        value = token.value
        field = token.field
        if field is None:
            if self.text_index:
                # The index holds the result's keywords (as words): only the files' keywords are looked up.
                parts = (self.files_keyword(value), self.text("text", token), self.name(value))
            else:
                parts = (
                    self.keyword(value),
                    self.contains("r.caption", value),
                    self.contains("r.title", value),
                    self.name(value),
                )
            return "(" + " OR ".join(parts) + ")"
        if field == "keyword":
            return self.keyword(value)
        if field == "name":
            return self.name(value)
        if field in _TEXT_FIELDS:
            return self.text(field, token)
        if field == "status":
            state = _STATUS_ALIASES.get(value.lower(), value.lower())
            if state not in REVIEW_STATES:
                raise SearchSyntaxError(f"Unknown status '{value}'. Use one of: {', '.join(REVIEW_STATES)}.")
            self.params.append(state)
            return "r.review = ?"
        if field == "folder":
            return self.folder(value)
        if field == "type":
            kind = _TYPES.get(value.lower())
            if kind is None:
                raise SearchSyntaxError(f"Unknown type '{value}'. Use type:photo or type:video.")
            return is_video("p.path") if kind == "video" else f"NOT {is_video('p.path')}"
        if field == "run":
            if not value.isdigit():
                raise SearchSyntaxError(f"run: needs a run number, not '{value}'.")
            self.params.append(int(value))
            return "r.run_id = ?"
        column = {"model": "r.model", "engine": "r.engine", "task": "r.task"}[field]
        return self.contains(column, value)

    def keyword(self, value: str) -> str:
        """The result's keywords or the keywords the photo's files already had (read at the last scan)."""
        results, results_params = has_keyword("r.keywords", value)
        files, files_params = has_keyword("p.existing_keywords", value)
        self.params.extend([*results_params, *files_params])
        return f"({results} OR {files})"

    def files_keyword(self, value: str) -> str:
        """The keywords the photo's files already had (read at the last scan; not in the text index)."""
        sql, params = has_keyword("p.existing_keywords", value)
        self.params.extend(params)
        return sql

    def name(self, value: str) -> str:
        """The photo's file name: the whole name with ``*`` wildcards (``IMG_12*``), else any part of it."""
        sql, params = name_matches("p.path", value)
        self.params.extend(params)
        return sql

    def contains(self, column: str, value: str) -> str:
        sql, params = contains(column, value)
        self.params.extend(params)
        return sql

    def text(self, field: str, token: _Token) -> str:
        """A text field (or a bare word, as ``text``) through the full-text index, or as a substring where
        there is no index or the term has no word to look up (``&``)."""
        expression = match_expression(token.value, _TEXT_FIELDS[field], quoted=token.quoted)
        if not self.text_index or expression is None:
            parts = [self.contains(column, token.value) for column in _FALLBACK_COLUMNS[field]]
            return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"
        self.uses_index = True
        table = WORDS_TABLE if is_prefix(expression) else FTS_TABLE
        if self.negated % 2 == 0:
            self.rank_terms[table].append(expression)
        self.params.append(expression)
        # COALESCE: a photo with no result (r.id NULL) has no text, so NOT of this is true for it.
        return f"COALESCE(r.id IN (SELECT rowid FROM {table} WHERE {table} MATCH ?), 0)"

    def folder(self, value: str) -> str:
        if os.path.isabs(value):
            prefix = os.path.abspath(value).rstrip(os.sep) + os.sep
            self.params.extend([len(prefix), prefix])
            return "substr(p.path, 1, ?) = ?"
        self.params.append(os.sep + value.strip(os.sep).casefold() + os.sep)
        return "instr(casefold(p.path), ?) > 0"


# The two rules every search and filter shares: text is matched literally and case-insensitively (no LIKE, so
# ``%``, ``_`` and ``\`` are plain characters), and in keywords ``*`` is the only wildcard.


def contains(column: str, value: str) -> tuple[str, list[Any]]:
    """An SQL condition: the text in ``column`` contains ``value`` (case-insensitive, every character
    literal), and its parameters."""
    return f"instr(casefold(COALESCE({column}, '')), ?) > 0", [value.casefold()]


def is_video(column: str) -> str:
    """An SQL condition: the path in ``column`` names a video clip (its suffix, as the scan tells)."""
    suffixes = " OR ".join(f"casefold({column}) GLOB '*{suffix}'" for suffix in sorted(VIDEO_SUFFIXES))
    return f"({suffixes})"


def name_matches(column: str, value: str) -> tuple[str, list[Any]]:
    """An SQL condition: the file name of the path in ``column`` matches ``value`` (case-insensitive; with a
    ``*`` the whole name must match, ``*`` standing for any run of characters; without one, the name contains
    ``value``), and its parameters."""
    folded = value.casefold()
    if "*" in folded:
        return f"casefold(file_name({column})) GLOB ?", [_glob_literal(folded)]
    return f"instr(casefold(file_name({column})), ?) > 0", [folded]


def _glob_literal(pattern: str) -> str:
    """A GLOB pattern where only ``*`` is a wildcard (``?``, ``[`` and ``]`` are plain characters)."""
    return re.sub(r"([\[\]?])", r"[\1]", pattern)


def has_keyword(column: str, value: str) -> tuple[str, list[Any]]:
    """An SQL condition: the JSON keyword list in ``column`` has ``value`` (case-insensitive; ``*`` matches
    any run of characters, every other character is literal), and its parameters."""
    folded = value.casefold()
    if "*" in folded:
        pattern = _glob_literal(folded)
        return f"EXISTS (SELECT 1 FROM json_each({column}) k WHERE casefold(k.value) GLOB ?)", [pattern]
    return f"EXISTS (SELECT 1 FROM json_each({column}) k WHERE casefold(k.value) = ?)", [folded]


def compile_query(text: str, *, text_index: bool = True) -> Query:
    """Turn search text into an SQL condition: text through the full-text index, or (``text_index`` False,
    and in the query's ``fallback``) as substrings.

    Raises:
        SearchSyntaxError: with the position of the problem.
    """
    tokens = tokenize(text)
    parser = _Parser(tokens, text_index)
    where = parser.parse()
    if not parser.uses_index:
        return Query(text=text, where=where, params=tuple(parser.params))
    plain = _Parser(tokens, text_index=False)
    fallback = Query(text=text, where=plain.parse(), params=tuple(plain.params))
    rank, prefix_rank = (
        " OR ".join(f"({t})" for t in parser.rank_terms[table]) for table in (FTS_TABLE, WORDS_TABLE)
    )
    return Query(
        text=text,
        where=where,
        params=tuple(parser.params),
        rank=rank,
        prefix_rank=prefix_rank,
        fallback=fallback,
    )


def search(catalog: Catalog, text: str, *, current_only: bool = True) -> list[Result]:
    """Results matching ``text``, those that match its words best first; by default only each photo's current
    result per task (not the superseded versions)."""
    query = compile_query(text, text_index=catalog.text_index)
    return catalog.results(current_only=current_only, query=query, by_relevance=True)


def snippets(
    catalog: Catalog, query: Query, result_ids: Sequence[int], *, mark: tuple[str, str] = ("[", "]")
) -> dict[int, str]:
    """A short extract around the words ``query`` matched, per result id (``mark`` around each match); empty
    when the query has no words or the full-text index is not usable."""
    if not catalog.text_index or not result_ids:
        return {}
    found: dict[int, str] = {}
    for table, rank in query.ranking():  # whole words first; a prefix's snippet where they matched nothing
        for start in range(0, len(result_ids), 500):
            chunk = [rid for rid in result_ids[start : start + 500] if rid not in found]
            if not chunk:
                continue
            rows = catalog.db.execute(
                f"SELECT rowid, snippet({table}, -1, ?, ?, '…', 12) FROM {table} "
                f"WHERE {table} MATCH ? AND rowid IN ({','.join('?' * len(chunk))})",
                (*mark, rank, *chunk),
            )
            found.update((int(rowid), text) for rowid, text in rows if text)
    return found
