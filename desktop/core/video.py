"""Video clips for the tagger: which files are videos, what a clip holds (:func:`probe`) and its frames at
chosen times (:func:`sample_frames`), decoded with PyAV.

PyAV (the ``video`` extra, ``av``) ships FFmpeg inside its wheel: no system ffmpeg, no subprocess, no network.
It is imported lazily, so the app starts without it and a clip then gets one clear line saying what to
install.

Rotation: phones store a portrait clip as a landscape picture plus a display matrix saying how to turn it.
:class:`VideoInfo` gives sizes as a viewer sees them and ``rotation`` as the clockwise turn (exiftool's
``Rotation`` tag: 90 for an upright iPhone clip); every sampled frame is turned, and mirrored where the matrix
says so, as FFmpeg's players show it (:mod:`~captioneer.desktop.core.video_orientation`). Anamorphic pixels (a
sample aspect ratio other than 1) are stretched to square ones.

Memory: frames are scaled to the plan's size while they are converted from the decoder's YUV to RGB (FFmpeg's
swscale), and only those small pictures are kept; the decoder holds its own few reference frames.

Every failure is a :class:`VideoError` (an :class:`~captioneer.backends.errors.ImageError`, so the tagger
records a clip that cannot be used exactly as it records such a photo) whose message is one line a person can
act on; FFmpeg's own words go to ``detail``.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from PIL import Image

from captioneer.backends.cancel import CancelToken
from captioneer.backends.errors import ImageError
from captioneer.backends.files import TEMP_PREFIX, open_regular
from captioneer.desktop.core.images import file_error
from captioneer.desktop.core.video_budget import SamplingPlan
from captioneer.desktop.core.video_files import (
    has_protection_box,
    looks_like_video,
    movie_box,
    video_cut_short,
)
from captioneer.desktop.core.video_orientation import (
    clockwise_rotation,
    display_transposes,
    displayed_size,
    read_matrix,
)

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".avi", ".3gp"})

# What a person reads; FFmpeg's own text goes to the log and to ``detail``.
NEEDS_PYAV = "videos need PyAV: install the video extra (pip install 'captioneer[video]')"
EMPTY = "empty file (0 bytes)"
NOT_REGULAR = "is not a regular file (a folder, device or pipe): not tagged"
LINK_REFUSED = "is a symbolic link: links are never followed; replace it with the video itself and rescan"
LEFTOVER = "a leftover Captioneer temp file from an interrupted write, not a video: not tagged"
NOT_A_VIDEO = "not a video file"
CUT_SHORT = "video file is cut short: copy it again from the original"
DAMAGED = "video is damaged: it cannot be decoded"
AUDIO_ONLY = "has sound but no picture (an audio-only file): nothing to tag"
NO_FRAMES = "video has no picture that can be decoded (damaged or cut short)"
UNSUPPORTED = "video is in a format this app cannot decode"
PROTECTED = "video is copy-protected (DRM/encrypted): it cannot be decoded; tag an unprotected copy"

UNUSABLE_VIDEO_KINDS = frozenset(
    {"empty", "not-a-video", "no-video", "protected", "unsupported", "needs-plugin", "corrupt"}
)
"""Clip failures that will not go away by trying again (the video twin of the runner's
``UNUSABLE_IMAGE_KINDS``): the clip is unreadable until it changes. ``missing``, ``unreadable`` and
``refused`` are not among them: a drive comes back, a permission or a link gets fixed."""


class VideoError(ImageError):
    """A video clip cannot be used. ``kind`` is one of the photo kinds (``missing``, ``unreadable``,
    ``empty``, ``refused``, ``needs-plugin``, ``corrupt``, ``unsupported``) or ``not-a-video``, ``no-video``
    (audio only) and ``protected`` (DRM); ``detail`` keeps the decoder's own words."""


