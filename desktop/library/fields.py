"""Our metadata fields as one declarative table: the tags that hold each field, their kind and when they are
written; the provenance we record; and :class:`PhotoMetadata`, what one file holds of them.

Reading and writing (:mod:`~captioneer.desktop.library.metadata`), the merge and the preview
(:mod:`~captioneer.desktop.library.merge`) all walk :data:`FIELDS`: a field or a tag is added here only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

NS_URI = "http://ns.captioneer.app/1.0/"
NS_PREFIX = "captioneer"
X_DEFAULT = "x-default"
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


class Kind(StrEnum):
    """How one tag stores its value."""

    BAG = "bag"  # XMP unordered list (rdf:Bag)
    SEQ = "seq"  # XMP ordered list (rdf:Seq)
    LANG_ALT = "lang-alt"  # XMP text per language (rdf:Alt, x-default first)
    TEXT = "text"  # one text: an XMP simple property, an IPTC-IIM dataset (parts joined) or an EXIF ASCII tag
    REPEATED = "repeated"  # an IPTC-IIM dataset repeated once per item


class Writes(StrEnum):
    """When a tag is written (every tag is read)."""

    ALWAYS = "always"  # XMP: whenever the field changes, in photos and sidecars
    IF_IPTC = "if-iptc"  # only into UTF-8 IPTC-IIM the photo already carries, cut to the dataset's byte limit
    IF_EXIF = (
        "if-exif"  # only into EXIF the photo already has: we never create EXIF without its required tags
    )
    NEVER = "never"  # another program's tag: read to merge keywords, never written


@dataclass(frozen=True)
class Source:
    """One tag that holds a field.

    Attributes:
        key: the exiv2 key (``Xmp.dc.subject``, ``Iptc.Application2.Keywords``,
            ``Exif.Image.ImageDescription``).
        kind: how the tag stores the value.
        writes: when the tag is written.
        limit: the IPTC-IIM dataset's limit in bytes (of each item, for a repeated dataset).
        label: the name shown to people, when the key's own name says too little.
        ignore: values (casefolded) that nobody wrote as this field (cameras' placeholder descriptions).
    """

    key: str
    kind: Kind
    writes: Writes = Writes.ALWAYS
    limit: int | None = None
    label: str = ""
    ignore: frozenset[str] = frozenset()

    @property
    def family(self) -> str:
        """``Xmp``, ``Iptc`` or ``Exif``: the metadata block the tag lives in."""
        return self.key.split(".", 1)[0]

    @property
    def display(self) -> str:
        """The tag as the preview names it: ``dc:subject``, ``IPTC:Keywords``."""
        if self.family == "Xmp":
            return self.key.removeprefix("Xmp.").replace(".", ":", 1)
        return f"{self.family.upper()}:{self.label or self.key.rsplit('.', 1)[-1]}"


@dataclass(frozen=True)
class Hierarchy:
    """How a hierarchical keyword field separates levels (``Places|France|Paris``).

    Inside one keyword the separator is swapped for a look-alike (``stand_in``), so keyword text never adds a
    level: ``this|that`` is written ``this¦that`` to Lightroom's field.
    """

    separator: str
    stand_in: str

    def entry(self, keyword: str, branch: str | None = None) -> str:
        """The entry for a flat keyword, under ``branch`` when given (``AI|sunset``)."""
        leaf = keyword.replace(self.separator, self.stand_in)
        return f"{branch.replace(self.separator, self.stand_in)}{self.separator}{leaf}" if branch else leaf

    def path_entry(self, levels: Iterable[str]) -> str:
        """The entry for a keyword with a path, its levels top first (``Places|Europe|Paris``)."""
        return self.separator.join(level.replace(self.separator, self.stand_in) for level in levels)

    def leaf(self, entry: str) -> str:
        """The keyword an entry stands for: its last level (``Places|France|Paris`` → ``Paris``), with the
        stand-in turned back (``AI|this¦that`` → ``this|that``), as Lightroom and digiKam show it."""
        return self.levels(entry)[-1]

    def levels(self, entry: str) -> list[str]:
        """Every level of an entry, top first, stand-ins turned back: ``Places|France|Paris`` → ``Places``,
        ``France``, ``Paris``."""
        return [level.replace(self.stand_in, self.separator).strip() for level in entry.split(self.separator)]


LIGHTROOM = Hierarchy("|", "\u00a6")  # ¦ broken bar
DIGIKAM = Hierarchy("/", "\u2215")  # ∕ division slash


@dataclass(frozen=True)
class FieldSpec:
    """One of our fields: an attribute of :class:`PhotoMetadata` and the tags that hold it, in reading order.

    A keyword field (a list) reads all its tags, one after another. A text field reads its XMP lang-alt and,
    when that has no ``x-default`` text, the first later tag that has one. A change is written to every tag
    its :class:`Writes` allows. The merge adds to a keyword field and never removes an entry; it replaces a
    text only when the field is empty or still holds what Captioneer wrote (see ``Provenance``).

    Attributes:
        name: the attribute of :class:`PhotoMetadata` (and, for texts, of the model's result).
        sources: the tags, the first one the field's main tag.
        hierarchy: for hierarchical keyword fields, how entries separate levels; their leaves are keywords.
        foreign_branch: a top level another program keeps its own tags under (darktable's ``darktable|…``):
            not keywords of the photo.
    """

    name: str
    sources: tuple[Source, ...]
    hierarchy: Hierarchy | None = None
    foreign_branch: str = ""

    @property
    def is_text(self) -> bool:
        """A text per language (caption, title, alt text) rather than a list of keywords."""
        return self.sources[0].kind is Kind.LANG_ALT

    @property
    def written(self) -> bool:
        """Whether Captioneer ever writes this field."""
        return any(source.writes is not Writes.NEVER for source in self.sources)

    def keywords(self, entries: Iterable[str]) -> Iterable[str]:
        """The keywords a keyword field's entries stand for (leaves of hierarchies; foreign branches out)."""
        if self.hierarchy is None:
            return entries
        return (self.hierarchy.leaf(entry) for entry in self.own_entries(entries))

    def own_entries(self, entries: Iterable[str]) -> Iterable[str]:
        """The entries that are the photo's keywords: all but another program's own branch."""
        if not (self.foreign_branch and self.hierarchy):
            return entries
        foreign = self.foreign_branch + self.hierarchy.separator
        return (entry for entry in entries if not entry.startswith(foreign))


# The order is the order of writing and of the preview; keyword fields are read for merging flat lists first
# (see merge.all_keywords).
FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("keywords", (Source("Xmp.dc.subject", Kind.BAG),)),
    FieldSpec(
        "hierarchical",
        (Source("Xmp.lr.hierarchicalSubject", Kind.BAG),),
        hierarchy=LIGHTROOM,
        foreign_branch="darktable",  # darktable's automatic tags (format, changed, exported…)
    ),
    FieldSpec("tags_list", (Source("Xmp.digiKam.TagsList", Kind.SEQ),), hierarchy=DIGIKAM),
    FieldSpec(
        "caption",
        (
            Source("Xmp.dc.description", Kind.LANG_ALT),
            Source(
                "Iptc.Application2.Caption", Kind.TEXT, Writes.IF_IPTC, limit=2000, label="Caption-Abstract"
            ),
            Source(
                "Exif.Image.ImageDescription",
                Kind.TEXT,
                Writes.IF_EXIF,
                ignore=CAMERA_PLACEHOLDER_DESCRIPTIONS,
            ),
        ),
    ),
    FieldSpec("alt_text", (Source("Xmp.iptc.AltTextAccessibility", Kind.LANG_ALT),)),
    FieldSpec(
        "title",
        (
            Source("Xmp.dc.title", Kind.LANG_ALT),
            Source(
                "Iptc.Application2.ObjectName",
                Kind.TEXT,
                Writes.IF_IPTC,
                limit=64,
                label="ObjectName (title)",
            ),
        ),
    ),
    FieldSpec(
        "iptc_keywords",
        (Source("Iptc.Application2.Keywords", Kind.REPEATED, Writes.IF_IPTC, limit=64, label="Keywords"),),
    ),
    # Windows' keyword lists (digiKam writes them with ``/`` too).
    FieldSpec(
        "microsoft_keywords",
        (
            Source("Xmp.MicrosoftPhoto.LastKeywordXMP", Kind.BAG, Writes.NEVER),
            Source("Xmp.MicrosoftPhoto.LastKeywordIPTC", Kind.BAG, Writes.NEVER),
        ),
        hierarchy=DIGIKAM,
    ),
)
TEXT_FIELDS = tuple(spec for spec in FIELDS if spec.is_text)
KEYWORD_FIELDS = tuple(spec for spec in FIELDS if not spec.is_text)


@dataclass(frozen=True)
class Provenance:
    """What Captioneer recorded about its own contribution to a file (the ``captioneer:`` namespace).

    Each attribute is one XMP property, named in camelCase (``prompt_hash`` → ``captioneer:promptHash``);
    ``keywords`` (the keywords we added) is a bag, the rest texts. ``<field>_hash`` is the hash of the text we
    wrote into that text field, to tell later whether it is still ours.
    """

    model: str = ""
    engine: str = ""
    quant: str = ""
    prompt_hash: str = ""
    time: str = ""
    caption_hash: str = ""
    title_hash: str = ""
    alt_text_hash: str = ""
    keywords: tuple[str, ...] = ()


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


# (attribute of Provenance, its tag), in writing order: the one list both reading and writing walk.
PROVENANCE: tuple[tuple[str, Source], ...] = tuple(
    (item.name, Source(f"Xmp.{NS_PREFIX}.{_camel(item.name)}", Kind.BAG if item.default == () else Kind.TEXT))
    for item in dataclasses.fields(Provenance)
)


@dataclass(frozen=True)
class PhotoMetadata:
    """The fields of :data:`FIELDS`, as one photo or sidecar holds them now.

    Keyword fields are tuples of entries; text fields map a language (``x-default``, ``en``, …) to text.
    ``has_iptc`` says whether the file already carries IPTC-IIM (we only write IPTC then);
    ``iptc_foreign_charset`` that it is in a character set other than UTF-8 (we leave it alone then).
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
        """The ``x-default`` text of a text field (``""`` when absent)."""
        return getattr(self, name).get(X_DEFAULT, "")

    def fields(self) -> dict[str, Any]:
        """The fields we write, as plain JSON-able data (for journals and diffs)."""
        return {
            spec.name: dict(getattr(self, spec.name)) if spec.is_text else list(getattr(self, spec.name))
            for spec in FIELDS
            if spec.written
        }

    def same_fields(self, other: PhotoMetadata) -> bool:
        """Whether the fields we write are equal (provenance and IPTC presence aside)."""
        return self.fields() == other.fields()
