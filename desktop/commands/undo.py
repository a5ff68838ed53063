"""`captioneer undo RUN`: restore every file a run's metadata writes touched, byte for byte."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "undo",
        help="undo the metadata writes of a run",
        description="Put back every photo and sidecar that writing RUN's results changed, exactly as it was "
        "(from the write journal, even after a restart). Files changed by something else since are left "
        "alone "
        "unless --force. The results go back to approved.",
    )
    parser.add_argument("run", type=int, metavar="RUN", help="the run (see `captioneer runs`)")
    parser.add_argument("--force", action="store_true", help="also restore files changed since our write")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from desktop.library.catalog import open_catalog
    from desktop.library.publishing import undo_run
    from desktop.library.runs import get_run

    with open_catalog() as catalog:
        get_run(catalog, args.run)
        report = undo_run(catalog, args.run, force=args.force)
    for path, reason in report.conflicts:
        print(f"captioneer: {path}: {reason}", file=sys.stderr)
    for path, reason in report.errors:
        print(f"captioneer: {path}: {reason}", file=sys.stderr)
    print(f"captioneer: undo run {args.run}: {report.summary()}", file=sys.stderr)
    return 0 if report.ok else 1
