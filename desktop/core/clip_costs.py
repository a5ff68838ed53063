"""What a video clip costs, in words and numbers: the Tag Photos dialog's plan line for the clips of a
selection, and the clip budget as the hardware estimates take it (a
:class:`~captioneer.backends.estimate.ClipBudget`), both from the one sampling maths in
:mod:`~captioneer.desktop.core.video_budget`."""

from __future__ import annotations

from collections.abc import Sequence
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
        f"{context:,}: lower the clip budget or give a larger --context."
    )


PROBED_CLIPS = 3
"""How many clips of a selection the dialog probes for its plan line (probing takes milliseconds each)."""


def clips_to_probe(clips: Sequence[tuple[str, int]], most: int = PROBED_CLIPS) -> list[str]:
    """Which of the chosen clips (path, file size) to probe for the plan line: the smallest, the median and
    the largest file, as stand-ins for the shortest, a typical and the longest clip, without opening all."""
    ordered = sorted(clips, key=lambda clip: (clip[1], clip[0]))
    if len(ordered) <= most:
        return [path for path, _size in ordered]
    picks = {0, len(ordered) // 2, len(ordered) - 1}
    return [ordered[index][0] for index in sorted(picks)][:most]


@dataclass(frozen=True)
class ClipPlanLine:
    """What the Tag Photos dialog says about the chosen clips at a budget: the line and, when the engine's
    context is too small for a clip, the warning."""

    text: str
    warning: str | None = None


def plan_line(
    count: int,
    clips: Sequence[ClipShape],
    tokens: int,
    *,
    video_input: bool,
    engine: str,
    min_image_tokens: int = 1,
    context: int | None = None,
    unreadable: int = 0,
) -> ClipPlanLine:
    """The dialog's line for ``count`` chosen clips, planned on the probed ``clips`` at ``tokens``: a typical
    (median length) one and the longest, as the engine takes them; the context warning for the costliest."""
    if count == 0:
        return ClipPlanLine("No videos among these photos: the clip budget does not apply.")
    head = "1 clip" if count == 1 else f"{count:,} clips"
    unread = f" ({unreadable} could not be read; a run reports why)" if unreadable else ""
    if not clips:
        return ClipPlanLine(f"{head}{unread} · none could be probed to show its frames.")
    mode = sampling_mode(video_input)
    ordered = sorted(clips, key=lambda clip: clip.duration)
    typical, longest = ordered[(len(ordered) - 1) // 2], ordered[-1]
    shown = [typical] if longest is typical else [typical, longest]
    plans = [plan_sampling(clip, tokens, mode=mode, min_image_tokens=min_image_tokens) for clip in shown]
    words = [plan_words(clip, plan) for clip, plan in zip(shown, plans, strict=True)]
    if len(words) == 2:
        words[1] = f"the longest, {words[1]}"
    costliest = max(plans, key=lambda plan: plan.total_tokens)
    return ClipPlanLine(
        f"{head}{unread} · {'; '.join(words)} ({mode_words(mode, engine)})",
        context_warning(costliest, context, engine),
    )
