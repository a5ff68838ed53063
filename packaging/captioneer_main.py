"""Entry point of the frozen Captioneer app: engine-host child support first, then the usual command line."""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path


def give_windowed_app_streams(log_folder: Path) -> Path | None:
    """A windowed Windows app has no console, so Python leaves ``sys.stdout``/``sys.stderr`` as ``None`` and
    any print or crash report would raise. Send them to ``<logs>/output.log`` instead; returns that path,
    or ``None`` when the streams exist (macOS, Linux, ``captioneer-cli.exe``, or output redirected)."""
    if sys.stdout is not None and sys.stderr is not None:
        return None
    log_folder.mkdir(parents=True, exist_ok=True)
    path = log_folder / "output.log"
    stream = path.open("a", encoding="utf-8", buffering=1)
    if sys.stdout is None:
        sys.stdout = stream
    if sys.stderr is None:
        sys.stderr = stream
    return path


def main() -> int:
    from captioneer.desktop.core.paths import logs_dir

    # Before freeze_support(): the engine host child is started from this same executable and needs
    # working streams as much as the window does.
    give_windowed_app_streams(logs_dir())
    # The engine host is a spawn child: PyInstaller's freeze_support() recognises the child's arguments,
    # runs the child and exits, so nothing below runs in the child.
    multiprocessing.freeze_support()
    from captioneer.desktop.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
