"""The `ollama` engine: Qwen3-VL served by a running Ollama, through the `ollama` Python client."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from captioneer.backends.base import (
    Backend,
    BackendInfo,
    Capabilities,
    EngineConfig,
    ProgressCallback,
    collect,
)
from captioneer.backends.cancel import CancelToken, token_or_new
from captioneer.backends.errors import (
    CaptioneerError,
    ConfigurationError,
    EngineUnavailableError,
    GenerationError,
    ModelNotFoundError,
    ResourceExhaustedError,
)
from captioneer.backends.http_util import (
    CONNECT_TIMEOUT,
    METADATA_TIMEOUT,
    RETRYABLE_STATUSES,
    AnswerTooLongError,
    EngineTimeoutError,
    ServerBusyError,
    ServerLimits,
    ServerOptions,
    StreamBrokenError,
    capped_transport,
    limited,
    relay,
    warn_if_remote,
)
from captioneer.backends.request import GenerationRequest, SamplingOptions
from captioneer.backends.server_pool import Fault, ServerPool, answer_each, serve

log = logging.getLogger(__name__)

DEFAULT_HOST = "http://127.0.0.1:11434"
DEFAULT_PORT = 11434
PROMPT_ALLOWANCE = 2048
"""Context tokens kept for the prompt, the system prompt and the answer on top of the image budget."""
MIN_CONTEXT = 4096
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


def instruct_tag_for(tag: str) -> str | None:
    """The ``-instruct`` tag to suggest for a plain Qwen3-VL size tag (``qwen3-vl:2b``), else None.

    The plain tags are the thinking models: hundreds of hidden tokens per caption.
    """
    match = re.fullmatch(r"((?:[\w.-]+/)*qwen3-vl):(\d+(?:\.\d+)?b)", tag.strip())
    return f"{match.group(1)}:{match.group(2)}-instruct" if match else None


def context_tokens(image_tokens: int, override: int | None = None) -> int:
    """``num_ctx``: the override, else room for the image budget plus prompt and answer.

    It stays the same for every request, because Ollama reloads the model when ``num_ctx`` changes.
    """
    if override is not None:
        return override
    needed = image_tokens + PROMPT_ALLOWANCE
    return max(MIN_CONTEXT, -(-needed // 1024) * 1024)


def keep_alive_value(keep_alive: str | None) -> str | float | None:
    """Ollama takes durations (``"10m"``) as strings but plain seconds (``-1``, ``300``) only as numbers."""
    if keep_alive is None or not keep_alive.strip():
        return None
    text = keep_alive.strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() else number


def ollama_options(options: SamplingOptions, num_ctx: int) -> dict[str, Any]:
    """Our sampling options in Ollama's names; ``num_predict`` always caps the answer."""
    out: dict[str, Any] = {
        "num_predict": options.max_new_tokens,
        "num_ctx": num_ctx,
        "temperature": options.temperature,
        "top_p": options.top_p,
        "top_k": options.top_k,
        "presence_penalty": options.presence_penalty,
    }
    if options.seed is not None:
        out["seed"] = options.seed
    return out


def chat_messages(request: GenerationRequest) -> list[dict[str, Any]]:
    """The system message (if any) and one user message carrying the prepared images as PNG bytes."""
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    user: dict[str, Any] = {"role": "user", "content": request.prompt}
    if request.images:
        user["images"] = [image.png_bytes for image in request.images]
    messages.append(user)
    return messages


def _not_running(host: str) -> EngineUnavailableError:
    return EngineUnavailableError(
        f"Ollama is not running at {host} — start it (open the Ollama app or run `ollama serve`), "
        "pass --host, or pick another engine."
    )


def _not_installed(host: str, tag: str) -> ModelNotFoundError:
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
        return _not_running(host)
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
                    f"Something answers at {host}, but it is not Ollama — check --host."
                )
            return _not_installed(host, tag)
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


def fault_of(exc: Exception, host: str, tag: str) -> Fault:
    """What a failed answer means: ``busy`` (HTTP 429/503), ``down`` (unreachable, hung, broken off,
    overflowing, or a server error: Ollama is skipped for a cool-down and the request tried again), or
    ``request`` (the model, the image or the options are the problem; asking again would not help)."""
    from ollama import ResponseError

    error = translate_error(exc, host, tag)
    if isinstance(error, (EngineUnavailableError, EngineTimeoutError, StreamBrokenError, AnswerTooLongError)):
        return Fault("down", error)
    if isinstance(exc, ResponseError):
        if exc.status_code in RETRYABLE_STATUSES:
            return Fault("busy", error)
        if exc.status_code >= 500 and not isinstance(error, ResourceExhaustedError):
            return Fault("down", error)
    return Fault("request", error)


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
            f"(HTTP {response.status_code} for /api/version) — check --host."
        )
    return version


