"""`captioneer export --format csv|json`: every result with its photo's path, for spreadsheets and scripts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export results as CSV or JSON",
        description="Export every result (current ones and the versions they superseded: see the "
        "`current` column) with its photo's path. Edit the CSV in a spreadsheet and bring "
        "the changes back with `captioneer import FILE.csv` (keywords are separated by '; ').",
    )
    parser.add_argument("--format", choices=("csv", "json"), default="csv")
    parser.add_argument(
        "--output", "-o", type=Path, metavar="FILE", help="write here instead of to the terminal"
    )
    parser.add_argument("--query", metavar="QUERY", help="only results matching a search")
    parser.add_argument(
        "--current",
        "--latest",
        dest="current",
        action="store_true",
        help="only each photo's current result per task (the one reviewed and written), not the versions "
        "it superseded",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from captioneer.backends.errors import ConfigurationError
    from captioneer.desktop.library.catalog import open_catalog
    from captioneer.desktop.library.catalog.search import compile_query
    from captioneer.desktop.library.exchange import export_csv, export_json

    query = compile_query(args.query) if args.query else None
    with open_catalog(readonly=True) as catalog:
        results = catalog.results(current_only=args.current, query=query)
    text = export_csv(results) if args.format == "csv" else export_json(results)
    if args.output is None:
        sys.stdout.write(text)
    else:
        try:
            args.output.write_text(text, encoding="utf-8", newline="")  # line ends in cells stay as they are
        except OSError as exc:
            raise ConfigurationError(f"Cannot write {args.output}: {exc.strerror}") from None
        print(f"captioneer: exported {len(results)} results to {args.output}", file=sys.stderr)
    return 0
