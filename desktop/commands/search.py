"""`captioneer search QUERY`: find results by keyword, caption text, status, folder (AND/OR/NOT)."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search",
        help="search tagged photos",
        description="Search the catalog. Words match keywords, captions and titles; combine with AND "
        '(or just spaces), OR, NOT or -word, and parentheses; "quoted phrases"; '
        "fields: keyword: (* wildcard; also the keywords already in the photo's files), "
        "caption:, title:, alt:, status:, folder:, model:, engine:, run:, task:. Example: "
        "'keyword:beach (sunset OR dusk) NOT status:rejected'.",
    )
    parser.add_argument("query", nargs="+", metavar="QUERY", help="the search (quote it in your shell)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--paths", action="store_true", help="print only the photo paths")
    parser.add_argument(
        "--all-results",
        action="store_true",
        help="search superseded versions too, not only each photo's current result per task",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from captioneer.desktop.library.catalog import open_catalog
    from captioneer.desktop.library.catalog.search import search
    from captioneer.desktop.library.exchange import result_record

    with open_catalog(readonly=True) as catalog:
        results = search(catalog, " ".join(args.query), current_only=not args.all_results)
        in_files = {result.photo_id: catalog.existing_keywords(result.photo_id)[0] for result in results}
    for result in results:
        existing = in_files[result.photo_id]
        if args.json:
            record = {**result_record(result), "existing_keywords": list(existing)}
            print(json.dumps(record, ensure_ascii=False))
        elif args.paths:
            print(result.path)
        else:
            also = f" (in the file: {'; '.join(existing)})" if existing else ""
            print(
                f"#{result.id} [{result.review}] {result.path}: {result.caption} "
                f"[{'; '.join(result.keywords)}]{also}"
            )
    return 0 if results else 1
