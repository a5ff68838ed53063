"""Model downloads from the Hugging Face hub into the models folder: pinned, resumable, checked, atomic.

Each catalog variant's files live in ``<models_dir>/<variant.store>/`` next to a manifest
(``captioneer-manifest.json``) that records the repository, the commit the download was pinned to, and every
file's size and SHA-256. A file is fetched into ``<name>.part`` (resumed after a cut connection or a cancelled
run, see :mod:`captioneer.backends.hub`), checked against the hub's size and SHA-256 (git blob id for small
non-LFS files), and only then renamed into place: a half or corrupt file is never used.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from captioneer.backends.base import ProgressCallback
from captioneer.backends.cancel import CancelToken, token_or_new
from captioneer.backends.catalog import Catalog, Variant, load_catalog
from captioneer.backends.errors import ConfigurationError, ModelFileError
from captioneer.backends.files import write_atomically
from captioneer.backends.hub import (
    Digests,
    DownloadError,
    FileFetch,
    Progress,
    RemoteFile,
    fetch_file,
    file_url,
    hash_file,
    hub_endpoint,
    hub_headers,
    resolve,
    size_text,
)

MANIFEST_NAME = "captioneer-manifest.json"
MANIFEST_FORMAT = 1
PART_SUFFIX = ".part"

CORRUPT_RETRIES = 1
"""How many times a file whose checksum does not match is fetched again from scratch."""

DISK_HEADROOM_BYTES = 200 * 1024**2
"""Free space kept on top of what a download needs."""


@dataclass
class Manifest:
    """What a models folder holds and where it came from (written as JSON next to the files)."""

    store: str
    engine: str
    repo: str
    revision: str
    files: list[RemoteFile]
    complete: bool = False
    verified_sha256: dict[str, str] = field(default_factory=dict)
    updated_at: str = ""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["format"] = MANIFEST_FORMAT
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        return cls(
            store=data["store"],
            engine=data["engine"],
            repo=data["repo"],
            revision=data["revision"],
            files=[RemoteFile(**entry) for entry in data["files"]],
            complete=bool(data.get("complete")),
            verified_sha256=dict(data.get("verified_sha256") or {}),
            updated_at=str(data.get("updated_at") or ""),
        )

    @property
    def size(self) -> int:
        return sum(remote.size for remote in self.files)

    def path_of(self, role: str) -> str | None:
        return next((remote.name for remote in self.files if remote.role == role), None)


@dataclass(frozen=True)
class InstalledModel:
    """A downloaded variant, with what an engine's configuration needs.

    Attributes:
        variant: the catalog variant.
        folder: its folder in the models directory.
        manifest: where it came from.
        model_path: the model file (an engine that needs a projector) or the folder (a repository snapshot).
        mmproj_path: the vision projector, for engines that need one.
    """

    variant: Variant
    folder: Path
    manifest: Manifest
    model_path: Path
    mmproj_path: Path | None


@dataclass(frozen=True)
class FileCheck:
    """The result of checking one file of a download."""

    name: str
    status: str
    """``ok``, ``missing``, ``wrong-size``, ``corrupt`` or ``partial`` (a ``.part`` waiting to be resumed)."""
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


# ---------------------------------------------------------------------------------------------------------
# Manifest and folders


def store_folder(models_dir: Path, variant: Variant) -> Path:
    """Where ``variant``'s files live.

    Raises:
        ConfigurationError: Ollama variants have no folder (Ollama keeps its own store).
    """
    if variant.store is None:
        raise ConfigurationError(
            f"{variant.tag} is an Ollama model: Ollama stores it itself (use `ollama list` / `ollama rm`)."
        )
    return models_dir / variant.store


def read_manifest(folder: Path) -> Manifest | None:
    """The manifest in ``folder``, or None when there is none or it is unreadable (then nothing there is
    trusted and a pull starts over)."""
    path = folder / MANIFEST_NAME
    try:
        return Manifest.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_manifest(folder: Path, manifest: Manifest) -> None:
    manifest.updated_at = datetime.now(UTC).isoformat(timespec="seconds")
    write_atomically(folder / MANIFEST_NAME, json.dumps(manifest.to_json(), indent=2).encode("utf-8"))


def installed_model(variant: Variant, models_dir: Path) -> InstalledModel | None:
    """The complete download of ``variant`` in ``models_dir``, or None. Checks presence and sizes, not
    checksums (that is :func:`verify`)."""
    if variant.store is None:
        return None
    folder = store_folder(models_dir, variant)
    manifest = read_manifest(folder)
    if manifest is None or not manifest.complete:
        return None
    for remote in manifest.files:
        path = folder / remote.name
        if not path.is_file() or path.stat().st_size != remote.size:
            return None
    if variant.entry.needs_mmproj:
        model, mmproj = manifest.path_of("model"), manifest.path_of("mmproj")
        if model is None or mmproj is None:
            return None
        return InstalledModel(variant, folder, manifest, folder / model, folder / mmproj)
    return InstalledModel(variant, folder, manifest, folder, None)


def remove(variant: Variant, models_dir: Path) -> Path | None:
    """Delete ``variant``'s folder (files, partial downloads, manifest).

    Returns:
        The folder removed, or None when there was nothing.
    """
    folder = store_folder(models_dir, variant)
    if not folder.exists():
        return None
    shutil.rmtree(folder)
    return folder


# ---------------------------------------------------------------------------------------------------------
# Pull, verify


def _check_disk(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed + DISK_HEADROOM_BYTES:
        raise DownloadError(
            f"Not enough free disk space in {folder}: the download needs {size_text(needed)} more, "
            f"{size_text(free)} is free — free some space or move the models folder."
        )


def _check_gguf(folder: Path, manifest: Manifest) -> None:
    from captioneer.backends.gguf_files import check_gguf_pair

    model, mmproj = manifest.path_of("model"), manifest.path_of("mmproj")
    if model is None or mmproj is None:
        raise ModelFileError(f"The download in {folder} lacks its model or mmproj file.")
    check_gguf_pair(folder / model, folder / mmproj)


def pull(
    variant: Variant,
    models_dir: Path,
    *,
    endpoint: str | None = None,
    update: bool = False,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    token: str | bool | None = None,
) -> InstalledModel:
    """Download ``variant`` into ``models_dir`` (resuming and repairing what is there) and check it.

    A first pull pins the main branch's current commit; later pulls (a resume, a repair) keep that commit
    unless ``update`` asks for the newest one. Every file already present is re-checked against its SHA-256
    and fetched again if it does not match.

    Args:
        variant: a gguf or transformers catalog variant (Ollama variants go through the Ollama engine).
        models_dir: the models folder (``captioneer.desktop.core.paths.models_dir()``).
        endpoint: the hub (default ``$HF_ENDPOINT`` or huggingface.co).
        update: re-resolve the main branch instead of the pinned commit.
        progress: called with the fraction of bytes handled and a short message.
        cancel: stops the download; the partial file stays and the next pull resumes it.
        token: a hub token (default: huggingface_hub's login, if any).

    Raises:
        DownloadError: the hub cannot be reached, refuses, or the disk is full.
        ModelFileError: a file stays corrupt after a fresh download, or the GGUF files do not belong together.
        Cancelled: ``cancel`` was set.
    """
    cancel = token_or_new(cancel)
    folder = store_folder(models_dir, variant)
    address = hub_endpoint(endpoint)
    previous = read_manifest(folder)
    pinned = previous is not None and not update and previous.repo == variant.repo and bool(previous.files)
    if pinned:
        commit, files = previous.revision, previous.files
    else:
        commit, files = resolve(variant, endpoint=address, token=token)
    folder.mkdir(parents=True, exist_ok=True)
    if previous is not None and previous.revision != commit:
        for stale in folder.rglob(f"*{PART_SUFFIX}"):  # partial files of the old commit cannot be resumed
            stale.unlink()
    manifest = Manifest(store=folder.name, engine=variant.engine, repo=variant.repo or "", revision=commit,
                        files=files)
    _write_manifest(folder, manifest)
    state = Progress(total=sum(remote.size for remote in files), callback=progress)
    pending = []
    for remote in files:
        target = folder / remote.name
        sha256 = _intact_sha256(target, remote, state, cancel)
        if sha256 is None:
            pending.append(remote)
        else:
            manifest.verified_sha256[remote.name] = sha256
    part_bytes = sum(_part_path(folder, remote).stat().st_size for remote in pending
                     if _part_path(folder, remote).is_file())
    _check_disk(folder, sum(remote.size for remote in pending) - part_bytes)
    headers = hub_headers(token)
    for remote in pending:
        target, part = folder / remote.name, _part_path(folder, remote)
        target.parent.mkdir(parents=True, exist_ok=True)
        url = file_url(manifest.repo, remote.name, commit, address)
        for attempt in range(CORRUPT_RETRIES + 1):
            fetch = FileFetch(remote, part, state, cancel)
            fetch_file(url, fetch, headers, manifest.repo, address)
            digests = fetch.digests
            problem = digests.mismatch()
            if problem is None:
                break
            fetch.restart()
            if attempt == CORRUPT_RETRIES:
                raise ModelFileError(
                    f"{remote.name} from {manifest.repo} arrived corrupt twice ({problem}); it was deleted. "
                    "Run the download again later."
                )
            state.say(f"{remote.name} arrived corrupt ({problem}); downloading it again")
        os.replace(part, target)
        manifest.verified_sha256[remote.name] = digests.sha256.hexdigest()
        _write_manifest(folder, manifest)
    _remove_leftovers(folder, manifest)
    if variant.entry.download == "gguf":
        _check_gguf(folder, manifest)
    manifest.complete = True
    _write_manifest(folder, manifest)
    state.say(f"{variant.id} is ready")
    installed = installed_model(variant, models_dir)
    if installed is None:
        raise ModelFileError(f"The download in {folder} is incomplete after finishing; run it again.")
    return installed


def _intact_sha256(path: Path, remote: RemoteFile, state: Progress, cancel: CancelToken) -> str | None:
    """The SHA-256 of ``path`` if it is ``remote`` intact (right size and checksum), else None."""
    if not path.is_file() or path.stat().st_size != remote.size:
        return None
    digests = Digests(remote)
    what = f"Checking {remote.name}"
    hash_file(path, digests, lambda n: state.advance(n, what), cancel)
    if digests.mismatch() is None:
        return digests.sha256.hexdigest()
    state.rewind(remote.size)
    return None


def _part_path(folder: Path, remote: RemoteFile) -> Path:
    return folder / f"{remote.name}{PART_SUFFIX}"


def _remove_leftovers(folder: Path, manifest: Manifest) -> None:
    """Delete files of an older commit that the pinned one no longer has (after an update)."""
    keep = {remote.name for remote in manifest.files} | {MANIFEST_NAME}
    for path in sorted(folder.rglob("*"), reverse=True):
        name = PurePosixPath(path.relative_to(folder).as_posix()).as_posix()
        if path.is_file() and name not in keep:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def verify(variant: Variant, models_dir: Path, *, progress: ProgressCallback | None = None,
           cancel: CancelToken | None = None) -> list[FileCheck]:
    """Re-check every file of ``variant``'s download against the sizes and checksums in its manifest.

    Returns:
        One check per file; all ``ok`` means the download is intact.

    Raises:
        ModelFileError: there is no download (no manifest) to check.
    """
    cancel = token_or_new(cancel)
    folder = store_folder(models_dir, variant)
    manifest = read_manifest(folder)
    if manifest is None:
        raise ModelFileError(f"{variant.id} is not downloaded (no {MANIFEST_NAME} in {folder}).")
    state = Progress(total=manifest.size, callback=progress)
    checks = []
    for remote in manifest.files:
        path = folder / remote.name
        part = _part_path(folder, remote)
        if not path.is_file():
            if part.is_file():
                detail = f"{size_text(part.stat().st_size)} of {size_text(remote.size)}"
                checks.append(FileCheck(remote.name, "partial", detail))
            else:
                checks.append(FileCheck(remote.name, "missing"))
            continue
        size = path.stat().st_size
        if size != remote.size:
            checks.append(FileCheck(remote.name, "wrong-size", f"{size} bytes instead of {remote.size}"))
            continue
        digests = Digests(remote)
        hash_file(path, digests, lambda n, name=remote.name: state.advance(n, f"Checking {name}"), cancel)
        problem = digests.mismatch()
        recorded = manifest.verified_sha256.get(remote.name)
        if problem is None and recorded not in (None, digests.sha256.hexdigest()):
            problem = "SHA-256 differs from the one recorded at download"
        checks.append(FileCheck(remote.name, "corrupt", problem) if problem else FileCheck(remote.name, "ok"))
    return checks


def downloaded(models_dir: Path, catalog: Catalog | None = None) -> list[tuple[Path, Manifest]]:
    """Every folder in ``models_dir`` with a manifest (complete or not), for listing."""
    catalog = catalog or load_catalog()
    found = []
    if not models_dir.is_dir():
        return found
    for folder in sorted(path for path in models_dir.iterdir() if path.is_dir()):
        manifest = read_manifest(folder)
        if manifest is not None and catalog.by_store(folder.name):
            found.append((folder, manifest))
    return found
