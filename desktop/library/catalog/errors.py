"""The catalog's errors: one-line diagnoses, with what to do, of the storage failures they come from."""

from __future__ import annotations

import errno
import sqlite3
from datetime import datetime
from pathlib import Path

from captioneer.backends.errors import CaptioneerError
from captioneer.desktop.core.paths import data_dir

CATALOG_NAME = "catalog.sqlite"
NOT_UTF8 = "a stored text is not valid UTF-8"


class CatalogError(CaptioneerError):
    """The catalog cannot be used."""


class CatalogLockedError(CatalogError):
    """Another Captioneer process has the catalog open for writing."""


class CatalogCorruptError(CatalogError):
    """The catalog file is damaged."""

    exit_code = 3


class CatalogReadOnlyError(CatalogError):
    """The catalog (or its folder) cannot be written: permissions, a read-only disk. The file is sound."""

    exit_code = 3


class CatalogDiskFullError(CatalogError):
    """The disk holding the catalog is full (or the file hit a size limit). The file is sound."""

    exit_code = 3


def default_catalog_path() -> Path:
    return data_dir() / CATALOG_NAME


# SQLite's primary result codes (the low byte of an extended code).
_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN = (
    3,
    8,
    10,
    11,
    13,
    14,
)
_SQLITE_NOTADB = 26
_SQLITE_IOERR_SHMSIZE = _SQLITE_IOERR | 19 << 8  # the WAL index could not grow: no space left


def os_storage_error(exc: OSError, path: Path) -> CatalogError:
    """The one-line diagnosis for a file-system failure on the catalog's own files."""
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG):
        return _disk_full(path)
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return _read_only(path, exc.strerror or str(exc))
    return CatalogError(
        f"The catalog {path} cannot be used ({exc.strerror or exc}): check the disk and its folder."
    )


def _disk_full(path: Path) -> CatalogDiskFullError:
    return CatalogDiskFullError(
        f"The disk holding the catalog {path} is full, so nothing more could be saved; what was saved "
        "before is intact. Free some space on that disk (or move Captioneer's data folder with "
        "CAPTIONEER_HOME), then run the command again."
    )


def _read_only(path: Path, detail: str) -> CatalogReadOnlyError:
    return CatalogReadOnlyError(
        f"The catalog {path} cannot be written ({detail}): its folder {path.parent} or the file is read-only "
        "or on a read-only disk. It is not damaged. Give yourself write permission on the folder and its "
        "catalog files (for example: chmod u+w on them), or point CAPTIONEER_HOME at a writable folder, then "
        "run the command again."
    )


def storage_error(exc: sqlite3.Error, path: Path | None = None, *, opening: bool = False) -> CatalogError:
    """The one-line diagnosis for an SQLite failure on the catalog: disk full, read-only, damaged, or another
    failure, each with what to do. Used when opening (where any other failure means the file is not a sound
    database) and by the command line for failures later on.
    """
    path = path or default_catalog_path()
    extended = getattr(exc, "sqlite_errorcode", None) or 0
    code = extended & 0xFF
    text = str(exc)
    if code == _SQLITE_FULL or extended == _SQLITE_IOERR_SHMSIZE or "disk is full" in text:
        return _disk_full(path)
    if code in (_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_CANTOPEN):
        return _read_only(path, text)
    if code == _SQLITE_IOERR:
        return CatalogDiskFullError(
            f"The catalog {path} could not be read or written ({text}); what was saved before is intact. The "
            "disk may be full (or the file over a size limit), failing or disconnected: free some space or "
            "check the disk, then run the command again."
        )
    # Damage quick_check cannot see shows up later: stored JSON that no longer parses, or text that is not
    # UTF-8 reaching our casefold() (the only way that function fails).
    damage = ("malformed", "decode", "user-defined function raised exception")
    if opening or code in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or any(word in text for word in damage):
        return corrupt(path, NOT_UTF8 if damage[-1] in text else text)
    return CatalogError(
        f"The catalog {path} could not be used ({text}). Run the command again; if it keeps failing, report "
        "this message."
    )


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + ".backup")


def corrupt(path: Path, detail: str) -> CatalogCorruptError:
    backup = backup_path(path)
    if backup.exists() and backup.stat().st_size > 0:
        when = datetime.fromtimestamp(backup.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
        remedy = (
            f"To restore the backup from {when} ({backup}), close Captioneer, rename the damaged file to "
            f"{path.name}.damaged and copy {backup.name} to {path.name} in {path.parent} (for example: "
            f"mv '{path}' '{path}.damaged' && cp '{backup}' '{path}'; results since then are lost); or "
            "move the file aside and run the scan again to rebuild a fresh catalog."
        )
    else:
        remedy = (
            f"Move the file aside (for example rename it to {path.name}.damaged) and run the scan again to "
            "rebuild it; results and reviews stored only in the damaged catalog are lost."
        )
    return CatalogCorruptError(
        f"The catalog {path} is damaged ({detail}). Your photos are not affected. {remedy}"
    )
