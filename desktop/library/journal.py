"""The write journal: what every metadata write changed, with byte-exact backups, and undo.

A journal is a directory (the catalog passes ``<data_dir>/journal/<run_id>/``) holding one JSON file per
touched file under ``entries/`` and the previous bytes of each touched file under ``backups/``. Every file is
written to a temp name, fsynced and renamed, and an entry is complete before the write it describes happens,
so the journal survives a crash at any moment. :func:`undo` puts every touched file back byte for byte, newest
change first; it never clobbers a change the user made after our write unless forced, and running it again
does nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from captioneer.backends.errors import CaptioneerError
from captioneer.backends.files import TEMP_PREFIX, fsync_dir, open_regular, temp_path_for, write_atomically

JOURNAL_VERSION = 1
_CHUNK = 1 << 20


class JournalError(CaptioneerError):
    """The journal cannot be written or read. ``errno`` is the operating system's error number, if any."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


def sha256_file(path: Path) -> str:
    """sha256 of a regular file's bytes (see :func:`open_regular`)."""
    digest = hashlib.sha256()
    with os.fdopen(open_regular(path), "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def copy_with_fsync(source: Path, destination: Path) -> str:
    """Copy ``source`` to a new file ``destination`` (never through a link), fsync it; return its sha256."""
    digest = hashlib.sha256()
    with os.fdopen(open_regular(source), "rb") as src, open(destination, "xb") as dst:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    return digest.hexdigest()


@dataclass(frozen=True)
class FileState:
    """A file as it was (or will be): whether it exists, its sha256, and for ``before`` what restores it."""

    exists: bool
    sha256: str = ""
    size: int = 0
    mtime_ns: int = 0
    mode: int = 0
    backup: str = ""  # file name under backups/, "" when the file did not exist


@dataclass(frozen=True)
class JournalEntry:
    """One touched file: which photo it belongs to, how it was written, its fields and bytes before/after."""

    id: str
    photo: str
    target: str
    kind: str  # "embedded" or "sidecar"
    before: FileState
    after: FileState
    fields_before: dict[str, Any] = field(default_factory=dict)
    fields_after: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "version": JOURNAL_VERSION,
            "id": self.id,
            "photo": self.photo,
            "target": self.target,
            "kind": self.kind,
            "before": self.before.__dict__,
            "after": self.after.__dict__,
            "fields_before": self.fields_before,
            "fields_after": self.fields_after,
            "created": self.created,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JournalEntry:
        return cls(
            id=data["id"],
            photo=data["photo"],
            target=data["target"],
            kind=data["kind"],
            before=FileState(**data["before"]),
            after=FileState(**data["after"]),
            fields_before=data.get("fields_before", {}),
            fields_after=data.get("fields_after", {}),
            created=data.get("created", 0.0),
        )


class Journal:
    """A run's write journal on disk. Create one per run; :mod:`captioneer.desktop.library.writer` records
    into it."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.entries_dir = self.directory / "entries"
        self.backups_dir = self.directory / "backups"
        try:
            self.entries_dir.mkdir(parents=True, exist_ok=True)
            self.backups_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(
                f"Cannot create the write journal at {self.directory}: {exc.strerror}"
            ) from None

    def record(
        self,
        *,
        photo: Path,
        target: Path,
        kind: str,
        before_sha256: str | None,
        after_sha256: str,
        fields_before: dict[str, Any],
        fields_after: dict[str, Any],
    ) -> JournalEntry:
        """Back up ``target`` as it is now and record the change about to be made to it.

        Call this after the new content is complete and verified and before it replaces ``target``.

        Args:
            before_sha256: the sha256 of ``target`` when it was read, or None when it did not exist. If the
                file no longer matches, :class:`ConcurrentChangeError` is raised and nothing is recorded.

        Raises:
            ConcurrentChangeError: the target changed since it was read.
            JournalError: the journal cannot be written (disk full, permissions).
        """
        entry_id = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        before = FileState(exists=False)
        try:
            if before_sha256 is not None:
                info = os.lstat(target)
                backup_name = f"{entry_id}.bin"
                backup = self.backups_dir / backup_name
                digest = copy_with_fsync(target, backup)
                if digest != before_sha256:
                    backup.unlink()
                    raise ConcurrentChangeError(f"{target} changed while it was being written")
                before = FileState(
                    exists=True,
                    sha256=digest,
                    size=info.st_size,
                    mtime_ns=info.st_mtime_ns,
                    mode=info.st_mode & 0o7777,
                    backup=backup_name,
                )
            elif os.path.lexists(target):
                raise ConcurrentChangeError(f"{target} appeared while it was being written")
            entry = JournalEntry(
                id=entry_id,
                photo=str(photo),
                target=str(target),
                kind=kind,
                before=before,
                after=FileState(exists=True, sha256=after_sha256),
                fields_before=fields_before,
                fields_after=fields_after,
                created=time.time(),
            )
            write_atomically(
                self.entries_dir / f"{entry_id}.json",
                json.dumps(entry.to_json(), ensure_ascii=False, indent=1).encode("utf-8"),
            )
            fsync_dir(self.backups_dir)
        except OSError as exc:
            if before_sha256 is not None:  # no entry refers to the backup
                (self.backups_dir / f"{entry_id}.bin").unlink(missing_ok=True)
            raise JournalError(
                f"Cannot write the write journal at {self.directory}: {exc.strerror}", errno=exc.errno
            ) from None
        return entry

    def discard(self, entry: JournalEntry) -> None:
        """Forget an entry whose write was abandoned before it happened (its target was never replaced)."""
        (self.entries_dir / f"{entry.id}.json").unlink(missing_ok=True)
        if entry.before.backup:
            (self.backups_dir / entry.before.backup).unlink(missing_ok=True)
        fsync_dir(self.entries_dir)

    def entries(self) -> list[JournalEntry]:
        """Every recorded entry, oldest first."""
        return read_entries(self.directory)


class ConcurrentChangeError(CaptioneerError):
    """A file changed on disk between reading it and replacing it."""


def read_entries(journal_dir: Path) -> list[JournalEntry]:
    """The entries of a journal directory, oldest first (temp leftovers of a crash are ignored).

    Raises:
        JournalError: the directory is not a journal, or an entry is unreadable.
    """
    entries_dir = Path(journal_dir) / "entries"
    if not entries_dir.is_dir():
        raise JournalError(f"{journal_dir} is not a Captioneer write journal (no entries folder)")
    entries = []
    for path in sorted(entries_dir.glob("*.json")):
        if path.name.startswith(TEMP_PREFIX):
            continue
        try:
            entries.append(JournalEntry.from_json(json.loads(path.read_text("utf-8"))))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise JournalError(
                f"The journal entry {path} is damaged ({exc}); undo stopped before it"
            ) from None
    return entries


@dataclass
class UndoReport:
    """What undo did, per touched file."""

    restored: list[Path] = field(default_factory=list)
    already_restored: list[Path] = field(default_factory=list)
    conflicts: list[tuple[Path, str]] = field(default_factory=list)
    errors: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every file is back as it was before the run."""
        return not self.conflicts and not self.errors

    def summary(self) -> str:
        """One line for a person."""
        parts = [f"{len(self.restored)} restored", f"{len(self.already_restored)} already as before"]
        if self.conflicts:
            parts.append(f"{len(self.conflicts)} changed since our write (left alone)")
        if self.errors:
            parts.append(f"{len(self.errors)} failed")
        return ", ".join(parts)


def _current_sha(target: Path) -> str | None:
    if not os.path.lexists(target):
        return None
    if target.is_symlink():
        raise JournalError(f"{target} is now a symbolic link: undo does not write through links")
    return sha256_file(target)


def _restore(journal_dir: Path, entry: JournalEntry, target: Path) -> None:
    if not entry.before.exists:
        target.unlink()
        fsync_dir(target.parent)
        return
    backup = Path(journal_dir) / "backups" / entry.before.backup
    temp = temp_path_for(target)
    try:
        digest = copy_with_fsync(backup, temp)
        if digest != entry.before.sha256:
            raise JournalError(
                f"The journal's backup of {target} is damaged (checksum mismatch); not restored"
            )
        os.chmod(temp, entry.before.mode)
        os.utime(temp, ns=(entry.before.mtime_ns, entry.before.mtime_ns))
        os.replace(temp, target)
    finally:
        if temp.exists():
            temp.unlink()
    fsync_dir(target.parent)


def undo(journal_dir: Path, *, force: bool = False) -> UndoReport:
    """Restore every file a run touched to its exact previous bytes (and mtime), newest change first.

    A file whose bytes are neither what we wrote nor what was there before was changed by someone else after
    our write: it is reported as a conflict and left alone, unless ``force``. Undo is idempotent.

    Raises:
        JournalError: the journal directory is missing or damaged.
    """
    entries = read_entries(journal_dir)
    for target in {Path(entry.target) for entry in entries}:
        remove_temps_for(target)  # a write or undo killed half-way left them beside the file
    outcome: dict[Path, str] = {}  # per target: restored, already, conflict or error (the worst one wins)
    messages: dict[Path, str] = {}
    rank = {"already": 0, "restored": 1, "conflict": 2, "error": 3}

    def note(target: Path, result: str, message: str = "") -> None:
        if rank[result] >= rank[outcome.get(target, "already")]:
            outcome[target] = result
            messages[target] = message or messages.get(target, "")

    for index in range(len(entries) - 1, -1, -1):
        entry = entries[index]
        target = Path(entry.target)
        if outcome.get(target) in ("conflict", "error") and not force:
            continue  # an older change of a file we could not restore stays as it is
        try:
            current = _current_sha(target)
            if current == _sha_or_none(entry.before):
                note(target, "already")
                continue
            if current != entry.after.sha256:
                older = {
                    _sha_or_none(state)
                    for e in entries[:index]
                    if e.target == entry.target
                    for state in (e.before, e.after)
                }
                if current in older:
                    note(target, "already")  # undone past this change already (an earlier undo ran)
                    continue
                if not force:
                    note(
                        target,
                        "conflict",
                        "changed after Captioneer wrote it: left alone (force restores it)",
                    )
                    continue
            _restore(journal_dir, entry, target)
            note(target, "restored")
        except (OSError, JournalError) as exc:
            note(target, "error", exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc))
    report = UndoReport()
    for target, result in outcome.items():
        if result == "restored":
            report.restored.append(target)
        elif result == "already":
            report.already_restored.append(target)
        elif result == "conflict":
            report.conflicts.append((target, messages[target]))
        else:
            report.errors.append((target, messages[target]))
    return report


