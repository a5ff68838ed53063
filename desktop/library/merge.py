"""The pure merge of what a model generated into what a photo already holds, and the preview of the change.

:class:`Generated` is what a model produced; :func:`merge` combines it with a file's
:class:`~captioneer.desktop.library.fields.PhotoMetadata`, walking the field table, without ever dropping
anything of the user's; :func:`diff_lines` says what changes. No files, no exiv2.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace

from captioneer.desktop.library.fields import (
    FIELDS,
    KEYWORD_FIELDS,
    TEXT_FIELDS,
    X_DEFAULT,
    FieldSpec,
    Hierarchy,
    PhotoMetadata,
    Provenance,
    Writes,
)
from captioneer.desktop.library.keyword_tree import KeywordPath


@dataclass(frozen=True)
class Generated:
    """What a model produced for one photo, and how (recorded as provenance).

    ``language`` is the BCP-47 tag of the generated text (``en``, ``de-DE``); captions are always written
    as ``x-default`` and, when a language is given, under that language too.
    """

    keywords: tuple[str, ...] = ()
    caption: str = ""
    title: str = ""
    alt_text: str = ""
    language: str = ""
    model: str = ""
    engine: str = ""
    quant: str = ""
    prompt_hash: str = ""
    time: str = ""
    paths: Mapping[str, KeywordPath] = field(default_factory=dict)
    """Where keywords sit in the user's vocabulary (keyword → its path); a keyword without one is flat."""


@dataclass(frozen=True)
class MergeOptions:
    """Choices the user makes about how our results join theirs.

    Attributes:
        ai_branch: put generated keywords under this top-level branch of the hierarchical fields
            (``"AI"`` gives ``AI|sunset`` and ``AI/sunset``) instead of at the top level.
        replace_text: overwrite a caption, title or alt text that Captioneer did not write.
    """

    ai_branch: str | None = None
    replace_text: bool = False


@dataclass(frozen=True)
class MergeResult:
    """The merged metadata, and notes for the person reviewing the change."""

    metadata: PhotoMetadata
    changed: bool
    notes: tuple[str, ...] = ()


# Provenance copies these texts from the model's result as they are (model, engine, quant, prompt hash, time).
_RECORDED = tuple(
    f.name
    for f in fields(Provenance)
    if isinstance(f.default, str) and f.name in {g.name for g in fields(Generated)}
)
# The text fields in the order the model's result declares them (the order of the notes about them).
_GENERATED_TEXTS = tuple(spec for f in fields(Generated) for spec in TEXT_FIELDS if spec.name == f.name)

# --------------------------------------------------------------------------------------------- clean text

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
_SPACES = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Text made safe for XMP: NFC, no characters XML cannot carry (NUL, U+FFFE, lone surrogates), trimmed."""
    return _XML_INVALID.sub("", unicodedata.normalize("NFC", text)).strip()


def clean_keyword(keyword: str) -> str:
    """One keyword: :func:`clean_text`, inner whitespace (tabs, newlines) collapsed to single spaces."""
    return _SPACES.sub(" ", clean_text(keyword))


def _fold(text: str) -> str:
    return text.casefold()


def text_hash(text: str) -> str:
    """The short hash provenance keeps of a text we wrote, to tell later whether it is still ours."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------ keywords


def unite_keywords(*lists: Iterable[str]) -> tuple[str, ...]:
    """The items of every list once, compared case-insensitively, first spelling kept; blanks dropped."""
    seen: set[str] = set()
    merged: list[str] = []
    for items in lists:
        for item in items:
            if item.strip() and _fold(item) not in seen:
                seen.add(_fold(item))
                merged.append(item)
    return tuple(merged)


def _extend(existing: tuple[str, ...], extra: Iterable[str]) -> tuple[str, ...]:
    """A field's own entries exactly as they are, then the items of ``extra`` it lacks (case-insensitive)."""
    have = {_fold(entry) for entry in existing}
    return existing + unite_keywords(k for k in extra if _fold(k) not in have)


def all_keywords(meta: PhotoMetadata) -> tuple[str, ...]:
    """Every keyword a file holds in any keyword field, once each (case-insensitive, first spelling kept).

    Flat keyword lists first (XMP ``dc:subject``, IPTC Keywords), then the leaves of the hierarchical ones
    (``lr:hierarchicalSubject`` except darktable's own ``darktable|…`` tags, ``digiKam:TagsList``,
    MicrosoftPhoto's lists), each group in table order. Pure: what review shows and what every written keyword
    field is merged with.
    """
    ordered = sorted(KEYWORD_FIELDS, key=lambda spec: spec.hierarchy is not None)
    return unite_keywords(*(spec.keywords(getattr(meta, spec.name)) for spec in ordered))


