"""A clip's pixel budget: how many frames, when and how large, for true video input and for frames as images.

The expected numbers in the tables are worked out by hand from the rules in video_budget's docstring (the
same 32-pixel grid fit as photos: scale by sqrt(area / (tokens·1024)), floor each side to 32)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from captioneer.desktop.core.images import MIN_IMAGE_TOKENS
from captioneer.desktop.core.video_budget import (
    SamplingMode,
    SamplingPlan,
    centred_times,
    distinct_frames,
    plan_sampling,
)

VIDEO, IMAGES = SamplingMode.VIDEO, SamplingMode.IMAGES


@dataclass(frozen=True)
class Clip:
    """A clip's shape as probe reports it (displayed size)."""

    duration: float
    width: int = 1920
    height: int = 1080
    frame_rate: float | None = 30.0
    frame_count: int | None = None


def hd(seconds: float, **changes: object) -> Clip:
    return Clip(seconds, frame_count=round(seconds * 30), **changes)  # type: ignore[arg-type]


# clip, budget, mode → frames, width, height, tokens per frame, total tokens
TABLE = [
    # 10 s at 2 fps = 20 frames; 4096 / 20 = 204 tokens each → 608×320 (19×10 = 190)
    pytest.param(hd(10), 4096, IMAGES, 20, 608, 320, 190, 3800, id="10s-images"),
    # the same 20 frames as 10 temporal pairs: 409 tokens a pair → 832×480 (26×15 = 390)
    pytest.param(hd(10), 4096, VIDEO, 20, 832, 480, 390, 3900, id="10s-video"),
    # 0.2 s: at least 4 frames (it has 6); a frame is capped at 768 tokens → 1152×640 (36×20 = 720)
    pytest.param(hd(0.2), 4096, IMAGES, 4, 1152, 640, 720, 2880, id="0.2s"),
    # a short clip with a huge budget still gets video-sized frames
    pytest.param(hd(2), 100_000, IMAGES, 4, 1152, 640, 720, 2880, id="frame-cap"),
    # 1 h: 32 frames at most; 128 tokens each → 480×256 (15×8 = 120)
    pytest.param(hd(3600), 4096, IMAGES, 32, 480, 256, 120, 3840, id="1h"),
    # 16 pairs of 256 tokens → 672×384 (21×12 = 252)
    pytest.param(hd(3600), 4096, VIDEO, 32, 672, 384, 252, 4032, id="1h-video"),
    # 1 h at 1024 tokens: 16 frames keep 64 tokens each rather than 32 frames of 32 → 320×192 (10×6)
    pytest.param(hd(3600), 1024, IMAGES, 16, 320, 192, 60, 960, id="1h-small-budget"),
    # 100 tokens: below 64 a frame, the 4 minimum frames shrink to 25 tokens → 192×96 (6×3 = 18)
    pytest.param(hd(3600), 100, IMAGES, 4, 192, 96, 18, 72, id="tiny-budget"),
    # 8 tokens cannot hold 4 frames of 4 tokens: 2 frames of a 2×2 grid
    pytest.param(hd(3600), 8, IMAGES, 2, 64, 64, 4, 8, id="tinier-budget"),
    # a phone's portrait clip (displayed 1080×1920), 15 s → 30 frames of 136 tokens → 256×480 (8×15)
    pytest.param(hd(15, width=1080, height=1920), 4096, IMAGES, 30, 256, 480, 120, 3600, id="portrait"),
]


@pytest.mark.parametrize(("clip", "budget", "mode", "frames", "width", "height", "per_frame", "total"), TABLE)
def test_plan_table(
    clip: Clip,
    budget: int,
    mode: SamplingMode,
    frames: int,
    width: int,
    height: int,
    per_frame: int,
    total: int,
) -> None:
    plan = plan_sampling(clip, budget, mode=mode)
    assert (plan.frame_count, plan.width, plan.height) == (frames, width, height)
    assert (plan.tokens_per_frame, plan.total_tokens) == (per_frame, total)
    assert plan.total_tokens <= budget


def test_an_engines_smallest_image_is_a_floor_for_every_frame() -> None:
    """An OpenAI-compatible server enlarges an image under 64 tokens: frames are dropped first, and a frame
    of exactly 64 tokens takes the 8×8 grid closest to 16:9 (as a photo's narrow budget does)."""
    one = plan_sampling(hd(3600), 100, min_image_tokens=64)  # 100 tokens hold one frame of 64 or more
    assert (one.frame_count, one.width, one.height, one.total_tokens) == (1, 416, 224, 91)
    many = plan_sampling(hd(3600), 1024, min_image_tokens=64)
    assert (many.frame_count, many.width, many.height, many.tokens_per_frame) == (16, 256, 256, 64)
    assert plan_sampling(hd(3600), 1024).tokens_per_frame == 60  # without the floor: 320×192


