"""How many frames of a video clip to sample, when, and how large: the clip's pixel budget as pure maths.

A clip gets one budget of visual tokens, like a photo's image budget (:mod:`captioneer.desktop.core.images`),
spent over its frames. Qwen3-VL counts a frame like an image (one token per 32×32 pixels, sides multiples of
32) and then, for its own video input, merges two consecutive frames into one temporal patch, so a pair of
frames costs what one frame costs. Engines that take the frames as separate images pay for every frame. The
two :class:`SamplingMode` values are those two cases; :func:`plan_sampling` gives the frame times and the
frame size for either, so the tag dialog can show what a clip costs before its frames are sampled.

Priorities when the budget is tight, in order: frames keep at least ``min_frame_tokens`` each while more than
``min_frames`` frames would be sampled (fewer, sharper frames); then ``min_frames`` frames are kept and shrink
down to :data:`~captioneer.desktop.core.images.MIN_IMAGE_TOKENS` each (or the engine's smallest image); only
below that are frames dropped. A clip never gets more distinct frames than it has: a 0.2 s clip at 30 fps
gives at most 6.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from captioneer.backends.request import TOKEN_PIXELS
from captioneer.desktop.core.images import MIN_IMAGE_TOKENS, PixelBudget

TEMPORAL_PATCH = 2
"""Qwen3-VL's video input merges this many consecutive frames into one temporal patch (one set of tokens)."""

DEFAULT_VIDEO_TOKENS = 4096
"""The default budget for a whole clip: four photos' worth at the default image budget."""
DEFAULT_FRAMES_PER_SECOND = 2.0
"""How densely to sample when the budget allows it (Qwen3-VL's video processor samples at 2 fps)."""
DEFAULT_MIN_FRAMES = 4
"""Qwen3-VL's video processor samples at least 4 frames."""
DEFAULT_MAX_FRAMES = 32
"""More frames than this rarely helps a caption of a short clip and costs seconds per frame on a CPU."""
DEFAULT_MAX_FRAME_TOKENS = 768
"""A frame's ceiling (qwen-vl-utils' ``VIDEO_MAX_TOKEN_NUM``): a short clip with a big budget still gets
video-sized frames, not photo-sized ones."""
DEFAULT_MIN_FRAME_TOKENS = 64
"""Below this (256×256 pixels) a frame shows little; fewer frames are sampled first."""


class SamplingMode(Enum):
    """How an engine takes a clip."""

    VIDEO = "video"
    """True video input (transformers' Qwen3-VL video processor): two frames share one temporal patch."""
    IMAGES = "images"
    """Frames as separate images in one request (gguf, Ollama, OpenAI-compatible): each frame costs tokens."""

    @property
    def frames_per_group(self) -> int:
        """How many frames share one set of tokens."""
        return TEMPORAL_PATCH if self is SamplingMode.VIDEO else 1


class ClipShape(Protocol):
    """What the maths needs to know about a clip (a :class:`~captioneer.desktop.core.video.VideoInfo`)."""

    @property
    def duration(self) -> float: ...

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    @property
    def frame_rate(self) -> float | None: ...

    @property
    def frame_count(self) -> int | None: ...


@dataclass(frozen=True)
class SamplingPlan:
    """Which frames to take from a clip and at what size.

    ``times`` are seconds from the clip's start, ascending, inside the clip; ``width``×``height`` is every
    sampled frame's size as a viewer sees it (rotation applied), sides multiples of 32; ``tokens_per_frame``
    the tokens one frame's grid costs and ``total_tokens`` what the whole clip costs in ``mode``.
    """

    mode: SamplingMode
    times: tuple[float, ...]
    width: int
    height: int
    tokens_per_frame: int
    total_tokens: int

    def __post_init__(self) -> None:
        if not self.times or len(self.times) % self.mode.frames_per_group:
            raise ValueError(f"{len(self.times)} frames cannot make whole {self.mode.value} token groups")
        if self.width % TOKEN_PIXELS or self.height % TOKEN_PIXELS or self.width < 1 or self.height < 1:
            raise ValueError(
                f"frame sides must be positive multiples of {TOKEN_PIXELS}: {self.width}×{self.height}"
            )
        if list(self.times) != sorted(self.times):
            raise ValueError("frame times must be in order")

    @property
    def frame_count(self) -> int:
        return len(self.times)

    @property
    def group_times(self) -> tuple[float, ...]:
        """The time of each set of tokens: a frame's own time, or in video mode the mean of its pair (the
        ``<t seconds>`` Qwen3-VL's processor writes before each temporal patch)."""
        size = self.mode.frames_per_group
        return tuple(sum(self.times[i : i + size]) / size for i in range(0, len(self.times), size))


