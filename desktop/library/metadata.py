"""Our fields read from and written to exiv2's XMP, IPTC-IIM and EXIF blocks (one loop each over the field
table, :data:`~captioneer.desktop.library.fields.FIELDS`), the provenance, and a photo's existing keywords.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from captioneer.backends.files import open_regular
from captioneer.desktop.core.video import is_video_path
from captioneer.desktop.library.fields import (
    FIELDS,
    IPTC_CHARSET_KEY,
    IPTC_UTF8,
    NS_PREFIX,
    NS_URI,
    PROVENANCE,
    X_DEFAULT,
    FieldSpec,
    Kind,
    PhotoMetadata,
    Provenance,
    Source,
    Writes,
)
from captioneer.desktop.library.merge import all_keywords, clean_text, unite_keywords
from captioneer.desktop.library.sidecars import (
    full_sidecar_name,
    stem_owner,
    stem_siblings,
    stem_sidecar_name,
)
from captioneer.desktop.library.xmp_check import parse_properties


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

# ------------------------------------------------------------------------------------------------- read


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


def _iptc_values(iptc: Any, key: str) -> list[str]:
    return [datum.toString() for datum in iptc if datum.key() == key]


def _read_list(block: Any, source: Source) -> tuple[str, ...]:
    if source.kind is Kind.REPEATED:
        return tuple(_iptc_values(block, source.key))
    return _xmp_list(block, source.key)


def _read_text(block: Any, source: Source) -> str:
    if source.family == "Iptc":
        return "".join(_iptc_values(block, source.key)).strip()
    if source.family == "Exif":
        return block[source.key].toString().strip() if source.key in block else ""
    return block[source.key].toString() if source.key in block else ""


def _read_field(spec: FieldSpec, blocks: Mapping[str, Any]) -> Any:
    """One field from the blocks the file has: a keyword field's tags one after another; a text field's
    lang-alt, completed with the first other tag's text when it lacks ``x-default``."""
    present = [
        (source, blocks[source.family]) for source in spec.sources if blocks[source.family] is not None
    ]
    if not spec.is_text:
        return tuple(item for source, block in present for item in _read_list(block, source))
    value: dict[str, str] = {}
    for source, block in present:
        if source.kind is Kind.LANG_ALT:
            value = _xmp_lang_alt(block, source.key)
        elif not value.get(X_DEFAULT):
            text = _read_text(block, source)
            if text and text.casefold() not in source.ignore:
                value = {**value, X_DEFAULT: text}
    return value


def read_provenance(xmp: Any) -> Provenance | None:
    """Our ``captioneer:`` properties from an exiv2 XmpData, or None when we never wrote this file."""
    prefix = f"Xmp.{NS_PREFIX}."
    if not any(datum.key().startswith(prefix) for datum in xmp):
        return None
    return Provenance(
        **{
            name: _read_list(xmp, source) if source.kind is Kind.BAG else _read_text(xmp, source)
            for name, source in PROVENANCE
        }
    )


def read_metadata(xmp: Any, iptc: Any = None, exif: Any = None) -> PhotoMetadata:
    """Our fields from exiv2 containers (XMP always; IPTC and EXIF when the source is an image file).

    Each keyword field is read as it is (:func:`~captioneer.desktop.library.merge.all_keywords` unites them);
    the caption falls back to IPTC Caption-Abstract and then to EXIF ImageDescription (ignoring camera
    placeholders like "SONY DSC"), the title to IPTC ObjectName.
    """
    has_iptc = iptc is not None and not iptc.empty()
    blocks = {"Xmp": xmp, "Iptc": iptc if has_iptc else None, "Exif": exif}
    return PhotoMetadata(
        **{spec.name: _read_field(spec, blocks) for spec in FIELDS},
        provenance=read_provenance(xmp),
        has_iptc=has_iptc,
        iptc_foreign_charset=has_iptc
        and IPTC_CHARSET_KEY in iptc
        and iptc[IPTC_CHARSET_KEY].toString() != IPTC_UTF8,
    )


# ------------------------------------------------------------------------------------------------ write


def _utf8_prefix(text: str, limit: int) -> str:
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


def write_metadata(
    before: PhotoMetadata, after: PhotoMetadata, xmp: Any, iptc: Any = None, exif: Any = None
) -> None:
    """Set the fields that differ between ``before`` and ``after`` in exiv2 containers; touch nothing else.

    Each changed field goes to every tag its :class:`~captioneer.desktop.library.fields.Writes` allows: XMP
    always; IPTC-IIM only when ``iptc`` is given and already holds UTF-8 IPTC-IIM (texts cut to the dataset
    limits; the merge notes it); EXIF only when ``exif`` is given and the file already has EXIF, so we never
    create an EXIF block that lacks the tags EXIF requires.
    """
    exiv2 = exiv2_module()
    allowed = {
        Writes.ALWAYS: True,
        Writes.IF_IPTC: iptc is not None and not iptc.empty() and not after.iptc_foreign_charset,
        Writes.IF_EXIF: exif is not None and not exif.empty(),
        Writes.NEVER: False,
    }
    blocks = {"Xmp": xmp, "Iptc": iptc, "Exif": exif}
    for spec in FIELDS:
        new = getattr(after, spec.name)
        if getattr(before, spec.name) == new:
            continue
        for source in spec.sources:
            if allowed[source.writes]:
                _write_source(exiv2, blocks[source.family], source, new)
    _write_provenance(exiv2, xmp, after.provenance)


