"""What a video file's own bytes say before any decoder runs: whether it starts like a video container, and
whether it is shorter than its container's structure promises (a copy cut short), to tell the two apart in the
one line a person reads when FFmpeg refuses a file.

Three container families cover the tagger's suffixes: ISO base media (MP4, MOV, M4V, 3GP: a chain of sized
boxes), RIFF (AVI: one sized chunk) and Matroska (MKV: EBML elements with variable-length sizes).
"""

from __future__ import annotations

import re
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


def boxes_run_past(handle: BinaryIO, size: int) -> bool:
    """Whether an ISO base media file's top-level boxes promise more than its ``size`` bytes."""
    offset = 0
    while offset + 8 <= size:
        handle.seek(offset)
        header = handle.read(16)
        length = int.from_bytes(header[:4], "big")
        if length == 1:  # a 64-bit size follows the type
            if len(header) < 16:
                return True
            length = int.from_bytes(header[8:16], "big")
        elif length == 0:  # the last box runs to the end of the file
            return False
        if length < 8 or not _BOX_TYPE.fullmatch(header[4:8]):
            return False  # not a box chain we understand: call it damaged, not cut short
        offset += length
    return offset > size or 0 < size - offset < 8


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
