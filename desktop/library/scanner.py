"""Incremental, resumable library scans: find photos and video clips, key them by content, relink moves,
never delete."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from captioneer.backends.cancel import CancelToken, token_or_new
from captioneer.backends.errors import Cancelled, CaptioneerError
from captioneer.desktop.core.video import NEEDS_PYAV, is_video_path
from captioneer.desktop.library.catalog import Catalog
from captioneer.desktop.library.catalog.scanning import (
    FileState,
    KnownPhoto,
    ScanBatch,
    known_photos,
    unreadable_reasons,
)
from captioneer.desktop.library.folder_walk import check_root_online, printable, utf8_name, walk
from captioneer.desktop.library.folder_walk import escape_undecodable as escape_undecodable
from captioneer.desktop.library.video_scan import pyav_installed

ContentKey = Callable[[Path], str]
KeywordReader = Callable[[Path, "tuple[Path, ...]"], "tuple[tuple[str, ...], tuple[str, ...]] | None"]
"""Reads the keywords a photo's files already have, given the photo and its sidecars: (keywords, notes), or
None when it cannot read any."""
ScanProgress = Callable[[int, str], None]
"""Called with the number of files looked at so far and the current path."""

HASH_ATTEMPTS = 3
"""A file that keeps changing while it is read is left for the next scan after this many tries."""
SHOWN_PROBLEMS = 20
"""How many skipped or unreadable files a report names before it says "and N more"."""


class LibraryPathError(CaptioneerError):
    """The library folder's own path cannot be stored (a name that is not UTF-8)."""

    exit_code = 2


