"""The full-text index of results (SQLite FTS5), kept in step by triggers, and search words made into safe
FTS5 MATCH expressions.

``results_fts`` holds one row per result (its rowid is the result's id) with the caption, title, alt
text, keywords and OCR text, tokenised with the Porter stemmer (``sunsets`` finds ``sunset``), accents
folded (``cafe`` finds ``Café``) and 2- and 3-letter prefix indexes. ``results_words`` indexes the same
text unstemmed, for prefix searches. Triggers on ``results`` keep both in step with every insert, edit and
delete (a photo's or a run's results go with it by cascade, and cascades fire triggers).

An SQLite built without FTS5 cannot use (or even update) the index: on such a connection the triggers are
dropped and searches fall back to plain substring matching; the next open with FTS5 rebuilds the index.
"""

from __future__ import annotations

import sqlite3

FTS_TABLE = "results_fts"
WORDS_TABLE = "results_words"
"""The unstemmed index of the same text, for prefix searches (``sun*``)."""
COLUMNS = ("caption", "title", "alt", "keywords", "ocr")
"""The index's columns, as the search fields ``caption:``, ``title:``, ``alt:``, ``ocr:`` name them."""
TRIGGERS = ("results_fts_insert", "results_fts_update", "results_fts_delete")
TEXT_TASKS = ("ocr",)
"""The tasks whose field table said they read the text in the image when the index was introduced (their
caption is that text): the migration fills the OCR text of their existing results."""

NO_FTS5 = (
    "This Python's SQLite has no full-text search (FTS5): searches match text as plain substrings, without "
    "stemming, prefixes or relevance order. Use a Python whose sqlite3 module includes FTS5 (python.org and "
    "most Linux builds do) for the full search."
)


def _values(row: str) -> str:
    """The index's column values for the results row named ``row`` (``new`` in a trigger, ``r`` in a rebuild).

    Keywords are indexed as their text; a damaged keyword list (not JSON) is indexed as nothing rather than
    failing the write that stored it."""
    keywords = (
        "(SELECT COALESCE(group_concat(k.value, ', '), '') FROM json_each("
        f"CASE WHEN json_valid({row}.keywords) THEN {row}.keywords ELSE '[]' END) k)"
    )
    return (
        f"{row}.id, COALESCE({row}.caption, ''), COALESCE({row}.title, ''), COALESCE({row}.alt_text, ''), "
        f"{keywords}, COALESCE({row}.ocr_text, '')"
    )


