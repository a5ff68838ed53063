"""Probing and sampling real clips made by the test with PyAV: every container the tagger scans, rotation as a
viewer sees it, the right frame at each time, bounded memory, and one clear line for each broken file."""

from __future__ import annotations

import gc
import math
import os
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from captioneer.backends.cancel import CancelToken
from captioneer.backends.errors import Cancelled, CaptioneerError, ImageError
from captioneer.backends.files import TEMP_PREFIX
from captioneer.backends.request import PreparedImage
from captioneer.desktop.core.video import (
    UNUSABLE_VIDEO_KINDS,
    VIDEO_SUFFIXES,
    VideoError,
    is_video_path,
    poster_frame,
    probe,
    sample_frames,
)
from captioneer.desktop.core.video_budget import SamplingMode, SamplingPlan, plan_sampling
from captioneer.desktop.core.video_orientation import (
    clockwise_rotation,
    matrix_rotation,
    quarter_turn,
    read_matrix,
)
from tests.video_clips import (
    KINDS,
    ClipKind,
    cut,
    frame_level,
    make_audio_only,
    make_clip,
    make_encrypted,
)

EXIFTOOL = shutil.which("exiftool")
CODECS = {"libx264": "h264", "h264": "h264", "mpeg4": "mpeg4", "h263": "h263", "libx265": "hevc"}
CODECS |= {"libvpx-vp9": "vp9", "libsvtav1": "av1"}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return {name: make_clip(folder / f"{name}{kind.suffix}", kind) for name, kind in KINDS.items()}


def level(image: Image.Image) -> float:
    """The grey level of the picture away from the bar (its middle)."""
    pixels = np.asarray(image.convert("L"), dtype=np.float64)
    h, w = pixels.shape
    return float(pixels[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3].mean())


def shown_frame(image: Image.Image) -> int:
    """Which frame of a :mod:`tests.video_clips` clip a picture shows, from its grey level."""
    return min(range(29), key=lambda index: abs(frame_level(index) - level(image)))


def bar_side(image: Image.Image) -> str:
    """Which edge of the picture the white bar is on."""
    pixels = np.asarray(image.convert("L"), dtype=np.float64)
    edges = {"left": pixels[:, :2], "right": pixels[:, -2:], "top": pixels[:2, :], "bottom": pixels[-2:, :]}
    return max(edges, key=lambda side: edges[side].mean())


def dark_corner(image: Image.Image) -> str:
    """Which corner of the picture the bar's black square is in."""
    pixels = np.asarray(image.convert("L"), dtype=np.float64)
    corners = {
        "top-left": pixels[0, 0],
        "top-right": pixels[0, -1],
        "bottom-left": pixels[-1, 0],
        "bottom-right": pixels[-1, -1],
    }
    return min(corners, key=lambda corner: corners[corner])


def test_suffixes_are_the_ones_phones_and_cameras_write() -> None:
    assert {".mp4", ".mov", ".m4v", ".mkv", ".avi", ".3gp"} == VIDEO_SUFFIXES
    assert is_video_path(Path("IMG_0001.MOV")) and not is_video_path(Path("IMG_0001.JPG"))


@pytest.mark.parametrize("name", list(KINDS))
def test_probe_reads_every_kind(clips: dict[str, Path], name: str) -> None:
    kind = KINDS[name]
    info = probe(clips[name])
    assert info.duration == pytest.approx(2.0, abs=1 / 12)
    assert info.frame_rate == pytest.approx(12.0)
    assert info.frame_count == (None if kind.container == "matroska" else 24)  # Matroska stores no count
    assert info.codec == CODECS[kind.codec]
    assert (info.coded_width, info.coded_height, info.rotation) == (kind.width, kind.height, 0)
    # H.263's QCIF pixels are 12:11 wide: a viewer sees 192×144
    assert (info.width, info.height) == ((192, 144) if name == "3gp" else (kind.width, kind.height))
    assert not info.has_audio


