"""Safe reads and crash-safe writes shared by downloads, settings, the tagger and the metadata journal."""

from __future__ import annotations

import errno
import os
import stat
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


_READ_FLAGS = (
    os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
)


def open_regular(path: Path) -> int:
    """A file descriptor for reading ``path``, which must be a regular file: a final symbolic link is not
    followed, and a FIFO is opened without blocking and then refused, so nothing waits on a writer.

    Raises:
        OSError: ``path`` cannot be opened, or it is not a regular file (``EINVAL``, with the reason).
    """
    fd = os.open(path, _READ_FLAGS)
    kind = os.fstat(fd).st_mode
    if not stat.S_ISREG(kind):
        os.close(fd)
        raise OSError(errno.EINVAL, f"{file_kind(kind)}, not a regular file", str(path))
    return fd


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words (``a FIFO``, ``a folder``)."""
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a regular file"
