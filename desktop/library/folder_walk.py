"""Walking a library folder: its photo (and video) files in a stable order, with their sidecars, never through
a link.

Also the check that the folder is there at all, and file names as the catalog stores and prints them."""

from __future__ import annotations

import os
import stat
import unicodedata
from collections.abc import Iterator
from pathlib import Path

from captioneer.backends.errors import CaptioneerError
from captioneer.backends.files import TEMP_PREFIX
from captioneer.desktop.core.images import is_image_path
from captioneer.desktop.library.sidecars import SIDECAR_SUFFIX, stem_owner
from captioneer.desktop.library.video_scan import is_media_path, live_photo_videos


class LibraryOfflineError(CaptioneerError):
    """The library root is missing, unreadable or empty: probably an unmounted drive."""

    exit_code = 3


def escape_undecodable(text: str) -> str:
    """``text`` with the bytes of a file name that were not UTF-8 (lone surrogates, from the file system)
    written as visible ``\\xNN`` escapes, so it can be encoded as UTF-8 (JSON output, the catalog)."""
    return "".join(f"\\x{ord(char) - 0xDC00:02x}" if 0xDC80 <= ord(char) <= 0xDCFF else char for char in text)


def printable(text: str) -> str:
    """``text`` safe to print on one line: control characters, line separators and undecodable bytes (lone
    surrogates from the file system) become visible escapes, so a file name cannot forge output lines."""
    out = []
    for char in text:
        if unicodedata.category(char) not in _UNPRINTABLE:
            out.append(char)
        elif 0xDC80 <= ord(char) <= 0xDCFF:
            out.append(escape_undecodable(char))
        else:
            out.append(char.encode("unicode_escape", "backslashreplace").decode("ascii"))
    return "".join(out)


_UNPRINTABLE = frozenset({"Cc", "Cs", "Zl", "Zp"})


def check_root_online(root: Path) -> None:
    """Raise :class:`LibraryOfflineError` unless ``root`` is a readable folder with something in it."""
    try:
        if not root.is_dir():
            raise LibraryOfflineError(
                f"Library offline: {root} is not reachable. Connect the drive or check the path; "
                "nothing in the catalog was marked missing."
            )
        with os.scandir(root) as entries:
            empty = next(iter(entries), None) is None
    except PermissionError:
        raise LibraryOfflineError(
            f"Library offline: no permission to read {root}. Nothing in the catalog was marked missing."
        ) from None
    except OSError as exc:
        raise LibraryOfflineError(
            f"Library offline: {root} cannot be read ({exc.strerror}). "
            "Nothing in the catalog was marked missing."
        ) from None
    if empty:
        raise LibraryOfflineError(
            f"Library offline: {root} is empty (an unmounted drive looks like this). Nothing in the catalog "
            "was marked missing."
        )


def walk(
    root: Path,
    skipped: list[tuple[str, str]],
    unreadable_dirs: list[str],
    live_videos: list[str] | None = None,
) -> Iterator[tuple[Path, os.stat_result, tuple[str, tuple[Path, ...]]]]:
    """Yield (path, stat, (sidecar stamp, sidecars)) for photo files below ``root`` in a stable order,
    entering no symlink, special file or hidden folder; unreadable folders are skipped, named in
    ``unreadable_dirs`` and, with what else was left out and why, in ``skipped``.

    Given ``live_videos`` (a list), video clips are walked too, except the motion clips of Live Photos (see
    :func:`~captioneer.desktop.library.video_scan.live_photo_videos`), whose paths are put in it instead."""
    wanted = is_image_path if live_videos is None else is_media_path
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except OSError as exc:
            unreadable_dirs.append(str(folder).rstrip(os.sep) + os.sep)
            skipped.append((str(folder), f"folder not readable ({exc.strerror})"))
            continue
        subfolders: list[Path] = []
        by_name = {entry.name: entry for entry in entries}
        motion = live_photo_videos(by_name) if live_videos is not None else set()
        # The files sharing a stem decide who owns the stem sidecar (as the writer sees them: every photo and
        # clip, a Live Photo's too; see sidecars.stem_owner).
        media_by_stem: dict[str, list[str]] = {}
        for entry in entries:
            if wanted(Path(entry.name)):
                media_by_stem.setdefault(Path(entry.name).stem, []).append(entry.name)
        for entry in entries:
            path = Path(entry.path)
            if not utf8_name(entry.name):
                # The catalog stores names as UTF-8 text; a legacy-encoded name is reported, not guessed.
                skipped.append((printable(entry.path), "file name is not UTF-8"))
                continue
            try:
                if entry.is_symlink():
                    if entry.is_dir() or wanted(path):
                        skipped.append((entry.path, "symbolic link (not followed)"))
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if not entry.name.startswith("."):
                        subfolders.append(path)
                    continue
                # Our own temp files (left by a killed write) and macOS AppleDouble files (``._IMG_1.MOV``:
                # Finder's metadata on a foreign disk) are never photos or videos, whatever their suffix.
                if not wanted(path) or entry.name.startswith(("._", TEMP_PREFIX)):
                    continue
                if entry.name in motion and live_videos is not None:
                    live_videos.append(entry.path)
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                skipped.append((entry.path, f"cannot read ({exc.strerror})"))
                continue
            if not stat.S_ISREG(st.st_mode):
                skipped.append((entry.path, "not a regular file"))
                continue
            yield path, st, sidecar_stamp(path, by_name, media_by_stem.get(path.stem, []))
        stack.extend(reversed(subfolders))


def sidecar_stamp(
    photo: Path, by_name: dict[str, os.DirEntry[str]], siblings: list[str]
) -> tuple[str, tuple[Path, ...]]:
    """The photo's sidecars (both names, the stem one only if the photo owns it; see
    :func:`captioneer.desktop.library.sidecars.stem_owner`) found in the folder listing, and a stamp of their
    names,
    sizes and mtimes (``""`` when there are none): a stat only for sidecars that exist, and no second look
    at the folder per photo."""
    names = [photo.name + SIDECAR_SUFFIX]
    if stem_owner(photo, siblings):
        names.append(photo.stem + SIDECAR_SUFFIX)
    parts = []
    found: list[Path] = []
    for name in names:
        entry = by_name.get(name)
        if entry is None:
            continue
        found.append(Path(entry.path))
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            parts.append(f"{name}:unreadable")
            continue
        parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}:{stat.S_IFMT(st.st_mode)}")
    return "|".join(parts), tuple(found)


def utf8_name(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
