"""The `captioneer` command line: no arguments opens the window; subcommands do the work headless."""

from __future__ import annotations

import argparse
import importlib
import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

from captioneer.backends.errors import Cancelled, CaptioneerError, ConfigurationError
from captioneer.desktop import __version__
from captioneer.desktop.commands.engine_args import add_engine_arguments, overrides_from_args

# Subcommand name -> module with ``register(subparsers)``; modules keep heavy imports inside functions.
COMMANDS: dict[str, str] = {
    "caption": "captioneer.desktop.commands.caption",
    "tasks": "captioneer.desktop.commands.tasks",
    "tag": "captioneer.desktop.commands.tag",
    "runs": "captioneer.desktop.commands.runs",
    "review": "captioneer.desktop.commands.review",
    "write": "captioneer.desktop.commands.write",
    "undo": "captioneer.desktop.commands.undo",
    "search": "captioneer.desktop.commands.search",
    "export": "captioneer.desktop.commands.export",
    "import": "captioneer.desktop.commands.import_",
    "models": "captioneer.desktop.commands.models",
    "hardware": "captioneer.desktop.commands.hardware",
    "recommend": "captioneer.desktop.commands.recommend",
    "serve": "captioneer.desktop.commands.serve",
    "evaluate": "captioneer.desktop.commands.evaluate",
    "vocabulary": "captioneer.desktop.commands.vocabulary",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="captioneer",
        description="Captions, alt text and keywords for photos with Qwen3-VL, on your own machine.",
        # Subcommand options (`review approve --all`) must not be taken for abbreviations of global ones.
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"captioneer {__version__}")
    parser.add_argument(
        "--smoke-test", type=Path, metavar="IMAGE",
        help="open the window, caption IMAGE through the real engine path and exit (0 = it worked)",
    )
    add_engine_arguments(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMANDS.values():
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            return open_window(args)
        return int(args.func(args) or 0)
    except Cancelled:
        print("captioneer: cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("\ncaptioneer: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`captioneer … | head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except CaptioneerError as exc:
        print(f"captioneer: {exc}", file=sys.stderr)
        return exc.exit_code
    except sqlite3.Error as exc:
        # The catalog failed after it was opened (disk full, damage quick_check cannot see): one line.
        from captioneer.desktop.library.catalog import storage_error

        error = storage_error(exc)
        print(f"captioneer: {error}", file=sys.stderr)
        return error.exit_code


def open_window(args: argparse.Namespace) -> int:
    """The desktop window (Qt is imported only here, so subcommands and --version never need it)."""
    from captioneer.desktop.ui.platform_check import check_xcb_libraries

    problem = check_xcb_libraries()  # before Qt, which would abort without naming a package
    if problem:
        print(problem, file=sys.stderr)
        return 1
    try:
        from captioneer.desktop.ui.app import run_window
    except ImportError as exc:
        raise ConfigurationError(
            f"The window needs PySide6 ({exc.name or exc}): pip install 'captioneer[gui]'"
        ) from None
    return run_window(overrides_from_args(args), smoke_test=args.smoke_test)


if __name__ == "__main__":
    sys.exit(main())