def merge_keywords(
    existing: Iterable[str], generated: Iterable[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Existing keywords plus the generated ones that are new, compared case-insensitively.

    Returns:
        (all keywords, the generated keywords that were added). The user's keywords keep their order and
        spelling and are never removed.
    """
    merged = [k for k in existing]
    seen = {_fold(k) for k in merged}
    added: list[str] = []
    for raw in generated:
        keyword = clean_keyword(raw)
        if keyword and _fold(keyword) not in seen:
            seen.add(_fold(keyword))
            merged.append(keyword)
            added.append(keyword)
    return tuple(merged), tuple(added)


def _has_level(entries: Iterable[str], keyword: str, hierarchy: Hierarchy) -> bool:
    """Whether a keyword is any level of an entry: a leaf, or a parent (as Lightroom lists them in
    dc:subject beside the full path)."""
    wanted = _fold(keyword)
    return any(_fold(level) == wanted for entry in entries for level in hierarchy.levels(entry))


def _keyword_paths(generated: Generated) -> dict[str, KeywordPath]:
    """The generated keywords that have a path of two or more levels (casefolded keyword → path)."""
    paths = {_fold(k): p for k, p in generated.paths.items() if len(p.levels) > 1}
    return {_fold(k): paths[_fold(k)] for k in generated.keywords if _fold(k) in paths}


def _with_parents(keywords: Iterable[str], paths: Mapping[str, KeywordPath]) -> list[str]:
    """Each keyword followed by its exported parents (Lightroom's "Export Containing Keywords")."""
    flat: list[str] = []
    for keyword in keywords:
        path = paths.get(_fold(keyword))
        flat += [keyword, *(path.parents() if path else ())]
    return flat


def _merge_hierarchy(
    spec: FieldSpec,
    entries: tuple[str, ...],
    union: Iterable[str],
    added: tuple[str, ...],
    branch: str | None,
    paths: Mapping[str, KeywordPath],
) -> tuple[str, ...]:
    """A hierarchical field plus the full path of each keyword that has one, then an entry for each other
    keyword it lacks (the new ones under ``branch``); the parents of a path are levels, not entries."""
    hierarchy = spec.hierarchy
    assert hierarchy is not None
    merged = list(entries)
    for path in dict.fromkeys(paths.values()):
        entry = hierarchy.path_entry(path.levels)
        if _fold(entry) not in {_fold(have) for have in merged}:
            merged.append(entry)
    placed = set(paths) | {_fold(parent) for path in paths.values() for parent in path.parents()}
    for keyword in union:
        if _fold(keyword) in placed:
            continue
        under = branch if keyword in added else None
        entry = hierarchy.entry(keyword, under)
        present = under is None and _has_level(spec.own_entries(merged), keyword, hierarchy)
        if not present and entry not in merged:
            merged.append(entry)
    return tuple(merged)


def _merge_flat(
    existing: PhotoMetadata, spec: FieldSpec, union: tuple[str, ...]
) -> tuple[tuple[str, ...], list[str]]:
    """A flat keyword field plus every keyword it lacks, and notes for keywords over its IPTC limit. IPTC-IIM
    fields stay as they are when the file has no IPTC-IIM we may write."""
    current: tuple[str, ...] = getattr(existing, spec.name)
    source = spec.sources[0]
    if source.writes is Writes.IF_IPTC and (not existing.has_iptc or existing.iptc_foreign_charset):
        return current, []
    limit = source.limit
    fits = [k for k in union if limit is None or len(k.encode("utf-8")) <= limit]
    merged = _extend(current, fits)
    kept = {_fold(k) for k in merged}
    notes = [
        f"keyword {k!r} is longer than IPTC's {limit} bytes: written to XMP only"
        for k in union
        if limit is not None and len(k.encode("utf-8")) > limit and _fold(k) not in kept
    ]
    return merged, notes


# ------------------------------------------------------------------------------------------------- merge


def _merge_text(
    name: str, current: Mapping[str, str], new_text: str, language: str, ours_hash: str, options: MergeOptions
) -> tuple[dict[str, str], str, str | None]:
    """One text field. Returns (new value, hash to record, note)."""
    value = dict(current)
    text = clean_text(new_text)
    if not text:
        return value, ours_hash, None
    existing = value.get(X_DEFAULT, "")
    if existing == text:
        return value, text_hash(text) if ours_hash else ours_hash, None
    is_ours = bool(ours_hash) and text_hash(existing) == ours_hash
    if existing and not is_ours and not options.replace_text:
        return value, ours_hash, f"kept the existing {name.replace('_', ' ')} (not written by Captioneer)"
    value[X_DEFAULT] = text
    if language and language != X_DEFAULT:
        value[language] = text
    return value, text_hash(text), None


def merge(existing: PhotoMetadata, generated: Generated, options: MergeOptions | None = None) -> MergeResult:
    """Combine what a file has with what a model generated. Pure: no files, no exiv2.

    Keywords are merged case-insensitively (``[Family, Beach] + [beach, sunset] → [Family, Beach, sunset]``)
    into every keyword field we write; hierarchical fields get new keywords under ``options.ai_branch`` when
    set. Caption, title and alt text are written when the field is empty or still holds what Captioneer
    wrote before; a text the user wrote is kept unless ``options.replace_text``. Nothing changes (not even the
    provenance) when the merge adds nothing, so a second identical write is a no-op.
    """
    options = options or MergeOptions()
    prov = existing.provenance or Provenance()
    notes: list[str] = []
    keyword_notes: list[str] = []
    changes: dict[str, object] = {}

    paths = _keyword_paths(generated)
    union, added = merge_keywords(all_keywords(existing), _with_parents(generated.keywords, paths))
    for spec in KEYWORD_FIELDS:
        if not spec.written:
            continue
        if spec.hierarchy is not None:
            changes[spec.name] = _merge_hierarchy(
                spec, getattr(existing, spec.name), union, added, options.ai_branch, paths
            )
        else:
            changes[spec.name], field_notes = _merge_flat(existing, spec, union)
            keyword_notes += field_notes

    language = clean_text(generated.language)
    hashes: dict[str, str] = {}
    for spec in _GENERATED_TEXTS:
        hash_name = f"{spec.name}_hash"
        changes[spec.name], hashes[hash_name], note = _merge_text(
            spec.name,
            getattr(existing, spec.name),
            getattr(generated, spec.name),
            language,
            getattr(prov, hash_name),
            options,
        )
        notes += [note] if note else []

    candidate = replace(existing, **changes)
    if candidate.same_fields(existing):
        return MergeResult(existing, changed=False, notes=tuple(notes))
    notes += keyword_notes + _iptc_text_notes(existing, candidate)
    folded = {_fold(k) for k in candidate.keywords}
    ours = [k for k in prov.keywords if _fold(k) in folded] + list(added)
    provenance = Provenance(
        **{name: getattr(generated, name) for name in _RECORDED},
        **hashes,
        keywords=tuple(dict.fromkeys(ours)),
    )
    return MergeResult(replace(candidate, provenance=provenance), changed=True, notes=tuple(notes))


def _iptc_text_notes(before: PhotoMetadata, after: PhotoMetadata) -> list[str]:
    """What the person should know about the IPTC-IIM copy of a change (shortened texts, foreign charset)."""
    if not before.has_iptc:
        return []
    if before.iptc_foreign_charset:
        return ["IPTC-IIM left unchanged: it uses a character set other than UTF-8 (XMP was updated)"]
    notes = []
    for spec in TEXT_FIELDS:
        text = after.text(spec.name)
        if text == before.text(spec.name):
            continue
        for source in spec.sources:
            if source.writes is Writes.IF_IPTC and source.limit and len(text.encode("utf-8")) > source.limit:
                notes.append(
                    f"IPTC {source.label} shortened to IPTC's limit of {source.limit:,} bytes "
                    f"({len(text.encode('utf-8')):,} bytes; XMP has it in full)"
                )
    return notes


def diff_lines(before: PhotoMetadata, after: PhotoMetadata) -> list[str]:
    """Human-readable lines describing what changes between two states of our fields (in table order, each
    field named by its main tag)."""
    lines: list[str] = []
    for spec in FIELDS:
        old, new = getattr(before, spec.name), getattr(after, spec.name)
        if old == new or not spec.written:
            continue
        label = spec.sources[0].display
        if spec.is_text:
            for lang in sorted(set(old) | set(new)):
                if old.get(lang) != new.get(lang):
                    lines.append(f"  {label}[{lang}]: {old.get(lang, '∅')!r} → {new.get(lang, '∅')!r}")
        else:
            gone = [k for k in old if k not in new]
            added = [k for k in new if k not in old]
            if added:
                lines.append(f"  {label}: + " + ", ".join(added))
            if gone:
                lines.append(f"  {label}: - " + ", ".join(gone))
    return lines
