"""What a video clip costs, in words and numbers: the Tag Photos dialog's plan line for the clips of a
selection, and the clip budget as the hardware estimates take it (a
:class:`~captioneer.backends.estimate.ClipBudget`), both from the one sampling maths in
:mod:`~captioneer.desktop.core.video_budget`."""

from __future__ import annotations

from dataclasses import dataclass

from captioneer.backends.estimate import ClipBudget, ClipLoad
from captioneer.desktop.core.video_budget import ClipShape, SamplingMode, SamplingPlan, plan_sampling


@dataclass(frozen=True)
class ReferenceClip:
    """A clip's shape without a file (a :class:`~captioneer.desktop.core.video_budget.ClipShape`)."""

    duration: float
    width: int
    height: int
    frame_rate: float | None = 30.0
    frame_count: int | None = None


TYPICAL_CLIP = ReferenceClip(duration=15.0, width=1920, height=1080)
"""What the hardware estimates time: a phone's 15-second 1080p clip."""
SHORT_CLIP = ReferenceClip(duration=1.0, width=1920, height=1080)
"""What the encoder's memory is estimated for: a short clip gets the fewest, largest frames."""

PROMPT_ROOM = 512
"""Context a clip's request needs beside its visual tokens: the prompt with each frame's time."""


def sampling_mode(video_input: bool) -> SamplingMode:
    """How an engine takes a clip, from its :attr:`~captioneer.backends.base.Capabilities.video_input`."""
    return SamplingMode.VIDEO if video_input else SamplingMode.IMAGES


def clip_load(tokens: int, mode: SamplingMode) -> ClipLoad:
    """A clip budget in ``mode`` as the estimates take it: the typical clip's token groups, the short clip's
    group size."""
    typical = plan_sampling(TYPICAL_CLIP, tokens, mode=mode)
    short = plan_sampling(SHORT_CLIP, tokens, mode=mode)
    size = mode.frames_per_group
    return ClipLoad(
        budget=tokens,
        groups=typical.frame_count // size,
        tokens_per_group=typical.tokens_per_frame,
        largest_group_tokens=max(short.tokens_per_frame, typical.tokens_per_frame),
        frames=typical.frame_count,
        duration=TYPICAL_CLIP.duration,
    )


def clip_budget_estimate(tokens: int) -> ClipBudget:
    """The clip budget ``tokens`` for the hardware estimates, as true video input and as frames."""
    return ClipBudget(tokens, clip_load(tokens, SamplingMode.VIDEO), clip_load(tokens, SamplingMode.IMAGES))


def clock(seconds: float) -> str:
    """A clip's length as people write it: ``0:14``, ``1:02:05``."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


def plan_words(clip: ClipShape, plan: SamplingPlan) -> str:
    """One clip's plan: ``a 0:14 1920×1080 clip → 8 frames at 608×352, 1,672 tokens``."""
    duration, width, height = clip.duration, clip.width, clip.height
    frames = "1 frame" if plan.frame_count == 1 else f"{plan.frame_count} frames"
    return (
        f"a {clock(duration)} {width}×{height} clip → {frames} at {plan.width}×{plan.height}, "
        f"{plan.total_tokens:,} tokens"
    )


def mode_words(mode: SamplingMode, engine: str) -> str:
    """How the chosen engine takes the clip: ``true video: transformers`` or ``frames as images: gguf``."""
    return f"true video: {engine}" if mode is SamplingMode.VIDEO else f"frames as images: {engine}"


def context_warning(plan: SamplingPlan, context: int | None, engine: str) -> str | None:
    """One line when the engine's context cannot hold the clip's tokens and the prompt; None when it can or
    the engine does not size its context (a server decides)."""
    needed = plan.total_tokens + PROMPT_ROOM
    if context is None or needed <= context:
        return None
    return (
        f"A clip needs about {needed:,} tokens with its prompt, but the {engine} engine's context holds "
        f"{context:,}: lower the clip budget or raise the context length."
    )
