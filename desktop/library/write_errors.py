"""What can stop a metadata write: errors for people (all :class:`CaptioneerError`), and the writer's re-plan
signal."""

from __future__ import annotations

from captioneer.backends.errors import CaptioneerError


class MetadataWriteError(CaptioneerError):
    """Metadata could not be written; the file being written is untouched."""


class WriteRefusedError(MetadataWriteError):
    """A write would follow a symbolic link or leave the library."""


class DamagedXmpError(MetadataWriteError):
    """The file's existing XMP did not read completely; writing would lose what exiv2 skipped."""


class DiskFullError(MetadataWriteError):
    """The disk filled up while writing; the original is intact and the temp file removed."""


class TargetChanged(Exception):
    """Internal to the writer: the target changed since the plan read it; re-plan."""
