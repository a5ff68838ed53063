"""Benchmark of the library window on a synthetic 100,000-photo catalog: prints open time, filter times and
scroll frame times. It prints figures; it is not a timed test.

Run: ``.venv/bin/python bench/library_ui.py [--photos N]`` (offscreen by default; under
``xvfb-run -a -s "-screen 0 1440x900x24"`` with ``QT_QPA_PLATFORM=xcb`` for a real X server).
``BENCH_PROFILE=1`` also prints where the scrolling time goes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

_WORDS = (
    "beach sunset sea harbour boat dog cat family portrait mountain forest lake river snow city street night "
    "bridge church market food bicycle car train tree flower garden sky cloud rain wedding birthday child "
    "party concert museum castle desert island lighthouse"
)
VOCABULARY = tuple(_WORDS.split(" "))
REVIEW_MIX = ("new",) * 5 + ("needs_review",) * 1 + ("approved",) * 3 + ("written",) * 1 + ("rejected",)
REAL_FILES = 240
"""How many of the synthetic photos exist as real JPEGs (the first folder), so the first screens get real
thumbnails; the rest are catalog rows only and show the 'cannot read' tile."""


def build_catalog(root: Path, count: int, seed: int = 7) -> None:
    """A catalog of ``count`` photos in folders of 1,000, about 85% tagged with a mix of review states."""
    from captioneer.desktop.library.catalog import open_catalog

    rng = random.Random(seed)
    now = time.time()
    with open_catalog() as catalog, catalog.transaction() as db:
        library_id = db.execute(
            "INSERT INTO libraries (root, added_at, last_scan_at) VALUES (?, ?, ?)", (str(root), now, now)
        ).lastrowid
        run_id = db.execute(
            "INSERT INTO runs (scope, task, language, engine, model, quant, prompt_hash, options, state, "
            "created_at, started_at, finished_at) VALUES (?, 'keywords', 'English', 'gguf', "
            "'Qwen3-VL-2B-Instruct-Q4_K_M.gguf', NULL, 'bench', '{}', 'done', ?, ?, ?)",
            (str(root), now, now, now),
        ).lastrowid
        photos = []
        results = []
        for index in range(count):
            folder = f"{index // 10000:02d}-year/{index // 1000 % 10:02d}-event"
            path = root / folder / f"IMG_{index:06d}.jpg"
            photos.append(
                (index + 1, library_id, str(path), 200_000 + index, int(now * 1e9), f"k{index}", now)
            )
            if rng.random() < 0.85:
                words = rng.sample(VOCABULARY, rng.randint(3, 9))
                caption = f"A {words[0]} with {words[1]} near the {words[2]}."
                results.append(
                    (
                        index + 1,
                        run_id,
                        caption,
                        json.dumps(words, ensure_ascii=False),
                        words[0].title(),
                        caption,
                        rng.choice(REVIEW_MIX),
                        now,
                        now,
                    )
                )
        db.executemany(
            "INSERT INTO photos (id, library_id, path, size, mtime_ns, content_key, first_seen, last_seen) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(*photo, photo[-1]) for photo in photos],
        )
        db.executemany(
            "INSERT INTO results (photo_id, run_id, task, language, caption, keywords, title, alt_text, "
            "engine, model, prompt_hash, review, created_at, updated_at, current) "
            "VALUES (?, ?, 'keywords', 'English', ?, ?, ?, ?, 'gguf', 'Qwen3-VL-2B-Instruct-Q4_K_M.gguf', "
            "'bench', ?, ?, ?, 1)",
            results,
        )
    first = sorted(Path(photo[2]) for photo in photos)[:REAL_FILES]
    for index, path in enumerate(first):
        path.parent.mkdir(parents=True, exist_ok=True)
        hue = (index * 37) % 256
        Image.new("RGB", (640, 480), (hue, 255 - hue, (hue * 3) % 256)).save(path, quality=80)
        os.utime(path, ns=(int(now * 1e9), int(now * 1e9)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=100_000, help="catalog size (default 100,000)")
    parser.add_argument("--frames", type=int, default=120, help="scroll steps to time (default 120)")
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="captioneer-bench-"))
    os.environ["CAPTIONEER_HOME"] = str(home)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    root = home / "Photos"

    started = time.perf_counter()
    build_catalog(root, args.photos)
    print(
        f"built a synthetic catalog of {args.photos:,} photos in {time.perf_counter() - started:.1f} s "
        f"({home})"
    )

    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from captioneer.desktop.ui.app import create_app
    from captioneer.desktop.ui.library_window import LibraryWindow

    app = create_app()
    loop = QEventLoop()

    def wait_for_filter() -> None:
        loop.exec()  # until the window says the filter answered (filtered → loop.quit)

    started = time.perf_counter()
    window = LibraryWindow()
    window.browse.filtered.connect(loop.quit)
    window.view.resize(1440, 900)
    window.view.show()
    wait_for_filter()
    window.view.grid.viewport().repaint()
    opened = time.perf_counter() - started
    print(
        f"open: {opened * 1000:.0f} ms from nothing to a painted grid of {window.model.rowCount():,} photos "
        "(catalog opened and checked, first page fetched)"
    )

    queries = [
        ("status: needs review", {"status": "needs_review"}),
        ("keyword: lighthouse", {"keyword": "lighthouse"}),
        ("caption text: 'harbour'", {"text": "harbour"}),
        ("folder: 03-year", {"folder": str(root / "03-year")}),
        ("search: beach sunset -status:rejected", {"query": "beach sunset -status:rejected"}),
        ("search: keyword:boat OR keyword:dog", {"query": "keyword:boat OR keyword:dog"}),
        ("all photos", {}),
    ]
    # The GUI thread's longest stall while a filter runs: a timer that should fire every 5 ms notes its gaps.
    ticks: list[float] = []
    ticker = QTimer()
    ticker.setInterval(5)
    ticker.timeout.connect(lambda: ticks.append(time.perf_counter()))
    ticker.start()
    for label, fields in queries:
        timings = []
        stalls = []
        for _ in range(3):
            ticks.clear()
            started = time.perf_counter()
            window.browse.apply_filter(
                **{"folder": "", "status": "all", "keyword": "", "text": "", "query": "", **fields}
            )
            wait_for_filter()
            window.view.grid.viewport().repaint()
            timings.append(time.perf_counter() - started)
            marks = [started, *ticks, time.perf_counter()]
            stalls.append(max(b - a for a, b in zip(marks, marks[1:], strict=False)))
        print(
            f"filter {label}: {statistics.median(timings) * 1000:.0f} ms to a repainted grid (median of 3; "
            f"GUI thread stalled at most {max(stalls) * 1000:.0f} ms) -> {window.model.rowCount():,} photos"
        )
    ticker.stop()

    grid = window.view.grid
    bar = grid.verticalScrollBar()
    if os.environ.get("BENCH_PROFILE"):
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
    frames = []
    step = max(1, grid.viewport().height() // 2)
    for frame in range(args.frames):
        started = time.perf_counter()
        bar.setValue(min(bar.maximum(), frame * step))
        grid.viewport().repaint()
        app.processEvents()
        frames.append(time.perf_counter() - started)
    jumps = []
    rng = random.Random(3)
    for _ in range(40):
        started = time.perf_counter()
        bar.setValue(rng.randint(0, bar.maximum()))
        grid.viewport().repaint()
        app.processEvents()
        jumps.append(time.perf_counter() - started)
    if os.environ.get("BENCH_PROFILE"):
        import pstats

        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(15)
    for label, values in (("scroll by half a screen", frames), ("jump to a random place", jumps)):
        values_ms = sorted(value * 1000 for value in values)
        print(
            f"{label}: median {statistics.median(values_ms):.1f} ms, "
            f"95th percentile {values_ms[int(len(values_ms) * 0.95) - 1]:.1f} ms, max {values_ms[-1]:.1f} ms "
            f"per frame over {len(values_ms)} frames"
        )
    window.shutdown()
    QApplication.processEvents()
    shutil.rmtree(home)
    return 0


if __name__ == "__main__":
    sys.exit(main())
