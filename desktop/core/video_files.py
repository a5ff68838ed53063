"""What a video file's own bytes say before any decoder runs: whether it starts like a video container, and
whether it is shorter than its container's structure promises (a copy cut short), to tell the two apart in the
one line a person reads when FFmpeg refuses a file.

Three container families cover the tagger's suffixes: ISO base media (MP4, MOV, M4V, 3GP: a chain of sized
boxes), RIFF (AVI: one sized chunk) and Matroska (MKV: EBML elements with variable-length sizes).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

_EBML = b"\x1a\x45\xdf\xa3"
_SEGMENT = b"\x18\x53\x80\x67"
# Box types that may open a QuickTime file written before the ``ftyp`` box existed.
_OLD_QUICKTIME_BOXES = (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")
_BOX_TYPE = re.compile(rb"[a-zA-Z0-9 \xa9]{4}")  # ISO box types are four letters, digits, spaces or ©


def looks_like_video(head: bytes) -> bool:
    """Whether ``head`` (a file's first bytes) starts like MP4/MOV/3GP, AVI or Matroska."""
    if head[4:8] == b"ftyp" or head[4:8] in _OLD_QUICKTIME_BOXES:
        return True
    return head.startswith(_EBML) or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")


@dataclass(frozen=True)
class Box:
    """One top-level box of an ISO base media file: its type, where it starts, its header's and its whole
    length (which may promise more bytes than the file has)."""

    kind: bytes
    offset: int
    header: int
    length: int


def top_level_boxes(handle: BinaryIO, size: int) -> Iterator[Box]:
    """The top-level boxes of the file open in ``handle`` (``size`` bytes), in order, up to the end of the
    file or the first bytes that are not a box header (damage). A 64-bit size cut off by the end of the file
    is a box that promises more than the file has."""
    offset = 0
    while offset + 8 <= size:
        handle.seek(offset)
        header = handle.read(16)
        length, kind, skip = int.from_bytes(header[:4], "big"), header[4:8], 8
        if not _BOX_TYPE.fullmatch(kind):
            return
        if length == 1:  # a 64-bit size follows the type
            if size - offset < 16:
                yield Box(kind, offset, 16, 16)
                return
            length, skip = int.from_bytes(header[8:16], "big"), 16
        elif length == 0:  # the last box runs to the end of the file
            length = size - offset
        if length < skip:
            return
        yield Box(kind, offset, skip, length)
        offset += length


def boxes_run_past(handle: BinaryIO, size: int) -> bool:
    """Whether an ISO base media file's top-level boxes promise more than its ``size`` bytes."""
    end = 0
    for box in top_level_boxes(handle, size):
        end = box.offset + box.length
        if end > size:
            return True
    return 0 < size - end < 8  # the end falls inside the next box's header


def read_vint(data: bytes, at: int) -> tuple[int | None, int]:
    """An EBML variable-length integer at ``at``: (value, bytes used); value None for "unknown size" (all
    value bits set) or when ``data`` ends inside it."""
    if at >= len(data) or data[at] == 0:
        return None, 1
    width = 9 - data[at].bit_length()
    if at + width > len(data):
        return None, width
    value = data[at] & (0xFF >> width)
    for byte in data[at + 1 : at + width]:
        value = (value << 8) | byte
    return (None if value == (1 << (7 * width)) - 1 else value), width


def matroska_runs_past(head: bytes, size: int) -> bool:
    """Whether a Matroska file's Segment (its header read into ``head``) promises more than ``size`` bytes.
    A live recording writes "unknown size" there, which promises nothing."""
    header_size, used = read_vint(head, len(_EBML))
    if header_size is None:
        return False
    at = len(_EBML) + used + header_size
    if head[at : at + 4] != _SEGMENT:
        return False
    segment_size, used = read_vint(head, at + 4)
    return segment_size is not None and at + 4 + used + segment_size > size


def video_cut_short(handle: BinaryIO, size: int) -> bool:
    """Whether the video file open in ``handle`` (``size`` bytes) ends before its container says it does."""
    handle.seek(0)
    head = handle.read(256)
    if head[:4] == b"RIFF":
        return int.from_bytes(head[4:8], "little") + 8 > size
    if head.startswith(_EBML):
        return matroska_runs_past(head, size)
    if looks_like_video(head):
        return boxes_run_past(handle, size)
    return False


MOVIE_BOX_LIMIT = 64 * 1024 * 1024
"""The most of a movie box (``moov``: the index, no pictures) read; phones write a few hundred kilobytes."""


def movie_box(handle: BinaryIO, size: int) -> bytes | None:
    """The contents of the ``moov`` box of an ISO base media file (its index: tracks, sample entries), or
    None when there is none."""
    for box in top_level_boxes(handle, size):
        if box.kind == b"moov":
            handle.seek(box.offset + box.header)
            return handle.read(min(box.length - box.header, MOVIE_BOX_LIMIT))
    return None


def has_protection_box(movie: bytes) -> bool:
    """Whether a movie box holds a protection scheme box (``sinf``, with the ``frma`` box naming the original
    format inside it): what a DRM-protected track's sample entry carries (CENC, Apple FairPlay)."""
    at = movie.find(b"sinf")
    while at >= 4:
        length = int.from_bytes(movie[at - 4 : at], "big")
        if 8 <= length <= len(movie) - at + 4 and b"frma" in movie[at : at - 4 + length]:
            return True
        at = movie.find(b"sinf", at + 4)
    return False
