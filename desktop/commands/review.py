"""`captioneer review`: list, approve, reject and edit tagging results from the terminal."""

from __future__ import annotations

import argparse
import json
import sys

LIST_DEFAULT = ("new", "needs_review")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "review",
        help="list, approve, reject or edit results before they are written",
        description="Review results before `captioneer write` puts them into your photos. A photo has one "
        "current result per task: that is what is listed, reviewed and written (several tasks' results are "
        "written together as one change). Tagging again keeps the older results as versions (see "
        "`captioneer tag --reviewed`); `review list --versions` shows them and `review use ID` makes one "
        "current. Only approved results are written (unless --unreviewed). Select results by id, or with "
        "--all plus --run, --status and --query filters.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="show results (default: new and needs-review)")
    _add_filters(listing)
    listing.add_argument("--limit", type=int, default=0, metavar="N", help="show at most N")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.add_argument(
        "--versions", action="store_true", help="also list superseded versions (never written)"
    )

    for name, text in (
        ("approve", "approve results for writing"),
        ("reject", "reject results (never written)"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("ids", nargs="*", type=int, metavar="ID", help="result ids (see `review list`)")
        action.add_argument("--all", action="store_true", help="every result matching the filters")
        _add_filters(action)

    show = actions.add_parser(
        "show", help="everything about one result: its text, who made it, and the context it was asked with"
    )
    show.add_argument("id", type=int, metavar="ID")
    show.add_argument("--json", action="store_true", help="as one JSON object")

    edit = actions.add_parser("edit", help="change a result's caption, title, alt text or keywords")
    edit.add_argument("id", type=int, metavar="ID")
    edit.add_argument("--caption")
    edit.add_argument("--title")
    edit.add_argument("--alt-text")
    edit.add_argument("--keywords", help="replace all keywords: 'beach; sunset; family'")
    edit.add_argument("--add-keyword", action="append", default=[], metavar="KEYWORD")
    edit.add_argument("--remove-keyword", action="append", default=[], metavar="KEYWORD")
    edit.add_argument("--approve", action="store_true", help="approve it too")

    use = actions.add_parser(
        "use", help="make a kept version the current result of its photo and task (the one written)"
    )
    use.add_argument(
        "id", type=int, metavar="ID", help="the version's result id (see `review list --versions`)"
    )
    parser.set_defaults(func=run)


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", type=int, metavar="RUN", help="only results of this run")
    parser.add_argument(
        "--status",
        action="append",
        metavar="STATUS",
        help="only results in this state: new, needs_review, approved, rejected, written (repeatable)",
    )
    parser.add_argument(
        "--query", metavar="QUERY", help="only results matching a search (see `captioneer search`)"
    )


def _select(catalog, args: argparse.Namespace, default_states: tuple[str, ...]):
    from captioneer.backends.errors import ConfigurationError
    from captioneer.desktop.library.catalog.search import compile_query

    states = tuple(state.replace("-", "_") for state in (args.status or default_states))
    ids = getattr(args, "ids", None)
    if ids is not None and not ids and not args.all:
        raise ConfigurationError("Give result ids, or --all (with --run, --status or --query to narrow it).")
    if ids and args.all:
        raise ConfigurationError("Give result ids or --all, not both.")
    query = compile_query(args.query) if args.query else None
    return catalog.results(
        run_id=args.run,
        review=None if ids else states,
        ids=ids or None,
        current_only=not ids and not getattr(args, "versions", False),
        query=query,
    )


def _refuse_versions(results) -> None:
    """Review acts on current results only: a superseded version is never written, so approving it would
    change nothing the user can see."""
    from captioneer.backends.errors import ConfigurationError

    versions = [result for result in results if not result.current]
    if versions:
        ids = ", ".join(str(result.id) for result in versions)
        raise ConfigurationError(
            f"Result {ids} is a superseded version, not the current result of its photo and task: make it "
            f"current first with `captioneer review use {versions[0].id}`."
        )


def _show(args: argparse.Namespace) -> int:
    """Print one result in full, the context its prompt was sent with included."""
    from captioneer.backends.errors import ConfigurationError
    from captioneer.desktop.core.context import describe_context
    from captioneer.desktop.library.catalog import open_catalog
    from captioneer.desktop.library.exchange import result_record

    with open_catalog(readonly=True) as catalog:
        result = catalog.result(args.id)
    if result is None:
        raise ConfigurationError(f"No result with id {args.id}: see `captioneer review list`.")
    record = result_record(result)
    if args.json:
        print(json.dumps(record, ensure_ascii=False))
        return 0
    record["keywords"] = "; ".join(record["keywords"])
    record["context"] = describe_context(record["context"]) or "(none)"
    for name, value in record.items():
        print(f"{name + ':':<15}{value}")
    return 0


def run(args: argparse.Namespace) -> int:
    from captioneer.backends.errors import ConfigurationError
    from captioneer.desktop.core.context import describe_context
    from captioneer.desktop.library.catalog import open_catalog
    from captioneer.desktop.library.keywords import merge_keywords

    if args.action == "show":
        return _show(args)
    if args.action == "list":
        with open_catalog(readonly=True) as catalog:
            results = _select(catalog, args, LIST_DEFAULT)
        if args.limit:
            results = results[: args.limit]
        for result in results:
            if args.json:
                from captioneer.desktop.library.exchange import result_record

                print(json.dumps(result_record(result), ensure_ascii=False))
                continue
            flag = f"  ({result.review_reason})" if result.review_reason else ""
            version = "" if result.current else ", version (not current)"
            print(f"#{result.id} [{result.review}{version}] {result.task}: {result.path}{flag}")
            lines = result.caption.splitlines() or [""]  # a scene list or OCR text: one line each, aligned
            print(f"    caption:  {lines[0]}", *(f"              {line}" for line in lines[1:]), sep="\n")
            if result.title:
                print(f"    title:    {result.title}")
            print(f"    keywords: {'; '.join(result.keywords)}")
            if result.context:
                print(f"    context:  {describe_context(dict(result.context))}")
        if not args.json:
            print(f"{len(results)} results", file=sys.stderr)
        return 0

    with open_catalog() as catalog:
        if args.action in ("approve", "reject"):
            defaults = (
                ("new", "needs_review") if args.action == "approve" else ("new", "needs_review", "approved")
            )
            results = _select(catalog, args, defaults)
            if args.ids:
                missing = set(args.ids) - {result.id for result in results}
                if missing:
                    raise ConfigurationError(f"No result with id {', '.join(map(str, sorted(missing)))}.")
                _refuse_versions(results)
            state = "approved" if args.action == "approve" else "rejected"
            changed = catalog.set_review([result.id for result in results], state, "by review")
            print(f"{changed} results {state}", file=sys.stderr)
            return 0
        result = catalog.result(args.id)
        if result is None:
            raise ConfigurationError(f"No result with id {args.id}.")
        if args.action == "use":
            was_current = result.current
            result = catalog.make_current(args.id)
            print(
                f"result {args.id} is {'already' if was_current else 'now'} the current {result.task} "
                f"result of {result.path} [{result.review}]",
                file=sys.stderr,
            )
            return 0
        _refuse_versions([result])
        keywords = None
        if args.keywords is not None:
            keywords = [k.strip() for k in args.keywords.split(";") if k.strip()]
        if args.add_keyword or args.remove_keyword:
            keywords = merge_keywords(
                keywords if keywords is not None else list(result.keywords), args.add_keyword
            )
            removed = {k.casefold() for k in args.remove_keyword}
            keywords = [k for k in keywords if k.casefold() not in removed]
        changed = catalog.edit_result(
            args.id,
            caption=args.caption,
            title=args.title,
            alt_text=args.alt_text,
            keywords=keywords,
            review="approved" if args.approve else None,
        )
        print(f"result {args.id} {'updated' if changed else 'unchanged'}", file=sys.stderr)
    return 0