def _client(host: str, read_timeout: float | None, limits: ServerLimits | None = None) -> Any:
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
    client = _client(host, METADATA_TIMEOUT)
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
    client = _client(host, METADATA_TIMEOUT)
    try:
        shown = client.show(tag)
    except Exception as exc:
        raise translate_error(exc, host, tag) from None
    finally:
        client.close()
    return None if shown.capabilities is None else list(shown.capabilities)


def _check_cloud(tag: str, allow_cloud: bool) -> None:
    if is_cloud_tag(tag) and not allow_cloud:
        raise ConfigurationError(
            f"{tag} is an Ollama cloud model: your photos would be sent to Ollama's servers. "
            "Allow cloud models (--allow-cloud) if that is what you want."
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
    _check_cloud(tag, allow_cloud)
    server_version(address)
    client = _client(address, None)
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


class OllamaBackend(Backend):
    """Qwen3-VL through a running Ollama server (``qwen3-vl:2b-instruct`` and friends).

    Configuration: ``model`` (an Ollama tag), ``image_tokens`` and ``context_tokens`` (for ``num_ctx``),
    ``allow_remote``, and the :class:`Options`.
    """

    name = "ollama"
    # "batching": a batch is answered ``parallel`` requests at a time.
    capabilities = Capabilities(
        vision=True, streaming=True, json_schema=True, batching=True, in_process=False
    )

    class Options(ServerOptions):
        """Ollama's address and model lifetime, plus the :class:`ServerOptions` (``parallel``: requests in
        flight at once; set Ollama's ``OLLAMA_NUM_PARALLEL`` to match).

        Attributes:
            host: Ollama's address; default ``$OLLAMA_HOST``, else http://127.0.0.1:11434.
            keep_alive: how long Ollama keeps the model loaded (``"10m"``, ``-1``).
            allow_cloud: permit Ollama ``*-cloud`` models (photos leave the machine).
        """

        host: str | None = None
        keep_alive: str | None = None
        allow_cloud: bool = False

    options: Options

    @classmethod
    def context_tokens(cls, image_tokens: int, override: int | None = None) -> int:
        return context_tokens(image_tokens, override)

    @classmethod
    def destinations(cls, config: EngineConfig) -> tuple[str, ...]:
        return (resolve_host(cls.read_options(config).host),)

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        self.host = resolve_host(self.options.host)
        self.tag = config.model.strip()
        self.num_ctx = context_tokens(config.image_tokens, config.context_tokens)
        self.keep_alive = keep_alive_value(self.options.keep_alive)
        self.limits = ServerLimits.from_options(self.options)
        self.pool = ServerPool(
            [self.host], parallel=self.limits.parallel, cool_down=self.limits.retry_down_after
        )
        self._version: str | None = None
        self._capabilities: list[str] = []
        self._loaded = False

    def load(self, progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> None:
        """Check the server, that the model is installed and that it can see; nothing is downloaded."""
        if self._loaded:
            return
        if not self.tag:
            raise ConfigurationError("No Ollama model chosen: pass --model, e.g. qwen3-vl:2b-instruct.")
        _check_cloud(self.tag, self.options.allow_cloud)
        warn_if_remote((self.host,), self.config.allow_remote)
        suggestion = instruct_tag_for(self.tag)
        if suggestion:
            log.warning(
                "%s thinks before answering (slow, many tokens); %s answers directly — consider pulling it.",
                self.tag,
                suggestion,
            )
        if progress is not None:
            progress(0.0, f"Connecting to Ollama at {self.host}")
        self._version = server_version(self.host)
        token_or_new(cancel).raise_if_cancelled()
        wanted = normalize_tag(self.tag)
        if wanted not in {normalize_tag(model.name) for model in installed_models(self.host)}:
            raise _not_installed(self.host, self.tag)
        capabilities = model_capabilities(self.host, self.tag)
        if capabilities is None:
            raise ConfigurationError(
                f"Ollama {self._version} at {self.host} is too old for Qwen3-VL — update Ollama "
                f"(Qwen3-VL needs {MIN_OLLAMA_FOR_QWEN3VL} or newer)."
            )
        self._capabilities = capabilities
        if "vision" not in self._capabilities:
            raise ModelWithoutVisionError(
                f"{self.tag} cannot see images (Ollama lists: "
                f"{', '.join(self._capabilities) or 'nothing'}) — choose a vision model such as "
                "qwen3-vl:2b-instruct."
            )
        self._loaded = True
        if progress is not None:
            progress(1.0, f"{self.tag} is ready in Ollama {self._version}")

    def concurrency(self) -> int:
        """``parallel``: how many requests are sent to Ollama at once."""
        return self.limits.parallel

    def generate(self, request: GenerationRequest, cancel: CancelToken | None = None) -> Iterator[str]:
        """Stream the answer. Until the first piece arrives, a busy Ollama (429/503) is asked again with
        backoff and a failed attempt (unreachable, hung, broken off) is tried once more; after that a
        failure is raised, since the pieces already handed on cannot be taken back.

        Raises:
            NoServerLeftError: Ollama failed this request twice, or stayed busy.
        """
        cancel = token_or_new(cancel)
        if not self._loaded:
            self.load(cancel=cancel)
        self._check_context(request)
        return (yield from self._serve(request, cancel, stream=True))

    def generate_batch(
        self, requests: Sequence[GenerationRequest], cancel: CancelToken | None = None
    ) -> list[str | CaptioneerError]:
        """Answer ``requests``, ``parallel`` at a time, in their order. An answer that fails part-way is asked
        again from scratch; a request that cannot be answered gets its error in its place.

        Raises:
            Cancelled: ``cancel`` was set.
        """
        cancel = token_or_new(cancel)
        if not self._loaded:
            self.load(cancel=cancel)

        def answer(request: GenerationRequest) -> str:
            self._check_context(request)
            return collect(self._serve(request, cancel, stream=False))

        return answer_each(requests, answer, self.limits.parallel, "captioneer-ollama")

    def _serve(self, request: GenerationRequest, cancel: CancelToken, *, stream: bool) -> Iterator[str]:
        body = self._chat_arguments(request)
        return serve(
            self.pool,
            cancel,
            lambda server: self._stream(body, request.options.max_new_tokens, cancel),
            lambda exc, server: fault_of(exc, self.host, self.tag),
            stream=stream,
        )

    def _chat_arguments(self, request: GenerationRequest) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "model": self.tag,
            "messages": chat_messages(request),
            "stream": True,
            "think": False,
            "options": ollama_options(request.options, self.num_ctx),
        }
        if request.json_schema is not None:
            arguments["format"] = request.json_schema
        if self.keep_alive is not None:
            arguments["keep_alive"] = self.keep_alive
        return arguments

    def _stream(
        self, arguments: Mapping[str, Any], max_new_tokens: int, cancel: CancelToken
    ) -> Iterator[str]:
        limits = self.limits
        client = _client(self.host, limits.socket_read_timeout, limits)
        done = False
        done_reason: str | None = None
        try:
            parts: Iterable[Any] = client.chat(**arguments)
            for part in limited(
                parts,
                who=f"Ollama at {self.host}",
                limits=limits,
                max_new_tokens=max_new_tokens,
                cancel=cancel,
                abandon=client.close,
                deadline_advice=" — try a smaller model or a lower image budget",
            ):
                if part.message.content:
                    yield part.message.content
                if part.done:
                    done = True
                    done_reason = part.done_reason
        finally:
            client.close()
        if not done:
            raise StreamBrokenError(
                f"Ollama at {self.host} ended the answer without finishing it (did Ollama stop or crash?)."
            )
        return done_reason

    def _check_context(self, request: GenerationRequest) -> None:
        needed = request.image_tokens + request.options.max_new_tokens + len(request.prompt) // 3
        if needed > self.num_ctx:
            raise ResourceExhaustedError(
                f"This request needs about {needed} tokens of context but Ollama is set up for "
                f"{self.num_ctx}; lower the image budget or raise --context."
            )

    def unload(self) -> None:
        """Forget the session; Ollama itself unloads the model after ``keep_alive``."""
        self._loaded = False

    def info(self) -> BackendInfo:
        return BackendInfo(
            engine=self.name,
            model=self.tag,
            loaded=self._loaded,
            details={
                "host": self.host,
                "ollama_version": self._version,
                "capabilities": self._capabilities,
                "num_ctx": self.num_ctx,
            },
        )
