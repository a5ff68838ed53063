"""`captioneer runs [RUN]`: list tagging runs, or show one run with the photos it could not tag."""

from __future__ import annotations

import argparse
import json
from datetime import datetime


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "runs", help="list tagging runs", description="List tagging runs, or show one run in detail."
    )
    parser.add_argument("run", nargs="?", type=int, metavar="RUN", help="show this run in detail")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def _when(timestamp: float | None) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M") if timestamp else "-"


def _versions(count: int) -> str:
    """Results of the run that are not current (superseded or kept beside a reviewed one), if any."""
    return f", {count} not current (versions)" if count else ""


def run(args: argparse.Namespace) -> int:
    from captioneer.desktop.core.context import describe_spec
    from captioneer.desktop.library.catalog import open_catalog
    from captioneer.desktop.library.runs import failed_items, get_run, list_runs, run_counts

    with open_catalog(readonly=True) as catalog:
        runs = [get_run(catalog, args.run)] if args.run is not None else list_runs(catalog)
        rows = []
        for item in runs:
            counts = run_counts(catalog, item.id)
            rows.append(
                {
                    "run": item.id,
                    "state": item.state,
                    "folder": item.scope,
                    "task": item.task,
                    "language": item.language,
                    "engine": item.engine,
                    "model": item.model,
                    "total": counts.total,
                    "done": counts.done,
                    "failed": counts.failed,
                    "pending": counts.pending,
                    "needs_review": counts.needs_review,
                    "versions": counts.versions,
                    "created": _when(item.created_at),
                    "finished": _when(item.finished_at),
                    "message": item.message,
                    "context": describe_spec(item.spec.context_spec()),
                }
            )
        failed = failed_items(catalog, args.run) if args.run is not None else []
    if args.json:
        if args.run is not None:
            rows[0]["failed_photos"] = [{"path": p, "error": e, "kind": k} for p, e, k in failed]
        print(json.dumps(rows if args.run is None else rows[0], ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print("No runs yet: tag a folder with `captioneer tag FOLDER`.")
        return 0
    for row in rows:
        print(
            f"{row['run']:>4}  {row['state']:<9} {row['done']}/{row['total']} done, {row['failed']} failed, "
            f"{row['needs_review']} to review{_versions(row['versions'])}  "
            f"{row['task']} · {row['engine']} {row['model']} · {row['created']}  {row['folder']}"
        )
        if row["message"] and args.run is not None:
            print(f"      {row['message']}")
        if row["context"] and args.run is not None:
            print(f"      context: {row['context']}")
    for path, error, _kind in failed:
        print(f"      failed {path}: {error}")
    return 0
