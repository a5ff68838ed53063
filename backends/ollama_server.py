"""Talking to an Ollama server outside of answering: its address, model tags, the client, the one place its
failures become messages for people, and its model store (version, installed models, capabilities, pulls)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from captioneer.backends.base import ProgressCallback
from captioneer.backends.cancel import CancelToken, token_or_new
from captioneer.backends.errors import (
    CaptioneerError,
    ConfigurationError,
    EngineUnavailableError,
    GenerationError,
    ModelNotFoundError,
    ResourceExhaustedError,
    setting,
)
from captioneer.backends.http_util import (
    CONNECT_TIMEOUT,
    METADATA_TIMEOUT,
    RETRYABLE_STATUSES,
    EngineTimeoutError,
    ServerBusyError,
    ServerLimits,
    StreamBrokenError,
    capped_transport,
    relay,
)

DEFAULT_HOST = "http://127.0.0.1:11434"
DEFAULT_PORT = 11434
MIN_OLLAMA_FOR_QWEN3VL = "0.12.7"


class ModelWithoutVisionError(ConfigurationError):
    """The model exists but cannot see images."""


def resolve_host(host: str | None) -> str:
    """The Ollama address to use: the setting, else ``$OLLAMA_HOST``, else the default.

    A bare ``host`` or ``host:port`` gets ``http://``; a bare host gets Ollama's port 11434.
    """
    raw = (host or os.environ.get("OLLAMA_HOST") or "").strip().rstrip("/")
    if not raw:
        return DEFAULT_HOST
    if "://" in raw:
        return raw
    hostport, slash, path = raw.partition("/")
    if hostport.startswith(":"):
        hostport = "127.0.0.1" + hostport
    has_port = re.search(r"(\]|^[^:\[]*):\d+$", hostport) is not None
    if not has_port:
        hostport = f"{hostport}:{DEFAULT_PORT}"
    return f"http://{hostport}{slash}{path}"


def normalize_tag(tag: str) -> str:
    """Ollama's full name for a tag: ``qwen3-vl`` means ``qwen3-vl:latest``."""
    tag = tag.strip()
    return tag if ":" in tag.rsplit("/", 1)[-1] else f"{tag}:latest"


def is_cloud_tag(tag: str) -> bool:
    """Whether ``tag`` is an Ollama cloud model (``…:235b-cloud``), which runs on Ollama's servers."""
    return normalize_tag(tag).rsplit(":", 1)[1].endswith("cloud")


def not_running(host: str) -> EngineUnavailableError:
    return EngineUnavailableError(
        f"Ollama is not running at {host} — start it (open the Ollama app or run `ollama serve`), "
        + setting("host", "pass --host", "check the Ollama address in Settings") + ", or pick another engine."
    )


def not_installed(host: str, tag: str) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"The model {tag} is not installed in Ollama at {host} — pull it with "
        f"`captioneer models pull {tag}` (or `ollama pull {tag}`)."
    )


def translate_error(exc: Exception, host: str, tag: str) -> CaptioneerError:
    """The one choke point that turns client, HTTP and in-stream failures into messages for people.

    ``tag`` is empty for requests that are not about a model. Anything that is not a network, HTTP or
    protocol failure is a bug and is re-raised as it is.
    """
    import httpx
    from ollama import ResponseError

    if isinstance(exc, CaptioneerError):
        return exc
    if isinstance(exc, httpx.ConnectTimeout):
        return EngineUnavailableError(
            f"Ollama at {host} did not accept a connection within {CONNECT_TIMEOUT:g} s — "
            "check the address and the network."
        )
    if isinstance(exc, (httpx.ConnectError, ConnectionError)):
        return not_running(host)
    if isinstance(exc, httpx.TimeoutException):
        return EngineTimeoutError(f"Ollama at {host} stopped answering (timed out) — it may be overloaded.")
    if isinstance(exc, httpx.TransportError):
        return StreamBrokenError(
            f"The connection to Ollama at {host} broke while it was answering ({exc.__class__.__name__}); "
            "did Ollama stop or crash?"
        )
    if isinstance(exc, ResponseError):
        message, status = str(exc.error).strip(), exc.status_code
        lowered = message.lower()
        if status == -1:
            kind = ResourceExhaustedError if "memory" in lowered else GenerationError
            return kind(f"Ollama failed while answering with {tag}: {message}")
        if status == 404:
            if not tag:  # a model-independent endpoint is missing: this is not Ollama's API
                return EngineUnavailableError(
                    f"Something answers at {host}, but it is not Ollama — check "
                    + setting("host", "--host.", "the Ollama address in Settings.")
                )
            return not_installed(host, tag)
        if status == 400 and ("image" in lowered or "vision" in lowered):
            return ModelWithoutVisionError(
                f"{tag} cannot see images ({message}) — choose a vision model such as qwen3-vl:2b-instruct."
            )
        if "memory" in lowered or ("context" in lowered and "exceed" in lowered):
            return ResourceExhaustedError(f"Ollama ran out of resources with {tag}: {message}")
        if status in RETRYABLE_STATUSES:
            return ServerBusyError(f"Ollama at {host} is busy (HTTP {status}: {message}).")
        return GenerationError(f"Ollama at {host} refused the request (HTTP {status}): {message}")
    if isinstance(exc, ValueError):  # a line that is not JSON, or JSON of the wrong shape
        return GenerationError(f"Ollama at {host} sent an answer Captioneer cannot read: {exc}")
    raise exc