def distinct_frames(clip: ClipShape) -> int | None:
    """How many frames the clip holds: the stored count, else duration × frame rate, else unknown (None)."""
    if clip.frame_count:
        return clip.frame_count
    if clip.frame_rate:
        return max(1, round(clip.duration * clip.frame_rate))
    return None


def centred_times(duration: float, count: int) -> tuple[float, ...]:
    """``count`` times evenly spaced over ``duration`` seconds, each in the middle of its equal segment (never
    the very first or last instant, where clips fade or cut)."""
    if count < 1 or duration <= 0:
        raise ValueError(f"cannot place {count} frames in {duration} s")
    step = duration / count
    return tuple(round((index + 0.5) * step, 6) for index in range(count))


def wanted_frames(
    duration: float, available: int | None, *, min_frames: int, max_frames: int, frames_per_second: float
) -> int:
    """How many frames a clip would get if the budget were no object: ``frames_per_second`` over its duration,
    within [``min_frames``, ``max_frames``], never more than the clip's ``available`` frames."""
    count = min(max(math.ceil(duration * frames_per_second), min_frames), max_frames)
    return max(1, min(count, available) if available else count)


def plan_sampling(
    clip: ClipShape,
    total_tokens: int = DEFAULT_VIDEO_TOKENS,
    *,
    mode: SamplingMode = SamplingMode.IMAGES,
    max_frames: int = DEFAULT_MAX_FRAMES,
    min_frames: int = DEFAULT_MIN_FRAMES,
    frames_per_second: float = DEFAULT_FRAMES_PER_SECOND,
    max_frame_tokens: int = DEFAULT_MAX_FRAME_TOKENS,
    min_frame_tokens: int = DEFAULT_MIN_FRAME_TOKENS,
    min_image_tokens: int = 1,
) -> SamplingPlan:
    """The frames to sample from ``clip`` so that all of them together cost at most ``total_tokens``.

    In :attr:`SamplingMode.VIDEO` the frame count is even (pairs share tokens); a one-frame clip gives that
    frame twice, as Qwen3-VL's processor pads it. Frame sizes come from the same
    :class:`~captioneer.desktop.core.images.PixelBudget` fit as photos, so aspect ratio is kept as well as
    the 32-pixel grid allows. ``min_image_tokens`` is the engine's floor (its capabilities'
    ``min_image_tokens``, as :func:`~captioneer.desktop.core.images.engine_budget` uses it): frames are
    dropped rather than made smaller than the engine would enlarge them.

    Raises:
        ValueError: a budget below one smallest frame, frame limits that contradict each other, or a clip
            without duration or pixels.
    """
    if total_tokens < MIN_IMAGE_TOKENS:
        raise ValueError(f"a clip needs a budget of at least {MIN_IMAGE_TOKENS} tokens, got {total_tokens}")
    if not 1 <= min_frames <= max_frames:
        raise ValueError(f"invalid frame limits {min_frames}…{max_frames}")
    if max_frame_tokens < MIN_IMAGE_TOKENS or min_frame_tokens < 1 or frames_per_second <= 0:
        raise ValueError("invalid per-frame limits")
    if clip.duration <= 0 or clip.width < 1 or clip.height < 1:
        raise ValueError(f"clip has no duration or no pixels ({clip.duration} s, {clip.width}×{clip.height})")
    size = mode.frames_per_group
    available = distinct_frames(clip)
    wanted = wanted_frames(
        clip.duration,
        available,
        min_frames=min_frames,
        max_frames=max_frames,
        frames_per_second=frames_per_second,
    )
    most_groups = math.ceil(wanted / size)
    fewest_groups = math.ceil(min(min_frames, wanted) / size)
    floor = max(MIN_IMAGE_TOKENS, min_image_tokens)
    groups = min(most_groups, max(fewest_groups, total_tokens // min_frame_tokens))
    groups = max(1, min(groups, total_tokens // floor))
    per_frame = min(total_tokens // groups, max_frame_tokens)
    budget = PixelBudget(max_tokens=per_frame, min_tokens=min(floor, per_frame))
    width, height = budget.fit(clip.width, clip.height)
    tokens = (width // TOKEN_PIXELS) * (height // TOKEN_PIXELS)
    frames = groups * size
    # Odd or single-frame clips in video mode: the last pair repeats a frame instead of inventing one.
    distinct = min(frames, available) if available else frames
    times = centred_times(clip.duration, distinct)
    times = times + (times[-1],) * (frames - distinct)
    return SamplingPlan(
        mode=mode,
        times=times,
        width=width,
        height=height,
        tokens_per_frame=tokens,
        total_tokens=groups * tokens,
    )
