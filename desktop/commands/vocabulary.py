"""`captioneer vocabulary import FILE`: turn a Lightroom keyword list (or digiKam paths) into a vocabulary."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

STYLES = {"lightroom": "Lightroom keyword list", "digikam": "digiKam path list", "captioneer": "vocabulary"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "vocabulary",
        help="import a Lightroom keyword list or digiKam paths as a vocabulary",
        description="Keyword vocabularies with hierarchy. `tag --vocabulary` reads Lightroom's exported "
        "keyword list as it is; `vocabulary import` converts one into Captioneer's text format (one path a "
        "line, `Places|Europe|France|Paris = synonym, synonym`) that you can read and edit.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    convert = actions.add_parser(
        "import",
        help="convert a keyword list into Captioneer's vocabulary format and count what it holds",
        description="Read FILE (Lightroom Classic's Metadata > Export Keywords… text, detected by its tabs "
        "and {synonym} lines; or paths, `|`-separated, `/` with --separator / or a `# separator: /` first "
        "line) and write it in Captioneer's format to OUT (standard output without -o). Reports the "
        "keywords, synonyms and levels read, and the names found at more than one path (offered to the "
        "model, but written without a path since nothing says which one a photo shows).",
    )
    convert.add_argument("file", type=Path, metavar="FILE", help="the keyword list (UTF-8)")
    convert.add_argument("-o", "--output", type=Path, metavar="OUT", help="the vocabulary file to write")
    convert.add_argument(
        "--separator",
        choices=("|", "/"),
        help="FILE is a list of paths with this separator (digiKam: /) rather than Lightroom's indented list",
    )
    convert.add_argument("--force", action="store_true", help="replace OUT if it exists")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from captioneer.backends.errors import ConfigurationError
    from captioneer.backends.files import write_atomically
    from captioneer.desktop.core.user_files import read_user_text
    from captioneer.desktop.library.keyword_tree import (
        parse_keyword_list,
        parse_path_list,
        to_captioneer_text,
        vocabulary_parts,
    )

    source = f"The keyword list {args.file}"
    text = read_user_text(args.file, "the keyword list")
    listing = (
        parse_path_list(text, args.separator, source) if args.separator else parse_keyword_list(text, source)
    )
    parts = vocabulary_parts(listing)
    if not parts.terms:
        raise ConfigurationError(f"{source} has no keywords to offer (every keyword is in [brackets]).")
    if args.output is not None and args.output.exists() and not args.force:
        raise ConfigurationError(f"{args.output} exists: choose another name, or pass --force to replace it.")
    header = f"Captioneer vocabulary, from the {STYLES[listing.style]} {args.file.name}"
    converted = to_captioneer_text(listing, header)
    if args.output is None:
        sys.stdout.write(converted)
    else:
        try:
            write_atomically(args.output, converted.encode("utf-8"))
        except OSError as exc:
            raise ConfigurationError(f"Cannot write {args.output}: {exc.strerror or exc}.") from None
    synonyms = sum(len(item.synonyms) for item in listing.keywords)
    say = f"captioneer: read the {STYLES[listing.style]} {args.file.name}:"
    print(
        f"{say} {len(listing.keywords)} keywords in {listing.levels()} levels ({parts.hidden} grouping "
        f"levels in [brackets]), {synonyms} synonyms; {len(parts.terms)} keywords offered to the model, "
        f"{len(parts.paths)} with a path",
        file=sys.stderr,
    )
    for name, paths in parts.ambiguous.items():
        where = ", ".join(path.text() for path in paths)
        print(
            f"captioneer: {name!r} is at {len(paths)} places ({where}): offered to the model, but written "
            "without a path (rename one of them to tell them apart)",
            file=sys.stderr,
        )
    if args.output is not None:
        print(f"captioneer: wrote {args.output}", file=sys.stderr)
    return 0