@pytest.mark.parametrize("name", list(KINDS))
def test_sampled_frames_are_the_ones_shown_at_their_times(clips: dict[str, Path], name: str) -> None:
    info = probe(clips[name])
    # 8 frames: their times fall mid-frame (a time on a frame's first instant depends on the container's
    # rounding of timestamps: Matroska keeps milliseconds)
    plan = plan_sampling(info, 512, mode=SamplingMode.IMAGES, frames_per_second=4)
    frames = sample_frames(clips[name], plan)
    assert len(frames) == plan.frame_count == 8
    for planned, frame in zip(plan.times, frames, strict=True):
        assert frame.image.size == (plan.width, plan.height) and frame.image.mode == "RGB"
        # what every engine takes as an image, costing the tokens the plan counted
        assert PreparedImage(frame.image, str(clips[name])).tokens == plan.tokens_per_frame
        assert 0 <= frame.time <= planned < info.duration
        assert shown_frame(frame.image) == math.floor(planned * 12) == round(frame.time * 12)
        assert bar_side(frame.image) == "left"


def test_far_apart_times_seek_and_decode_forward(tmp_path: Path) -> None:
    """Keyframes every 4 frames, times more than a second apart: each is reached by a seek, in any
    container."""
    for container in ("mp4", "mkv", "avi"):
        clip = make_clip(tmp_path / f"seek{KINDS[container].suffix}", container, seconds=3.0, fps=8, gop=4)
        times = (0.1, 0.3, 1.45, 2.2, 2.95)
        frames = sample_frames(clip, SamplingPlan(SamplingMode.IMAGES, times, 64, 32, 2, 10))
        assert [shown_frame(f.image) for f in frames] == [math.floor(t * 8) for t in times], container
        assert [f.time for f in frames] == [math.floor(t * 8) / 8 for t in times]


def test_keyframe_slack_takes_the_keyframe_a_seek_lands_on(tmp_path: Path) -> None:
    """Keyframes every 0.5 s: with half a second of slack, a far time gets the keyframe before it instead of
    the exact frame; with less slack than the distance, the exact frame."""
    for container in ("mp4", "mkv"):
        clip = make_clip(tmp_path / f"gop{KINDS[container].suffix}", container, seconds=3.0, fps=8, gop=4)
        plan = SamplingPlan(SamplingMode.IMAGES, (0.1, 1.45, 2.9), 64, 32, 2, 6)
        loose = sample_frames(clip, plan, keyframe_slack=0.5)
        assert [shown_frame(f.image) for f in loose] == [0, 8, 20], container
        assert [f.time for f in loose] == [0.0, 1.0, 2.5]
        tight = sample_frames(clip, plan, keyframe_slack=0.3)
        assert [shown_frame(f.image) for f in tight] == [0, 11, 23], container


def test_audio_does_not_disturb_probe_or_sampling(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "talk.mov", "mov", audio=True)
    info = probe(clip)
    assert info.has_audio and info.duration == pytest.approx(2.0, abs=0.1)
    frames = sample_frames(clip, plan_sampling(info, 64, max_frames=4))
    assert [shown_frame(f.image) for f in frames] == [3, 9, 15, 21]


@pytest.mark.parametrize(
    ("rotation", "mirror", "side", "corner"),
    [
        (0, False, "left", "top-left"),
        (90, False, "top", "top-right"),  # an upright phone clip
        (180, False, "right", "bottom-right"),
        (270, False, "bottom", "bottom-left"),
        (0, True, "right", "top-right"),  # mirrored after the turn, as a front camera may store it
        (90, True, "top", "top-left"),
        (180, True, "left", "bottom-left"),
        (270, True, "bottom", "bottom-right"),
    ],
)
def test_rotation_and_mirror_are_applied_as_a_viewer_sees_them(
    tmp_path: Path, rotation: int, mirror: bool, side: str, corner: str
) -> None:
    """The stored picture has its bar on the left and the bar's black corner at the top: turned clockwise by
    90 the bar is on top and the corner top right, as a phone shows it (and as ffplay turns it)."""
    clip = make_clip(tmp_path / "phone.mp4", "mp4", rotation=rotation, mirror=mirror)
    info = probe(clip)
    # a mirror with no turn or a half turn is stored as a half turn plus an upside-down flip (exiftool reads
    # the same): the turn it reports is the matrix's
    assert info.rotation == ((rotation + 180) % 360 if mirror and rotation in (0, 180) else rotation)
    turned = rotation in (90, 270)
    assert (info.width, info.height) == ((96, 160) if turned else (160, 96))
    plan = plan_sampling(info, 64, max_frames=4)
    assert (plan.height > plan.width) == turned
    for frame in sample_frames(clip, plan):
        assert frame.image.size == (plan.width, plan.height)
        assert (bar_side(frame.image), dark_corner(frame.image)) == (side, corner)


