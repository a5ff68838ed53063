"""Photo metadata fields as a declarative table, read from and written to exiv2 containers; the pure merge.

One :data:`FIELDS` table says where each of our fields lives (XMP key, IPTC-IIM dataset, EXIF tag, value kind,
IPTC byte limit). :class:`PhotoMetadata` is what a photo (or its sidecar) already says; :class:`Generated` is
what a model produced; :func:`merge` combines them without ever dropping anything of the user's.
:func:`image_content_key` identifies a photo by its image data, so the key survives our own metadata writes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

NS_URI = "http://ns.captioneer.app/1.0/"
NS_PREFIX = "captioneer"
X_DEFAULT = "x-default"

# Keyword text must not create hierarchy levels: the separator of each hierarchical field is swapped for a
# look-alike character inside a single keyword.
LR_SEPARATOR = "|"
LR_SEPARATOR_STAND_IN = "\u00a6"  # ¦ broken bar
DIGIKAM_SEPARATOR = "/"
DIGIKAM_SEPARATOR_STAND_IN = "\u2215"  # ∕ division slash

IPTC_UTF8 = "\x1b%G"
IPTC_CHARSET_KEY = "Iptc.Envelope.CharacterSet"

# EXIF ImageDescription values cameras write on their own; they are not a caption anybody wrote.
CAMERA_PLACEHOLDER_DESCRIPTIONS = frozenset(
    s.casefold()
    for s in (
        "OLYMPUS DIGITAL CAMERA",
        "SONY DSC",
        "DIGITAL CAMERA",
        "KONICA MINOLTA DIGITAL CAMERA",
        "MINOLTA DIGITAL CAMERA",
        "SAMSUNG DIGITAL CAMERA",
        "Default",
    )
)


@dataclass(frozen=True)
class FieldSpec:
    """Where one of our fields is stored.

    Attributes:
        name: the attribute of :class:`PhotoMetadata`.
        xmp: the exiv2 XMP key.
        kind: ``bag``, ``seq`` (lists of text) or ``lang-alt`` (text per language).
        iptc: the IPTC-IIM dataset, written only when the file already carries IPTC-IIM.
        iptc_limit: the dataset's length limit in bytes.
        exif: the EXIF tag, written only into image files (never sidecars).
    """

    name: str
    xmp: str
    kind: str
    iptc: str | None = None
    iptc_limit: int | None = None
    exif: str | None = None


FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("keywords", "Xmp.dc.subject", "bag"),
    FieldSpec("hierarchical", "Xmp.lr.hierarchicalSubject", "bag"),
    FieldSpec("tags_list", "Xmp.digiKam.TagsList", "seq"),
    FieldSpec(
        "caption",
        "Xmp.dc.description",
        "lang-alt",
        iptc="Iptc.Application2.Caption",
        iptc_limit=2000,
        exif="Exif.Image.ImageDescription",
    ),
    FieldSpec("alt_text", "Xmp.iptc.AltTextAccessibility", "lang-alt"),
    FieldSpec("title", "Xmp.dc.title", "lang-alt", iptc="Iptc.Application2.ObjectName", iptc_limit=64),
)
FIELDS_BY_NAME = {spec.name: spec for spec in FIELDS}

# IPTC-IIM keywords are their own field (PhotoMetadata.iptc_keywords): the file's IPTC list is merged with
# every other keyword field, and keywords over the limit stay XMP-only.
IPTC_KEYWORDS = "Iptc.Application2.Keywords"
IPTC_KEYWORD_LIMIT = 64
# Keyword fields other tools write that we read but never write (Windows; digiKam writes it with ``/``).
MICROSOFT_KEYWORDS = ("Xmp.MicrosoftPhoto.LastKeywordXMP", "Xmp.MicrosoftPhoto.LastKeywordIPTC")
# darktable keeps its automatic tags (format, changed, exported…) under this branch; it never puts them in
# dc:subject, so neither do we.
DARKTABLE_BRANCH = "darktable|"

# The provenance namespace: scalar properties, plus the bag of keywords we added.
PROVENANCE_TEXT = (
    "model",
    "engine",
    "quant",
    "promptHash",
    "time",
    "captionHash",
    "titleHash",
    "altTextHash",
)
PROVENANCE_KEYWORDS = f"Xmp.{NS_PREFIX}.keywords"


@dataclass(frozen=True)
class Provenance:
    """What Captioneer recorded about its own contribution to a file (the ``captioneer:`` namespace)."""

    model: str = ""
    engine: str = ""
    quant: str = ""
    prompt_hash: str = ""
    time: str = ""
    keywords: tuple[str, ...] = ()
    caption_hash: str = ""
    title_hash: str = ""
    alt_text_hash: str = ""


@dataclass(frozen=True)
class PhotoMetadata:
    """The fields we care about, as one photo or sidecar holds them now.

    Lang-alt fields map a language (``x-default``, ``en``, …) to text. ``has_iptc`` says whether the file
    already carries IPTC-IIM (we only write IPTC then); ``iptc_foreign_charset`` that it is in a character
    set other than UTF-8 (we leave it alone then). ``iptc_keywords`` are the IPTC-IIM Keywords and
    ``microsoft_keywords`` the MicrosoftPhoto keyword lists (read for merging, never written).
    """

    keywords: tuple[str, ...] = ()
    hierarchical: tuple[str, ...] = ()
    tags_list: tuple[str, ...] = ()
    iptc_keywords: tuple[str, ...] = ()
    microsoft_keywords: tuple[str, ...] = ()
    caption: Mapping[str, str] = field(default_factory=dict)
    alt_text: Mapping[str, str] = field(default_factory=dict)
    title: Mapping[str, str] = field(default_factory=dict)
    provenance: Provenance | None = None
    has_iptc: bool = False
    iptc_foreign_charset: bool = False

    def text(self, name: str) -> str:
        """The ``x-default`` text of a lang-alt field (``""`` when absent)."""
        return getattr(self, name).get(X_DEFAULT, "")

    def fields(self) -> dict[str, Any]:
        """Our fields as plain JSON-able data (for journals and diffs)."""
        return {
            "keywords": list(self.keywords),
            "hierarchical": list(self.hierarchical),
            "tags_list": list(self.tags_list),
            "iptc_keywords": list(self.iptc_keywords),
            "caption": dict(self.caption),
            "alt_text": dict(self.alt_text),
            "title": dict(self.title),
        }

    def same_fields(self, other: PhotoMetadata) -> bool:
        """Whether the user-visible fields are equal (provenance and IPTC presence aside)."""
        return self.fields() == other.fields()


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


def lr_entry(keyword: str, branch: str | None = None) -> str:
    """The ``lr:hierarchicalSubject`` entry for a flat keyword (``|`` inside it cannot add a level)."""
    leaf = keyword.replace(LR_SEPARATOR, LR_SEPARATOR_STAND_IN)
    return f"{branch.replace(LR_SEPARATOR, LR_SEPARATOR_STAND_IN)}{LR_SEPARATOR}{leaf}" if branch else leaf


def digikam_entry(keyword: str, branch: str | None = None) -> str:
    """The ``digiKam:TagsList`` entry for a flat keyword (``/`` inside it cannot add a level)."""
    leaf = keyword.replace(DIGIKAM_SEPARATOR, DIGIKAM_SEPARATOR_STAND_IN)
    if branch:
        return f"{branch.replace(DIGIKAM_SEPARATOR, DIGIKAM_SEPARATOR_STAND_IN)}{DIGIKAM_SEPARATOR}{leaf}"
    return leaf


def hierarchy_leaf(entry: str, separator: str) -> str:
    """The keyword a hierarchical entry stands for: its last level (``Places|France|Paris`` → ``Paris``), with
    our stand-in for the separator turned back (``AI|this¦that`` → ``this|that``), as Lightroom and digiKam
    put it in the flat keyword list."""
    stand_in = LR_SEPARATOR_STAND_IN if separator == LR_SEPARATOR else DIGIKAM_SEPARATOR_STAND_IN
    return entry.rsplit(separator, 1)[-1].replace(stand_in, separator).strip()


def _has_leaf(entries: Iterable[str], keyword: str, separator: str) -> bool:
    wanted = _fold(keyword)
    return any(_fold(hierarchy_leaf(entry, separator)) == wanted for entry in entries)


def _union(*lists: Iterable[str]) -> tuple[str, ...]:
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
    return existing + _union(k for k in extra if _fold(k) not in have)


def all_keywords(meta: PhotoMetadata) -> tuple[str, ...]:
    """Every keyword a file holds in any keyword field, once each (case-insensitive, first spelling kept).

    In this order: XMP ``dc:subject``, IPTC Keywords, the leaves of ``lr:hierarchicalSubject`` (except
    darktable's own ``darktable|…`` tags) and of ``digiKam:TagsList``, then MicrosoftPhoto's keyword lists
    (leaves, as digiKam writes them with ``/``). Pure: what review shows and what every written keyword field
    is merged with.
    """
    return _union(
        meta.keywords,
        meta.iptc_keywords,
        (
            hierarchy_leaf(entry, LR_SEPARATOR)
            for entry in meta.hierarchical
            if not entry.startswith(DARKTABLE_BRANCH)
        ),
        (hierarchy_leaf(entry, DIGIKAM_SEPARATOR) for entry in meta.tags_list),
        (hierarchy_leaf(entry, DIGIKAM_SEPARATOR) for entry in meta.microsoft_keywords),
    )


# ------------------------------------------------------------------------------------------------- merge


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


def _merge_text(
    name: str, current: Mapping[str, str], new_text: str, language: str, ours_hash: str, options: MergeOptions
) -> tuple[dict[str, str], str, str | None]:
    """One lang-alt field. Returns (new value, hash to record, note)."""
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

    Keywords are merged case-insensitively (``[Family, Beach] + [beach, sunset] → [Family, Beach, sunset]``);
    new keywords also go into ``lr:hierarchicalSubject`` and ``digiKam:TagsList`` (under ``options.ai_branch``
    when set). Caption, title and alt text are written when the field is empty or still holds what Captioneer
    wrote before; a text the user wrote is kept unless ``options.replace_text``. Nothing changes (not even the
    provenance) when the merge adds nothing, so a second identical write is a no-op.
    """
    options = options or MergeOptions()
    prov = existing.provenance or Provenance()
    notes: list[str] = []

    union, added = merge_keywords(all_keywords(existing), generated.keywords)
    keywords = _extend(existing.keywords, union)
    hierarchical = list(existing.hierarchical)
    tags_list = list(existing.tags_list)
    for keyword in union:
        branch = options.ai_branch if keyword in added else None
        lr = lr_entry(keyword, branch)
        if not (branch is None and _has_leaf(hierarchical, keyword, LR_SEPARATOR)) and lr not in hierarchical:
            hierarchical.append(lr)
        dk = digikam_entry(keyword, branch)
        if not (branch is None and _has_leaf(tags_list, keyword, DIGIKAM_SEPARATOR)) and dk not in tags_list:
            tags_list.append(dk)
    iptc_keywords, iptc_notes = _merge_iptc_keywords(existing, union)

    language = clean_text(generated.language)
    caption, caption_hash, note = _merge_text(
        "caption", existing.caption, generated.caption, language, prov.caption_hash, options
    )
    notes += [note] if note else []
    title, title_hash, note = _merge_text(
        "title", existing.title, generated.title, language, prov.title_hash, options
    )
    notes += [note] if note else []
    alt_text, alt_hash, note = _merge_text(
        "alt_text", existing.alt_text, generated.alt_text, language, prov.alt_text_hash, options
    )
    notes += [note] if note else []

    candidate = replace(
        existing,
        keywords=keywords,
        hierarchical=tuple(hierarchical),
        tags_list=tuple(tags_list),
        iptc_keywords=iptc_keywords,
        caption=caption,
        title=title,
        alt_text=alt_text,
    )
    if candidate.same_fields(existing):
        return MergeResult(existing, changed=False, notes=tuple(notes))
    notes += iptc_notes + _iptc_text_notes(existing, candidate)
    folded = {_fold(k) for k in keywords}
    ours = [k for k in prov.keywords if _fold(k) in folded] + list(added)
    provenance = Provenance(
        model=generated.model,
        engine=generated.engine,
        quant=generated.quant,
        prompt_hash=generated.prompt_hash,
        time=generated.time,
        keywords=tuple(dict.fromkeys(ours)),
        caption_hash=caption_hash,
        title_hash=title_hash,
        alt_text_hash=alt_hash,
    )
    return MergeResult(replace(candidate, provenance=provenance), changed=True, notes=tuple(notes))


def _merge_iptc_keywords(existing: PhotoMetadata, union: Iterable[str]) -> tuple[tuple[str, ...], list[str]]:
    """The IPTC Keywords after the merge (the file's own plus every keyword that fits IPTC's limit), and notes
    for the keywords kept XMP-only. Unchanged when the file has no IPTC-IIM we may write."""
    if not existing.has_iptc or existing.iptc_foreign_charset:
        return existing.iptc_keywords, []
    fits = [k for k in union if len(k.encode("utf-8")) <= IPTC_KEYWORD_LIMIT]
    merged = _extend(existing.iptc_keywords, fits)
    notes = [
        f"keyword {k!r} is longer than IPTC's {IPTC_KEYWORD_LIMIT} bytes: written to XMP only"
        for k in union
        if len(k.encode("utf-8")) > IPTC_KEYWORD_LIMIT and _fold(k) not in {_fold(i) for i in merged}
    ]
    return merged, notes


_IPTC_LABELS = {"caption": "Caption-Abstract", "title": "ObjectName (title)"}


def _iptc_text_notes(before: PhotoMetadata, after: PhotoMetadata) -> list[str]:
    """What the person should know about the IPTC-IIM copy of a change (shortened texts, foreign charset)."""
    if not before.has_iptc:
        return []
    if before.iptc_foreign_charset:
        return ["IPTC-IIM left unchanged: it uses a character set other than UTF-8 (XMP was updated)"]
    notes = []
    for spec in FIELDS:
        if spec.iptc is None or spec.iptc_limit is None:
            continue
        text = after.text(spec.name)
        if text != before.text(spec.name) and len(text.encode("utf-8")) > spec.iptc_limit:
            label = _IPTC_LABELS.get(spec.name, spec.name)
            notes.append(
                f"IPTC {label} shortened to IPTC's limit of {spec.iptc_limit:,} bytes "
                f"({len(text.encode('utf-8')):,} bytes; XMP has it in full)"
            )
    return notes


def diff_lines(before: PhotoMetadata, after: PhotoMetadata) -> list[str]:
    """Human-readable lines describing what changes between two states of our fields."""
    lines: list[str] = []
    rows = [(spec.name, spec.xmp.removeprefix("Xmp.").replace(".", ":", 1), spec.kind) for spec in FIELDS]
    for name, label, kind in [*rows, ("iptc_keywords", "IPTC:Keywords", "bag")]:
        old, new = getattr(before, name), getattr(after, name)
        if old == new:
            continue
        if kind == "lang-alt":
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


# ------------------------------------------------------------------------------------------------- exiv2


def exiv2_module() -> Any:
    """python-exiv2, imported on first use with our namespace registered.

    Raises:
        ConfigurationError: python-exiv2 is not installed.
    """
    try:
        import exiv2
    except ImportError:
        from captioneer.backends.errors import ConfigurationError

        raise ConfigurationError(
            "Writing metadata needs python-exiv2: pip install 'captioneer[metadata]'"
        ) from None
    if NS_PREFIX not in _registered:
        exiv2.XmpProperties.registerNs(NS_URI, NS_PREFIX)
        exiv2.LogMsg.setLevel(exiv2.LogMsg.Level.mute)
        _registered.add(NS_PREFIX)
    return exiv2


_registered: set[str] = set()


def _xmp_list(xmp: Any, key: str) -> tuple[str, ...]:
    if key not in xmp:
        return ()
    value = xmp[key].value()
    if isinstance(value, exiv2_module().XmpArrayValue):
        return tuple(value.toString(i) for i in range(value.count()))
    text = xmp[key].toString()  # a single text where a list belongs: still the user's keyword
    return (text,) if text else ()


def _xmp_lang_alt(xmp: Any, key: str) -> dict[str, str]:
    if key not in xmp:
        return {}
    value = xmp[key].value()
    if isinstance(value, exiv2_module().LangAltValue):
        return dict(value)
    text = xmp[key].toString()
    return {X_DEFAULT: text} if text else {}


def _xmp_text(xmp: Any, key: str) -> str:
    return xmp[key].toString() if key in xmp else ""


def read_provenance(xmp: Any) -> Provenance | None:
    """Our ``captioneer:`` properties from an exiv2 XmpData, or None when we never wrote this file."""
    prefix = f"Xmp.{NS_PREFIX}."
    if not any(datum.key().startswith(prefix) for datum in xmp):
        return None
    text = {name: _xmp_text(xmp, prefix + name) for name in PROVENANCE_TEXT}
    return Provenance(
        model=text["model"],
        engine=text["engine"],
        quant=text["quant"],
        prompt_hash=text["promptHash"],
        time=text["time"],
        keywords=_xmp_list(xmp, PROVENANCE_KEYWORDS),
        caption_hash=text["captionHash"],
        title_hash=text["titleHash"],
        alt_text_hash=text["altTextHash"],
    )


def _iptc_values(iptc: Any, key: str) -> list[str]:
    return [datum.toString() for datum in iptc if datum.key() == key]


def read_metadata(xmp: Any, iptc: Any = None, exif: Any = None) -> PhotoMetadata:
    """Our fields from exiv2 containers (XMP always; IPTC and EXIF when the source is an image file).

    Each keyword field is read as it is (:func:`all_keywords` unites them); the caption falls back to IPTC
    Caption-Abstract and then to EXIF ImageDescription (ignoring camera placeholders like "SONY DSC").
    """
    has_iptc = iptc is not None and not iptc.empty()
    caption = _xmp_lang_alt(xmp, FIELDS_BY_NAME["caption"].xmp)
    title = _xmp_lang_alt(xmp, FIELDS_BY_NAME["title"].xmp)
    iptc_keywords: tuple[str, ...] = ()
    foreign_charset = False
    if has_iptc:
        iptc_keywords = tuple(_iptc_values(iptc, IPTC_KEYWORDS))
        foreign_charset = IPTC_CHARSET_KEY in iptc and iptc[IPTC_CHARSET_KEY].toString() != IPTC_UTF8
        if not caption.get(X_DEFAULT):
            iptc_caption = "".join(_iptc_values(iptc, FIELDS_BY_NAME["caption"].iptc or "")).strip()
            if iptc_caption:
                caption = {**caption, X_DEFAULT: iptc_caption}
        if not title.get(X_DEFAULT):
            iptc_title = "".join(_iptc_values(iptc, FIELDS_BY_NAME["title"].iptc or "")).strip()
            if iptc_title:
                title = {**title, X_DEFAULT: iptc_title}
    if exif is not None and not caption.get(X_DEFAULT):
        key = FIELDS_BY_NAME["caption"].exif or ""
        description = exif[key].toString().strip() if key in exif else ""
        if description and description.casefold() not in CAMERA_PLACEHOLDER_DESCRIPTIONS:
            caption = {**caption, X_DEFAULT: description}
    return PhotoMetadata(
        keywords=_xmp_list(xmp, FIELDS_BY_NAME["keywords"].xmp),
        hierarchical=_xmp_list(xmp, FIELDS_BY_NAME["hierarchical"].xmp),
        tags_list=_xmp_list(xmp, FIELDS_BY_NAME["tags_list"].xmp),
        iptc_keywords=iptc_keywords,
        microsoft_keywords=tuple(item for key in MICROSOFT_KEYWORDS for item in _xmp_list(xmp, key)),
        caption=caption,
        alt_text=_xmp_lang_alt(xmp, FIELDS_BY_NAME["alt_text"].xmp),
        title=title,
        provenance=read_provenance(xmp),
        has_iptc=has_iptc,
        iptc_foreign_charset=foreign_charset,
    )


def _utf8_prefix(text: str, limit: int) -> str:
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


def write_metadata(
    before: PhotoMetadata, after: PhotoMetadata, xmp: Any, iptc: Any = None, exif: Any = None
) -> None:
    """Set the fields that differ between ``before`` and ``after`` in exiv2 containers; touch nothing else.

    IPTC is written only when ``iptc`` is given and already holds UTF-8 IPTC-IIM (texts cut to the dataset
    limits; :func:`merge` notes it); EXIF ImageDescription only when ``exif`` is given and the file already
    has EXIF, so we never create an EXIF block that lacks the tags EXIF requires.
    """
    exiv2 = exiv2_module()
    write_iptc = iptc is not None and not iptc.empty() and not after.iptc_foreign_charset
    write_exif = exif is not None and not exif.empty()
    for spec in FIELDS:
        old, new = getattr(before, spec.name), getattr(after, spec.name)
        if old == new:
            continue
        if spec.xmp in xmp:
            del xmp[spec.xmp]
        if spec.kind == "lang-alt":
            if new:
                ordered = {X_DEFAULT: new[X_DEFAULT]} if X_DEFAULT in new else {}
                ordered.update((k, v) for k, v in new.items() if k != X_DEFAULT)
                xmp[spec.xmp] = exiv2.LangAltValue(ordered)
        elif new:
            value = exiv2.XmpArrayValue(exiv2.TypeId.xmpBag if spec.kind == "bag" else exiv2.TypeId.xmpSeq)
            for item in new:
                value.read(item)
            xmp[spec.xmp] = value
        text = new.get(X_DEFAULT, "") if spec.kind == "lang-alt" else ""
        if write_iptc and spec.iptc and spec.iptc_limit:
            _set_iptc(exiv2, iptc, spec.iptc, [_utf8_prefix(text, spec.iptc_limit)] if text else [])
        if write_exif and spec.exif and text:
            exif[spec.exif] = text
    if write_iptc and before.iptc_keywords != after.iptc_keywords:
        _set_iptc(exiv2, iptc, IPTC_KEYWORDS, list(after.iptc_keywords))
    _write_provenance(exiv2, xmp, after.provenance)


def _set_iptc(exiv2: Any, iptc: Any, key: str, values: list[str]) -> None:
    """Replace every dataset ``key`` with ``values`` (marking the record UTF-8 when a value needs it)."""
    # Count first: erasing invalidates references to the other datasets.
    for _ in range(sum(1 for datum in iptc if datum.key() == key)):
        iptc.erase(iptc.findKey(exiv2.IptcKey(key)))
    for item in values:
        iptc.add(exiv2.IptcKey(key), exiv2.StringValue(item))
    if any(not item.isascii() for item in values) and IPTC_CHARSET_KEY not in iptc:
        iptc[IPTC_CHARSET_KEY] = IPTC_UTF8


def _write_provenance(exiv2: Any, xmp: Any, provenance: Provenance | None) -> None:
    if provenance is None:
        return
    prefix = f"Xmp.{NS_PREFIX}."
    for key in [d.key() for d in xmp if d.key().startswith(prefix)]:
        del xmp[key]
    values = {
        "model": provenance.model,
        "engine": provenance.engine,
        "quant": provenance.quant,
        "promptHash": provenance.prompt_hash,
        "time": provenance.time,
        "captionHash": provenance.caption_hash,
        "titleHash": provenance.title_hash,
        "altTextHash": provenance.alt_text_hash,
    }
    for name, text in values.items():
        if text:
            xmp[prefix + name] = clean_text(text)
    if provenance.keywords:
        bag = exiv2.XmpArrayValue(exiv2.TypeId.xmpBag)
        for keyword in provenance.keywords:
            bag.read(keyword)
        xmp[PROVENANCE_KEYWORDS] = bag


# ------------------------------------------------------------------------------------------ photo identity

_JPEG_SKIPPED = set(range(0xE0, 0xF0)) | {0xFE}  # APP0–APP15 and COM: where metadata lives
_PNG_SKIPPED = {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"}


def _jpeg_key(data: bytes) -> str | None:
    digest = hashlib.sha256()
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:  # start of scan: the entropy-coded image data runs to the end
            digest.update(data[pos:])
            return "jpeg:" + digest.hexdigest()
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker not in _JPEG_SKIPPED:
            digest.update(data[pos : pos + 2 + length])
        pos += 2 + length
    return None


def _png_key(data: bytes) -> str | None:
    digest = hashlib.sha256()
    pos = 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if kind not in _PNG_SKIPPED:
            digest.update(data[pos + 4 : pos + 8 + length])
        pos += 12 + length
        if kind == b"IEND":
            return "png:" + digest.hexdigest()
    return None


def pixel_digest(path: Path) -> str:
    """sha256 of the decoded pixels (mode, size and raw bytes), for formats without a cheap data-segment key.

    Raises:
        ImageError: the file does not decode.
    """
    from captioneer.backends.errors import ImageError
    from captioneer.desktop.core.images import RAW_SUFFIXES, decode_image

    if path.suffix.lower() in RAW_SUFFIXES:
        if not can_decode_raw():
            raise ImageError(
                "RAW pixels need the RAW decoder: pip install 'captioneer[raw]'", kind="needs-plugin"
            )
        import rawpy

        try:
            with rawpy.imread(str(path)) as raw:
                return hashlib.sha256(raw.raw_image_visible.tobytes()).hexdigest()
        except rawpy.LibRawError as exc:
            raise ImageError(f"corrupt or unsupported RAW file ({exc})", kind="corrupt") from None
    image = decode_image(path)
    try:
        frames = getattr(image, "n_frames", 1)
        digest = hashlib.sha256(f"{image.mode}:{image.size}:{frames}".encode())
        for frame in range(frames):  # every page of a multi-page TIFF
            image.seek(frame)
            digest.update(image.tobytes())
        return digest.hexdigest()
    finally:
        image.close()


def can_decode_raw() -> bool:
    """Whether rawpy is installed (needed to check DNG pixels after writing)."""
    return importlib.util.find_spec("rawpy") is not None


def image_content_key(path: Path) -> str:
    """A key for the photo's image data that stays the same when only its metadata changes.

    JPEG: every segment except APPn/COM, plus the scan data. PNG: every chunk except the text/EXIF/time
    chunks. TIFF, DNG, HEIC and the rest: the decoded pixels. Proprietary RAW (never written by us):
    the whole file, as for files too large or lacking a decoder. The prefix (``jpeg:``, ``png:``,
    ``pixels:``, ``file:``) says which.

    Raises:
        ImageError: the file cannot be read or decoded.
    """
    from captioneer.backends.errors import ImageError
    from captioneer.desktop.core.images import RAW_SUFFIXES

    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError("file not found", kind="missing") from None
    except OSError as exc:
        raise ImageError(f"cannot read file ({exc.strerror})", kind="unreadable") from None
    key = None
    if data[:2] == b"\xff\xd8":
        key = _jpeg_key(data)
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        key = _png_key(data)
    if key:
        return key
    if path.suffix.lower() in RAW_SUFFIXES and path.suffix.lower() != ".dng":
        return "file:" + hashlib.sha256(data).hexdigest()
    try:
        return "pixels:" + pixel_digest(path)
    except ImageError as exc:
        if exc.kind not in ("too-large", "needs-plugin"):
            raise
    # Files we cannot decode are never written into (their pixels cannot be checked): the bytes identify them.
    return "file:" + hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------ existing keywords


def existing_keywords(
    photo: Path, sidecars: Iterable[Path] | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The keywords a photo already has, from every keyword field of the photo and of its sidecars.

    Fields: XMP ``dc:subject``, the leaves of ``lr:hierarchicalSubject`` (``|``), ``digiKam:TagsList`` (``/``)
    and ``MicrosoftPhoto:LastKeywordXMP`` (``/``), and IPTC Keywords; embedded in the photo and in both
    sidecar names (``IMG.JPG.xmp``, and ``IMG.xmp`` when this photo owns that name; see
    :func:`captioneer.desktop.library.sidecars.stem_owner`). Merged case-insensitively, first spelling kept.
    Nothing is
    written. ``sidecars`` names the sidecars to read when the caller already knows them (the scanner, from
    its folder listing); by default they are looked up.

    A sidecar that is not well-formed XML (a stray ``&``, an unbound prefix, a missing close tag, a cut-off
    file, a DOCTYPE), a link or a special file contributes nothing, and a note says why; so does a photo
    whose embedded metadata exiv2 cannot read. A format exiv2 does not read has simply no keywords.

    Returns:
        (keywords, notes for people).
    """
    import os

    from captioneer.backends.files import open_regular
    from captioneer.desktop.library.sidecars import (
        full_sidecar_name,
        image_siblings,
        stem_owner,
        stem_sidecar_name,
    )
    from captioneer.desktop.library.xmp_check import parse_properties

    exiv2 = exiv2_module()
    found: list[tuple[str, ...]] = []
    notes: list[str] = []
    try:
        image = exiv2.ImageFactory.open(str(photo))
    except exiv2.Exiv2Error:
        image = None  # a format exiv2 does not read: no embedded keywords to find
    if image is not None:
        try:
            image.readMetadata()
            found.append(all_keywords(read_metadata(image.xmpData(), image.iptcData())))
        except exiv2.Exiv2Error as exc:
            notes.append(
                f"the metadata inside {photo.name} cannot be read ({exc}): its keywords are not shown"
            )
    if sidecars is None:
        sidecars = [full_sidecar_name(photo)]
        if os.path.lexists(stem_sidecar_name(photo)) and stem_owner(photo, image_siblings(photo)):
            sidecars.append(stem_sidecar_name(photo))
    for sidecar in sidecars:
        if not os.path.lexists(sidecar):
            continue
        try:
            with os.fdopen(open_regular(sidecar), "rb") as fh:
                data = fh.read()
            parse_properties(data)
            parsed = exiv2.ImageFactory.open(data)
            parsed.readMetadata()
            found.append(all_keywords(read_metadata(parsed.xmpData())))
        except OSError as exc:
            notes.append(f"{sidecar.name} cannot be read ({exc.strerror}): its keywords are not shown")
        except ValueError as exc:
            # parse_properties says "it is not well-formed XML (…)" / "it declares a DOCTYPE, …"
            notes.append(f"{sidecar.name} {str(exc).removeprefix('it ')}: its keywords are not shown")
        except exiv2.Exiv2Error as exc:
            notes.append(f"exiv2 cannot read {sidecar.name} ({exc}): its keywords are not shown")
    return _union(*found), tuple(notes)