def server_version(host: str) -> str:
    """Ask Ollama at ``host`` for its version: the quick health check.

    Raises:
        EngineUnavailableError: nothing answers there, or what answers is not Ollama.
    """
    import httpx

    try:
        timeout = httpx.Timeout(METADATA_TIMEOUT, connect=CONNECT_TIMEOUT)
        response = httpx.get(f"{host}/api/version", timeout=timeout)
    except httpx.HTTPError as exc:
        raise translate_error(exc, host, "") from None
    try:
        data = response.json() if response.status_code == 200 else None
    except ValueError:
        data = None
    version = data.get("version") if isinstance(data, dict) else None
    if not isinstance(version, str):
        raise EngineUnavailableError(
            f"Something answers at {host}, but it is not Ollama "
            f"(HTTP {response.status_code} for /api/version) — check "
            + setting("host", "--host.", "the Ollama address in Settings.")
        )
    return version


def open_client(host: str, read_timeout: float | None, limits: ServerLimits | None = None) -> Any:
    """An Ollama client; with ``limits``, their connect timeout and answer size cap apply."""
    import httpx
    import ollama

    if limits is None:
        return ollama.Client(host=host, timeout=httpx.Timeout(read_timeout, connect=CONNECT_TIMEOUT))
    return ollama.Client(
        host=host,
        timeout=httpx.Timeout(read_timeout, connect=limits.connect_timeout),
        transport=capped_transport(limits.max_answer_bytes, host),
    )


@dataclass
class InstalledModel:
    """A model in Ollama's local store, as /api/tags lists it."""

    name: str
    size: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


def installed_models(host: str) -> list[InstalledModel]:
    """The models Ollama at ``host`` has pulled.

    Raises:
        EngineUnavailableError: Ollama is not running there.
    """
    client = open_client(host, METADATA_TIMEOUT)
    try:
        listing = client.list()
    except Exception as exc:
        raise translate_error(exc, host, "") from None
    finally:
        client.close()
    return [
        InstalledModel(
            name=entry.model or "",
            size=int(entry.size) if entry.size is not None else None,
            details=entry.details.model_dump(exclude_none=True) if entry.details else {},
        )
        for entry in listing.models
    ]


def model_capabilities(host: str, tag: str) -> list[str] | None:
    """What Ollama says ``tag`` can do (``completion``, ``vision``, ``thinking``, ``tools``…); None from an
    Ollama too old to say (before 0.6.4)."""
    client = open_client(host, METADATA_TIMEOUT)
    try:
        shown = client.show(tag)
    except Exception as exc:
        raise translate_error(exc, host, tag) from None
    finally:
        client.close()
    return None if shown.capabilities is None else list(shown.capabilities)


def check_cloud(tag: str, allow_cloud: bool) -> None:
    if is_cloud_tag(tag) and not allow_cloud:
        raise ConfigurationError(
            f"{tag} is an Ollama cloud model: your photos would be sent to Ollama's servers. "
            + setting(
                "allow_cloud",
                "Allow cloud models (--allow-cloud) if that is what you want.",
                "Choose a model that runs on this computer in Settings (its tag does not end in “cloud”).",
            )
        )


@dataclass
class PullProgress:
    """Aggregated progress of an ``ollama pull`` over all its layers (blobs)."""

    layers: dict[str, tuple[int, int]] = field(default_factory=dict)
    status: str = ""

    def update(self, status: str, digest: str | None, completed: int | None, total: int | None) -> None:
        self.status = status
        if digest and total:
            self.layers[digest] = (min(completed or 0, total), total)

    @property
    def completed(self) -> int:
        return sum(done for done, _ in self.layers.values())

    @property
    def total(self) -> int:
        return sum(total for _, total in self.layers.values())

    @property
    def fraction(self) -> float:
        return self.completed / self.total if self.total else 0.0

    def message(self, tag: str) -> str:
        if self.total:
            return f"Pulling {tag}: {_size(self.completed)} of {_size(self.total)}"
        return f"Pulling {tag}: {self.status}"


def _size(count: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"


def pull_model(
    host: str | None,
    tag: str,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    *,
    allow_cloud: bool = False,
) -> None:
    """Pull ``tag`` into Ollama at ``host`` (None: the setting/``$OLLAMA_HOST``/default), reporting progress.

    Only call this on the user's explicit request: it downloads gigabytes.

    Args:
        host: Ollama's address.
        tag: e.g. ``qwen3-vl:2b-instruct``.
        progress: called with the fraction of bytes over all layers and a short message.
        cancel: stops the pull; Ollama keeps the finished layers for the next attempt.
        allow_cloud: permit ``*-cloud`` tags.

    Raises:
        EngineUnavailableError: Ollama is not running.
        ModelNotFoundError: Ollama's library has no such tag.
        Cancelled: ``cancel`` was set.
    """
    from ollama import ResponseError

    address = resolve_host(host)
    cancel = token_or_new(cancel)
    check_cloud(tag, allow_cloud)
    server_version(address)
    client = open_client(address, None)
    state = PullProgress()
    finished = False
    try:
        for part in relay(
            client.pull(tag, stream=True),
            cancel=cancel,
            abandon=client.close,
        ):
            state.update(part.status or "", part.digest, part.completed, part.total)
            finished = finished or part.status == "success"
            if progress is not None:
                progress(1.0 if finished else state.fraction, state.message(tag))
    except ResponseError as exc:
        if "file does not exist" in str(exc.error) or "not found" in str(exc.error):
            raise ModelNotFoundError(
                f"Ollama's library has no model called {tag} ({exc.error}) — check the name."
            ) from None
        raise translate_error(exc, address, tag) from None
    except Exception as exc:
        raise translate_error(exc, address, tag) from None
    finally:
        client.close()
    if not finished:
        raise GenerationError(
            f"Ollama stopped pulling {tag} before it finished ({state.status or 'no status'})."
        )
