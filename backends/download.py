"""Model downloads from the Hugging Face hub into the models folder: pinned, resumable, checked, atomic.

Each catalog variant's files live in ``<models_dir>/<variant.store>/`` next to a manifest
(``captioneer-manifest.json``) that records the repository, the commit the download was pinned to, and every
file's size and SHA-256. A file is fetched into ``<name>.part`` (resumed with an HTTP Range request after a
cut connection or a cancelled run), checked against the hub's size and SHA-256 (git blob id for small
non-LFS files), and only then renamed into place: a half or corrupt file is never used.

The hub is asked through ``huggingface_hub`` (its session honours ``HF_HUB_OFFLINE``, proxies and tokens);
``HF_ENDPOINT`` moves it (the tests point it at a loopback stand-in).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from captioneer.backends.base import ProgressCallback
from captioneer.backends.cancel import CancelToken, token_or_new
from captioneer.backends.catalog import Catalog, Variant, load_catalog, resolve_gguf_files, transformers_files
from captioneer.backends.errors import Cancelled, CaptioneerError, ConfigurationError, ModelFileError
from captioneer.backends.files import write_atomically

MANIFEST_NAME = "captioneer-manifest.json"
MANIFEST_FORMAT = 1
PART_SUFFIX = ".part"
CHUNK_BYTES = 1024 * 1024

RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Pauses between attempts after a network error or a busy hub; the count resets whenever bytes arrive."""

CORRUPT_RETRIES = 1
"""How many times a file whose checksum does not match is fetched again from scratch."""

DISK_HEADROOM_BYTES = 200 * 1024**2
"""Free space kept on top of what a download needs."""

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0

OFFLINE_MESSAGE = "Downloads are switched off: HF_HUB_OFFLINE is set. Unset it to download models."


class DownloadError(CaptioneerError):
    """A download could not be done: the hub is unreachable, refuses, or the disk is full."""


@dataclass(frozen=True)
class RemoteFile:
    """A file to download, with what the hub says it must be.

    Attributes:
        name: path inside the repository.
        size: bytes.
        sha256: the LFS object's SHA-256 (large files); ``None`` for small files kept in git.
        blob_id: the git blob id (SHA-1 of ``blob <size>\\0`` + content); used when there is no SHA-256.
        role: ``model`` or ``mmproj`` (gguf), ``file`` otherwise.
    """

    name: str
    size: int
    sha256: str | None
    blob_id: str | None
    role: str = "file"


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
        model_path: the GGUF model file (gguf) or the folder (transformers).
        mmproj_path: the vision projector (gguf).
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
    if variant.engine == "gguf":
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
# Hashing


class _Digests:
    """SHA-256 (and the git blob SHA-1 where the hub gives only that) of bytes as they stream past."""

    def __init__(self, remote: RemoteFile) -> None:
        self.remote = remote
        self.sha256 = hashlib.sha256()
        self.sha1 = (
            hashlib.sha1(f"blob {remote.size}\0".encode(), usedforsecurity=False)
            if remote.sha256 is None and remote.blob_id
            else None
        )

    def update(self, chunk: bytes) -> None:
        self.sha256.update(chunk)
        if self.sha1 is not None:
            self.sha1.update(chunk)

    def mismatch(self) -> str | None:
        """Why the bytes are not the hub's file, or None when they are."""
        if self.remote.sha256 is not None and self.sha256.hexdigest() != self.remote.sha256.lower():
            return f"SHA-256 {self.sha256.hexdigest()[:12]}… instead of {self.remote.sha256[:12]}…"
        if self.sha1 is not None and self.sha1.hexdigest() != (self.remote.blob_id or "").lower():
            return f"git blob id {self.sha1.hexdigest()[:12]}… instead of {(self.remote.blob_id or '')[:12]}…"
        return None


def _hash_file(path: Path, digests: _Digests, advance: Callable[[int], None], cancel: CancelToken) -> None:
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            cancel.raise_if_cancelled()
            digests.update(chunk)
            advance(len(chunk))


# ---------------------------------------------------------------------------------------------------------
# The hub


