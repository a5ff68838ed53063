"""Makes real, tiny video clips for the tests with PyAV (FFmpeg's encoders and muxers from its wheel).

Every frame shows a white bar along the left edge of the stored picture with a black corner at its top, and a
grey level that counts frames (``frame_level``), so a test can tell where the bar and its corner end up after
rotation and mirroring, and which frame was sampled at a given time. Clips are at most 160×96 and 3 s and take
milliseconds to write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

BAR = 16
"""Width in pixels of the white bar on the stored picture's left edge."""
CORNER = 12
"""Side in pixels of the black square at the bar's top (the stored picture's top-left corner)."""
LEVEL_STEP = 9
"""Grey-level step between consecutive frames: frame n is ``n * LEVEL_STEP`` (28 frames stay apart)."""


@dataclass(frozen=True)
class ClipKind:
    """A container and codec the tagger must read, as FFmpeg names them."""

    suffix: str
    container: str
    codec: str
    width: int = 160
    height: int = 96
    tag: str | None = None  # the sample entry's four letters where players insist on one
    encoder_options: tuple[tuple[str, str], ...] = ()
    pixel_format: str = "yuv420p"
    hdr: bool = False  # tagged BT.2020 with the HLG transfer, as an iPhone's HDR clip is


_QUIET_X265 = (("x265-params", "log-level=none"),)

KINDS = {
    "mp4": ClipKind(".mp4", "mp4", "libx264"),
    "mov": ClipKind(".mov", "mov", "h264"),
    "m4v": ClipKind(".m4v", "ipod", "libx264"),
    "mkv": ClipKind(".mkv", "matroska", "libx264"),
    "avi": ClipKind(".avi", "avi", "mpeg4"),
    # H.263, the classic 3GP codec, takes only its standard sizes: QCIF is 176×144.
    "3gp": ClipKind(".3gp", "3gp", "h263", 176, 144),
    # What phones record today: HEVC in MOV (iPhone; its HDR clips are 10-bit HLG), VP9 in Matroska, AV1 in
    # MP4 (recent Android).
    "hevc": ClipKind(".mov", "mov", "libx265", tag="hvc1", encoder_options=_QUIET_X265),
    "hdr": ClipKind(
        ".mov",
        "mov",
        "libx265",
        tag="hvc1",
        encoder_options=_QUIET_X265,
        pixel_format="yuv420p10le",
        hdr=True,
    ),
    "vp9": ClipKind(".mkv", "matroska", "libvpx-vp9"),
    "av1": ClipKind(".mp4", "mp4", "libsvtav1"),
}


def frame_level(index: int) -> int:
    """The grey level frame ``index`` is painted with (right of the bar)."""
    return min(255, index * LEVEL_STEP)


def frame_pixels(index: int, width: int, height: int) -> np.ndarray:
    """Frame ``index``: white bar on the left, black top-left corner, the rest grey at :func:`frame_level`."""
    pixels = np.full((height, width, 3), frame_level(index), dtype=np.uint8)
    pixels[:, :BAR] = 255
    pixels[:CORNER, :BAR] = 0
    return pixels


def make_clip(
    path: Path,
    kind: ClipKind | str = "mp4",
    *,
    seconds: float = 2.0,
    fps: int = 12,
    rotation: int = 0,
    mirror: bool = False,
    audio: bool = False,
    gop: int | None = None,
    options: dict[str, str] | None = None,
    pts: Sequence[int] | None = None,
) -> Path:
    """Write a clip of ``seconds`` at ``fps`` to ``path``.

    ``rotation`` is the clockwise turn a viewer applies (90 for an upright phone clip, as exiftool's
    ``Rotation`` reads it), stored as a display matrix the way phones store it; ``mirror`` adds a left-right
    flip after the turn (a front camera's selfie mirror). ``gop`` is the keyframe interval in frames
    (default: the encoder's; exact for H.264); ``options`` go to the muxer (encryption, ``movflags``);
    ``pts`` gives each frame's time in 1/``fps`` units (a variable frame rate: gaps where nothing moved).
    """
    kind = KINDS[kind] if isinstance(kind, str) else kind
    with av.open(str(path), "w", format=kind.container, options=options or {}) as container:
        stream = container.add_stream(kind.codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = kind.width, kind.height, kind.pixel_format
        if kind.hdr:
            codec = stream.codec_context
            codec.color_primaries, codec.color_trc, codec.colorspace = 9, 18, 9  # BT.2020, ARIB STD-B67 (HLG)
        if kind.tag:
            stream.codec_context.codec_tag = kind.tag
        encoder_options = dict(kind.encoder_options)
        if gop is not None:
            stream.codec_context.gop_size = gop
            if kind.codec == "libx264":  # keyframes exactly every ``gop`` frames: no extra ones at scene cuts
                encoder_options["x264-params"] = f"keyint={gop}:min-keyint={gop}:scenecut=0"
        stream.codec_context.options = encoder_options
        if rotation or mirror:
            stream.set_display_rotation(-rotation, hflip=mirror)  # FFmpeg counts counter-clockwise
        sound = container.add_stream("aac", rate=48000) if audio else None
        count = len(pts) if pts is not None else max(1, round(seconds * fps))
        for index in range(count):
            frame = av.VideoFrame.from_ndarray(frame_pixels(index, kind.width, kind.height), format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[index], Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
        if sound is not None:
            _write_tone(container, sound, seconds)
    return path


def _write_tone(container: av.container.OutputContainer, stream: av.AudioStream, seconds: float) -> None:
    rate = 48000
    samples = np.sin(np.arange(int(rate * seconds)) * 2 * np.pi * 440 / rate).astype(np.float32)
    for start in range(0, len(samples), 1024):
        chunk = samples[start : start + 1024][None, :]
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode())


def make_audio_only(path: Path, seconds: float = 1.0) -> Path:
    """An MP4 with sound and no picture (a voice memo saved as .mp4)."""
    with av.open(str(path), "w", format="mp4") as container:
        _write_tone(container, container.add_stream("aac", rate=48000), seconds)
    return path


def make_encrypted(path: Path) -> Path:
    """A CENC-encrypted MP4 (the scheme DRM'd downloads use), keyed with a key the test never hands over."""
    return make_clip(
        path,
        "mp4",
        seconds=1.0,
        options={
            "encryption_scheme": "cenc-aes-ctr",
            "encryption_key": "00112233445566778899aabbccddeeff",
            "encryption_kid": "ffeeddccbbaa99887766554433221100",
        },
    )


def cut(path: Path, keep: float, name: str | None = None) -> Path:
    """A copy of ``path`` holding only its first ``keep`` fraction of bytes (a copy that stopped early)."""
    data = path.read_bytes()
    target = path.with_name(name or f"cut-{path.name}")
    target.write_bytes(data[: int(len(data) * keep)])
    return target
