"""Per-folder rules: a folder pattern picks the task, vocabulary and keyword choices for the photos under it.

The rules live in a TOML file the user edits (``folder-rules.toml`` beside ``settings.json``, or
``tag --rules FILE``)::

    [[rule]]
    name = "Products"            # optional: how the rule is shown (default: its folder pattern)
    folder = "*/Products/*"      # which photos: their path relative to their library folder
    task = "product"             # optional: a task preset (captioneer tasks)
    vocabulary = "products.txt"  # optional: a vocabulary file, relative to the rules file
    # optional keyword control, as tag's flags: language, max_keywords, min_keywords, require = [..],
    # exclude = [..], number, split_and, script_only, drop_prompt_words, vocabulary_top, vocabulary_loose

Patterns (:func:`rule_for`, first matching rule wins): the photo's path relative to the library folder it
was scanned under, with ``/`` between folders on every system; ``*`` matches any text, ``/`` included, and
``?`` one character; a leading ``*/`` also matches nothing (``*/Products/*`` takes ``Products/a.jpg`` and
``2024/Shop/Products/b.jpg``); a pattern ending in ``/`` takes everything under that folder. Case follows the
file system's habit: significant on Linux, ignored on macOS and Windows.
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from pathlib import Path, PurePath
from typing import Any, TypeVar

from captioneer.backends.errors import ConfigurationError
from captioneer.desktop.core.context import ContextSpec
from captioneer.desktop.core.paths import config_dir
from captioneer.desktop.core.tasks import get_task
from captioneer.desktop.core.user_files import read_user_text
from captioneer.desktop.library.keyword_rules import NUMBER_CHOICES, parse_keyword_list
from captioneer.desktop.library.keywords import Vocabulary, read_vocabulary
from captioneer.desktop.library.run_spec import RunSpec, context_fields, vocabulary_fields

CASE_SENSITIVE = sys.platform.startswith("linux")
"""Whether patterns match case-sensitively here: Linux file systems are; macOS's and Windows' are not."""

RULES_FILE_NAME = "folder-rules.toml"

_OPTIONS: dict[str, type | tuple[type, ...]] = {
    "language": str,
    "max_keywords": int,
    "min_keywords": int,
    "require": (list, str),
    "exclude": (list, str),
    "number": str,
    "split_and": bool,
    "script_only": bool,
    "drop_prompt_words": bool,
    "vocabulary_top": int,
    "vocabulary_loose": bool,
}
"""A rule's optional keyword choices and their TOML types (names as ``tag``'s flags, ``_`` for ``-``)."""
_AS_IS = frozenset(_OPTIONS) - {"vocabulary_top", "vocabulary_loose"}
"""The options that are a run spec field as they are (under :data:`_SPEC_NAMES`'s name where it differs)."""
_SPEC_NAMES = {"require": "required", "exclude": "excluded"}

Item = TypeVar("Item")


@dataclass(frozen=True)
class FolderRule:
    """One ``[[rule]]``: which photos (``folder``), and what a run asks of them."""

    name: str
    folder: str
    task: str | None = None
    vocabulary: Vocabulary | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """``Products → product`` (the name, and the task when the rule picks one)."""
        return f"{self.name} → {self.task}" if self.task else self.name


RULES_TEMPLATE = """\
# Captioneer's folder rules: a folder pattern picks the task, vocabulary and keyword choices for the photos
# under it. The first matching rule wins; photos no rule takes get the choices made when tagging.
# Patterns are paths relative to the library folder, "/" between folders; * matches anything (folders too),
# a leading */ also matches nothing, a trailing / takes the whole folder. See the README: Per-folder rules.
#
# [[rule]]
# name = "Products"
# folder = "*/Products/*"
# task = "product"
# vocabulary = "products.txt"   # relative to this file
#
# [[rule]]
# name = "Events"
# folder = "Events/"
# require = ["Client X"]
# exclude = ["beer"]
# min_keywords = 5
# number = "singular"           # keep, singular or plural
# split_and = true
"""


def rules_path() -> Path:
    """The folder rules the window and ``tag`` use without ``--rules``: beside the settings."""
    return config_dir() / RULES_FILE_NAME


def ensure_rules_file(path: Path) -> Path:
    """``path``, first written with a commented example when it does not exist yet (for "Open rules
    file")."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(RULES_TEMPLATE, encoding="utf-8")
    return path


def read_rules(path: Path) -> tuple[FolderRule, ...]:
    """The rules in the file at ``path`` (none when the default file does not exist yet).

    Raises:
        ConfigurationError: it cannot be read, is not TOML, or a rule is wrong (said with its number).
    """
    if not path.exists() and path == rules_path():
        return ()
    text = read_user_text(path, "the folder rules file")
    return parse_rules(text, f"The folder rules file {path}", path.parent)


def parse_rules(
    text: str, source: str, base: Path, load: Callable[[Path], Vocabulary] = read_vocabulary
) -> tuple[FolderRule, ...]:
    """Parse a rules file's text; ``base`` is where relative vocabulary paths start.

    Raises:
        ConfigurationError: not TOML, or a rule is wrong (said with its number).
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{source} is not valid TOML ({exc}): fix it or delete it.") from None
    unknown = sorted(set(data) - {"rule"})
    if unknown:
        raise ConfigurationError(f"{source}: unknown setting '{unknown[0]}'; write each rule as [[rule]].")
    entries = data.get("rule", [])
    if not isinstance(entries, list):
        raise ConfigurationError(f"{source}: write each rule as [[rule]].")
    return tuple(
        _rule(entry, f"{source}, rule {number}", base, load) for number, entry in enumerate(entries, 1)
    )


def rule_for(
    relative: str, rules: Sequence[FolderRule], case_sensitive: bool = CASE_SENSITIVE
) -> FolderRule | None:
    """The first rule whose pattern matches ``relative`` (a path relative to its library folder, ``/``
    between folders), or None."""
    return next((rule for rule in rules if matches(rule.folder, relative, case_sensitive)), None)


def matches(pattern: str, relative: str, case_sensitive: bool = CASE_SENSITIVE) -> bool:
    """Whether folder ``pattern`` takes the photo at ``relative`` (see the module's docstring)."""
    pattern = pattern.replace("\\", "/").lstrip("/")
    relative = relative.replace("\\", "/").lstrip("/")
    if not case_sensitive:
        pattern, relative = pattern.casefold(), relative.casefold()
    if pattern.endswith("/"):
        pattern += "*"
    candidates = [pattern, pattern[2:]] if pattern.startswith("*/") else [pattern]
    return any(fnmatchcase(relative, candidate) for candidate in candidates)


def relative_path(path: str, root: str) -> str:
    """``path`` relative to library folder ``root``, ``/`` between folders (the path itself when outside)."""
    try:
        return PurePath(path).relative_to(root).as_posix()
    except ValueError:
        return PurePath(path).as_posix()


def group_by_rule(
    items: Iterable[Item],
    relative: Callable[[Item], str],
    rules: Sequence[FolderRule],
    case_sensitive: bool = CASE_SENSITIVE,
) -> list[tuple[FolderRule | None, list[Item]]]:
    """``items`` (photos) grouped by the rule that takes each, rules in file order, then those no rule takes
    (under None); groups without items are left out."""
    groups: dict[int, list[Item]] = {}
    for item in items:
        rule = rule_for(relative(item), rules, case_sensitive)
        groups.setdefault(rules.index(rule) if rule is not None else len(rules), []).append(item)
    return [(rules[index] if index < len(rules) else None, groups[index]) for index in sorted(groups)]


def spec_for_rule(spec: RunSpec, rule: FolderRule) -> RunSpec:
    """``spec`` (the command line's or the dialog's choices) with what ``rule`` picks instead."""
    options = rule.options
    changes: dict[str, Any] = {"rule": rule.name}
    if rule.task:
        changes["task"] = rule.task
        if not get_task(rule.task).takes_context:
            # The command line's context is for tasks that describe photos; an OCR rule reads text without it
            # (asking it would stop the run: the task has no place for context).
            changes.update(context_fields(ContextSpec()))
    if rule.vocabulary is not None:
        changes.update(vocabulary_fields(rule.vocabulary), vocabulary_top=0)
    changes.update({_SPEC_NAMES.get(key, key): value for key, value in options.items() if key in _AS_IS})
    if "vocabulary_top" in options:
        changes.update(vocabulary_fields(None), vocabulary_top=options["vocabulary_top"])
    if "vocabulary_loose" in options:
        changes["vocabulary_only"] = not options["vocabulary_loose"]
    return replace(spec, **changes)


def describe_groups(groups: Sequence[tuple[FolderRule | None, Sequence[object]]]) -> str:
    """One line for the dialog and ``tag``: ``2 rules: Products → product (14 photos), Travel (3 photos);
    5 photos by your choices``; empty when no rule applies."""
    ruled = [(rule, len(items)) for rule, items in groups if rule is not None]
    if not ruled:
        return ""
    rest = sum(len(items) for rule, items in groups if rule is None)
    parts = ", ".join(f"{rule.describe()} ({_photos(count)})" for rule, count in ruled)
    line = f"{len(ruled)} rule{'s' if len(ruled) > 1 else ''}: {parts}"
    return line + (f"; {_photos(rest)} by your choices" if rest else "")


def _photos(count: int) -> str:
    return f"{count:,} photo{'' if count == 1 else 's'}"


def _rule(entry: object, where: str, base: Path, load: Callable[[Path], Vocabulary]) -> FolderRule:
    if not isinstance(entry, dict):
        raise ConfigurationError(f'{where}: write each rule as [[rule]] with a folder = "…" line.')
    known = {"name", "folder", "task", "vocabulary", *_OPTIONS}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown setting '{unknown[0]}' (known: {', '.join(sorted(known))})."
        )
    folder = entry.get("folder")
    if not isinstance(folder, str) or not folder.strip():
        raise ConfigurationError(f'{where} needs a folder pattern, like folder = "*/Products/*".')
    task = entry.get("task")
    if task is not None:
        if not isinstance(task, str):
            raise ConfigurationError(f'{where}: task must be a task\'s name, like task = "product".')
        try:
            get_task(task)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{where}: {exc}") from None
    vocabulary = None
    if "vocabulary" in entry:
        if not isinstance(entry["vocabulary"], str):
            raise ConfigurationError(
                f'{where}: vocabulary must be a file name, like vocabulary = "products.txt".'
            )
        vocabulary = load(base / Path(entry["vocabulary"]).expanduser())
    options = {key: _option(key, entry[key], where) for key in _OPTIONS if key in entry}
    if "vocabulary_top" in options and vocabulary is not None:
        raise ConfigurationError(f"{where}: choose a vocabulary file or vocabulary_top, not both.")
    name = entry.get("name", folder)
    return FolderRule(
        name=str(name), folder=folder.strip(), task=task, vocabulary=vocabulary, options=options
    )


def _option(key: str, value: object, where: str) -> object:
    expected = _OPTIONS[key]
    # bool is an int in Python; a count given as true/false is still a mistake.
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        kinds = {str: "text in quotes", int: "a whole number", bool: "true or false"}
        wanted = "a list of words or one text" if isinstance(expected, tuple) else kinds[expected]
        raise ConfigurationError(f"{where}: {key} must be {wanted}.")
    if key in ("require", "exclude"):
        words = value if isinstance(value, list) else [value]
        return parse_keyword_list("\n".join(str(word) for word in words))
    if key == "number" and value not in NUMBER_CHOICES:
        raise ConfigurationError(f"{where}: number must be one of {', '.join(NUMBER_CHOICES)}.")
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        raise ConfigurationError(f"{where}: {key} cannot be negative.")
    return value