def hub_endpoint(endpoint: str | None = None) -> str:
    """The hub to use: ``endpoint``, else ``$HF_ENDPOINT``, else huggingface_hub's default."""
    from huggingface_hub import constants

    return (endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _check_online() -> None:
    from huggingface_hub import constants

    if constants.is_offline_mode():
        raise DownloadError(OFFLINE_MESSAGE)


def _hub_error(exc: Exception, repo: str, endpoint: str) -> DownloadError:
    """One choke point turning huggingface_hub and network errors into messages for people."""
    import httpx2
    from huggingface_hub import errors

    if isinstance(exc, errors.GatedRepoError):
        return DownloadError(f"{repo} is gated on the hub: accept its terms on the website and log in first.")
    if isinstance(exc, errors.RepositoryNotFoundError):
        return DownloadError(f"The hub at {endpoint} has no repository {repo} (or it is private).")
    if isinstance(exc, errors.RevisionNotFoundError):
        return DownloadError(f"{repo} has no such revision on {endpoint}: {exc}")
    if isinstance(exc, errors.RemoteEntryNotFoundError):
        return DownloadError(f"A file of {repo} is missing on {endpoint}: {exc}")
    if isinstance(exc, errors.OfflineModeIsEnabled):
        return DownloadError(OFFLINE_MESSAGE)
    if isinstance(exc, errors.HfHubHTTPError):
        return DownloadError(f"The hub at {endpoint} refused the download of {repo}: {exc}")
    if isinstance(exc, httpx2.HTTPError):
        return DownloadError(
            f"Cannot reach the Hugging Face hub at {endpoint} ({exc.__class__.__name__}: {exc}) — check the "
            "internet connection (or HF_ENDPOINT) and run the download again; it resumes where it stopped."
        )
    return DownloadError(f"Downloading {repo} failed: {exc}")


def resolve(variant: Variant, *, endpoint: str | None = None, revision: str | None = None,
            token: str | bool | None = None) -> tuple[str, list[RemoteFile]]:
    """Ask the hub which files ``variant`` needs at ``revision`` (default: the main branch).

    Returns:
        ``(commit, files)``: the commit the revision points at (downloads are pinned to it) and the files
        with their sizes and checksums.

    Raises:
        DownloadError: the hub cannot be reached or refuses.
        ModelFileError: the repository lacks the files the catalog expects.
    """
    import httpx2
    from huggingface_hub import HfApi, errors

    if variant.repo is None:
        raise ConfigurationError(f"{variant.id} is not downloaded from the hub.")
    _check_online()
    address = hub_endpoint(endpoint)
    try:
        info = HfApi(endpoint=address, token=token).model_info(variant.repo, revision=revision,
                                                                files_metadata=True)
    except (errors.HfHubHTTPError, errors.OfflineModeIsEnabled, httpx2.HTTPError) as exc:
        raise _hub_error(exc, variant.repo, address) from None
    if not info.sha:
        raise DownloadError(f"The hub at {address} did not say which commit {variant.repo} is at.")
    siblings = {sibling.rfilename: sibling for sibling in info.siblings or []}
    if variant.engine == "gguf":
        model, mmproj = resolve_gguf_files(siblings, variant.quant, variant.mmproj_quant or "F16")
        wanted = {model: "model", mmproj: "mmproj"}
    else:
        wanted = {name: "file" for name in transformers_files(siblings)}
        if not any(name.endswith(".safetensors") for name in wanted):
            raise ModelFileError(f"{variant.repo} at {info.sha[:12]} has no .safetensors weights.")
    files = []
    for name, role in wanted.items():
        sibling = siblings[name]
        size = sibling.lfs.size if sibling.lfs else sibling.size
        if size is None:
            raise DownloadError(f"The hub at {address} gave no size for {name} in {variant.repo}.")
        sha256 = sibling.lfs.sha256 if sibling.lfs else None
        if sha256 is None and not sibling.blob_id:
            raise DownloadError(f"The hub at {address} gave no checksum for {name} in {variant.repo}.")
        files.append(RemoteFile(name=name, size=size, sha256=sha256, blob_id=sibling.blob_id, role=role))
    return info.sha, files


# ---------------------------------------------------------------------------------------------------------
# Fetching one file


@dataclass
class _Progress:
    """Bytes handled (checked on disk or downloaded) over all files, reported as a fraction."""

    total: int
    callback: ProgressCallback | None
    done: int = 0
    _last_time: float = 0.0
    _last_fraction: float = -1.0

    @property
    def fraction(self) -> float:
        return min(self.done / self.total, 1.0) if self.total else 1.0

    def advance(self, count: int, message: str) -> None:
        """Count ``count`` more bytes; report every 1 % or 0.1 s, whichever comes first."""
        self.done += count
        now, fraction = time.monotonic(), self.fraction
        due = now - self._last_time >= 0.1 or fraction - self._last_fraction >= 0.01 or fraction >= 1.0
        if self.callback is not None and due:
            self._last_time, self._last_fraction = now, fraction
            self.callback(fraction, message)

    def rewind(self, count: int) -> None:
        self.done -= count

    def say(self, message: str) -> None:
        if self.callback is not None:
            self.callback(self.fraction, message)


def _size_text(count: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{int(count)} B"


def _stream(url: str, headers: dict[str, str]) -> contextlib.AbstractContextManager[Any]:
    import httpx2
    from huggingface_hub.utils import get_session

    timeout = httpx2.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
    return get_session().stream("GET", url, headers=headers, follow_redirects=True, timeout=timeout)


def _content_range_start(value: str | None) -> int | None:
    """The first byte of a ``Content-Range: bytes START-END/TOTAL`` header."""
    if not value or not value.startswith("bytes "):
        return None
    start = value[6:].split("-", 1)[0]
    return int(start) if start.isdigit() else None


class _FileFetch:
    """One file's download into its ``.part``: how much is there, and the digests of those bytes."""

    def __init__(self, remote: RemoteFile, part: Path, progress: _Progress, cancel: CancelToken) -> None:
        self.remote, self.part, self.progress, self.cancel = remote, part, progress, cancel
        self.digests = _Digests(remote)
        self.have = part.stat().st_size if part.exists() else 0
        if self.have > remote.size:
            self.restart()
        if self.have:
            what = f"Checking the partial {remote.name}"
            progress.say(what)
            _hash_file(part, self.digests, lambda n: progress.advance(n, what), cancel)

    def restart(self) -> None:
        self.part.unlink(missing_ok=True)
        self.progress.rewind(min(self.have, self.remote.size))
        self.have, self.digests = 0, _Digests(self.remote)

    def write(self, chunks: Iterable[bytes]) -> int:
        """Append ``chunks`` to the part file; returns how many bytes arrived."""
        received = 0
        size_text = _size_text(self.remote.size)
        with self.part.open("ab") as fh:
            for chunk in chunks:
                self.cancel.raise_if_cancelled()
                if self.have + len(chunk) > self.remote.size:
                    raise ModelFileError(f"{self.remote.name} is larger than the hub says ({size_text}).")
                fh.write(chunk)
                self.digests.update(chunk)
                self.have += len(chunk)
                received += len(chunk)
                self.progress.advance(
                    len(chunk), f"Downloading {self.remote.name}: {_size_text(self.have)} of {size_text}"
                )
        return received


def _fetch(url: str, fetch: _FileFetch, headers: dict[str, str], repo: str, endpoint: str) -> None:
    """Download the rest of ``fetch``'s file, resuming with Range requests and retrying after network errors
    (the retry count resets whenever bytes arrive)."""
    import httpx2
    from huggingface_hub import errors
    from huggingface_hub.utils import hf_raise_for_status

    name = fetch.remote.name
    failures = 0
    while fetch.have < fetch.remote.size:
        fetch.cancel.raise_if_cancelled()
        received = 0
        try:
            request_headers = dict(headers, Range=f"bytes={fetch.have}-") if fetch.have else headers
            with _stream(url, request_headers) as response:
                status = response.status_code
                if status not in (200, 206, 416):
                    response.read()
                    hf_raise_for_status(response)
                    raise DownloadError(f"The hub at {endpoint} answered HTTP {status} for {name}.")
                start = _content_range_start(response.headers.get("Content-Range"))
                if status != 200 and (not fetch.have or start != fetch.have):
                    if not fetch.have:
                        raise DownloadError(f"The hub at {endpoint} answered HTTP {status} for {name}.")
                    fetch.restart()  # the server cannot continue from here: ask for the whole file
                    continue
                if status == 200 and fetch.have:
                    fetch.restart()  # the server ignored the Range: take the whole file it sends
                received = fetch.write(response.iter_bytes())
        except (httpx2.TransportError, errors.HfHubHTTPError) as exc:
            code = getattr(getattr(exc, "response", None), "status_code", None) or 0
            retryable = isinstance(exc, httpx2.TransportError) or code in (408, 429) or code >= 500
            if received:
                failures = 0
            if not retryable or failures >= len(RETRY_DELAYS):
                raise _hub_error(exc, repo, endpoint) from None
            delay = RETRY_DELAYS[failures]
            fetch.progress.say(f"Downloading {name}: connection lost, resuming in {delay:g} s.")
            if fetch.cancel.wait(delay):
                raise Cancelled() from None
            failures += 1
            continue
        if fetch.have < fetch.remote.size:
            # The body ended early without an error: resume from where it stopped.
            failures = 0 if received else failures + 1
            if failures > len(RETRY_DELAYS):
                raise DownloadError(f"The hub at {endpoint} keeps cutting {name} short; try again later.")


def _hub_headers(token: str | bool | None) -> dict[str, str]:
    from huggingface_hub.utils import build_hf_headers

    headers = build_hf_headers(token=token, library_name="captioneer")
    headers["Accept-Encoding"] = "identity"
    return headers


def _file_url(repo: str, name: str, commit: str, endpoint: str) -> str:
    from huggingface_hub import hf_hub_url

    return hf_hub_url(repo, name, revision=commit, endpoint=endpoint)


# ---------------------------------------------------------------------------------------------------------
# Pull, verify


def _check_disk(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed + DISK_HEADROOM_BYTES:
        raise DownloadError(
            f"Not enough free disk space in {folder}: the download needs {_size_text(needed)} more, "
            f"{_size_text(free)} is free — free some space or move the models folder."
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
    state = _Progress(total=sum(remote.size for remote in files), callback=progress)
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
    headers = _hub_headers(token)
    for remote in pending:
        target, part = folder / remote.name, _part_path(folder, remote)
        target.parent.mkdir(parents=True, exist_ok=True)
        url = _file_url(manifest.repo, remote.name, commit, address)
        for attempt in range(CORRUPT_RETRIES + 1):
            fetch = _FileFetch(remote, part, state, cancel)
            _fetch(url, fetch, headers, manifest.repo, address)
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
    if variant.engine == "gguf":
        _check_gguf(folder, manifest)
    manifest.complete = True
    _write_manifest(folder, manifest)
    state.say(f"{variant.id} is ready")
    installed = installed_model(variant, models_dir)
    if installed is None:
        raise ModelFileError(f"The download in {folder} is incomplete after finishing; run it again.")
    return installed


def _intact_sha256(path: Path, remote: RemoteFile, state: _Progress, cancel: CancelToken) -> str | None:
    """The SHA-256 of ``path`` if it is ``remote`` intact (right size and checksum), else None."""
    if not path.is_file() or path.stat().st_size != remote.size:
        return None
    digests = _Digests(remote)
    what = f"Checking {remote.name}"
    _hash_file(path, digests, lambda n: state.advance(n, what), cancel)
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
    state = _Progress(total=manifest.size, callback=progress)
    checks = []
    for remote in manifest.files:
        path = folder / remote.name
        part = _part_path(folder, remote)
        if not path.is_file():
            if part.is_file():
                detail = f"{_size_text(part.stat().st_size)} of {_size_text(remote.size)}"
                checks.append(FileCheck(remote.name, "partial", detail))
            else:
                checks.append(FileCheck(remote.name, "missing"))
            continue
        size = path.stat().st_size
        if size != remote.size:
            checks.append(FileCheck(remote.name, "wrong-size", f"{size} bytes instead of {remote.size}"))
            continue
        digests = _Digests(remote)
        _hash_file(path, digests, lambda n, name=remote.name: state.advance(n, f"Checking {name}"), cancel)
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
