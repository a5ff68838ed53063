"""`captioneer write`: put approved results into the photos' metadata (XMP sidecars and/or embedded)."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "write",
        help="write approved results into photo metadata",
        description="Merge approved results into each photo's metadata: keywords into XMP dc:subject, "
        "lr:hierarchicalSubject and digiKam:TagsList, the caption into dc:description, title and alt text, "
        "with provenance. Every keyword field is merged with the keywords already in any keyword field of "
        "the file, and every property Captioneer does not own is kept; a file whose existing XMP does not "
        "read completely is left untouched and reported (exit status 1). Each write is one write operation "
        "with its own id: `captioneer undo` lists them and `captioneer undo ID` restores that write's files "
        "byte for byte. A video clip's result always goes to its XMP sidecar (clip.MP4.xmp, or clip.xmp with "
        "--naming stem).",
    )
    parser.add_argument("--dry-run", action="store_true", help="show the change per file; touch nothing")
    parser.add_argument(
        "--mode",
        choices=("sidecar", "embedded", "both"),
        help="where to write (default: from settings, else sidecar); read-only files, RAW and video clips "
        "get sidecars (nothing is ever written into a video)",
    )
    parser.add_argument(
        "--naming",
        choices=("full", "stem"),
        default="full",
        help="new sidecar names: IMG_1.JPG.xmp (full, default) or IMG_1.xmp (stem, Lightroom)",
    )
    parser.add_argument("--unreviewed", action="store_true", help="also write results nobody approved")
    parser.add_argument("--run", type=int, metavar="RUN", help="only results of this run")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from captioneer.desktop.core.settings import load_settings
    from captioneer.desktop.library.catalog import open_catalog
    from captioneer.desktop.library.publishing import nothing_to_write, writable_results, write_results
    from captioneer.desktop.library.sidecars import SidecarNaming, WriteMode

    mode = WriteMode(args.mode or load_settings().metadata_mode)
    with open_catalog() as catalog:
        results = writable_results(catalog, unreviewed=args.unreviewed, run_id=args.run)
        if not results:
            reason = nothing_to_write(catalog, unreviewed=args.unreviewed, run_id=args.run)
            hint = "" if args.unreviewed else " or pass --unreviewed"
            print(f"captioneer: {reason}{hint}", file=sys.stderr)
            return 0

        def report(message: str) -> None:
            print(
                message if args.dry_run else f"captioneer: {message}",
                file=sys.stdout if args.dry_run else sys.stderr,
                flush=True,
            )

        summary = write_results(
            catalog,
            results,
            mode=mode,
            naming=SidecarNaming(args.naming),
            dry_run=args.dry_run,
            report=report,
        )
    print(f"captioneer: {summary.describe(args.dry_run)}", file=sys.stderr)
    return 1 if summary.failed else 0
