"""`tag`'s keyword control and folder-rule flags, and the run spec fields they make."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from captioneer.backends.errors import ConfigurationError
from captioneer.desktop.core.user_files import read_user_text
from captioneer.desktop.library.keyword_rules import NUMBER_CHOICES, parse_keyword_list


def add_keyword_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of the "keyword control" group (README: Keyword control, Per-folder rules)."""
    group = parser.add_argument_group("keyword control")
    group.add_argument(
        "--min-keywords", type=int, default=0, metavar="N",
        help="flag a result with fewer than N keywords for review (nothing is invented to pad it)",
    )  # fmt: skip
    group.add_argument(
        "--require", metavar="WORDS",
        help='keywords every photo gets, first: "Client X, Summer Party" or a file (one a line)',
    )  # fmt: skip
    group.add_argument(
        "--exclude", metavar="WORDS",
        help='banned words, never kept, also inside phrases ("dog" drops "hot dogs"): "a, b" or a file',
    )  # fmt: skip
    group.add_argument(
        "--number", choices=NUMBER_CHOICES, default="keep",
        help="make English keywords singular or plural (default: keep, as the model said)",
    )  # fmt: skip
    group.add_argument(
        "--split-and", action="store_true",
        help='split "sun and sea" into two keywords (fixed phrases like "black and white" stay whole)',
    )  # fmt: skip
    group.add_argument(
        "--script-only", action="store_true",
        help="drop keywords in another script than the output language's (Latin brand names stay)",
    )  # fmt: skip
    group.add_argument(
        "--drop-prompt-words", action="store_true",
        help="drop keywords that only repeat words of the task's prompt (\"library\", \"short phrases\")",
    )  # fmt: skip
    group.add_argument(
        "--vocabulary-top", type=int, metavar="N",
        help="use the library's N most-used keywords as the vocabulary (instead of --vocabulary FILE)",
    )  # fmt: skip
    group.add_argument(
        "--rules", type=Path, metavar="FILE",
        help="per-folder rules (TOML): a folder pattern picks the task, vocabulary and keyword choices; "
        "default: folder-rules.toml beside your settings, when it exists",
    )  # fmt: skip


def keyword_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~captioneer.desktop.library.runs.RunSpec` fields the flags choose.

    Raises:
        ConfigurationError: a list file cannot be read, or --vocabulary-top is combined with --vocabulary or
            is below 1.
    """
    if args.vocabulary_top is not None:
        if args.vocabulary is not None:
            raise ConfigurationError("Choose --vocabulary FILE or --vocabulary-top N, not both.")
        if args.vocabulary_top < 1:
            raise ConfigurationError("--vocabulary-top needs a number of keywords of at least 1.")
    return {
        "min_keywords": args.min_keywords,
        "required": keyword_list(args.require, "--require"),
        "excluded": keyword_list(args.exclude, "--exclude"),
        "number": args.number,
        "split_and": args.split_and,
        "script_only": args.script_only,
        "drop_prompt_words": args.drop_prompt_words,
        "vocabulary_top": args.vocabulary_top or 0,
    }


def keyword_list(value: str | None, flag: str) -> tuple[str, ...]:
    """The words a list flag names: the file it names (one a line or comma-separated, ``#`` comments), or
    the text itself, comma-separated.

    Raises:
        ConfigurationError: it names a file that cannot be read or is not UTF-8.
    """
    if value is None:
        return ()
    path = Path(value).expanduser()
    if path.is_file():
        return parse_keyword_list(read_user_text(path, f"the {flag} file"))
    return parse_keyword_list(value)
