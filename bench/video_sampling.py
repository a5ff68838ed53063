"""How long probing and frame sampling take on a phone-sized clip: a 10 s 1080p H.264 clip at 30 fps with a
keyframe every second, stored sideways with a 90° display matrix as a phone stores a portrait clip.

``.venv/bin/python bench/video_sampling.py`` writes the clip once (with PyAV's libx264, into
``$CAPTIONEER_BENCH_CACHE/video``, default ``~/.cache/captioneer-bench/video``), then prints, each the best of
3 runs: the probe; for several clip budgets in both sampling modes, the plan (frames, frame size, tokens)
and the seconds :func:`~captioneer.desktop.core.video.sample_frames` took (seek, decode, scale, turn); and
4 frames 2.5 s apart taken exactly and with a second of keyframe slack.
Figures only: no test asserts them.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from captioneer.desktop.core.video import probe, sample_frames
from captioneer.desktop.core.video_budget import SamplingMode, plan_sampling

CACHE = Path(os.environ.get("CAPTIONEER_BENCH_CACHE", Path.home() / ".cache" / "captioneer-bench")) / "video"
WIDTH, HEIGHT, FPS, SECONDS = 1920, 1080, 30, 10
BUDGETS = (1024, 4096, 16384)
RUNS = 3
SEED = 20261203


def scenes() -> Iterator[np.ndarray]:
    """A camera-like scene's frames: a lit gradient, a disc moving across it, sensor noise that changes."""
    y = np.linspace(0, 1, HEIGHT, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, WIDTH, dtype=np.float32)[None, :]
    sky = np.stack([90 + 80 * y + 30 * x, 140 + 60 * y + 0 * x, 200 - 60 * y + 0 * x], axis=-1)
    noise = np.random.default_rng(SEED).normal(0, 4, (HEIGHT, WIDTH + FPS * SECONDS, 1)).astype(np.float32)
    yy, xx = np.ogrid[:HEIGHT, :WIDTH]
    for index in range(FPS * SECONDS):
        frame = sky + noise[:, index : index + WIDTH]
        cx, cy = WIDTH * (0.1 + 0.8 * index / (FPS * SECONDS)), HEIGHT * 0.6
        frame[(xx - cx) ** 2 + (yy - cy) ** 2 < (HEIGHT / 6) ** 2] = (230, 120, 40)
        yield np.clip(frame, 0, 255).astype(np.uint8)


def ensure_clip() -> Path:
    """The benchmark clip, written once."""
    path = CACHE / f"phone-{WIDTH}x{HEIGHT}-{FPS}fps-{SECONDS}s.mp4"
    if path.is_file():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part.mp4")
    started = time.perf_counter()
    with av.open(str(partial), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.gop_size = FPS  # a keyframe a second, as phones write
        stream.codec_context.options = {"preset": "veryfast", "crf": "23"}
        stream.codec_context.time_base = Fraction(1, FPS)
        stream.set_display_rotation(-90)  # upright portrait, as a phone stores it
        for pixels in scenes():
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    partial.replace(path)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - started:.1f} s")
    return path


def best(action: object, runs: int = RUNS) -> tuple[float, object]:
    """The fastest of ``runs`` calls of ``action`` (a no-argument callable) and its result."""
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = action()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> int:
    clip = ensure_clip()
    seconds, info = best(lambda: probe(clip))
    print(f"PyAV {av.__version__}, FFmpeg {av.ffmpeg_version_info}; {os.cpu_count()} CPUs")
    print(f"probe: {seconds * 1000:.1f} ms → {info}")
    print()
    print(f"{'mode':<7} {'budget':>7} {'frames':>6} {'frame size':>10} {'tok/frame':>9} {'tokens':>7} "
          f"{'sample s':>8} {'ms/frame':>8}")  # fmt: skip
    for mode in (SamplingMode.IMAGES, SamplingMode.VIDEO):
        for budget in BUDGETS:
            plan = plan_sampling(info, budget, mode=mode)
            seconds, frames = best(lambda plan=plan: sample_frames(clip, plan))
            assert len(frames) == plan.frame_count  # type: ignore[arg-type]
            size, per_frame = f"{plan.width}×{plan.height}", seconds / plan.frame_count * 1000
            print(f"{mode.value:<7} {budget:>7} {plan.frame_count:>6} {size:>10} {plan.tokens_per_frame:>9} "
                  f"{plan.total_tokens:>7} {seconds:>8.2f} {per_frame:>8.1f}")  # fmt: skip
    print()
    sparse = plan_sampling(info, 1024, min_frames=4, max_frames=4)
    print(f"4 frames {sparse.times[1] - sparse.times[0]:.1f} s apart, {sparse.width}×{sparse.height}:")
    for slack in (0.0, 1.0):
        seconds, _ = best(lambda slack=slack: sample_frames(clip, sparse, keyframe_slack=slack))
        print(f"  keyframe_slack={slack:.1f} s: {seconds:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