def _sha_or_none(state: FileState) -> str | None:
    return state.sha256 if state.exists else None


_OUR_TEMP = re.compile(rf"{re.escape(TEMP_PREFIX)}[0-9a-f]{{12}}-(.+)", re.DOTALL)


def temp_target_name(name: str) -> str | None:
    """The name of the file a temp file of ours was written for (``.captioneer-tmp-<12 hex>-IMG.jpg`` →
    ``IMG.jpg``), or None when ``name`` is not one of our temp names."""
    match = _OUR_TEMP.fullmatch(name)
    return match.group(1) if match else None


def _remove_if_our_temp(path: Path) -> bool:
    """Delete ``path`` if it is a regular file under one of our temp names (never a link, folder or FIFO)."""
    try:
        if temp_target_name(path.name) is None or not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def remove_temps_for(target: Path) -> list[Path]:
    """Delete the leftovers of an interrupted write of ``target`` (our temp names for it, beside it)."""
    try:
        names = os.listdir(target.parent)
    except OSError:
        return []
    return [
        target.parent / name
        for name in names
        if temp_target_name(name) == target.name and _remove_if_our_temp(target.parent / name)
    ]


def remove_stale_temps(root: Path) -> list[Path]:
    """Delete the temp files a killed writer left under ``root`` (call at start, holding the catalog lock).

    Only regular files under our temp-name pattern are removed; links are neither followed nor removed.

    Returns:
        the files removed.
    """
    removed = []
    for directory, _dirs, files in os.walk(root, followlinks=False):
        for name in files:
            path = Path(directory) / name
            if _remove_if_our_temp(path):
                removed.append(path)
    return removed