def video_error(message: str, kind: str, detail: str = "") -> VideoError:
    """A :class:`VideoError` in plain words; the technical ``detail`` is logged and kept on the error."""
    if detail:
        log.info("video cannot be used: %s (%s)", message, detail)
    return VideoError(message, kind=kind, detail=detail)


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` found in a clip. Sizes are as a viewer sees them (rotation and pixel shape applied).

    ``rotation`` is the clockwise turn from the stored picture to the shown one (0, 90, 180 or 270);
    ``frame_rate`` and ``frame_count`` are None where the file does not say (Matroska stores no frame
    count); ``duration`` is in seconds; ``codec`` and ``container`` are FFmpeg's names (``h264``,
    ``matroska``).
    """

    duration: float
    width: int
    height: int
    rotation: int
    frame_rate: float | None
    frame_count: int | None
    codec: str
    container: str
    coded_width: int
    coded_height: int
    has_audio: bool


@dataclass(frozen=True, eq=False)
class SampledFrame:
    """One frame of a clip: an RGB picture at the plan's size, upright, and its time in seconds from the
    start."""

    image: Image.Image
    time: float


def is_video_path(path: Path) -> bool:
    """Whether the file's name says it is a video clip (its content is checked when probing)."""
    return path.suffix.lower() in VIDEO_SUFFIXES


def _import_av() -> Any:
    try:
        import av
    except ImportError:
        raise video_error(NEEDS_PYAV, "needs-plugin", "PyAV (av) is not installed") from None
    return av


def _file_error(exc: OSError) -> VideoError:
    """Why the operating system would not let us read a clip, in the words used for photos."""
    error = file_error(exc)
    return VideoError(str(error), kind=error.kind, detail=error.detail)


def _open_file(path: Path, refuse_links: bool) -> Any:
    """A binary file object for ``path``: a regular, non-empty file (a FIFO would make FFmpeg wait forever).
    ``refuse_links`` refuses a symbolic link, as the tagger does for photos; otherwise a link is followed."""
    if refuse_links and path.name.startswith(TEMP_PREFIX):
        raise video_error(LEFTOVER, "refused")
    try:
        if refuse_links:
            if stat.S_ISLNK(os.lstat(path).st_mode):
                raise video_error(LINK_REFUSED, "refused")
        else:
            path = path.resolve()
        fd = open_regular(path)
    except OSError as exc:
        if refuse_links and os.path.islink(path):
            raise video_error(LINK_REFUSED, "refused") from None
        if exc.errno == errno.EINVAL or isinstance(exc, IsADirectoryError):  # open_regular's refusal
            raise video_error(NOT_REGULAR, "unreadable", f"{exc.strerror or exc} ({path})") from None
        raise _file_error(exc) from None
    handle = os.fdopen(fd, "rb")
    if os.fstat(fd).st_size == 0:
        handle.close()
        raise video_error(EMPTY, "empty")
    return handle


@dataclass(frozen=True)
class _Clip:
    """An open clip: the container, its first video stream, and whether the file is shorter than it says."""

    av: Any
    container: Any
    stream: Any
    cut_short: bool

    def damaged(self, detail: str) -> VideoError:
        """The error for data FFmpeg refused: cut short when the file is, otherwise damaged."""
        return damage_error(self.cut_short, detail)


def damage_error(cut_short: bool, detail: str) -> VideoError:
    """The error for a video file FFmpeg refused: cut short when its container says so, otherwise damaged."""
    return video_error(CUT_SHORT if cut_short else DAMAGED, "corrupt", detail)


@contextmanager
def _opened(path: Path, refuse_links: bool) -> Iterator[_Clip]:
    """The open clip, with every way of failing to open it turned into a VideoError."""
    av = _import_av()
    handle = _open_file(Path(path), refuse_links)
    try:
        head = handle.read(64)
        cut_short = looks_like_video(head) and video_cut_short(handle, os.fstat(handle.fileno()).st_size)
        handle.seek(0)
        try:
            container = av.open(handle, mode="r")
        except av.error.FFmpegError as exc:
            if not looks_like_video(head):
                raise video_error(NOT_A_VIDEO, "not-a-video", str(exc)) from None
            raise damage_error(cut_short, str(exc)) from None
        with container:
            if not container.streams.video:
                if container.streams.audio:
                    raise video_error(AUDIO_ONLY, "no-video", f"{container.format.name}: audio streams only")
                raise video_error(NOT_A_VIDEO, "not-a-video", f"{container.format.name}: no video stream")
            stream = container.streams.video[0]
            if stream.codec_context is None:  # FFmpeg knows no decoder for the track's format
                handle.seek(0)
                movie = movie_box(handle, os.fstat(handle.fileno()).st_size)
                if movie is not None and has_protection_box(movie):
                    raise video_error(
                        PROTECTED, "protected", "protected sample entry (sinf) of an unknown format"
                    )
                raise video_error(
                    UNSUPPORTED, "unsupported", f"{container.format.name}: no decoder for the track"
                )
            stream.codec_context.thread_type = "AUTO"  # frame threads too: ~25 % faster at 1080p on 2 cores
            yield _Clip(av, container, stream, cut_short)
    finally:
        handle.close()


def _frames(clip: _Clip, cancel: CancelToken | None) -> Iterator[Any]:
    """The stream's frames in order from the container's current position; protected or damaged data raise."""
    try:
        for packet in clip.container.demux(clip.stream):
            if packet.has_sidedata("encryption_info"):
                raise video_error(PROTECTED, "protected", "encrypted packets (CENC)")
            for frame in packet.decode():
                if cancel is not None:
                    cancel.raise_if_cancelled()
                yield frame
    except clip.av.error.FFmpegError as exc:
        raise clip.damaged(f"{type(exc).__name__}: {exc}") from None


def frame_matrix(frame: Any) -> tuple[int, ...] | None:
    """The display matrix a frame carries (FFmpeg copies the container's onto every decoded frame).

    Only ever called on a small converted copy: PyAV's side-data view and its frame reference each other, so
    the frame lives until Python's cycle collector runs, and a decoded frame would keep the decoder's whole
    frame pool (tens of megabytes) alive with it.
    """
    data = frame.side_data.get("DISPLAYMATRIX")
    return read_matrix(None if data is None else bytes(data))


def frame_picture(frame: Any, width: int, height: int) -> Image.Image:
    """``frame`` as an upright RGB picture of ``width``×``height`` (the displayed size): scaled while it is
    converted from YUV, then turned and flipped as its display matrix says."""
    turn = clockwise_rotation(frame.rotation)  # read without a side-data view (see frame_matrix)
    coded = (height, width) if turn in (90, 270) else (width, height)
    small = frame.reformat(width=coded[0], height=coded[1], format="rgb24", interpolation="AREA")
    image = small.to_image()
    for transpose in display_transposes(frame_matrix(small)):
        image = image.transpose(transpose)
    return image


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    return None if value is None or time_base is None else float(value * time_base)


def _duration(container: Any, stream: Any) -> float | None:
    """The clip's length: the stream's own, else the container's (Matroska has only that)."""
    seconds = _seconds(stream.duration, stream.time_base)
    if seconds and seconds > 0:
        return seconds
    if container.duration and container.duration > 0:
        return container.duration / 1_000_000  # AV_TIME_BASE: microseconds
    return None


def _rate(stream: Any) -> float | None:
    rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate and rate > 0 else None


def _last_packet_time(clip: _Clip) -> float | None:
    """The time of the stream's last packet, read through the rest of the file without decoding."""
    try:
        last = max((p.pts for p in clip.container.demux(clip.stream) if p.pts is not None), default=None)
    except clip.av.error.FFmpegError as exc:
        raise clip.damaged(f"{type(exc).__name__}: {exc}") from None
    return _seconds(last, clip.stream.time_base)


def probe(path: str | os.PathLike[str], *, refuse_links: bool = False) -> VideoInfo:
    """What a clip is: duration, frame rate, displayed size, rotation, codec and frame count.

    Decodes the first frame (the display matrix travels with frames, and a clip that cannot show one picture
    is unusable), so a broken or protected clip fails here rather than in the middle of a run.

    Raises:
        VideoError: with a reason a person understands and a ``kind`` for reports.
    """
    with _opened(Path(path), refuse_links) as clip:
        container, stream = clip.container, clip.stream
        first = next(_frames(clip, None), None)
        if first is None:
            message = CUT_SHORT if clip.cut_short else NO_FRAMES
            raise video_error(message, "corrupt", "the decoder returned no frame")
        start = _seconds(stream.start_time, stream.time_base) or 0.0
        first_time = first.time if first.time is not None else start
        duration = _duration(container, stream)
        rate = _rate(stream)
        if duration is None:  # no length stored anywhere: the last packet's time tells it
            end = _last_packet_time(clip)
            duration = (end - start if end is not None else 0.0) + (1 / rate if rate else 0.0)
        duration = max(duration, 1 / rate if rate else 0.001, first_time - start)
        rotation = clockwise_rotation(first.rotation)  # read without a side-data view (see frame_matrix)
        width, height = displayed_size(first.width, first.height, rotation, stream.sample_aspect_ratio)
        return VideoInfo(
            duration=round(duration, 6),
            width=width,
            height=height,
            rotation=rotation,
            frame_rate=rate,
            frame_count=stream.frames or None,
            codec=stream.codec_context.codec.canonical_name,  # the format (av1), not the decoder (libdav1d)
            container=container.format.name,
            coded_width=first.width,
            coded_height=first.height,
            has_audio=bool(container.streams.audio),
        )


SEEK_AHEAD_SECONDS = 1.0
"""Decode forward instead of seeking when the next time is this close: a seek returns to a keyframe, and
phones put one about every second."""


class _Cursor:
    """Walks a stream to given times in order: the frame shown at a time is the last one starting at or before
    it. Seeks to the keyframe before a far time, then decodes forward; with ``slack`` seconds allowed, takes
    that keyframe itself when it is at most that much early."""

    def __init__(self, clip: _Clip, cancel: CancelToken | None, slack: float = 0.0) -> None:
        self._clip, self._cancel, self._slack = clip, cancel, slack
        self._start = _seconds(clip.stream.start_time, clip.stream.time_base) or 0.0
        self._frames: Iterator[Any] | None = None
        self._shown: Any = None  # the last frame at or before the last time asked for
        self._ahead: Any = None  # a frame decoded past that time, kept for the next one
        self.end = 0.0  # the latest frame time seen, for the message when the file stops early
        self.ended = False  # whether the last frame asked for was the stream's last

    def time_of(self, frame: Any) -> float:
        """``frame``'s time in seconds from the clip's start."""
        return (frame.time if frame.time is not None else self._start) - self._start

    def _seek(self, when: float) -> None:
        stream = self._clip.stream
        self._clip.container.seek(int((self._start + when) / stream.time_base), stream=stream, backward=True)
        self._frames = _frames(self._clip, self._cancel)
        self._shown = self._ahead = None
        self.ended = False

    def _next(self) -> Any:
        if self._ahead is not None:
            frame, self._ahead = self._ahead, None
            return frame
        assert self._frames is not None
        return next(self._frames, None)

    def _needs_seek(self, when: float) -> bool:
        here = self._ahead if self._ahead is not None else self._shown
        if self._frames is None or here is None:
            return True
        shown = self._shown if self._shown is not None else here
        return when < self.time_of(shown) or when - self.time_of(here) > SEEK_AHEAD_SECONDS

    def frame_at(self, when: float) -> Any:
        """The frame a viewer sees at ``when`` seconds, or None when the stream ends before any frame."""
        if self._needs_seek(when):
            self._seek(when)
            if self._slack > 0:
                first = self._next()  # the keyframe the seek landed on
                if first is not None and 0 <= when - self.time_of(first) <= self._slack:
                    self.end = max(self.end, self.time_of(first))
                    self._shown = first
                    return first
                self._ahead = first
        while True:
            frame = self._next()
            if frame is None:
                self.ended = True
                return self._shown
            self.end = max(self.end, self.time_of(frame))
            if self.time_of(frame) > when + 1e-6:
                if self._shown is None:  # the seek landed after the time (a first keyframe late): take it
                    self._shown = frame
                else:
                    self._ahead = frame
                return self._shown
            self._shown = frame


def sample_frames(
    path: str | os.PathLike[str],
    plan: SamplingPlan,
    *,
    refuse_links: bool = False,
    cancel: CancelToken | None = None,
    keyframe_slack: float = 0.0,
) -> list[SampledFrame]:
    """The frames a viewer sees at ``plan.times``, upright, RGB, at ``plan.width``×``plan.height``.

    Each time is reached by seeking to the keyframe before it and decoding forward (or by decoding on from the
    previous time when it is near). A time the plan repeats (a video-mode pair padded from one frame) gets the
    same picture. ``time`` on each frame is the time of the frame actually shown, from the clip's start: with
    a variable frame rate (a screen recording holding a still) it can be well before the planned time.

    ``keyframe_slack`` (seconds, default 0: exact) lets a seek's keyframe stand for a time at most that much
    later, skipping the decoding forward: on a long clip whose times are seconds apart that decodes one frame
    a time instead of up to a keyframe interval's worth (a phone writes a keyframe about every second).

    Raises:
        VideoError: the clip cannot be read, is damaged or protected, or stops well before a planned time.
        Cancelled: ``cancel`` was set.
    """
    with _opened(Path(path), refuse_links) as clip:
        cursor = _Cursor(clip, cancel, keyframe_slack)
        frame_length = 1 / (_rate(clip.stream) or 25.0)
        sampled: list[SampledFrame] = []
        for when in plan.times:
            if cancel is not None:
                cancel.raise_if_cancelled()
            if sampled and when == plan.times[len(sampled) - 1]:
                sampled.append(sampled[-1])
                continue
            frame = cursor.frame_at(when)
            if frame is None:
                message = CUT_SHORT if clip.cut_short else NO_FRAMES
                raise video_error(message, "corrupt", f"no frame decoded at or after {when:.3f} s")
            shown = cursor.time_of(frame)
            # Pictures ending long before a planned time: a file cut short, when its container says so;
            # else a still (screen recordings write no frame while nothing moves) or a longer sound track.
            if cursor.ended and clip.cut_short and when - shown > max(1.0, 2 * frame_length):
                raise video_error(
                    f"video file is cut short: its pictures stop at {cursor.end:.1f} s; "
                    "copy it again from the original",
                    "corrupt",
                    f"last decoded frame at {shown:.3f} s, asked for {when:.3f} s",
                )
            picture = frame_picture(frame, plan.width, plan.height)
            sampled.append(SampledFrame(image=picture, time=round(max(0.0, shown), 6)))
        return sampled


def poster_time(duration: float | None) -> float:
    """When a clip's thumbnail is taken: a third of the way in, at most 1 s (past a fade from black, still the
    opening shot)."""
    return min(1.0, (duration or 0.0) / 3)


def fit_within(width: int, height: int, edge: int) -> tuple[int, int]:
    """``width``×``height`` scaled down (never up) so its longer side is at most ``edge``, aspect kept."""
    scale = min(1.0, edge / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def poster_frame(path: str | os.PathLike[str], edge: int, *, refuse_links: bool = False) -> Image.Image:
    """A clip's thumbnail: the upright RGB frame shown at :func:`poster_time`, its longer side at most
    ``edge``.

    Raises:
        VideoError: the clip cannot be read, is damaged or protected.
    """
    with _opened(Path(path), refuse_links) as clip:
        cursor = _Cursor(clip, None)
        frame = cursor.frame_at(poster_time(_duration(clip.container, clip.stream)))
        if frame is None:
            raise video_error(CUT_SHORT if clip.cut_short else NO_FRAMES, "corrupt", "no frame decoded")
        turn = clockwise_rotation(frame.rotation)
        shown = displayed_size(frame.width, frame.height, turn, clip.stream.sample_aspect_ratio)
        return frame_picture(frame, *fit_within(*shown, edge))
