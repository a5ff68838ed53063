"""`captioneer search QUERY`: find results by keyword, caption text, status, folder (AND/OR/NOT)."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search",
        help="search tagged photos",
        description="Search the catalog. Words match keywords, any text of a result (caption, title, alt "
        "text, keywords, text read in the image) and file names, as whole words with their other forms "
        '(sunsets finds sunset), accents ignored; "quoted phrases"; sun* for words starting with sun; '
        "combine with AND (or just spaces), OR, NOT or -word, and parentheses; "
        "fields: keyword: (exact, * wildcard; also the keywords already in the photo's files), "
        "caption:, title:, alt:, ocr: (text read in the image), text: (any text), name:, status:, "
        "folder:, model:, engine:, run:, task:. Best matches first. Example: "
        "'keyword:beach (sunset OR dusk) NOT status:rejected'.",
    )
    parser.add_argument("query", nargs="+", metavar="QUERY", help="the search (quote it in your shell)")
    parser.add_argument(
        "--json", action="store_true", help="one JSON object per line, with the snippet around the match"
    )
    parser.add_argument("--paths", action="store_true", help="print only the photo paths")
    parser.add_argument(
        "--all-results",
        action="store_true",
        help="search superseded versions too, not only each photo's current result per task",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from captioneer.desktop.library.catalog import open_catalog
    from captioneer.desktop.library.catalog.fts import unusable_reason
    from captioneer.desktop.library.catalog.search import compile_query, search, snippets
    from captioneer.desktop.library.exchange import result_record

    text = " ".join(args.query)
    with open_catalog(readonly=True) as catalog:
        if not catalog.text_index:
            print(f"captioneer: {unusable_reason(catalog.db)}", file=sys.stderr)
        results = search(catalog, text, current_only=not args.all_results)
        in_files = {result.photo_id: catalog.existing_keywords(result.photo_id)[0] for result in results}
        found = snippets(catalog, compile_query(text), [result.id for result in results])
    for result in results:
        existing = in_files[result.photo_id]
        snippet = found.get(result.id)
        if args.json:
            record = {**result_record(result), "existing_keywords": list(existing), "snippet": snippet}
            print(json.dumps(record, ensure_ascii=False))
        elif args.paths:
            print(result.path)
        else:
            also = f" (in the file: {'; '.join(existing)})" if existing else ""
            print(
                f"#{result.id} [{result.review}] {result.path}: {' / '.join(result.caption.splitlines())} "
                f"[{'; '.join(result.keywords)}]{also}"
            )
            if snippet:
                print(f"    {' '.join(snippet.split())}")  # one line: OCR text keeps its line breaks
    return 0 if results else 1
