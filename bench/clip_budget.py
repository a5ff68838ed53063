"""What a clip budget costs, as the recommendation estimates it, and how long the Tag Photos dialog's probe
of a clip takes: prints figures, asserts nothing.

    .venv/bin/python bench/clip_budget.py

For a few machines and clip budgets: the first choice for photos, the first choice once clips count, and that
profile's memory and seconds for a typical clip (15 s, 1080p); then the milliseconds ``probe`` takes on clips
written here with PyAV (720p H.264, a phone's portrait HEVC MOV), median of five.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MACHINES = {
    "NVIDIA 8 GB": dict(gpu="nvidia", vram_gb=8, ram_gb=32),
    "NVIDIA 12 GB": dict(gpu="nvidia", vram_gb=12, ram_gb=32),
    "Apple M2 16 GB": dict(gpu="apple", ram_gb=16, chip="M2"),
    "CPU 16 GB, 4 cores": dict(gpu="none", ram_gb=16),
}
BUDGETS = (1024, 2048, 4096, 8192, 24576)


def estimates() -> None:
    from captioneer.backends.hardware import hypothetical_hardware
    from captioneer.backends.recommend import recommend
    from captioneer.desktop.core.clip_costs import clip_budget_estimate

    print(f"{'machine':<20} {'budget':>6}  {'photos: first choice':<28} {'with clips: first choice':<28} "
          f"{'clip GB':>7} {'s/clip':>7} {'fit clips':>9}")
    for name, spec in MACHINES.items():
        hardware = hypothetical_hardware(**spec)
        photos = recommend(hardware)[0]
        for tokens in BUDGETS:
            ranked = recommend(hardware, clips=clip_budget_estimate(tokens))
            first = ranked[0]
            clip = first.clip
            assert clip is not None
            fitting = sum(profile.clip_fits for profile in ranked)
            print(f"{name:<20} {tokens:>6}  {photos.variant.id:<28} {first.variant.id:<28} "
                  f"{clip.memory.total_gb:>7.1f} {clip.seconds:>7.1f} {fitting:>4}/{len(ranked):<4}")


def probe_times() -> None:
    from captioneer.desktop.core.video import probe
    from tests.video_clips import KINDS, make_clip

    with tempfile.TemporaryDirectory() as folder:
        clips = {
            "720p H.264 MP4, 10 s": make_clip(
                Path(folder) / "hd.mp4", dataclasses.replace(KINDS["mp4"], width=1280, height=720), seconds=10
            ),
            "portrait HEVC MOV, 5 s": make_clip(Path(folder) / "phone.mov", "hevc", seconds=5, rotation=90),
        }
        for name, path in clips.items():
            times = []
            for _ in range(5):
                started = time.perf_counter()
                probe(path)
                times.append((time.perf_counter() - started) * 1000)
            print(f"probe {name:<24} {statistics.median(times):6.1f} ms")


if __name__ == "__main__":
    estimates()
    print()
    probe_times()
