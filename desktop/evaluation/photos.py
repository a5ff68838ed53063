"""The photos an evaluation runs on, and the keywords they already carry (the ground truth), read-only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from captioneer.backends.errors import ConfigurationError
from captioneer.desktop.library.folder_walk import walk


@dataclass
class PhotoSelection:
    """Photo files in a stable order, and what was left out and why (``(path, reason)``)."""

    photos: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def collect_photos(paths: Sequence[Path], limit: int | None = None) -> PhotoSelection:
    """The photo files named by ``paths``: files as they are, folders walked recursively (no links, no hidden
    folders) in name order; the first ``limit`` when given, each photo once.

    Raises:
        ConfigurationError: a path does not exist, or nothing named is a photo.
    """
    selection = PhotoSelection()
    seen: set[Path] = set()
    for path in paths:
        path = path.expanduser()
        if path.is_dir():
            found = [photo for photo, _stat, _sidecars in walk(path, selection.skipped, [])]
        elif path.is_file():
            found = [path]
        else:
            raise ConfigurationError(f"{path} does not exist: name photo files or folders.")
        for photo in found:
            key = photo.absolute()
            if key not in seen and (limit is None or len(selection.photos) < limit):
                seen.add(key)
                selection.photos.append(photo)
    if not selection.photos:
        raise ConfigurationError(
            "No photos to evaluate: the files and folders named hold no JPEG, PNG, HEIC, WebP, TIFF or RAW "
            "files."
        )
    return selection


def read_keyword_truth(photos: Sequence[Path]) -> tuple[dict[Path, frozenset[str]], list[str]]:
    """The keywords each photo already carries (embedded XMP/IPTC and XMP sidecars), read without writing
    anything; photos with none are left out. Also the notes for people about metadata that could not be read.
    """
    from captioneer.desktop.library.metadata import existing_keywords

    truth: dict[Path, frozenset[str]] = {}
    notes: list[str] = []
    for photo in photos:
        keywords, photo_notes = existing_keywords(photo)
        notes.extend(photo_notes)
        if keywords:
            truth[photo] = frozenset(keywords)
    return truth, notes