@dataclass
class ScanReport:
    """What a scan found. Nothing here is ever deleted from disk or from the catalog."""

    root: Path
    library_id: int = 0
    files: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    relinked: int = 0
    missing: int = 0
    unreadable: int = 0
    catalog_writes: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(path, reason) for what the scan did not enter: symlinks, special files, unreadable folders."""
    requeued: list[str] = field(default_factory=list)
    """Files that changed while they were read; the next scan picks them up."""
    unreadable_files: list[tuple[str, str]] = field(default_factory=list)
    """(path, reason) for every photo that cannot be read, new or known from an earlier scan; not tagged."""
    keywords_read: int = 0
    """Photos whose existing keywords were read (new or changed photos, changed sidecars)."""
    metadata_notes: list[tuple[str, str]] = field(default_factory=list)
    """(path, note) for photos whose existing keywords could not all be read (a malformed sidecar)."""
    videos: int = 0
    """How many of ``files`` are video clips."""
    live_photo_videos: list[str] = field(default_factory=list)
    """Live Photo motion clips, not catalogued (their photos are): one count in the summary, no line each."""
    videos_need_pyav: int = 0
    """Clips left out because PyAV is not installed (one line in the report, with this count)."""

    def summary(self) -> str:
        parts = [media_count(self.files - self.videos, self.videos).replace(" and ", ", ")]
        parts += [
            f"{self.new} new",
            f"{self.changed} changed",
            f"{self.unchanged} unchanged",
        ]
        for label, count in (
            ("moved", self.relinked),
            ("missing", self.missing),
            ("unreadable", len(self.unreadable_files)),
            ("skipped", len(self.skipped)),
            ("changing, left for next scan", len(self.requeued)),
            ("Live Photo video{s} skipped (their photos are tagged)", len(self.live_photo_videos)),
            ("video{s} skipped (PyAV is not installed)", self.videos_need_pyav),
        ):
            if count:
                parts.append(f"{count} {label.format(s='' if count == 1 else 's')}")
        return ", ".join(parts)

    def problem_lines(self, limit: int = SHOWN_PROBLEMS) -> list[str]:
        """One line per file the scan skipped or could not read, names escaped (see :func:`printable`),
        at most ``limit`` of each kind, then "… and N more"."""
        lines: list[str] = []
        if self.videos_need_pyav:
            lines.append(f"skipped {self.videos_need_pyav} videos: {NEEDS_PYAV}")
        for label, entries in (
            ("skipped", self.skipped),
            ("unreadable", self.unreadable_files),
            ("metadata", self.metadata_notes),
        ):
            lines.extend(
                f"{label} {printable(path)}: {printable(reason)}" for path, reason in entries[:limit]
            )
            if len(entries) > limit:
                lines.append(f"… and {len(entries) - limit} more {label}")
        return lines


def media_count(photos: int, videos: int) -> str:
    """``3 photos and 2 videos``, ``1 photo``, ``2 videos``: a kind is named when there are some (photos when
    there is nothing)."""
    parts = [f"{photos} photo{'s' if photos != 1 else ''}"] if photos or not videos else []
    if videos:
        parts.append(f"{videos} video{'s' if videos != 1 else ''}")
    return " and ".join(parts)


def default_content_key(path: Path, cancel: CancelToken | None = None) -> str:
    """Photo identity keyed on image data, so it survives metadata writes: GIFs by :func:`gif_content_key`
    (only the first frame is decoded, to know the file is a readable image), video clips by their media
    data (:func:`~captioneer.desktop.library.identity.video_content_key`), everything else by the metadata
    layer's key.

    Raises:
        ImageError: the file cannot be read or decoded (a VideoError for a clip).
        Cancelled: ``cancel`` was set while a clip was read.
    """
    from captioneer.desktop.core.images import decode_image
    from captioneer.desktop.library.identity import image_content_key, video_content_key

    if is_video_path(path):
        return video_content_key(path, cancel)

    if path.suffix.lower() == ".gif":
        key = gif_content_key(path)
        if key is not None:
            decode_image(path).close()
            return key
    return image_content_key(path)


def default_keyword_reader(
    path: Path, sidecars: tuple[Path, ...]
) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """The keywords already in the photo and its sidecars (see
    :func:`captioneer.desktop.library.metadata.existing_keywords`); None without python-exiv2 (nothing to
    read them with; scans still work). A video clip's come from its sidecars only: its own metadata is not
    read (exiv2 reads some MP4 and MOV boxes, but no tool this app writes with keeps keywords there)."""
    if not _HAS_EXIV2:
        return None
    from captioneer.desktop.library.metadata import existing_keywords

    try:
        return existing_keywords(path, sidecars)
    except (OSError, ValueError, CaptioneerError) as exc:
        # A scan must never stop on one photo's metadata: record nothing for it, and say why.
        return (), (f"its keywords cannot be read ({exc})",)


_HAS_EXIV2 = importlib.util.find_spec("exiv2") is not None


def gif_content_key(path: Path) -> str | None:
    """A key for a GIF's image data read from its blocks, without decoding a single frame: the screen
    descriptor, colour tables, image descriptors and compressed frame data, skipping comment and application
    extensions (where XMP lives). Decoding every frame of a long animation took over a minute per file.

    Returns None when the file is not a well-formed GIF (the caller decodes it, and reports why it fails).
    Raises OSError when the file cannot be read.
    """
    data = path.read_bytes()
    if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 13:
        return None
    digest = hashlib.sha256(data[6:13])
    pos = 13
    if data[10] & 0x80:  # global colour table
        table = 3 << ((data[10] & 0x07) + 1)
        digest.update(data[pos : pos + table])
        pos += table
    while pos < len(data):
        block = data[pos]
        if block == 0x3B:  # trailer
            return "gif:" + digest.hexdigest()
        if block == 0x21:  # extension: label, then sub-blocks
            label = data[pos + 1 : pos + 2]
            end = _gif_sub_blocks_end(data, pos + 2)
            if end is None:
                return None
            if label == b"\xf9":  # graphic control: frame timing and transparency are image data
                digest.update(data[pos:end])
            pos = end
        elif block == 0x2C:  # image descriptor, optional local colour table, LZW size, sub-blocks
            if pos + 10 > len(data):
                return None
            flags = data[pos + 9]
            start = pos
            pos += 10
            if flags & 0x80:
                pos += 3 << ((flags & 0x07) + 1)
            end = _gif_sub_blocks_end(data, pos + 1)
            if end is None:
                return None
            digest.update(data[start:end])
            pos = end
        else:
            return None
    return "gif:" + digest.hexdigest()  # no trailer: many GIFs in the wild end without one


def _gif_sub_blocks_end(data: bytes, pos: int) -> int | None:
    """The position after the chain of GIF data sub-blocks starting at ``pos`` (None if cut off)."""
    while pos < len(data):
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos
    return None


def scan_library(
    catalog: Catalog,
    root: Path,
    *,
    content_key: ContentKey | None = None,
    keywords: KeywordReader | None = None,
    cancel: CancelToken | None = None,
    progress: ScanProgress | None = None,
    commit_every: int = 200,
    commit_seconds: float = 2.0,
) -> ScanReport:
    """Bring the catalog up to date with the photos and video clips under ``root`` (Live Photo motion clips
    left out: see :mod:`~captioneer.desktop.library.video_scan`; clips skipped in one line without PyAV).

    Unchanged files (same size and modification time) cost one ``stat`` and no catalog write. New and
    changed files are keyed by content; a new path whose content belongs to a photo that is gone from its
    old path is that photo moved, and keeps its results. Photos not found are marked ``missing`` only when
    the whole tree was read; files on disk are never touched. Writes are committed in small batches, so a
    killed scan resumes where it stopped.

    The keywords a photo's files already have (embedded and in its sidecars) are read into the catalog for
    new and changed photos, and again whenever a sidecar appears, changes or goes (noticed from the folder
    listing, so unchanged photos without sidecars still cost one ``stat``).

    Raises:
        LibraryOfflineError: ``root`` is unreachable or empty; the catalog is unchanged.
        Cancelled: ``cancel`` was set; what was scanned so far is kept.
    """
    cancel = token_or_new(cancel)
    key_of = content_key or partial(default_content_key, cancel=cancel)
    keywords_of = keywords or default_keyword_reader
    root = Path(os.path.abspath(root))
    if not utf8_name(str(root)):
        raise LibraryPathError(
            f"The folder {printable(str(root))} has a name that is not UTF-8 text, which the catalog cannot "
            "store: rename it (or a folder above it) and scan again."
        )
    check_root_online(root)
    report = ScanReport(root=root)
    report.library_id = library_id = _library_for(catalog, root)
    prefix = str(root).rstrip(os.sep) + os.sep
    known = known_photos(catalog, prefix)
    known_errors = unreadable_reasons(catalog, prefix)
    seen: set[str] = set()
    unreadable_dirs: list[str] = []
    batch = ScanBatch(catalog, commit_every, commit_seconds)
    last_progress = 0.0
    can_read_videos: bool | None = None  # asked at the first clip: importing PyAV takes a moment
    try:
        for path, st, (stamp, sidecars) in walk(
            root, report.skipped, unreadable_dirs, report.live_photo_videos
        ):
            cancel.raise_if_cancelled()
            name = str(path)
            seen.add(name)  # a clip left out for want of PyAV is still there: never marked missing
            if is_video_path(path):
                if can_read_videos is None:
                    can_read_videos = pyav_installed()
                if not can_read_videos:
                    report.videos_need_pyav += 1
                    continue
                report.videos += 1
            report.files += 1
            if progress is not None and time.monotonic() - last_progress > 0.2:
                last_progress = time.monotonic()
                progress(report.files, name)
            record = known.get(name)
            if (
                record is not None
                and record[1] == st.st_size
                and record[2] == st.st_mtime_ns
                and (record[3] == "unreadable" or (record[3] == "present" and record[4]))
            ):
                report.unchanged += 1
                if record[3] == "unreadable":
                    report.unreadable_files.append((name, known_errors.get(name) or "cannot be read"))
                elif record[5] != stamp:
                    _read_keywords(batch, record[0], path, (stamp, sidecars), keywords_of, report)
                    batch.maybe_commit()
                continue
            photo_id = _index_file(batch, library_id, path, st, record, key_of, report)
            if photo_id is not None:
                _read_keywords(batch, photo_id, path, (stamp, sidecars), keywords_of, report)
            batch.maybe_commit()
        cancel.raise_if_cancelled()
        _mark_missing(batch, known, seen, unreadable_dirs, report)
        report.catalog_writes = batch.total
        if batch.total:
            batch.mark_scanned(library_id)
        batch.commit()
    except BaseException:
        # Keep what was scanned: every committed batch is consistent on its own.
        if batch.pending:
            batch.commit()
        raise
    return report


def _library_for(catalog: Catalog, root: Path) -> int:
    """The library that contains ``root`` (a scan of a subfolder belongs to it), or a new one."""
    for library_id, library_root in catalog.libraries():
        if root == Path(library_root) or root.is_relative_to(library_root):
            return library_id
    return catalog.library_id(root) or 0


def _hash_stable(
    path: Path, st: os.stat_result, key_of: ContentKey
) -> tuple[str | None, str | None, str | None]:
    """(key, error, kind) for ``path``, or (None, None, None) if it kept changing while being read."""
    before = st
    for _ in range(HASH_ATTEMPTS):
        try:
            key, error, kind = key_of(path), None, None
        except Cancelled:
            raise
        except CaptioneerError as exc:
            key, error, kind = None, str(exc), getattr(exc, "kind", "unreadable")
        except OSError as exc:
            key, error, kind = None, f"cannot read ({exc.strerror})", "unreadable"
        try:
            after = path.stat()
        except OSError:
            return None, None, None
        if (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns):
            return key, error, kind
        before = after
    return None, None, None


def _index_file(
    batch: ScanBatch,
    library_id: int,
    path: Path,
    st: os.stat_result,
    record: KnownPhoto | None,
    key_of: ContentKey,
    report: ScanReport,
) -> int | None:
    """Key a new or changed file and record it; returns the photo's id when it is present (readable)."""
    key, error, kind = _hash_stable(path, st, key_of)
    name = str(path)
    if key is None and error is None:
        report.requeued.append(name)
        return None
    if key is None:
        report.unreadable += 1
        report.unreadable_files.append((name, error or "cannot be read"))
    # Re-read size and mtime: the stable hash may have waited out a change.
    current = path.stat()
    status = "present" if key is not None else "unreadable"
    file = FileState(current.st_size, current.st_mtime_ns, key, status, error, kind)
    if record is not None:
        batch.update_photo(record[0], file)
        report.changed += 1
        return record[0] if key is not None else None
    if key is not None:
        moved = _moved_photo(batch, key, name)
        if moved is not None:
            batch.relink(moved, library_id, name, current.st_size, current.st_mtime_ns)
            report.relinked += 1
            return moved
    photo_id = batch.add_photo(library_id, name, file)
    report.new += 1
    return photo_id if key is not None else None


