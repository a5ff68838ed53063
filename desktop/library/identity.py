"""Photo identity: what makes two files the same photo, so a key survives our own metadata writes.

A JPEG or PNG is keyed on its image segments or chunks (metadata segments skipped); other formats on their
decoded pixels; files nothing here can decode on their bytes. A video clip is keyed on its media data,
streamed (:func:`video_content_key`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path
from typing import Any, BinaryIO

from captioneer.backends.cancel import CancelToken
from captioneer.backends.errors import ImageError
from captioneer.desktop.core.images import (
    RAW_DAMAGED,
    RAW_NEEDS_DECODER,
    RAW_SUFFIXES,
    decode_image,
    file_error,
    image_error,
)
from captioneer.desktop.core.video_files import top_level_boxes

STREAM_CHUNK = 1 << 20
"""Bytes read at a time when a clip is hashed: a multi-gigabyte clip never sits in memory."""
_ISO_MEDIA = {b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}
"""Box types an ISO base media file (MP4, MOV, M4V, 3GP) may start with."""

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
    if path.suffix.lower() in RAW_SUFFIXES:
        if not can_decode_raw():
            raise image_error(RAW_NEEDS_DECODER, "needs-plugin", "pip install 'captioneer[raw]'")
        import rawpy

        try:
            with rawpy.imread(str(path)) as raw:
                return hashlib.sha256(raw.raw_image_visible.tobytes()).hexdigest()
        except rawpy.LibRawError as exc:
            raise image_error(RAW_DAMAGED, "corrupt", str(exc)) from None
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
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise file_error(exc) from None
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


def video_content_key(path: Path, cancel: CancelToken | None = None) -> str:
    """A clip's key that stays the same when only its metadata changes, after checking it is a video that
    can be shown (:func:`captioneer.desktop.core.video.probe` decodes its first frame).

    MP4, MOV, M4V and 3GP: a streamed sha256 of the media data (every ``mdat`` box's contents, in order), so
    exiftool or Photos rewriting the movie box (titles, dates, places in ``moov/udta``) keep the key; prefix
    ``video:``. Matroska, AVI and an ISO file without media data: the whole file, streamed; prefix ``file:``.

    Raises:
        VideoError: the clip cannot be read or shown (the probe's one line says why); PyAV is missing.
        Cancelled: ``cancel`` was set (checked between pieces: a 4 GB clip takes seconds to read).
    """
    from captioneer.desktop.core.video import probe

    path = Path(path)
    probe(path, refuse_links=True)
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            media = []
            if handle.read(8)[4:8] in _ISO_MEDIA:
                media = [box for box in top_level_boxes(handle, size) if box.kind == b"mdat"]
            digest = hashlib.sha256()
            for box in media:
                handle.seek(box.offset + box.header)
                _stream_into(digest, handle, min(box.length, size - box.offset) - box.header, cancel)
            if media:
                return "video:" + digest.hexdigest()
            handle.seek(0)
            _stream_into(digest, handle, size, cancel)
            return "file:" + digest.hexdigest()
    except OSError as exc:
        raise file_error(exc) from None


def _stream_into(digest: Any, handle: BinaryIO, length: int, cancel: CancelToken | None) -> None:
    """Feed ``length`` bytes (fewer if the file ends first) from the open ``handle`` into ``digest``."""
    while length > 0:
        if cancel is not None:
            cancel.raise_if_cancelled()
        chunk = handle.read(min(STREAM_CHUNK, length))
        if not chunk:
            return
        digest.update(chunk)
        length -= len(chunk)
