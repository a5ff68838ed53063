"""Where a photo's metadata goes: sidecar names, finding existing sidecars, and embedded-or-sidecar decisions.

Pure functions over names and flags, plus :func:`find_sidecar`, which looks at the photo's folder. A video
clip is an item like a photo here, except that nothing is ever written into it: its metadata always goes to a
sidecar, named by the same rules.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from captioneer.desktop.core.images import IMAGE_SUFFIXES, RAW_SUFFIXES
from captioneer.desktop.core.video import VIDEO_SUFFIXES, is_video_path

SIDECAR_SUFFIX = ".xmp"
# Formats we write into (and verify after writing). HEIC/HEIF are here because metadata.md lists them, but
# exiv2 cannot write BMFF files yet, so :func:`choose_targets` sends them to a sidecar with that reason.
EMBEDDABLE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".tif", ".tiff", ".png", ".dng", ".heic", ".heif", ".hif"}
)
PROPRIETARY_RAW_SUFFIXES = RAW_SUFFIXES - {".dng"}


class SidecarNaming(StrEnum):
    """How a new sidecar is named: ``IMG_1.JPG.xmp`` (digiKam, darktable, Immich) or ``IMG_1.xmp``
    (Lightroom, Capture One)."""

    FULL = "full"
    STEM = "stem"


class WriteMode(StrEnum):
    """Where metadata is written. ``embedded`` still uses a sidecar for proprietary RAW, video clips,
    read-only files and formats exiv2 cannot write."""

    SIDECAR = "sidecar"
    EMBEDDED = "embedded"
    BOTH = "both"


@dataclass(frozen=True)
class SidecarChoice:
    """The sidecar to read and update for one photo.

    Attributes:
        path: the sidecar to use.
        exists: whether it exists now.
        notes: conflicts and warnings worth showing (both names present, a shared Lightroom sidecar).
    """

    path: Path
    exists: bool
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Targets:
    """Which files receive a photo's metadata, and why."""

    embed: bool
    sidecar: bool
    reasons: tuple[str, ...] = ()


def full_sidecar_name(photo: Path) -> Path:
    """``IMG_1.JPG`` → ``IMG_1.JPG.xmp``."""
    return photo.with_name(photo.name + SIDECAR_SUFFIX)


def stem_sidecar_name(photo: Path) -> Path:
    """``IMG_1.JPG`` → ``IMG_1.xmp``."""
    return photo.with_name(photo.stem + SIDECAR_SUFFIX)


def stem_owner(photo: Path, siblings: list[str]) -> bool:
    """Whether ``photo`` (a photo or a video clip) may use the shared ``IMG_1.xmp`` name, given the names of
    the images and clips in its folder that share its stem (``photo`` itself included).

    A photo or clip alone under its stem owns the name. In a RAW+JPEG pair the single proprietary RAW owns it
    (Lightroom keeps RAW metadata there); the JPEG never does. Two non-RAW files (JPEG+TIFF) both stay off it.
    Clips do not count against photos: a Live Photo's ``IMG_1.HEIC`` keeps the name it owned before its
    ``IMG_1.MOV`` was scanned, while a clip that shares its stem with anything (a photo, another clip) never
    takes it, so two items never write one sidecar.
    """
    same_stem = sorted({name for name in siblings if Path(name).stem == photo.stem} | {photo.name})
    if len(same_stem) == 1:
        return True
    if is_video_path(photo):
        return False
    stills = [name for name in same_stem if not is_video_path(Path(name))]
    if len(stills) == 1:
        return True
    raws = [name for name in stills if Path(name).suffix.lower() in PROPRIETARY_RAW_SUFFIXES]
    return len(raws) == 1 and raws[0] == photo.name


