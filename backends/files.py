"""Crash-safe file writes shared by downloads, settings and the metadata journal: temp file, fsync, rename."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

TEMP_PREFIX = ".captioneer-tmp-"
"""Every temp file Captioneer writes beside a target starts with this, so leftovers can be found."""


def fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (a no-op where folders cannot be opened, as on Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the rename itself is still atomic
    finally:
        os.close(fd)


def temp_path_for(target: Path) -> Path:
    """A fresh temp name beside ``target``, recognisable as ours so leftovers can be cleaned."""
    return target.with_name(f"{TEMP_PREFIX}{uuid.uuid4().hex[:12]}-{target.name}")


def write_atomically(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` through a temp file beside it, fsync, rename, fsync the folder.

    A crash at any moment leaves either the old file or the new one, never a truncated or empty file.
    """
    temp = temp_path_for(target)
    try:
        with open(temp, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    finally:
        if temp.exists():
            temp.unlink()
    fsync_dir(target.parent)