def _write_source(exiv2: Any, block: Any, source: Source, value: Any) -> None:
    """Replace one tag with a field's new value (a text tag gets the ``x-default`` text)."""
    key = source.key
    if source.kind is Kind.REPEATED:
        _set_iptc(exiv2, block, key, list(value))
        return
    if source.kind is Kind.TEXT:
        text = value.get(X_DEFAULT, "")
        if source.family == "Iptc":
            cut = _utf8_prefix(text, source.limit) if source.limit else text
            _set_iptc(exiv2, block, key, [cut] if text else [])
        elif text:  # EXIF: a text is set, never removed
            block[key] = text
        return
    if key in block:
        del block[key]
    if not value:
        return
    if source.kind is Kind.LANG_ALT:
        ordered = {X_DEFAULT: value[X_DEFAULT]} if X_DEFAULT in value else {}
        ordered.update((k, v) for k, v in value.items() if k != X_DEFAULT)
        block[key] = exiv2.LangAltValue(ordered)
    else:
        block[key] = _xmp_array(exiv2, source.kind, value)


def _xmp_array(exiv2: Any, kind: Kind, items: Iterable[str]) -> Any:
    value = exiv2.XmpArrayValue(exiv2.TypeId.xmpBag if kind is Kind.BAG else exiv2.TypeId.xmpSeq)
    for item in items:
        value.read(item)
    return value


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
    """Replace our ``captioneer:`` properties with ``provenance`` (nothing changes when it is None)."""
    if provenance is None:
        return
    prefix = f"Xmp.{NS_PREFIX}."
    for key in [d.key() for d in xmp if d.key().startswith(prefix)]:
        del xmp[key]
    for name, source in PROVENANCE:
        value = getattr(provenance, name)
        if value and source.kind is Kind.BAG:
            xmp[source.key] = _xmp_array(exiv2, source.kind, value)
        elif value:
            xmp[source.key] = clean_text(value)


# ------------------------------------------------------------------------------------ existing keywords


def photo_sidecars(photo: Path) -> list[Path]:
    """The sidecars that belong to ``photo``, existing or not: ``IMG.JPG.xmp``, and ``IMG.xmp`` when it
    exists and this photo owns that name (see :func:`captioneer.desktop.library.sidecars.stem_owner`)."""
    sidecars = [full_sidecar_name(photo)]
    if os.path.lexists(stem_sidecar_name(photo)) and stem_owner(photo, stem_siblings(photo)):
        sidecars.append(stem_sidecar_name(photo))
    return sidecars


def sidecar_xmp(sidecar: Path) -> Any:
    """A sidecar's exiv2 XmpData, read without following links and only when it is well-formed XML.

    Raises:
        OSError: it cannot be read (or is a link or special file).
        ValueError: it is not well-formed XML or declares a DOCTYPE (:func:`parse_properties`' words).
        exiv2.Exiv2Error: exiv2 cannot read it.
    """
    with os.fdopen(open_regular(sidecar), "rb") as fh:
        data = fh.read()
    parse_properties(data)
    parsed = exiv2_module().ImageFactory.open(data)
    parsed.readMetadata()
    return parsed.xmpData()


def existing_keywords(
    photo: Path, sidecars: Iterable[Path] | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The keywords a photo already has, from every keyword field of the photo and of its sidecars.

    Fields: XMP ``dc:subject``, the leaves of ``lr:hierarchicalSubject`` (``|``), ``digiKam:TagsList`` (``/``)
    and ``MicrosoftPhoto:LastKeywordXMP`` (``/``), and IPTC Keywords; embedded in the photo (never in a video
    clip: its keywords are in its sidecar) and in both sidecar names (``IMG.JPG.xmp``, and ``IMG.xmp`` when
    this photo owns that name; see :func:`captioneer.desktop.library.sidecars.stem_owner`). Merged
    case-insensitively, first spelling kept. Nothing is written. ``sidecars`` names the sidecars to read when
    the caller already knows them (the scanner, from its folder listing); by default they are looked up.

    A sidecar that is not well-formed XML (a stray ``&``, an unbound prefix, a missing close tag, a cut-off
    file, a DOCTYPE), a link or a special file contributes nothing, and a note says why; so does a photo
    whose embedded metadata exiv2 cannot read. A format exiv2 does not read has simply no keywords.

    Returns:
        (keywords, notes for people).
    """
    exiv2 = exiv2_module()
    found: list[tuple[str, ...]] = []
    notes: list[str] = []
    try:
        # A clip's keywords are in its sidecar only: Captioneer never writes into a video, and exiv2 reading
        # one would walk the whole clip's boxes for its technical properties.
        image = None if is_video_path(photo) else exiv2.ImageFactory.open(str(photo))
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
    for sidecar in photo_sidecars(photo) if sidecars is None else sidecars:
        if not os.path.lexists(sidecar):
            continue
        try:
            found.append(all_keywords(read_metadata(sidecar_xmp(sidecar))))
        except OSError as exc:
            notes.append(f"{sidecar.name} cannot be read ({exc.strerror}): its keywords are not shown")
        except ValueError as exc:
            # parse_properties says "it is not well-formed XML (…)" / "it declares a DOCTYPE, …"
            notes.append(f"{sidecar.name} {str(exc).removeprefix('it ')}: its keywords are not shown")
        except exiv2.Exiv2Error as exc:
            notes.append(f"exiv2 cannot read {sidecar.name} ({exc}): its keywords are not shown")
    return unite_keywords(*found), tuple(notes)
