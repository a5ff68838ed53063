"""How a library scan copes with video clips: the content key of a multi-gigabyte clip (time, memory), and a
first scan and an unchanged rescan of a folder of phone-length clips.

``.venv/bin/python bench/video_scan.py [GIGABYTES]`` writes into ``$CAPTIONEER_BENCH_CACHE/video-scan``
(default ``~/.cache/captioneer-bench``): a 2 s H.264 clip padded with a second media box of GIGABYTES
(default 1) of zeros (FFmpeg plays it as the 2 s clip; the key streams every media box), and 200 clips of
3 s. It prints the key's seconds and the process's peak memory before and after, then the scan figures, each
the best of 3.
Figures only: no test asserts them.
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from captioneer.desktop.library.catalog import open_catalog  # noqa: E402
from captioneer.desktop.library.identity import video_content_key  # noqa: E402
from captioneer.desktop.library.scanner import scan_library  # noqa: E402
from tests.video_clips import make_clip  # noqa: E402

CACHE = (
    Path(os.environ.get("CAPTIONEER_BENCH_CACHE", Path.home() / ".cache" / "captioneer-bench")) / "video-scan"
)
CLIPS = 200
RUNS = 3


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def big_clip(gigabytes: float) -> Path:
    path = CACHE / f"big-{gigabytes:g}GB.mp4"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    make_clip(path, "mp4", seconds=2.0)
    size = int(gigabytes * (1 << 30))
    with path.open("ab") as out:
        out.write((size + 16).to_bytes(4, "big") if size + 16 < 1 << 32 else (1).to_bytes(4, "big"))
        out.write(b"mdat")
        if size + 16 >= 1 << 32:
            out.write((size + 16).to_bytes(8, "big"))
        else:
            out.write(b"\0" * 8)  # so the box's length counts 16 header bytes either way
        chunk = b"\0" * (1 << 24)
        for _ in range(size // len(chunk)):
            out.write(chunk)
        out.write(b"\0" * (size % len(chunk)))
    return path


def main() -> None:
    gigabytes = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    clip = big_clip(gigabytes)
    before = peak_mb()
    best = min(_timed(lambda: video_content_key(clip)) for _ in range(RUNS))
    print(
        f"key of a {clip.stat().st_size / 1e9:.2f} GB clip: {best:.2f} s "
        f"({clip.stat().st_size / best / 1e6:.0f} MB/s); "
        f"peak memory {before:.0f} MB before, {peak_mb():.0f} MB after"
    )

    folder = CACHE / "clips"
    if not folder.exists():
        folder.mkdir(parents=True)
        for index in range(CLIPS):
            make_clip(folder / f"VID_{index:04d}.mp4", "mp4", seconds=3.0, fps=30 - index % 7)
    home = Path(tempfile.mkdtemp(prefix="captioneer-bench-"))
    os.environ["CAPTIONEER_HOME"] = str(home)
    try:
        firsts, rescans = [], []
        for run in range(RUNS):
            with open_catalog(home / f"catalog-{run}.db") as catalog:
                firsts.append(_timed(lambda: scan_library(catalog, folder)))
                rescans.append(_timed(lambda: scan_library(catalog, folder)))
        print(
            f"first scan of {CLIPS} clips of 3 s: {min(firsts):.2f} s ({min(firsts) / CLIPS * 1000:.1f} ms a "
            f"clip); unchanged rescan {min(rescans) * 1000:.0f} ms"
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _timed(work) -> float:  # noqa: ANN001 - any callable
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
