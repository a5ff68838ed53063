"""`captioneer import FILE.csv`: bring edited results (from `captioneer export`) back into the catalog."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "import",
        help="import edited results from a CSV or JSON export",
        description="Apply the edits in an exported CSV (or JSON) file: caption, title, alt_text, keywords "
        "(separated by ';') and status (new, needs_review, approved, rejected). Rows are matched by "
        "result_id "
        "(or path). Every row is checked first; if any is wrong, nothing is changed.",
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="the edited export (.csv or .json)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from captioneer.desktop.library.catalog import open_catalog
    from captioneer.desktop.library.exchange import import_file

    with open_catalog() as catalog:
        report = import_file(catalog, args.file)
    print(
        f"captioneer: imported {args.file}: {report.updated} results updated, {report.unchanged} unchanged",
        file=sys.stderr,
    )
    return 0
