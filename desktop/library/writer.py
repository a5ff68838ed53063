"""Writing our captions and keywords into photos and sidecars safely: plan (the dry run), then apply.

API for the catalog (everything Qt-free; ``generated`` is what a model produced for one photo):

    from captioneer.desktop.library.identity import image_content_key
    from captioneer.desktop.library.merge import Generated, MergeOptions
    from captioneer.desktop.library.sidecars import SidecarNaming, WriteMode
    from captioneer.desktop.library.writer import WriteOptions, plan_write, apply
    from captioneer.desktop.library.write_errors import MetadataWriteError
    from captioneer.desktop.library.journal import Journal, undo, remove_stale_temps

    remove_stale_temps(library_root)                    # once at start, holding the catalog lock
    journal = Journal(data_dir / "journal" / "write-7")  # one per write operation
    plan = plan_write(photo, Generated(keywords=("beach",), caption="…", model="qwen3-vl-2b", …),
                      library_root=root, options=WriteOptions(mode=WriteMode.EMBEDDED))
    # A keyword with a place in the user's hierarchy carries its path (keyword_tree.KeywordPath):
    #   Generated(keywords=("Paris",), paths={"Paris": KeywordPath.parse("[Places]|Europe|France|Paris")})
    print(plan.describe())                              # dry run: the per-file diff; nothing was touched
    outcome = apply(plan, journal)                      # outcome.status: "written" | "unchanged" | "skipped"
    report = undo(data_dir / "journal" / "write-7")     # byte-exact restore; report.ok, report.summary()
    key = image_content_key(photo)                      # photo identity that survives our metadata writes

- ``plan_write`` reads the photo and its sidecar(s), merges (never replaces), and returns a
  :class:`WritePlan`: the files that would change with their before/after fields. A plan with no changes
  means a write would change nothing on disk. A read-only folder gives ``plan.skipped`` (the item stays
  pending, as does a FIFO or folder where the photo or its sidecar should be); a read-only image, a
  proprietary RAW or a format exiv2 cannot write goes to a sidecar. A video clip (``core.video``'s
  suffixes) always goes to a sidecar and is never opened, hashed or decoded: only its sidecar is read.
  Existing XMP that exiv2 did not read completely (checked against an independent XML parse) is never
  rewritten: :class:`DamagedXmpError`.
- ``apply`` writes each change through a temp file beside the target (fsync, verify: decodes, pixels
  unchanged, fields read back, see :mod:`~captioneer.desktop.library.write_files`; then one rename),
  journals the previous bytes first, and re-reads and re-merges when a file changed since the plan
  (compare-and-swap).
- Errors (all :class:`captioneer.backends.errors.CaptioneerError`, messages for people; defined in
  :mod:`~captioneer.desktop.library.write_errors`): ``WriteRefusedError``
  (symbolic link, outside the library), ``DamagedXmpError`` (existing XMP did not read completely),
  ``DiskFullError`` (original intact, pause the batch), ``MetadataWriteError`` (unreadable
  sidecar, exiv2 failure, verification failed),
  :class:`~captioneer.desktop.library.journal.JournalError`,
  :class:`~captioneer.desktop.library.journal.ConcurrentChangeError`
  (a file kept changing), ``ImageError`` (the photo is missing).
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from captioneer.backends.errors import ImageError
from captioneer.backends.files import fsync_dir, temp_path_for
from captioneer.desktop.core.video import is_video_path
from captioneer.desktop.library.fields import PhotoMetadata
from captioneer.desktop.library.identity import can_decode_raw
from captioneer.desktop.library.journal import (
    ConcurrentChangeError,
    Journal,
    JournalError,
    remove_temps_for,
    sha256_file,
)
from captioneer.desktop.library.merge import Generated, MergeOptions, all_keywords, merge
from captioneer.desktop.library.metadata import exiv2_module, read_metadata, write_metadata
from captioneer.desktop.library.sidecars import (
    DARKTABLE_WARNING,
    EMBEDDABLE_SUFFIXES,
    SidecarNaming,
    WriteMode,
    choose_targets,
    find_sidecar,
    is_darktable_sidecar,
)
from captioneer.desktop.library.write_errors import (
    DamagedXmpError,
    DiskFullError,
    MetadataWriteError,
    TargetChanged,
)
from captioneer.desktop.library.write_files import (
    FileChange,
    build_embedded,
    build_sidecar,
    check_target,
    fingerprint,
    incomplete_xmp,
    not_a_file,
    open_image,
    parse_sidecar,
    read_regular,
    stat_matches,
    writable,
)

MAX_REPLANS = 3
JPEG_XMP_LIMIT = 65_000  # one APP1 segment holds 65,533 bytes, less the XMP namespace header
_DISK_FULL = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


@dataclass(frozen=True)
class WriteOptions:
    """How to write: where (mode), how new sidecars are named, and how results merge."""

    mode: WriteMode = WriteMode.EMBEDDED
    naming: SidecarNaming = SidecarNaming.FULL
    merge: MergeOptions = field(default_factory=MergeOptions)


@dataclass(frozen=True)
class WritePlan:
    """What writing one photo would do. Making it touches nothing; :func:`apply` carries it out."""

    photo: Path
    library_root: Path
    generated: Generated
    options: WriteOptions
    changes: tuple[FileChange, ...] = ()
    notes: tuple[str, ...] = ()
    skipped: str = ""

    @property
    def changed(self) -> bool:
        """Whether applying would change any file."""
        return bool(self.changes) and not self.skipped

    def describe(self) -> str:
        """The dry-run text: per file, what changes, plus notes."""
        lines = [str(self.photo)]
        if self.skipped:
            lines.append(f"  {self.skipped}")
        elif not self.changes:
            lines.append("  nothing to change")
        for change in self.changes:
            verb = "update" if change.fingerprint else "create"
            lines.append(f"  {verb} {change.kind}: {change.target.name}")
            lines += ["  " + line for line in change.diff()]
            lines += [f"    note: {note}" for note in change.notes]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


@dataclass(frozen=True)
class WriteOutcome:
    """What :func:`apply` did for one photo.

    Attributes:
        status: ``written``, ``unchanged`` or ``skipped`` (``reason`` says why; the item stays pending).
        files: each file written with its new sha256.
        replanned: a file changed after the plan and the merge was redone.
    """

    photo: Path
    status: str
    files: tuple[tuple[Path, str], ...] = ()
    notes: tuple[str, ...] = ()
    reason: str = ""
    replanned: bool = False


def _can_write(exiv2: Any, image: Any) -> bool:
    mode = image.checkMode(exiv2.MetadataId.Xmp)
    return mode in (exiv2.AccessMode.Write, exiv2.AccessMode.ReadWrite)


def _read_embedded(photo: Path) -> tuple[PhotoMetadata, Any, str]:
    """(our fields embedded in the photo, the exiv2 image or None when exiv2 cannot write it, a note)."""
    exiv2 = exiv2_module()
    try:
        image = open_image(photo)
    except exiv2.Exiv2Error as exc:
        return PhotoMetadata(), None, f"exiv2 cannot read this file's metadata ({exc})"
    metadata = read_metadata(image.xmpData(), image.iptcData(), image.exifData())
    return metadata, image if _can_write(exiv2, image) else None, ""


def _too_big_for_jpeg(image: Any, before: PhotoMetadata, after: PhotoMetadata) -> bool:
    """Whether the new XMP overflows a JPEG's 64 KB APP1 segment (edits only the copy in memory)."""
    exiv2 = exiv2_module()
    if image.mimeType() != "image/jpeg":
        return False
    xmp = image.xmpData()
    write_metadata(before, after, xmp)
    _status, packet = exiv2.XmpParser.encode(xmp, exiv2.XmpParser.XmpFormatFlags.useCompactFormat)
    return len(packet.encode("utf-8")) > JPEG_XMP_LIMIT