def _read_keywords(
    batch: ScanBatch,
    photo_id: int,
    path: Path,
    sidecars: tuple[str, tuple[Path, ...]],
    keywords_of: KeywordReader,
    report: ScanReport,
) -> None:
    """Store the keywords the photo's files already have, with the sidecar stamp they were read with."""
    stamp, paths = sidecars
    found = keywords_of(path, paths)
    if found is None:
        return
    keywords, notes = found
    note = "; ".join(notes) or None
    if note:
        report.metadata_notes.append((str(path), note))
    batch.set_existing_keywords(photo_id, keywords, stamp, note)
    report.keywords_read += 1


def _moved_photo(batch: ScanBatch, key: str, new_path: str) -> int | None:
    """A catalogued photo with this content whose file is gone from its old path (so it moved here)."""
    for photo_id, old_path in batch.same_content(key, new_path):
        if not os.path.lexists(old_path):
            return photo_id
    return None


def _mark_missing(
    batch: ScanBatch,
    known: dict[str, KnownPhoto],
    seen: set[str],
    unreadable_dirs: list[str],
    report: ScanReport,
) -> None:
    for name, record in known.items():
        if name in seen or record[3] == "missing" or any(name.startswith(d) for d in unreadable_dirs):
            continue
        # Relinked photos moved away from this path already; only flag what is still recorded here.
        if not batch.still_at(record[0], name) or (os.path.lexists(name) and not os.path.islink(name)):
            continue
        batch.mark_missing(record[0])
        report.missing += 1
