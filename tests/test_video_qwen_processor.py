"""The clip budget's video-mode arithmetic against Qwen3-VL's own video processor (transformers): frames
sampled at the plan's size and given to the processor unresized cost exactly the tokens the plan counted, two
frames to a temporal patch. (Resized by the processor's defaults they would cost more: it enlarges small clips
to its minimum pixel count, so the transformers engine must pass ``do_resize=False``.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from captioneer.desktop.core.video import probe, sample_frames
from captioneer.desktop.core.video_budget import SamplingMode, plan_sampling
from tests.video_clips import make_clip

pytestmark = pytest.mark.slow  # importing transformers alone takes seconds on 2 cores

video_processing = pytest.importorskip("transformers.models.qwen3_vl.video_processing_qwen3_vl")
video_utils = pytest.importorskip("transformers.video_utils")


@pytest.mark.parametrize(("budget", "seconds"), [(12, 2.0), (30, 2.0), (64, 0.25), (4096, 3.0)])
def test_video_plan_costs_what_the_processor_counts(tmp_path: Path, budget: int, seconds: float) -> None:
    clip = make_clip(tmp_path / "clip.mp4", "mp4", seconds=seconds, fps=12)
    info = probe(clip)
    plan = plan_sampling(info, budget, mode=SamplingMode.VIDEO)
    frames = sample_frames(clip, plan)
    pixels = np.stack([np.asarray(frame.image) for frame in frames])
    metadata = video_utils.VideoMetadata(
        total_num_frames=len(frames),
        fps=12.0,
        frames_indices=[round(frame.time * 12) for frame in frames],
        duration=info.duration,
    )
    processor = video_processing.Qwen3VLVideoProcessor()
    out = processor(
        videos=[pixels],
        video_metadata=[metadata],
        do_sample_frames=False,
        do_resize=False,
        return_tensors="np",
    )
    temporal, rows, columns = (int(n) for n in out["video_grid_thw"][0])
    assert temporal == plan.frame_count // 2
    assert (columns * 16, rows * 16) == (plan.width, plan.height)
    assert temporal * rows * columns // 4 == plan.total_tokens <= budget
