"""Each photo's context for a run: its facts read from the catalog (folder, existing keywords) and from its
files (capture date, camera, GPS place, existing caption; embedded first, then its sidecars), turned into
the values and prompt block of core/context.py."""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from captioneer.desktop.core import places
from captioneer.desktop.core.context import (
    ContextSpec,
    PhotoFacts,
    camera_name,
    capture_date,
    context_values,
    gps_degrees,
    render_context,
    xmp_gps_degrees,
)
from captioneer.desktop.core.tasks import Task, TaskOptions, check_takes_context
from captioneer.desktop.library.catalog import Catalog, Photo
from captioneer.desktop.library.metadata import exiv2_module, photo_sidecars, read_metadata, sidecar_xmp

log = logging.getLogger(__name__)
FILE_VARIABLES = frozenset({"date", "place", "camera", "caption"})
"""The variables read from the photo's files (the others come from the catalog)."""

# (EXIF key, XMP key) pairs: embedded EXIF first; XMP where a sidecar (Lightroom, RAW) holds them.
_DATE = (("Exif.Photo.DateTimeOriginal", "Xmp.exif.DateTimeOriginal"), (None, "Xmp.photoshop.DateCreated"))
_MAKE = ("Exif.Image.Make", "Xmp.tiff.Make")
_MODEL = ("Exif.Image.Model", "Xmp.tiff.Model")


def _text(block: Any, key: str | None) -> str:
    return block[key].toString().strip() if block is not None and key and key in block else ""


def _exif_degrees(exif: Any, name: str) -> float | None:
    key = f"Exif.GPSInfo.GPS{name}"
    if exif is None or key not in exif or f"{key}Ref" not in exif:
        return None
    datum = exif[key]
    return gps_degrees([datum.toFloat(i) for i in range(datum.count())], exif[f"{key}Ref"].toString())


class _Blocks:
    """The metadata blocks of a photo and its sidecars, read once, searched in that order."""

    def __init__(self, photo: Path) -> None:
        exiv2 = exiv2_module()
        self.found: list[tuple[Any, Any, Any]] = []  # (xmp, iptc, exif)
        try:
            image = exiv2.ImageFactory.open(str(photo))
            image.readMetadata()
            self.found.append((image.xmpData(), image.iptcData(), image.exifData()))
        except exiv2.Exiv2Error as exc:
            log.info("no embedded metadata read from %s: %s", photo, exc)
        for sidecar in photo_sidecars(photo):
            if not os.path.lexists(sidecar):
                continue
            try:
                self.found.append((sidecar_xmp(sidecar), None, None))
            except (OSError, ValueError, exiv2.Exiv2Error) as exc:
                log.info("sidecar %s not read for context: %s", sidecar, exc)

    def first(self, exif_key: str | None, xmp_key: str) -> str:
        for xmp, _iptc, exif in self.found:
            text = _text(exif, exif_key) or _text(xmp, xmp_key)
            if text:
                return text
        return ""

    def date(self) -> str | None:
        return next((day for keys in _DATE if (day := capture_date(self.first(*keys)))), None)

    def position(self) -> tuple[float, float] | None:
        for xmp, _iptc, exif in self.found:
            latitude = _exif_degrees(exif, "Latitude")
            longitude = _exif_degrees(exif, "Longitude")
            if latitude is None or longitude is None:
                latitude = xmp_gps_degrees(_text(xmp, "Xmp.exif.GPSLatitude"))
                longitude = xmp_gps_degrees(_text(xmp, "Xmp.exif.GPSLongitude"))
            if latitude is not None and longitude is not None:
                return latitude, longitude
        return None

    def caption(self) -> str | None:
        for xmp, iptc, exif in self.found:
            text = read_metadata(xmp, iptc, exif).caption
            caption = text.get("x-default") or next(iter(text.values()), "")
            if caption.strip():
                return caption
        return None


def photo_facts(catalog: Catalog, photo: Photo, variables: tuple[str, ...]) -> PhotoFacts:
    """What ``photo`` says about each of ``variables``; its files are read only when one needs them.

    Raises:
        ConfigurationError: 'place' is asked for and place names cannot be looked up offline.
    """
    path = Path(photo.path)
    facts = PhotoFacts()
    if {"folder", "path"} & set(variables):
        root = catalog.library_root(photo.id)
        below = path.parent.relative_to(root).as_posix() if path.parent.is_relative_to(root) else ""
        facts = replace(facts, folder=path.parent.name or None, path=below if below != "." else None)
    if "keywords" in variables:
        facts = replace(facts, keywords=catalog.existing_keywords(photo.id)[0])
    if FILE_VARIABLES & set(variables):
        blocks = _Blocks(path)
        position = blocks.position() if "place" in variables else None
        camera = camera_name(blocks.first(*_MAKE), blocks.first(*_MODEL))
        facts = replace(
            facts,
            date=blocks.date() if "date" in variables else None,
            camera=camera if "camera" in variables else None,
            caption=blocks.caption() if "caption" in variables else None,
            place=places.place_at(*position) if position is not None else None,
        )
    return facts


def check_context(task: Task, spec: ContextSpec) -> None:
    """Make sure a run of ``task`` can send the context ``spec`` asks for, before any photo is asked.

    Raises:
        ConfigurationError: the task has no place for context, or what reads a variable is missing.
    """
    if not spec.on:
        return
    check_takes_context(task)
    if "place" in spec.variables:
        places.check_available()
    if FILE_VARIABLES & set(spec.variables):
        exiv2_module()


class PhotoContexts:
    """A run's context, photo by photo: gathered when the photo is prepared, asked with every request for
    it, and recorded with its result. A run without context asks exactly what it asked before."""

    def __init__(self, catalog: Catalog, task: Task, spec: ContextSpec) -> None:
        """Ready to gather ``spec``'s context for a run of ``task``.

        Raises:
            ConfigurationError: see :func:`check_context`.
        """
        check_context(task, spec)
        self.catalog = catalog
        self.spec = spec
        self.values: dict[str, dict[str, str]] = {}

    def gather(self, photo: Photo) -> None:
        """Read ``photo``'s context (nothing when the run has none)."""
        if self.spec.on:
            facts = photo_facts(self.catalog, photo, self.spec.variables)
            self.values[photo.path] = context_values(self.spec, facts)

    def options(self, base: TaskOptions, source: str) -> TaskOptions:
        """``base`` with the context of the photo at ``source`` (a prepared image's source path)."""
        if not self.spec.on:
            return base
        return replace(base, context=render_context(self.values.get(source, {})))

    def pop(self, path: str) -> dict[str, str]:
        """The context that was sent for the photo at ``path``, forgotten here (its result records it)."""
        return self.values.pop(path, {})
