"""The `captioneer` command line: no arguments opens the window; subcommands do the work headless."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from backends.errors import Cancelled, CaptioneerError
from desktop import __version__

# Subcommand name -> module with ``register(subparsers)``; modules keep heavy imports inside functions.
COMMANDS: dict[str, str] = {
    "caption": "desktop.commands.caption",
    "tasks": "desktop.commands.tasks",
    "tag": "desktop.commands.tag",
    "runs": "desktop.commands.runs",
    "review": "desktop.commands.review",
    "write": "desktop.commands.write",
    "undo": "desktop.commands.undo",
    "search": "desktop.commands.search",
    "export": "desktop.commands.export",
    "import": "desktop.commands.import_",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="captioneer",
        description="Captions, alt text and keywords for photos with Qwen3-VL, on your own machine.",
    )
    parser.add_argument("--version", action="version", version=f"captioneer {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMANDS.values():
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except Cancelled:
        print("captioneer: cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("\ncaptioneer: interrupted", file=sys.stderr)
        return 130
    except CaptioneerError as exc:
        print(f"captioneer: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