@pytest.mark.skipif(EXIFTOOL is None, reason="exiftool is the independent reader")
def test_the_rotated_clip_is_stored_the_way_phones_store_it(tmp_path: Path) -> None:
    """exiftool reads the same clockwise turn from the track header that an upright iPhone clip carries."""
    clip = make_clip(tmp_path / "IMG_0001.MOV", "mov", rotation=90)
    out = subprocess.run(
        [EXIFTOOL, "-s3", "-Rotation", "-ImageSize", str(clip)], capture_output=True, text=True
    )
    assert out.stdout.split() == ["90", "160x96"]
    assert probe(clip).rotation == 90


def test_display_matrix_angles_become_clockwise_quarter_turns() -> None:
    angles = (0, -90, 90, 180, -180, -89.6, 44)
    assert [clockwise_rotation(a) for a in angles] == [0, 90, 270, 180, 180, 90, 0]
    one = 1 << 16  # 16.16 fixed point
    upright_phone = (0, one, 0, -one, 0, 0, 0, 0, 1 << 30)
    assert matrix_rotation(upright_phone) == -90 and quarter_turn(upright_phone) == 90
    assert quarter_turn(None) == 0 and matrix_rotation((0,) * 9) == 0
    assert read_matrix(struct.pack("=9i", *upright_phone)) == upright_phone
    assert read_matrix(b"\x00" * 35) is None and read_matrix(None) is None


def test_frames_are_scaled_at_decode_so_memory_stays_small(tmp_path: Path) -> None:
    """32 frames of a 1280×720 clip at a 64-token plan: only small pictures are kept, and no decoded frame
    outlives the call. (PyAV ties a frame whose side data was read into a reference cycle; a decoded frame
    caught so keeps the decoder's whole frame pool, ~60 MB here, until the cycle collector runs.)"""
    big = ClipKind(".mp4", "mp4", "libx264", 1280, 720)
    clip = make_clip(tmp_path / "big.mp4", big, seconds=2.0, fps=16, rotation=90)
    plan = plan_sampling(probe(clip), 64 * 32, max_frames=32, frames_per_second=16, min_frame_tokens=64)
    assert plan.frame_count == 32 and plan.tokens_per_frame <= 64
    gc.collect()
    gc.disable()  # what is freed must be freed by reference counting, as between two collections
    try:
        frames = sample_frames(clip, plan)
        # type(), not isinstance(): reading __class__ trips deprecation warnings of lazily loaded modules
        decoded = [o for o in gc.get_objects() if type(o) is av.VideoFrame]
        alive = [frame for frame in decoded if frame.width * frame.height > 64 * 1024]
    finally:
        gc.enable()
    assert all(f.image.size == (plan.width, plan.height) for f in frames)
    assert alive == [], f"{len(alive)} decoded frames of {alive[0].width}×{alive[0].height} still alive"


def test_cancel_stops_sampling(clips: dict[str, Path]) -> None:
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        sample_frames(clips["mp4"], plan_sampling(probe(clips["mp4"]), 256), cancel=cancel)