_NAMES = ", ".join(COLUMNS)
_INSERT = f"INSERT INTO {FTS_TABLE} (rowid, {_NAMES})"
_CREATE = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5({_NAMES}, "
    "tokenize = 'porter unicode61 remove_diacritics 2', prefix = '2 3')",
    # The same words unstemmed, for prefix searches: the stemmed index holds "running" as "run", so "runni*"
    # could never match there. Its text is read from results_fts (external content): stored once.
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {WORDS_TABLE} USING fts5({_NAMES}, content = '{FTS_TABLE}', "
    "content_rowid = 'rowid', tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3')",
)
# An external-content index forgets a row by being handed the exact values it indexed: read them from
# results_fts before that row goes, and index a new row from what results_fts just stored.
_FORGET_WORDS = (
    f"INSERT INTO {WORDS_TABLE} ({WORDS_TABLE}, rowid, {_NAMES}) "
    f"SELECT 'delete', rowid, {_NAMES} FROM {FTS_TABLE} WHERE rowid = old.id"
)
_ADD_WORDS = (
    f"INSERT INTO {WORDS_TABLE} (rowid, {_NAMES}) "
    f"SELECT rowid, {_NAMES} FROM {FTS_TABLE} WHERE rowid = new.id"
)
_CREATE_TRIGGERS = (
    f"CREATE TRIGGER IF NOT EXISTS results_fts_insert AFTER INSERT ON results BEGIN "
    f"{_INSERT} SELECT {_values('new')}; {_ADD_WORDS}; END",
    # Only the indexed columns: a review state or a "current" flag changing leaves the index alone.
    "CREATE TRIGGER IF NOT EXISTS results_fts_update AFTER UPDATE OF caption, title, alt_text, keywords, "
    f"ocr_text ON results BEGIN {_FORGET_WORDS}; DELETE FROM {FTS_TABLE} WHERE rowid = old.id; "
    f"{_INSERT} SELECT {_values('new')}; {_ADD_WORDS}; END",
    f"CREATE TRIGGER IF NOT EXISTS results_fts_delete AFTER DELETE ON results BEGIN "
    f"{_FORGET_WORDS}; DELETE FROM {FTS_TABLE} WHERE rowid = old.id; END",
)


def fts5_available(db: sqlite3.Connection) -> bool:
    """Whether this connection's SQLite was built with FTS5."""
    return bool(db.execute("SELECT sqlite_compileoption_used('ENABLE_FTS5')").fetchone()[0])


def _triggers_present(db: sqlite3.Connection) -> int:
    marks = ",".join("?" * len(TRIGGERS))
    row = db.execute(
        f"SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND name IN ({marks})", TRIGGERS
    ).fetchone()
    return int(row[0])


STALE = (
    "The catalog's full-text index was left behind by an SQLite without FTS5: searches match text as plain "
    "substrings until a command that writes to the catalog (captioneer tag, or opening the library window) "
    "rebuilds it."
)


def unusable_reason(db: sqlite3.Connection) -> str | None:
    """Why searches cannot use the index on this connection (one line for the user), or None if they can."""
    if not fts5_available(db):
        return NO_FTS5
    return None if _triggers_present(db) == len(TRIGGERS) else STALE


def index_ready(db: sqlite3.Connection) -> bool:
    """Whether searches can use the index: FTS5 is here and the triggers have kept the index in step."""
    return fts5_available(db) and _triggers_present(db) == len(TRIGGERS)


def sync_index(db: sqlite3.Connection) -> bool:
    """Make the index usable on a writable connection, or stop it from blocking writes; returns whether
    searches can use it.

    With FTS5, a missing index or trigger (a catalog last written by an SQLite without FTS5) means the index
    may be stale: it is rebuilt from every result. Without FTS5 the triggers are dropped (each write to a
    result would fail on them). Runs inside the caller's transaction if there is one,
    else in its own."""
    if fts5_available(db):
        if _triggers_present(db) == len(TRIGGERS):
            return True
        with _transaction(db):
            for statement in (*_CREATE, *_CREATE_TRIGGERS):
                db.execute(statement)
            db.execute(f"DELETE FROM {FTS_TABLE}")
            db.execute(f"{_INSERT} SELECT {_values('r')} FROM results r")
            # Not 'rebuild': FTS5 refuses it when the content table is itself an FTS5 table.
            db.execute(f"INSERT INTO {WORDS_TABLE} ({WORDS_TABLE}) VALUES ('delete-all')")
            db.execute(f"INSERT INTO {WORDS_TABLE} (rowid, {_NAMES}) SELECT rowid, {_NAMES} FROM {FTS_TABLE}")
        return True
    if _triggers_present(db):
        with _transaction(db):
            for name in TRIGGERS:
                db.execute(f"DROP TRIGGER IF EXISTS {name}")
    return False


class _transaction:
    """The caller's transaction if one is open, else an immediate one committed at the end."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.own = not db.in_transaction

    def __enter__(self) -> None:
        if self.own:
            self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *exc: object) -> None:
        if not self.own:
            return
        if kind is None:
            self.db.commit()
        else:
            self.db.rollback()


# ---------------------------------------------------------------------------------------------------------
# Search words into MATCH expressions. User text never reaches FTS5's query syntax: each word or phrase
# becomes one FTS5 string ("..." with inner quotes doubled), which FTS5 only tokenises, so AND, NEAR, ``-``,
# ``:``, ``*``, ``^`` or parentheses inside it are plain text. Only a ``*`` the user puts at the end of a
# bare word is kept, as FTS5's prefix mark after the string.


def is_prefix(expression: str) -> bool:
    """Whether a :func:`match_expression` is a prefix search, answered by :data:`WORDS_TABLE`."""
    return expression.endswith("*")


def match_expression(value: str, column: str | None = None, *, quoted: bool = False) -> str | None:
    """The FTS5 MATCH expression for one search term: the words of ``value`` as a phrase, in ``column``
    (one of :data:`COLUMNS`; None for any), a prefix search when a bare word ends in ``*`` (``sun*``).
    None when ``value`` has no letter or digit for the index to find (search it as a substring instead)."""
    prefix = not quoted and value.endswith("*")
    words = value.rstrip("*") if prefix else value
    if not any(character.isalnum() for character in words):
        return None
    phrase = '"' + words.replace('"', '""') + '"' + (" *" if prefix else "")
    return f"{column} : {phrase}" if column else phrase
