"""A clip as true video input for Qwen3-VL's video processor (transformers): frames already sampled and sized
by the clip's plan, with metadata that makes the processor write each temporal patch's real time."""

from __future__ import annotations

from typing import Any

from captioneer.backends.request import PreparedClip

TIME_BASE = 1000.0
"""Frame "indices" handed to the video processor are the frames' times in milliseconds at this "frame rate":
the processor writes ``<t seconds>`` as index / fps, so the model sees the times the frames were sampled at,
whatever the clip's own (maybe variable) frame rate."""


def video_input(clip: PreparedClip) -> tuple[Any, Any]:
    """The clip as the Qwen3-VL video processor takes it: its frames stacked (frames × height × width × RGB)
    and the metadata that gives each frame its time."""
    import numpy as np
    from transformers.video_utils import VideoMetadata

    pixels = np.stack([np.asarray(frame.image) for frame in clip.frames])
    metadata = VideoMetadata(
        total_num_frames=len(clip.frames),
        fps=TIME_BASE,
        frames_indices=[round(time * TIME_BASE) for time in clip.times],
        duration=clip.duration,
        height=clip.height,
        width=clip.width,
    )
    return pixels, metadata