def broken(tmp_path: Path, what: str) -> Path:
    """A file that cannot be used as a clip, of the kind ``what`` names."""
    full = make_clip(tmp_path / "full.mp4", "mp4")
    if what == "zero-bytes":
        (tmp_path / "zero.mp4").write_bytes(b"")
        return tmp_path / "zero.mp4"
    if what == "cut-mp4":  # the index (moov) is written last: half a file has none
        return cut(full, 0.5)
    if what == "cut-mkv":
        return cut(make_clip(tmp_path / "full.mkv", "mkv"), 0.4)
    if what == "cut-avi":
        return cut(make_clip(tmp_path / "full.avi", "avi"), 0.3)
    if what == "text":
        (tmp_path / "notes.mp4").write_text("not a video at all\n")
        return tmp_path / "notes.mp4"
    if what == "garbled":  # a real header, then noise where the pictures were
        data = bytearray(full.read_bytes())
        data[48:-600] = random.Random(7).randbytes(len(data) - 648)
        (tmp_path / "garbled.mp4").write_bytes(bytes(data))
        return tmp_path / "garbled.mp4"
    if what == "audio-only":
        return make_audio_only(tmp_path / "voice.mp4")
    if what == "encrypted":
        return make_encrypted(tmp_path / "rented.mp4")
    if what == "fairplay":  # Apple's store files: a "drmi" sample entry FFmpeg has no decoder for
        data = make_encrypted(tmp_path / "cenc.mp4").read_bytes()
        assert data.count(b"encv") == 1
        (tmp_path / "bought.m4v").write_bytes(data.replace(b"encv", b"drmi"))
        return tmp_path / "bought.m4v"
    if what == "unknown-codec":  # a format FFmpeg does not know, unprotected
        data = full.read_bytes()
        (tmp_path / "odd.mp4").write_bytes(data.replace(b"avc1", b"zzzz"))
        return tmp_path / "odd.mp4"
    if what == "missing":
        return tmp_path / "gone.mp4"
    if what == "folder":
        (tmp_path / "folder.mp4").mkdir()
        return tmp_path / "folder.mp4"
    if what == "fifo":
        os.mkfifo(tmp_path / "pipe.mp4")
        return tmp_path / "pipe.mp4"
    raise AssertionError(what)


@pytest.mark.parametrize(
    ("what", "kind", "message"),
    [
        ("zero-bytes", "empty", "empty file (0 bytes)"),
        ("cut-mp4", "corrupt", "video file is cut short: copy it again from the original"),
        ("cut-mkv", "corrupt", "video file is cut short"),
        ("cut-avi", "corrupt", "video file is cut short"),
        ("text", "not-a-video", "not a video file"),
        ("garbled", "corrupt", "video is damaged: it cannot be decoded"),
        ("audio-only", "no-video", "has sound but no picture (an audio-only file): nothing to tag"),
        ("encrypted", "protected", "video is copy-protected (DRM/encrypted): it cannot be decoded; tag an"),
        ("fairplay", "protected", "video is copy-protected (DRM/encrypted)"),
        ("unknown-codec", "unsupported", "video is in a format this app cannot decode"),
        ("missing", "missing", "file not found"),
        ("folder", "unreadable", "is not a regular file (a folder, device or pipe): not tagged"),
        ("fifo", "unreadable", "is not a regular file"),
    ],
)
def test_broken_files_give_one_clear_line(tmp_path: Path, what: str, kind: str, message: str) -> None:
    path = broken(tmp_path, what)
    with pytest.raises(VideoError) as caught:
        info = probe(path)
        sample_frames(path, plan_sampling(info, 256))  # a cut MKV or AVI may still probe: sampling finds it
    error = caught.value
    assert isinstance(error, ImageError) and isinstance(error, CaptioneerError)
    assert error.kind == kind
    assert (kind in UNUSABLE_VIDEO_KINDS) == (what not in ("missing", "folder", "fifo"))  # retry those
    assert str(error).startswith(message)
    assert "\n" not in str(error) and len(str(error)) < 120


