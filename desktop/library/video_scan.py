"""Videos in a library scan: which clips are the motion half of a Live Photo (not catalogued on their own),
and whether PyAV is installed to read clips at all.

A Live Photo is an iPhone photo (``IMG_1234.HEIC`` or ``.JPG``) and a short clip of the moments around it
(``IMG_1234.MOV``; some exports write ``.MP4``) side by side in one folder under the same name. The pairing is
what tells it: a clip named like a photo beside it is that photo's motion, whatever its length (Apple's run
about 3 s; a length limit would split pairs that exports trimmed or padded). The photo is tagged; the clip is
counted in the scan's summary and left alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from captioneer.desktop.core.images import is_image_path
from captioneer.desktop.core.video import is_video_path

LIVE_PHOTO_SUFFIXES = frozenset({".mov", ".mp4"})
"""The suffixes a Live Photo's motion clip is written with (Photos: MOV; some exports and cloud downloads:
MP4)."""


def is_media_path(path: Path) -> bool:
    """Whether a scan catalogs the file by its name: a photo or a video clip (content is checked later)."""
    return is_image_path(path) or is_video_path(path)


def live_photo_videos(names: Iterable[str]) -> set[str]:
    """The names, among those of one folder's files, of Live Photo motion clips: a MOV or MP4 with exactly the
    stem of a photo in the same folder. AppleDouble files (``._IMG_1.HEIC``) are never photos or clips."""
    listed = [name for name in names if not name.startswith("._")]
    photo_stems = {Path(name).stem for name in listed if is_image_path(Path(name))}
    return {
        name
        for name in listed
        if Path(name).suffix.lower() in LIVE_PHOTO_SUFFIXES and Path(name).stem in photo_stems
    }


def pyav_installed() -> bool:
    """Whether PyAV (the ``video`` extra) can be imported: without it clips are skipped, not unreadable."""
    try:
        import av  # noqa: F401 - only whether it imports
    except ImportError:
        return False
    return True