# ------------------------------------------------------------------------------------------------ plan


def plan_write(
    photo: Path,
    generated: Generated,
    *,
    library_root: Path,
    options: WriteOptions | None = None,
) -> WritePlan:
    """Work out what writing ``generated`` into ``photo`` would change. Touches nothing (this is the dry run).

    Args:
        photo: the photo, inside ``library_root``.
        generated: the approved (or, with ``--write-unreviewed``, unreviewed) model result.
        library_root: the library folder; nothing outside it is ever written.
        options: mode, sidecar naming and merge choices.

    Raises:
        WriteRefusedError: the photo or its sidecar is a symbolic link, or lies outside the library.
        ImageError: the photo is missing.
        DamagedXmpError: the existing sidecar or embedded XMP did not read completely (a stray ``&``, an
            unbound prefix, a DOCTYPE…): writing would drop what exiv2 skipped, so the file is left alone.
        MetadataWriteError: an existing sidecar is not valid XMP, or the photo looks damaged.

    A FIFO, folder or other non-file at the photo's or the sidecar's path gives ``plan.skipped``.
    """
    options = options or WriteOptions()
    photo = Path(photo)
    library_root = Path(library_root)
    if not generated.time:
        generated = replace(generated, time=datetime.now(UTC).isoformat(timespec="seconds"))
    check_target(photo, library_root)
    plan = WritePlan(photo=photo, library_root=library_root, generated=generated, options=options)
    kind = not_a_file(photo)
    if kind:
        return replace(plan, skipped=f"skipped: {photo.name} is {kind}, not a photo (it stays pending)")
    if not photo.is_file():
        raise ImageError(f"{photo} is missing", kind="missing")
    if not writable(photo.parent):
        return replace(plan, skipped=f"skipped: read-only folder {photo.parent} (the photo stays pending)")

    # A clip's metadata lives in its sidecar only: exiv2 never opens the video (it cannot write one, and
    # walking a long clip's boxes for nothing costs time).
    video = is_video_path(photo)
    embedded, image, read_note = (PhotoMetadata(), None, "") if video else _read_embedded(photo)
    if read_note and options.mode is not WriteMode.SIDECAR and photo.suffix.lower() in EMBEDDABLE_SUFFIXES:
        raise MetadataWriteError(f"{photo} looks damaged: {read_note}. Captioneer does not write into it.")
    targets = choose_targets(
        photo,
        options.mode,
        image_writable=writable(photo),
        exiv2_can_write=image is not None,
        verifiable=photo.suffix.lower() != ".dng" or can_decode_raw(),
    )
    notes = [read_note] if read_note else []
    notes += targets.reasons
    changes: list[FileChange] = []
    if targets.embed and image.xmpPacket().strip():
        problem = incomplete_xmp(image.xmpPacket(), image.xmpData())
        if problem:
            raise DamagedXmpError(
                f"{photo} was left untouched: its embedded XMP did not read completely ({problem}); "
                "repair it with the program that wrote it, or write to a sidecar instead (--mode sidecar)"
            )
    if targets.embed:
        result = merge(embedded, generated, options.merge)
        if result.changed and _too_big_for_jpeg(image, embedded, result.metadata):
            notes.append("the metadata is too large for a JPEG's 64 KB XMP segment: using a sidecar")
            targets = replace(targets, embed=False, sidecar=True)
        elif result.changed:
            changes.append(
                FileChange(photo, "embedded", fingerprint(photo), embedded, result.metadata, result.notes)
            )
        else:
            notes += result.notes
    if targets.sidecar:
        change, sidecar_notes, skipped = _plan_sidecar(photo, embedded, generated, options)
        notes += sidecar_notes
        if skipped:
            return replace(plan, notes=tuple(notes), skipped=skipped)
        if change:
            changes.append(change)
    return replace(plan, changes=tuple(changes), notes=tuple(notes))


