"""`captioneer undo [WRITE]`: list the write operations, or restore every file one of them changed."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "undo",
        help="list the metadata writes, or undo one",
        description="Without an argument: list the write operations (id, time, files, state), newest first. "
        "With WRITE (an id from that list; not a run number): put back every photo and sidecar that write "
        "changed, exactly as it was (from its journal, even after a restart), and set its results back to "
        "approved. A write that a newer write of the same photos followed is undone only after that newer "
        "one (or with --force). Files changed by something else since are left alone unless --force.",
    )
    parser.add_argument(
        "write", type=int, nargs="?", metavar="WRITE", help="the write to undo (see `captioneer undo`)"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="also restore files changed since our write, and undo a write a newer one followed",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from captioneer.desktop.library.catalog import open_catalog
    from captioneer.desktop.library.catalog.write_ops import write_operations
    from captioneer.desktop.library.publishing import UndoRefused, undo_write

    if args.write is None:
        with open_catalog() as catalog:  # writable: an older catalog is upgraded first
            operations = write_operations(catalog)
        if not operations:
            print("captioneer: nothing has been written yet, so there is nothing to undo", file=sys.stderr)
        for operation in operations:
            print(operation.describe())
        return 0
    with open_catalog() as catalog:
        try:
            report = undo_write(catalog, args.write, force=args.force)
        except UndoRefused as exc:
            print(f"captioneer: {exc} (--force undoes write {args.write} anyway)", file=sys.stderr)
            return 1
    for path, reason in report.conflicts:
        print(f"captioneer: {path}: {reason}", file=sys.stderr)
    for path, reason in report.errors:
        print(f"captioneer: {path}: {reason}", file=sys.stderr)
    print(f"captioneer: undo write {args.write}: {report.summary()}", file=sys.stderr)
    return 0 if report.ok else 1
