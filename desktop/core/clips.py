"""A video clip made ready for an engine: probed, planned by its pixel budget and sampled into a
:class:`~captioneer.backends.request.PreparedClip` (:func:`prepare_clip`), and made smaller from its own
frames when the engine runs out of memory (:func:`smaller_clip`).

How a clip is sent depends on the engine: true video input where its capabilities say ``video_input``
(transformers: two frames to a temporal patch), else its frames as images (gguf, Ollama, OpenAI-compatible),
each frame then costing tokens. The budget maths is :mod:`~captioneer.desktop.core.video_budget`'s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from captioneer.backends.base import Capabilities
from captioneer.backends.cancel import CancelToken
from captioneer.backends.request import PreparedClip, PreparedImage
from captioneer.desktop.core.video import probe, sample_frames, video_error
from captioneer.desktop.core.video_budget import (
    SamplingMode,
    SamplingPlan,
    plan_sampling,
)

NOTHING_TO_SAMPLE = "video has no picture to sample (no length or no size)"
def clip_mode(capabilities: Capabilities) -> SamplingMode:
    """How ``capabilities``' engine takes a clip: as true video, or as separate images."""
    return SamplingMode.VIDEO if capabilities.video_input else SamplingMode.IMAGES


def describe_clip(clip: PreparedClip) -> str:
    """The clip's sampling in a few words: ``8 frames at 448×256, 1,792 tokens``."""
    count = len(clip.frames)
    return f"{count} frame{'s' if count != 1 else ''} at {clip.width}×{clip.height}, {clip.tokens:,} tokens"


def prepare_clip(
    path: str | os.PathLike[str],
    video_tokens: int,
    capabilities: Capabilities,
    *,
    refuse_links: bool = False,
    cancel: CancelToken | None = None,
) -> PreparedClip:
    """The clip at ``path`` sampled for ``capabilities``' engine within ``video_tokens`` visual tokens.

    Raises:
        VideoError: the clip cannot be read, decoded or planned (one line for people, with its ``kind``).
        Cancelled: ``cancel`` was set while sampling.
    """
    info = probe(path, refuse_links=refuse_links)
    try:
        plan = plan_sampling(
            info, video_tokens, mode=clip_mode(capabilities), min_image_tokens=capabilities.min_image_tokens
        )
    except ValueError as exc:
        raise video_error(NOTHING_TO_SAMPLE, "corrupt", str(exc)) from None
    frames = sample_frames(path, plan, refuse_links=refuse_links, cancel=cancel)
    source = os.fspath(path)
    original = (info.width, info.height)
    pictures = tuple(PreparedImage(frame.image, source=source, original_size=original) for frame in frames)
    return PreparedClip(
        frames=pictures,
        times=tuple(frame.time for frame in frames),
        duration=info.duration,
        mode=plan.mode.value,
        source=source,
    )


@dataclass(frozen=True)
class _Shape:
    """What is known of a prepared clip, as :func:`plan_sampling` reads a clip."""

    duration: float
    width: int
    height: int
    frame_rate: float | None
    frame_count: int | None


def smaller_clip(clip: PreparedClip, video_tokens: int, capabilities: Capabilities) -> PreparedClip | None:
    """The clip again within ``video_tokens``, made from its own frames (fewer and/or smaller, never read
    from the file again), or None when a plan at that budget would not cost less than the clip does now.

    The new plan may hold no more frames than the clip has distinct ones; each planned time takes the
    nearest frame it has, with that frame's own time.
    """
    distinct = sorted({(time, index) for index, time in enumerate(clip.times)}, key=lambda pair: pair[0])
    unique: list[tuple[float, int]] = []
    for time, index in distinct:
        if not unique or unique[-1][0] != time:
            unique.append((time, index))
    width, height = clip.frames[0].original_size or (clip.width, clip.height)
    shape = _Shape(clip.duration, width, height, None, len(unique))
    try:
        plan: SamplingPlan = plan_sampling(
            shape,
            video_tokens,
            mode=SamplingMode(clip.mode),
            min_image_tokens=capabilities.min_image_tokens,
        )
    except ValueError:
        return None
    if plan.total_tokens >= clip.tokens:
        return None
    size = (min(plan.width, clip.width), min(plan.height, clip.height))
    frames: list[PreparedImage] = []
    times: list[float] = []
    for when in plan.times:
        time, index = min(unique, key=lambda pair: (abs(pair[0] - when), pair[0]))
        frame = clip.frames[index]
        frames.append(frame if frame.image.size == size else frame.downscaled(size))
        times.append(time)
    return PreparedClip(
        frames=tuple(frames), times=tuple(times), duration=clip.duration, mode=clip.mode, source=clip.source
    )
