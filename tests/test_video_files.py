"""What a video file's bytes say before decoding: a video container or not, and cut short or whole."""

from __future__ import annotations

import io

import pytest

from captioneer.desktop.core.video_files import (
    has_protection_box,
    looks_like_video,
    movie_box,
    read_vint,
    video_cut_short,
)


def box(kind: bytes, payload: bytes = b"", size: int | None = None) -> bytes:
    """One ISO base media box; ``size`` overrides the length it claims."""
    return (size if size is not None else 8 + len(payload)).to_bytes(4, "big") + kind + payload


FTYP = box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2avc1mp41")
EBML = b"\x1a\x45\xdf\xa3\x84" + b"\x42\x86\x81\x01"  # EBML header of 4 bytes: EBMLVersion 1


@pytest.mark.parametrize(
    ("data", "video"),
    [
        (FTYP + box(b"mdat", b"x" * 8), True),
        (box(b"moov", b"x" * 8), True),  # a QuickTime file from before ftyp existed
        (b"RIFF\x10\x00\x00\x00AVI LIST", True),
        (b"RIFF\x10\x00\x00\x00WAVEfmt ", False),  # a sound file
        (EBML + b"\x18\x53\x80\x67\x81\x00", True),
        (b"\xff\xd8\xff\xe0 a JPEG", False),
        (b"hello, world", False),
    ],
)
def test_looks_like_video(data: bytes, video: bool) -> None:
    assert looks_like_video(data[:64]) is video


@pytest.mark.parametrize(
    ("data", "cut_short"),
    [
        (FTYP + box(b"moov", b"m" * 20) + box(b"mdat", b"d" * 100), False),
        (FTYP + box(b"moov", b"m" * 20) + box(b"mdat", b"d" * 40, size=108), True),  # mdat stops early
        (FTYP + box(b"mdat", b"d" * 30, size=0), False),  # size 0: the last box runs to the end
        (FTYP + box(b"mdat", b"d" * 30) + b"\x00\x00", True),  # a box header cut inside
        # a 64-bit size
        (FTYP + (1).to_bytes(4, "big") + b"mdat" + (10_000).to_bytes(8, "big") + b"d" * 50, True),
        (FTYP + box(b"\x00\x01\x02\x03", b"?" * 8, size=9999), False),  # garbage, not a box: damaged, not cut
        (b"RIFF" + (1000).to_bytes(4, "little") + b"AVI " + b"x" * 500, True),
        (b"RIFF" + (500).to_bytes(4, "little") + b"AVI " + b"x" * 496, False),
        (EBML + b"\x18\x53\x80\x67\x43\xe8" + b"s" * 100, True),  # a Segment of 1,000 bytes in 100
        (EBML + b"\x18\x53\x80\x67\x81\x10" + b"s" * 16, False),
        (EBML + b"\x18\x53\x80\x67\x01\xff\xff\xff\xff\xff\xff\xff" + b"s" * 16, False),  # unknown size: live
        (b"plain text, not a video", False),
    ],
)
def test_video_cut_short(data: bytes, cut_short: bool) -> None:
    assert video_cut_short(io.BytesIO(data), len(data)) is cut_short


def test_ebml_variable_length_integers() -> None:
    assert read_vint(b"\x81", 0) == (1, 1)
    assert read_vint(b"\x40\x02", 0) == (2, 2)
    assert read_vint(b"\x1f\xff\xff\xff", 0) == (None, 4)  # all value bits set: unknown
    assert read_vint(b"\x10\x00", 0) == (None, 4)  # the data ends inside it
    assert read_vint(b"\x00", 0) == (None, 1)


def test_the_movie_box_is_found_wherever_it_is() -> None:
    moov = box(b"moov", box(b"trak", b"t" * 12))
    for data in (FTYP + moov + box(b"mdat", b"d" * 50), FTYP + box(b"mdat", b"d" * 50) + moov):
        assert movie_box(io.BytesIO(data), len(data)) == moov[8:]
    assert movie_box(io.BytesIO(FTYP + box(b"mdat")), len(FTYP) + 8) is None


def test_a_protection_box_is_recognised_by_its_shape() -> None:
    sinf = box(b"sinf", box(b"frma", b"avc1") + box(b"schm", b"\x00" * 4 + b"cenc"))
    assert has_protection_box(box(b"trak", box(b"drmi", b"\x00" * 8 + sinf)))
    assert not has_protection_box(box(b"trak", box(b"avc1", b"\x00" * 8)))
    assert not has_protection_box(b"\x00\x00\x00\x02sinf frma")  # the letters, not a box holding frma
