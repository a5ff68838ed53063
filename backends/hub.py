"""The Hugging Face hub side of a model download: which files to fetch, and one file fetched resumably.

:func:`resolve` asks which files a catalog variant needs, with their sizes and checksums; :func:`fetch_file`
downloads one into its ``.part`` (resumed with Range requests, retried after network errors) while its digests
are computed.

The hub is asked through ``huggingface_hub`` (its session honours ``HF_HUB_OFFLINE``, proxies and tokens);
``HF_ENDPOINT`` moves it (the tests point it at a loopback stand-in).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from captioneer.backends.base import ProgressCallback
from captioneer.backends.cancel import CancelToken
from captioneer.backends.catalog import Variant, resolve_gguf_files, transformers_files
from captioneer.backends.errors import Cancelled, CaptioneerError, ConfigurationError, ModelFileError

CHUNK_BYTES = 1024 * 1024

RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Pauses between attempts after a network error or a busy hub; the count resets whenever bytes arrive."""

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



# ---------------------------------------------------------------------------------------------------------
# Hashing


class Digests:
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


def hash_file(path: Path, digests: Digests, advance: Callable[[int], None], cancel: CancelToken) -> None:
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
    if variant.entry.download == "gguf":
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
class Progress:
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


def size_text(count: float) -> str:
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


class FileFetch:
    """One file's download into its ``.part``: how much is there, and the digests of those bytes."""

    def __init__(self, remote: RemoteFile, part: Path, progress: Progress, cancel: CancelToken) -> None:
        self.remote, self.part, self.progress, self.cancel = remote, part, progress, cancel
        self.digests = Digests(remote)
        self.have = part.stat().st_size if part.exists() else 0
        if self.have > remote.size:
            self.restart()
        if self.have:
            what = f"Checking the partial {remote.name}"
            progress.say(what)
            hash_file(part, self.digests, lambda n: progress.advance(n, what), cancel)

    def restart(self) -> None:
        self.part.unlink(missing_ok=True)
        self.progress.rewind(min(self.have, self.remote.size))
        self.have, self.digests = 0, Digests(self.remote)

    def write(self, chunks: Iterable[bytes]) -> int:
        """Append ``chunks`` to the part file; returns how many bytes arrived."""
        received = 0
        total = size_text(self.remote.size)
        with self.part.open("ab") as fh:
            for chunk in chunks:
                self.cancel.raise_if_cancelled()
                if self.have + len(chunk) > self.remote.size:
                    raise ModelFileError(f"{self.remote.name} is larger than the hub says ({total}).")
                fh.write(chunk)
                self.digests.update(chunk)
                self.have += len(chunk)
                received += len(chunk)
                self.progress.advance(
                    len(chunk), f"Downloading {self.remote.name}: {size_text(self.have)} of {total}"
                )
        return received


def fetch_file(url: str, fetch: FileFetch, headers: dict[str, str], repo: str, endpoint: str) -> None:
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


def hub_headers(token: str | bool | None) -> dict[str, str]:
    from huggingface_hub.utils import build_hf_headers

    headers = build_hf_headers(token=token, library_name="captioneer")
    headers["Accept-Encoding"] = "identity"
    return headers


def file_url(repo: str, name: str, commit: str, endpoint: str) -> str:
    from huggingface_hub import hf_hub_url

    return hf_hub_url(repo, name, revision=commit, endpoint=endpoint)