def _plan_sidecar(
    photo: Path, embedded: PhotoMetadata, generated: Generated, options: WriteOptions
) -> tuple[FileChange | None, list[str], str]:
    """(the sidecar change or None, notes, a reason to skip the photo or "")."""
    choice = find_sidecar(photo, options.naming)
    check_target(choice.path, photo.parent)
    notes = list(choice.notes)
    kind = not_a_file(choice.path)
    if kind:
        return (
            None,
            notes,
            f"skipped: {choice.path.name} is {kind}, not a sidecar: move it away (the photo stays pending)",
        )
    if choice.exists and not writable(choice.path):
        return None, notes, f"skipped: the sidecar {choice.path.name} is read-only (the photo stays pending)"
    data = read_regular(choice.path) if choice.exists else b""
    if data.strip():
        existing_print = fingerprint(choice.path)
        image = parse_sidecar(data, choice.path)
        xmp = image.xmpData()
        problem = incomplete_xmp(data, xmp)
        if problem:
            raise DamagedXmpError(
                f"The sidecar {choice.path} was left untouched: {problem}; "
                "repair it or move it away, then write again"
            )
        existing = read_metadata(xmp)
        if is_darktable_sidecar([datum.key() for datum in xmp]):
            notes.append(DARKTABLE_WARNING)
    else:
        # Absent or empty (nothing to lose): the new sidecar starts from what the photo carries, so tools
        # that prefer the sidecar see it all.
        existing_print = fingerprint(choice.path) if choice.exists else None
        existing = replace(embedded, keywords=all_keywords(embedded), iptc_keywords=(), has_iptc=False)
    result = merge(existing, generated, options.merge)
    if not result.changed:
        return None, notes + list(result.notes), ""
    # A new sidecar holds nothing yet: every field of the merged result is written into it.
    before = existing if data.strip() else PhotoMetadata()
    return (
        FileChange(choice.path, "sidecar", existing_print, before, result.metadata, result.notes),
        notes,
        "",
    )


