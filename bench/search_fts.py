"""Benchmark of text search on a synthetic catalog (10,000 photos by default): prints the time of the queries
the library window's search box runs on its worker thread (photo ids and status counts) and of
`captioneer search` (results in relevance order and their snippets), through the FTS5 index and through the
substring fallback, and the time of one tooltip's snippet. It prints figures; it is not a timed test.

Run: ``.venv/bin/python bench/search_fts.py [--photos N] [--repeats N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

QUERIES = (
    "harbour",
    "harbours",  # stemmed
    "light*",  # prefix
    '"near the lighthouse"',  # phrase
    "beach sunset -status:rejected",
    "ocr:market",
    "text:castle OR text:museum",
    "NOT beach",
    "keyword:boat OR keyword:dog",  # no text: no index
)
TYPED = "lighthouse"
"""Typed one letter at a time into the search box: each prefix is a search the worker answers."""


def median_ms(action: Callable[[], object], repeats: int) -> tuple[float, object]:
    times = []
    answer: object = None
    for _ in range(repeats):
        started = time.perf_counter()
        answer = action()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=10_000, help="catalog size (default 10,000)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure, the median is shown (5)")
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="captioneer-bench-"))
    os.environ["CAPTIONEER_HOME"] = str(home)

    from library_ui import build_catalog

    from captioneer.desktop.library.browse import BrowseFilter, match_snippet, photo_ids, status_counts
    from captioneer.desktop.library.catalog import open_catalog
    from captioneer.desktop.library.catalog.search import compile_query, search, snippets

    started = time.perf_counter()
    build_catalog(home / "Photos", args.photos)  # results inserted row by row: the triggers index each
    built = time.perf_counter() - started
    with open_catalog() as catalog:
        started = time.perf_counter()
        with catalog.transaction() as db:  # every tenth result read text in the image
            db.execute("UPDATE results SET current = 1")  # library_ui's rows predate current results
            db.execute("UPDATE results SET ocr_text = 'Open market ' || title || ' ' || id WHERE id % 10 = 0")
        ocr = time.perf_counter() - started
        results = catalog.db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        size = catalog.db.execute("SELECT SUM(pgsize) FROM dbstat WHERE name LIKE 'results_fts%'").fetchone()[
            0
        ]
    print(
        f"built a synthetic catalog of {args.photos:,} photos ({results:,} results, indexed by the insert "
        f"trigger) in {built:.1f} s; OCR text set on {results // 10:,} results in {ocr * 1000:.0f} ms; "
        f"index {size / 1e6:.1f} MB ({home})"
    )
    with open_catalog(readonly=True) as catalog:
        print(f"\n{'search':36} {'index':>20} {'substring fallback':>24}   (median ms of {args.repeats})")
        for text in QUERIES:
            browse = BrowseFilter(query=text)
            figures = []
            for index in (True, False):
                catalog._text_index = index  # the fallback as an SQLite without FTS5 would run it
                grid, ids = median_ms(lambda browse=browse: photo_ids(catalog, browse), args.repeats)
                counts, _ = median_ms(lambda browse=browse: status_counts(catalog, browse), args.repeats)
                found, answer = median_ms(lambda text=text: search(catalog, text), args.repeats)
                figures.append(f"grid {grid:4.0f} + counts {counts:4.0f} → {len(ids):>5,}")
                if index:
                    query = compile_query(text)
                    ids_found = [result.id for result in answer]
                    cut, _ = median_ms(lambda q=query, i=ids_found: snippets(catalog, q, i), args.repeats)
                    cli = f"search {found:4.0f} + snippets {cut:4.0f} → {len(ids_found):>5,}"
            print(f"{text:36} {figures[0]:>20} {figures[1]:>24}   CLI: {cli}")
        catalog._text_index = True
        print(f"\ntyping '{TYPED}' into the search box, one query per letter (index / substring fallback):")
        for length in range(1, len(TYPED) + 1):
            browse = BrowseFilter(query=TYPED[:length])
            line = []
            for index in (True, False):
                catalog._text_index = index
                grid, ids = median_ms(lambda browse=browse: photo_ids(catalog, browse), args.repeats)
                line.append(f"{grid:4.0f} ms → {len(ids):>5,} photos")
            print(f"  {TYPED[:length]:12} {line[0]}  /  {line[1]}")
        catalog._text_index = True
        photo = photo_ids(catalog, BrowseFilter(query="lighthouse"))[0]
        tip, text = median_ms(lambda: match_snippet(catalog, "lighthouse", photo), args.repeats)
        print(f"\none tooltip's snippet: {tip:.1f} ms ({text})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