def test_a_clip_cut_after_its_index_probes_but_sampling_says_where_it_stops(tmp_path: Path) -> None:
    """An index-first (fast start) MP4 cut short still opens: its length is known, its late pictures are
    not."""
    full = make_clip(
        tmp_path / "fast.mp4", "mp4", seconds=3.0, fps=8, gop=4, options={"movflags": "faststart"}
    )
    clip = cut(full, 0.75)
    info = probe(clip)
    assert info.duration == pytest.approx(3.0, abs=0.2)
    with pytest.raises(VideoError, match=r"^video file is cut short") as caught:
        sample_frames(clip, plan_sampling(info, 256, max_frames=6))
    assert caught.value.kind == "corrupt"


def test_a_still_held_for_seconds_is_not_taken_for_a_cut(tmp_path: Path) -> None:
    """A screen recording writes no frame while nothing moves: frames 0–11 in the first second, then frames
    12–23 from 5 s on. At 3 s a viewer still sees frame 11."""
    clip = make_clip(tmp_path / "screen.mp4", "mp4", pts=[*range(12), *range(60, 72)])
    info = probe(clip)
    assert info.duration == pytest.approx(6.0, abs=0.1)
    plan = SamplingPlan(SamplingMode.IMAGES, (0.5, 3.0, 5.5), 64, 32, 2, 6)
    frames = sample_frames(clip, plan)
    assert [shown_frame(f.image) for f in frames] == [6, 11, 18]
    assert [f.time for f in frames] == pytest.approx([0.5, 11 / 12, 5.5])


def test_links_are_refused_for_the_tagger_and_followed_on_request(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    link = tmp_path / "link.mp4"
    link.symlink_to(clips["mp4"])
    assert probe(link).frame_count == 24
    with pytest.raises(VideoError, match="symbolic link") as caught:
        probe(link, refuse_links=True)
    assert caught.value.kind == "refused"
    leftover = tmp_path / f"{TEMP_PREFIX}1234-clip.mp4"
    shutil.copy(clips["mp4"], leftover)
    with pytest.raises(VideoError, match="leftover Captioneer temp file") as caught:
        probe(leftover, refuse_links=True)
    assert caught.value.kind == "refused"


def test_without_pyav_a_clip_says_what_to_install(
    clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # as if the video extra were not installed
    with pytest.raises(
        VideoError, match=r"install the video extra \(pip install 'captioneer\[video\]'\)"
    ) as caught:
        probe(clips["mp4"])
    assert caught.value.kind == "needs-plugin"


def test_a_live_recording_without_a_stored_length_is_measured_from_its_packets(tmp_path: Path) -> None:
    """A Matroska file written live stores no duration anywhere: the last packet's time gives it."""
    clip = make_clip(tmp_path / "live.mkv", "mkv", options={"live": "1"})
    info = probe(clip)
    assert info.frame_count is None
    assert info.duration == pytest.approx(2.0, abs=1 / 12)
    frames = sample_frames(clip, plan_sampling(info, 256, max_frames=4))
    assert [shown_frame(f.image) for f in frames] == [3, 9, 15, 21]


def test_a_poster_frame_is_upright_small_and_past_the_first_instant(tmp_path: Path) -> None:
    """A phone's portrait clip gives a portrait thumbnail of the frame shown at 2/3 s (a third of 2 s)."""
    clip = make_clip(tmp_path / "IMG_0002.MOV", "mov", rotation=90)
    poster = poster_frame(clip, 64)
    assert poster.size == (38, 64) and poster.mode == "RGB"
    assert shown_frame(poster) == 8 and bar_side(poster) == "top"
    assert poster_frame(clip, 1000).size == (96, 160)  # never enlarged
    long_clip = make_clip(tmp_path / "long.mp4", "mp4", seconds=3.0, fps=8)
    assert shown_frame(poster_frame(long_clip, 64)) == 8  # at most 1 s in
    with pytest.raises(VideoError, match="^has sound but no picture"):
        poster_frame(make_audio_only(tmp_path / "voice.mp4"), 64)
