"""The files a metadata write touches, handled safely: no links, nothing outside the library, no waiting on a
FIFO; fingerprints for compare-and-swap; and each new file built beside its target and verified (it decodes,
its pixels are unchanged, our fields read back) before the writer may swap it in.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from captioneer.backends.errors import ImageError
from captioneer.backends.files import file_kind, open_regular
from captioneer.desktop.library.fields import PhotoMetadata
from captioneer.desktop.library.identity import pixel_digest
from captioneer.desktop.library.journal import copy_with_fsync, sha256_file
from captioneer.desktop.library.merge import diff_lines
from captioneer.desktop.library.metadata import exiv2_module, read_metadata, write_metadata
from captioneer.desktop.library.write_errors import MetadataWriteError, TargetChanged, WriteRefusedError
from captioneer.desktop.library.xmp_check import xmp_problem


@dataclass(frozen=True)
class Fingerprint:
    """A file as the plan read it: compared again before replacing it (compare-and-swap)."""

    size: int
    mtime_ns: int
    sha256: str


@dataclass(frozen=True)
class FileChange:
    """One file a plan would change."""

    target: Path
    kind: str  # "embedded" or "sidecar"
    fingerprint: Fingerprint | None  # None: the file does not exist yet
    before: PhotoMetadata
    after: PhotoMetadata
    notes: tuple[str, ...] = ()

    def diff(self) -> list[str]:
        """The per-file diff in words."""
        return diff_lines(self.before, self.after)


# ------------------------------------------------------------------------------------------------ safety


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def check_target(path: Path, library_root: Path) -> None:
    """Refuse a path that is a symbolic link or whose real folder is outside the library root.

    Raises:
        WriteRefusedError: with the reason.
    """
    root = Path(os.path.realpath(library_root))
    if path.is_symlink():
        raise WriteRefusedError(f"{path} is a symbolic link: Captioneer never writes through links")
    folder = Path(os.path.realpath(path.parent))
    if not _inside(folder, root):
        raise WriteRefusedError(f"{path} is outside the library {library_root}: not written")


def writable(path: Path) -> bool:
    """Writable for us and not marked read-only (the mode bits count even for root, who may write anyway)."""
    return os.access(path, os.W_OK) and bool(os.stat(path).st_mode & 0o222)


def fingerprint(path: Path) -> Fingerprint | None:
    """Size, mtime and sha256 of a file, or None when it does not exist.

    Raises:
        MetadataWriteError: it cannot be read, or something other than a regular file is there now.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    try:
        return Fingerprint(info.st_size, info.st_mtime_ns, sha256_file(path))
    except OSError as exc:
        raise MetadataWriteError(f"Cannot read {path}: {exc.strerror or exc}") from None


def stat_matches(path: Path, expected: Fingerprint | None) -> bool:
    """Whether size and mtime still match ``expected`` (the cheap check just before the swap)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return expected is None
    return expected is not None and (info.st_size, info.st_mtime_ns) == (expected.size, expected.mtime_ns)


# --------------------------------------------------------------------------------------------- reading


def not_a_file(path: Path) -> str:
    """What stands at ``path`` when it is neither a regular file nor a link (``a FIFO``), else ``""``.

    Only lstat looks at it: a FIFO is never opened (opening one waits for a writer forever).
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return ""
    return "" if stat.S_ISREG(mode) or stat.S_ISLNK(mode) else file_kind(mode)


def read_regular(path: Path) -> bytes:
    """The bytes of a regular file (never through a link, never waiting on a FIFO).

    Raises:
        MetadataWriteError: it cannot be read, or is not a regular file.
    """
    try:
        with os.fdopen(open_regular(path), "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise MetadataWriteError(f"Cannot read {path}: {exc.strerror or exc}") from None


def incomplete_xmp(packet: bytes | str, xmp: Any) -> str:
    """Why exiv2 did not read an existing XMP packet completely (see :mod:`xmp_check`), or ``""``."""
    exiv2 = exiv2_module()
    keys = [datum.key() for datum in xmp]
    prefixes = {key.split(".")[1] for key in keys}
    return xmp_problem(packet, keys, {prefix: exiv2.XmpProperties.ns(prefix) for prefix in prefixes})


def open_image(path: Path) -> Any:
    """An exiv2 image of the file at ``path``, its metadata read (raises exiv2's own error)."""
    exiv2 = exiv2_module()
    image = exiv2.ImageFactory.open(str(path))
    image.readMetadata()
    return image


def parse_sidecar(data: bytes, path: Path) -> Any:
    """An exiv2 image over sidecar bytes (the bytes object must outlive it)."""
    exiv2 = exiv2_module()
    try:
        image = exiv2.ImageFactory.open(data)
        image.readMetadata()
    except exiv2.Exiv2Error as exc:
        raise MetadataWriteError(
            f"The sidecar {path} is not valid XMP ({exc.message if hasattr(exc, 'message') else exc}): "
            "fix or remove it; Captioneer does not overwrite it"
        ) from None
    return image


# ------------------------------------------------------------------------------------------------ build


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def build_sidecar(change: FileChange, temp: Path) -> None:
    exiv2 = exiv2_module()
    data = read_regular(change.target) if change.fingerprint else b""
    if data.strip():
        image = parse_sidecar(data, change.target)
        xmp = image.xmpData()
    else:
        xmp = exiv2.XmpData()
    write_metadata(change.before, change.after, xmp)  # sidecars carry no IPTC or EXIF
    status, packet = exiv2.XmpParser.encode(xmp)
    if status != 0:
        raise MetadataWriteError(f"exiv2 could not encode the XMP for {change.target} (status {status})")
    with open(temp, "xb") as handle:
        handle.write(packet.encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())
    encoded = temp.read_bytes()
    readback = read_metadata(parse_sidecar(encoded, temp).xmpData())
    if not readback.same_fields(change.after):
        raise MetadataWriteError(
            f"The new sidecar for {change.target} did not read back as written; not saved"
        )


def build_embedded(change: FileChange, temp: Path) -> None:
    exiv2 = exiv2_module()
    original = change.target
    digest = copy_with_fsync(original, temp)
    if change.fingerprint is None or digest != change.fingerprint.sha256:
        raise TargetChanged
    os.chmod(temp, os.lstat(original).st_mode & 0o7777)
    try:
        pixels_before = pixel_digest(temp)  # the verified copy, so a change to the original cannot confuse us
    except ImageError as exc:
        raise MetadataWriteError(
            f"{original} does not decode ({exc}): Captioneer does not write into it"
        ) from None
    try:
        image = open_image(temp)
        write_metadata(change.before, change.after, image.xmpData(), image.iptcData(), image.exifData())
        image.writeMetadata()
        del image
    except exiv2.Exiv2Error as exc:
        raise MetadataWriteError(
            f"exiv2 could not write metadata into {original} ({exc}); it is untouched"
        ) from None
    _fsync_file(temp)
    try:
        same_pixels = pixels_before == pixel_digest(temp)
    except ImageError as exc:
        raise MetadataWriteError(
            f"{original} did not decode after writing metadata ({exc}); it is untouched"
        ) from None
    if not same_pixels:
        raise MetadataWriteError(f"Writing metadata would change the pixels of {original}; it is untouched")
    readback_image = open_image(temp)
    readback = read_metadata(readback_image.xmpData(), readback_image.iptcData(), readback_image.exifData())
    if not readback.same_fields(change.after):
        raise MetadataWriteError(f"The metadata of {original} did not read back as written; it is untouched")