def choose_sidecar(
    photo: Path, naming: SidecarNaming, siblings: list[str], full_exists: bool, stem_exists: bool
) -> SidecarChoice:
    """Pick the sidecar for ``photo`` from what exists (pure; :func:`find_sidecar` gathers the inputs).

    An existing sidecar is always updated rather than shadowed by a new one under the other name; when both
    exist ``IMG.JPG.xmp`` wins and the conflict is reported. The stem name is used only by its owner
    (see :func:`stem_owner`).
    """
    full, stem = full_sidecar_name(photo), stem_sidecar_name(photo)
    owner = stem_owner(photo, siblings)
    if full_exists:
        notes = ()
        if stem_exists and owner:
            notes = (
                f"both {full.name} and {stem.name} exist: updating {full.name}; {stem.name} is left as it is",
            )
        return SidecarChoice(full, True, notes)
    if stem_exists and owner:
        return SidecarChoice(stem, True)
    if stem_exists:
        return SidecarChoice(
            full,
            False,
            (f"{stem.name} belongs to another file of the same name: writing {full.name} instead",),
        )
    if naming is SidecarNaming.STEM and owner:
        return SidecarChoice(stem, False)
    if naming is SidecarNaming.STEM:
        return SidecarChoice(
            full,
            False,
            (f"{stem.name} would be shared with another file of the same name: using {full.name}",),
        )
    return SidecarChoice(full, False)


_MEDIA_SUFFIXES = IMAGE_SUFFIXES | VIDEO_SUFFIXES


def stem_siblings(photo: Path) -> list[str]:
    """Names of the image and video files in ``photo``'s folder that share its stem (``photo`` included)."""
    names = []
    with os.scandir(photo.parent) as entries:
        for entry in entries:
            name = entry.name
            if Path(name).stem == photo.stem and Path(name).suffix.lower() in _MEDIA_SUFFIXES:
                names.append(name)
    return names


def find_sidecar(photo: Path, naming: SidecarNaming = SidecarNaming.FULL) -> SidecarChoice:
    """The sidecar to read and update for ``photo``, looking at what exists under both names.

    Symbolic links count as existing (and are refused later by the writer): they must never be shadowed by a
    new file either.
    """
    full, stem = full_sidecar_name(photo), stem_sidecar_name(photo)
    return choose_sidecar(photo, naming, stem_siblings(photo), os.path.lexists(full), os.path.lexists(stem))


def is_darktable_sidecar(xmp_keys: list[str]) -> bool:
    """Whether a sidecar holds darktable's namespace (darktable owns such files and may rewrite them)."""
    return any(key.startswith("Xmp.darktable.") for key in xmp_keys)


DARKTABLE_WARNING = (
    "darktable owns this sidecar: all its edits were kept and our fields merged in, but darktable may "
    "overwrite outside changes (enable 'look for updated XMP files on startup' in darktable)"
)


VIDEO_SIDECAR = "videos are never modified: using a sidecar"


def choose_targets(
    photo: Path, mode: WriteMode, *, image_writable: bool, exiv2_can_write: bool, verifiable: bool = True
) -> Targets:
    """Embedded, sidecar or both for one photo (pure).

    A video clip is never written into, whatever the mode: nothing checks a clip's frames after a write, and
    a damaged clip is a much bigger loss than a damaged sidecar.

    Args:
        photo: the photo or clip path (only its suffix matters).
        mode: what the user asked for.
        image_writable: the image file itself may be written (not read-only).
        exiv2_can_write: exiv2 can write metadata into this file format.
        verifiable: the pixels can be decoded to check them after writing (DNG needs rawpy).
    """
    suffix = photo.suffix.lower()
    if mode is WriteMode.SIDECAR:
        return Targets(embed=False, sidecar=True)
    reason = ""
    if is_video_path(photo):
        reason = VIDEO_SIDECAR
    elif suffix in PROPRIETARY_RAW_SUFFIXES:
        reason = "proprietary RAW files are never modified: using a sidecar"
    elif suffix not in EMBEDDABLE_SUFFIXES:
        reason = f"Captioneer does not write into {suffix or 'extension-less'} files: using a sidecar"
    elif not exiv2_can_write:
        reason = f"exiv2 cannot write metadata into {suffix} files: using a sidecar"
    elif not verifiable:
        reason = f"{suffix} pixels cannot be checked after writing without rawpy (captioneer[raw]): sidecar"
    elif not image_writable:
        reason = "the image file is read-only: using a sidecar"
    if reason:
        return Targets(embed=False, sidecar=True, reasons=(reason,))
    return Targets(embed=True, sidecar=mode is WriteMode.BOTH)