# ----------------------------------------------------------------------------------------------- apply


def apply(plan: WritePlan, journal: Journal) -> WriteOutcome:
    """Carry out a plan: every change through temp file, fsync, verify, journal, rename.

    If a file changed since the plan read it, the photo is read and merged again (up to a few times), so an
    edit made meanwhile by another program is kept.

    Raises:
        WriteRefusedError, DiskFullError, MetadataWriteError, JournalError, ConcurrentChangeError: see the
        module docstring. Files written before the error stay written and journaled; the others are untouched.
    """
    replanned = False
    for _attempt in range(MAX_REPLANS):
        if plan.skipped:
            return WriteOutcome(
                plan.photo, "skipped", notes=plan.notes, reason=plan.skipped, replanned=replanned
            )
        if not plan.changes:
            return WriteOutcome(plan.photo, "unchanged", notes=plan.notes, replanned=replanned)
        written: list[tuple[Path, str]] = []
        try:
            for change in plan.changes:
                written.append((change.target, _apply_change(plan, change, journal)))
        except TargetChanged:
            plan = plan_write(
                plan.photo, plan.generated, library_root=plan.library_root, options=plan.options
            )
            replanned = True
            continue
        notes = plan.notes + tuple(note for change in plan.changes for note in change.notes)
        return WriteOutcome(plan.photo, "written", files=tuple(written), notes=notes, replanned=replanned)
    raise ConcurrentChangeError(
        f"{plan.photo} (or its sidecar) kept changing while Captioneer wrote it: try again when nothing else "
        "is editing it"
    )


def _apply_change(plan: WritePlan, change: FileChange, journal: Journal) -> str:
    """Write one file; return its new sha256."""
    target = change.target
    check_target(target, plan.library_root)
    if fingerprint(target) != change.fingerprint:
        raise TargetChanged
    remove_temps_for(target)
    temp = temp_path_for(target)
    try:
        try:
            if change.kind == "sidecar":
                build_sidecar(change, temp)
            else:
                build_embedded(change, temp)
        except OSError as exc:
            if exc.errno in _DISK_FULL:
                raise DiskFullError(
                    f"Not enough disk space to write metadata for {plan.photo}: the original is untouched. "
                    "Free some space and resume the write."
                ) from None
            raise MetadataWriteError(
                f"Cannot write metadata for {plan.photo}: {exc.strerror or exc}"
            ) from None
        after_sha = sha256_file(temp)
        try:
            entry = journal.record(
                photo=plan.photo,
                target=target,
                kind=change.kind,
                before_sha256=change.fingerprint.sha256 if change.fingerprint else None,
                after_sha256=after_sha,
                fields_before=change.before.fields(),
                fields_after=change.after.fields(),
            )
        except ConcurrentChangeError:
            raise TargetChanged from None
        except JournalError as exc:
            if exc.errno in _DISK_FULL:
                raise DiskFullError(
                    f"Not enough disk space for the write journal ({journal.directory}): {plan.photo} is "
                    "untouched. Free some space and resume the write."
                ) from None
            raise
        if not stat_matches(target, change.fingerprint):
            journal.discard(entry)
            raise TargetChanged
        os.replace(temp, target)
    finally:
        if temp.exists():
            temp.unlink()
    fsync_dir(target.parent)
    return after_sha
