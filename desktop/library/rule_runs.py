"""The runs one tagging request makes: one per folder rule that takes some of its photos (a run has one task),
each with its own spec; and the library's most-used keywords as a run's vocabulary. ``tag`` and the window's
Tag Photos both plan through here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from captioneer.backends.errors import ConfigurationError
from captioneer.desktop.library.browse import keyword_counts
from captioneer.desktop.library.catalog import Catalog, Photo
from captioneer.desktop.library.folder_rules import (
    CASE_SENSITIVE,
    FolderRule,
    group_by_rule,
    relative_path,
    spec_for_rule,
)
from captioneer.desktop.library.keyword_rules import check_rules, top_vocabulary
from captioneer.desktop.library.run_spec import RunSpec, vocabulary_fields


@dataclass(frozen=True)
class RuleRun:
    """The photos one rule takes (``rule`` None: those no rule takes) and what their run asks."""

    rule: FolderRule | None
    spec: RunSpec
    photos: list[Photo]

    def scope(self, scope: str) -> str:
        """The run's scope: the request's and the rule's name (two rules' runs never resume each other)."""
        return f"{scope} · rule {self.rule.name}" if self.rule is not None else scope


def rule_runs(
    catalog: Catalog,
    photos: Sequence[Photo],
    spec: RunSpec,
    rules: Sequence[FolderRule],
    case_sensitive: bool = CASE_SENSITIVE,
) -> list[RuleRun]:
    """``photos`` split into runs by ``rules`` (file order first, then the photos no rule takes, asked with
    ``spec``); one run of all of them (maybe none) when no rule applies. A spec asking for the library's
    top-N keywords gets them as its vocabulary.

    Raises:
        ConfigurationError: a run's keyword choices contradict each other (a rule's say which rule), or it
            asks for the library's keywords and there are none yet.
    """
    groups = rule_groups(catalog, photos, rules, case_sensitive)
    if not groups:
        groups = [(None, list(photos))]
    runs = []
    for rule, items in groups:
        chosen = spec_for_rule(spec, rule) if rule else spec
        try:
            check_rules(chosen.keyword_rules(), chosen.max_keywords)
        except ConfigurationError as exc:
            raise ConfigurationError(f"Folder rule {rule.name}: {exc}" if rule else str(exc)) from None
        runs.append(RuleRun(rule, library_vocabulary(catalog, chosen), items))
    return runs


def rule_groups(
    catalog: Catalog,
    photos: Sequence[Photo],
    rules: Sequence[FolderRule],
    case_sensitive: bool = CASE_SENSITIVE,
) -> list[tuple[FolderRule | None, list[Photo]]]:
    """``photos`` grouped by the rule that takes each (see :func:`group_by_rule`), their paths taken from
    the library folder each was scanned under."""
    roots = dict(catalog.libraries())
    return group_by_rule(
        photos,
        lambda photo: relative_path(photo.path, roots.get(photo.library_id, "")),
        rules,
        case_sensitive,
    )


def library_vocabulary(catalog: Catalog, spec: RunSpec) -> RunSpec:
    """``spec`` with the library's ``vocabulary_top`` most-used keywords as its vocabulary (current results'
    keywords and those already in the photos' files, case-insensitively); unchanged when it asks for none or
    already has them (a resumed run asks exactly what it asked before).

    Raises:
        ConfigurationError: the library has no keywords yet.
    """
    if not spec.vocabulary_top or spec.vocabulary:
        return spec
    vocabulary = top_vocabulary(keyword_counts(catalog), spec.vocabulary_top)
    return replace(spec, **vocabulary_fields(vocabulary))