def test_times_are_centred_in_equal_segments() -> None:
    assert centred_times(10.0, 4) == (1.25, 3.75, 6.25, 8.75)
    assert plan_sampling(hd(10), 4096).times == tuple(0.25 + 0.5 * i for i in range(20))
    assert plan_sampling(hd(0.2), 4096).times == (0.025, 0.075, 0.125, 0.175)
    assert plan_sampling(hd(3600), 4096).times[::31] == (56.25, 3543.75)


def test_a_clip_shorter_than_its_frame_count_gives_each_frame_once() -> None:
    """0.1 s at 30 fps holds 3 frames: the 4 minimum frames become those 3, each sampled at its middle."""
    clip = Clip(0.1, frame_count=3)
    plan = plan_sampling(clip, 4096, mode=IMAGES)
    assert plan.times == (0.016667, 0.05, 0.083333)
    assert [math.floor(t * 30) for t in plan.times] == [0, 1, 2]


def test_video_mode_pads_an_odd_frame_count_with_the_last_frame() -> None:
    """Pairs share tokens; 3 frames make 2 pairs, the last frame repeated as Qwen3-VL's processor pads."""
    plan = plan_sampling(Clip(0.1, frame_count=3), 4096, mode=VIDEO)
    assert plan.times == (0.016667, 0.05, 0.083333, 0.083333)
    assert plan.group_times == pytest.approx((0.033333, 0.083333), abs=1e-6)
    single = plan_sampling(Clip(1 / 30, frame_count=1), 4096, mode=VIDEO)
    assert single.times == (0.016667, 0.016667)
    assert single.total_tokens == single.tokens_per_frame


def test_frames_available_come_from_the_count_else_the_rate() -> None:
    assert distinct_frames(Clip(2.0, frame_count=48)) == 48
    assert distinct_frames(Clip(2.0, frame_rate=24.0)) == 48  # Matroska: no stored count
    assert distinct_frames(Clip(2.0, frame_rate=None)) is None
    assert plan_sampling(Clip(0.1, frame_rate=20.0), 4096).frame_count == 2
    assert plan_sampling(Clip(0.1, frame_rate=None), 4096).frame_count == 4


def test_frame_limits_and_rate_are_honoured() -> None:
    assert plan_sampling(hd(60), 100_000, max_frames=8).frame_count == 8
    assert plan_sampling(hd(1), 100_000, min_frames=6).frame_count == 6
    assert plan_sampling(hd(10), 100_000, frames_per_second=0.5).frame_count == 5
    assert plan_sampling(hd(10), 100_000, max_frame_tokens=100).tokens_per_frame <= 100


SHAPES = [
    hd(s, width=w, height=h) for s in (0.05, 0.2, 1, 7.3, 61, 3600) for w, h in ((1920, 1080), (720, 1280))
]
SHAPES += [Clip(5.0, 160, 96, None, None), Clip(2.0, 4000, 40, 25.0, 50), Clip(0.04, 32, 32, 25.0, 1)]


@pytest.mark.parametrize("mode", [VIDEO, IMAGES])
@pytest.mark.parametrize("budget", [4, 7, 16, 100, 1024, 4096, 20_000])
def test_every_plan_fits_its_budget_and_its_clip(mode: SamplingMode, budget: int) -> None:
    for clip in SHAPES:
        plan = plan_sampling(clip, budget, mode=mode)
        assert plan.total_tokens <= budget, clip
        assert plan.tokens_per_frame >= MIN_IMAGE_TOKENS
        assert plan.width % 32 == 0 and plan.height % 32 == 0
        assert plan.frame_count % mode.frames_per_group == 0
        assert all(0 < t < clip.duration for t in plan.times), clip
        assert list(plan.times) == sorted(plan.times)
        groups = plan.frame_count // mode.frames_per_group
        assert plan.total_tokens == groups * plan.tokens_per_frame
        if budget >= 100 and max(clip.width, clip.height) / min(clip.width, clip.height) < 4:
            # landscape stays landscape, portrait stays portrait
            assert (plan.width >= plan.height) == (clip.width >= clip.height), (clip, plan)


def test_nonsense_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 4 tokens"):
        plan_sampling(hd(10), 3)
    with pytest.raises(ValueError, match="frame limits"):
        plan_sampling(hd(10), 4096, min_frames=8, max_frames=4)
    with pytest.raises(ValueError, match="no duration"):
        plan_sampling(Clip(0.0), 4096)
    with pytest.raises(ValueError, match="whole video token groups"):
        SamplingPlan(VIDEO, (0.1, 0.2, 0.3), 64, 64, 4, 8)
    with pytest.raises(ValueError, match="multiples of 32"):
        SamplingPlan(IMAGES, (0.1,), 60, 64, 4, 4)
    with pytest.raises(ValueError, match="in order"):
        SamplingPlan(IMAGES, (0.2, 0.1), 64, 64, 4, 8)
