"""The `ollama` engine: Qwen3-VL served by a running Ollama, through the `ollama` Python client."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
    ResourceExhaustedError,
    setting,
)
from captioneer.backends.http_util import (
    RETRYABLE_STATUSES,
    AnswerTooLongError,
    EngineTimeoutError,
    ServerLimits,
    ServerOptions,
    StreamBrokenError,
    limited,
    warn_if_remote,
)
from captioneer.backends.ollama_server import (
    MIN_OLLAMA_FOR_QWEN3VL,
    ModelWithoutVisionError,
    check_cloud,
    installed_models,
    model_capabilities,
    normalize_tag,
    not_installed,
    open_client,
    pull_model,  # noqa: F401 - re-exported: the model commands and the wizard import it from the engine
    resolve_host,
    server_version,
    translate_error,
)
from captioneer.backends.request import GenerationRequest, SamplingOptions
from captioneer.backends.server_pool import Fault, ServerPool, answer_each, serve

log = logging.getLogger(__name__)

PROMPT_ALLOWANCE = 2048
"""Context tokens kept for the prompt, the system prompt and the answer on top of the image budget."""
MIN_CONTEXT = 4096


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
            raise ConfigurationError(
                "No Ollama model chosen: " + setting("model", "pass --model", "set the Model")
                + ", e.g. qwen3-vl:2b-instruct."
            )
        check_cloud(self.tag, self.options.allow_cloud)
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
            raise not_installed(self.host, self.tag)
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
        client = open_client(self.host, limits.socket_read_timeout, limits)
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
                f"{self.num_ctx}; lower the image budget"
                + setting("context", " or raise --context.", " (" + setting("image_tokens") + ").")
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
