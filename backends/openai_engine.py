"""The `openai` engine: OpenAI-compatible servers (llama-server, LM Studio, vLLM, SGLang), one or several."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from backends.base import Backend, BackendInfo, Capabilities, EngineConfig, ProgressCallback
from backends.cancel import CancelToken, token_or_new
from backends.errors import (
    CaptioneerError,
    ConfigurationError,
    EngineUnavailableError,
    GenerationError,
    ModelNotFoundError,
    ResourceExhaustedError,
)
from backends.http_util import (
    CONNECT_TIMEOUT,
    METADATA_TIMEOUT,
    RETRYABLE_STATUSES,
    EngineTimeoutError,
    ServerBusyError,
    backoff,
    positive_seconds,
    relay,
    warn_if_remote,
)
from backends.request import GenerationRequest

log = logging.getLogger(__name__)

DOWN_SECONDS = 30.0
"""How long a server that failed to answer sits out of the rotation before it is tried again."""

RESPONSE_FORMATS = ("json_schema", "json_object", "none")
"""Ways to ask for schema-constrained JSON, best first: OpenAI's ``json_schema``; ``json_object`` with a
``schema`` (llama-cpp-python's server and others); none (the answer is still validated by the caller)."""

NO_KEY = "no-key"
"""Sent when no API key is configured: the client library wants one, local servers ignore it."""

MIN_IMAGE_TOKENS = 64
"""Qwen3-VL's image processor (vLLM, SGLang) enlarges any image under 65,536 pixels, i.e. 64 visual tokens:
images are prepared at least this big, and smaller budgets are refused, so the counted tokens are the
processed ones."""

PROMPT_ALLOWANCE = 1300
"""Context a request needs besides its image tokens: chat template, task prompt, schema and the answer."""

NO_THINKING = {"enable_thinking": False}
"""The chat-template switch that turns thinking off (Qwen3 templates); vLLM, SGLang and llama-server
(``--jinja``) pass ``chat_template_kwargs`` to the template, others ignore it."""


def normalize_base_url(url: str) -> str:
    """``host:port`` or ``http://host:port`` become ``http://host:port/v1``; a given path is kept."""
    text = url.strip().rstrip("/")
    if "://" not in text:
        text = f"http://{text}"
    if urlsplit(text).path in ("", "/"):
        text = f"{text}/v1"
    return text


def response_format(schema: dict[str, Any], style: str) -> dict[str, Any] | None:
    """The ``response_format`` for ``schema`` in one of :data:`RESPONSE_FORMATS`."""
    if style == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}
    if style == "json_object":
        return {"type": "json_object", "schema": schema}
    return None


def processor_limits(request: GenerationRequest) -> dict[str, int] | None:
    """vLLM's per-request ``mm_processor_kwargs`` that keep prepared images exactly as they are: the pixel
    range is the images' own areas, so a server started with other limits neither enlarges nor shrinks them
    (sides are multiples of 32 already)."""
    if not request.images:
        return None
    areas = [image.width * image.height for image in request.images]
    return {"min_pixels": min(areas), "max_pixels": max(areas)}


def completion_arguments(
    model: str, request: GenerationRequest, style: str, limits: bool = True
) -> dict[str, Any]:
    """Keyword arguments for ``chat.completions.create``: streamed with usage, capped, thinking off, images
    kept at their size (``limits``: for servers that take per-request processor limits), with the schema
    if any."""
    options = request.options
    # Not in OpenAI's API: vLLM, SGLang, llama-server and LM Studio read what they know and skip the rest.
    extra_body: dict[str, Any] = {"top_k": options.top_k, "chat_template_kwargs": NO_THINKING}
    pixels = processor_limits(request) if limits else None
    if pixels is not None:
        extra_body["mm_processor_kwargs"] = pixels
    arguments: dict[str, Any] = {
        "model": model,
        "messages": request.openai_messages(),
        "stream": True,
        # The last chunk then carries the token counts that show a server trimming max_tokens.
        "stream_options": {"include_usage": True},
        "max_tokens": options.max_new_tokens,
        "temperature": options.temperature,
        "top_p": options.top_p,
        "presence_penalty": options.presence_penalty,
        "extra_body": extra_body,
    }
    if options.seed is not None:
        arguments["seed"] = options.seed
    if request.json_schema is not None:
        fmt = response_format(request.json_schema, style)
        if fmt is not None:
            arguments["response_format"] = fmt
    return arguments


def check_image_budget(image_tokens: int) -> None:
    """Refuse a pixel budget below what the server's image processor takes without enlarging."""
    if image_tokens < MIN_IMAGE_TOKENS:
        raise ConfigurationError(
            f"An image budget of {image_tokens} tokens is below the {MIN_IMAGE_TOKENS} tokens (65,536 "
            "pixels) that Qwen3-VL's image processor takes on an OpenAI-compatible server, which would "
            f"enlarge every photo to that size — pass --image-tokens {MIN_IMAGE_TOKENS} or more."
        )


def served_context(entry: Any) -> int | None:
    """The context length a ``/v1/models`` entry declares (vLLM and SGLang: ``max_model_len``), if any."""
    extra = getattr(entry, "model_extra", None) or {}
    value = extra.get("max_model_len")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def context_advice(url: str, model: str, max_model_len: int | None, image_tokens: int) -> str | None:
    """A warning when a server's context is too small for a photo at ``image_tokens`` with its prompt and
    answer; None when it is big enough or unknown."""
    need = image_tokens + PROMPT_ALLOWANCE
    if max_model_len is None or max_model_len >= need:
        return None
    return (
        f"{url} serves {model} with a {max_model_len}-token context, but a photo at {image_tokens} image "
        f"tokens with its prompt and answer needs about {need} — restart the server with --max-model-len "
        f"{need} or more, or lower --image-tokens."
    )


def trimmed_answer(
    url: str, asked: int, finish_reason: str | None, usage: Any, max_model_len: int | None
) -> str | None:
    """The message for an answer the server cut off short of ``asked`` tokens because its context had no
    more room (vLLM lowers ``max_tokens`` to what the prompt leaves, without saying so); None otherwise."""
    if finish_reason != "length" or usage is None:
        return None
    prompt, completion = usage.prompt_tokens, usage.completion_tokens
    if not isinstance(prompt, int) or not isinstance(completion, int) or completion >= asked:
        return None
    context = f"its {max_model_len}-token context" if max_model_len else "its context"
    return (
        f"The server at {url} cut the answer off at {completion} of the {asked} tokens asked for: {context} "
        f"had no more room after the {prompt}-token prompt — restart it with --max-model-len "
        f"{prompt + asked} or more."
    )


def shows_thinking(reasoning_seen: bool, answer: str) -> bool:
    """Whether a streamed answer came from a model that thought first: reasoning fields in the deltas
    (vLLM/SGLang reasoning parsers, llama-server) or think tags left in the text."""
    return reasoning_seen or answer.lstrip().startswith("<think>") or "</think>" in answer


def thinking_advice(url: str, model: str) -> str:
    return (
        f"The server at {url} runs {model} as a thinking model: it thinks before every answer although "
        "Captioneer asked it not to (chat_template_kwargs enable_thinking=false), which costs time and "
        "answer tokens — serve a Qwen3-VL Instruct model (or start llama-server with --reasoning-budget 0)."
    )


@dataclass
class Server:
    """One OpenAI-compatible server in the rotation."""

    url: str
    down_until: float = 0.0
    last_error: str = ""
    excluded: str | None = None
    format_style: int = 0
    models: tuple[str, ...] = ()
    max_model_len: int | None = None
    warned: set[str] = field(default_factory=set)
    send_limits: bool = True

    @property
    def style(self) -> str:
        return RESPONSE_FORMATS[self.format_style]


class ServerPool:
    """Round robin over servers. A server that fails to answer sits out ``down_seconds``, then is tried
    again; when every server is out, the one out longest is tried rather than failing without trying."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        down_seconds: float = DOWN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ConfigurationError(
                "No OpenAI-compatible server given: pass --base-url, e.g. http://127.0.0.1:8080/v1."
            )
        self.servers = [Server(url) for url in dict.fromkeys(urls)]
        self.down_seconds = down_seconds
        self._clock = clock
        self._next = 0
        self._lock = threading.Lock()

    def pick(self) -> Server:
        """The next server to send a request to."""
        with self._lock:
            now = self._clock()
            count = len(self.servers)
            for step in range(count):
                index = (self._next + step) % count
                server = self.servers[index]
                if server.excluded is None and server.down_until <= now:
                    self._next = (index + 1) % count
                    return server
            candidates = [server for server in self.servers if server.excluded is None]
            if not candidates:
                raise ConfigurationError("None of the servers serves the chosen model.")
            return min(candidates, key=lambda server: server.down_until)

    def mark_down(self, server: Server, reason: str) -> None:
        with self._lock:
            server.down_until = self._clock() + self.down_seconds
            server.last_error = reason

    def mark_up(self, server: Server) -> None:
        with self._lock:
            server.down_until = 0.0
            server.last_error = ""

    def is_down(self, server: Server) -> bool:
        return server.down_until > self._clock()

    def in_rotation(self) -> list[Server]:
        return [server for server in self.servers if server.excluded is None]


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"]
        if isinstance(inner, str):
            return inner
    return str(getattr(exc, "message", "") or exc)


def classify(exc: Exception) -> str:
    """What to do about a failure before anything was streamed: ``down`` (take the server out for a while
    and try another), ``busy`` (back off and retry), ``format`` (retry with a simpler response_format),
    ``limits`` (retry without per-request image limits),
    ``missing`` (the server lacks the model: leave it out if others remain) or ``fail``."""
    import openai

    if isinstance(exc, openai.APIConnectionError):
        return "down"
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code in RETRYABLE_STATUSES:
            return "busy"
        # vLLM refuses per-request processor limits unless started with --trust-request-mm-kwargs.
        if exc.status_code in (400, 422) and "mm_processor_kwargs" in _message(exc):
            return "limits"
        # llama-cpp-python's server answers an unknown response_format with 500, others with 400/422.
        if exc.status_code in (400, 422, 500) and "response_format" in _message(exc):
            return "format"
        if exc.status_code == 404:
            return "missing"
    return "fail"


def translate_error(exc: Exception, url: str, model: str) -> CaptioneerError:
    """The one choke point that turns client, HTTP and in-stream failures into messages for people."""
    import openai

    if isinstance(exc, CaptioneerError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        return EngineUnavailableError(
            f"The server at {url} did not answer in time — check that it is running and not overloaded."
        )
    if isinstance(exc, openai.APIConnectionError):
        return EngineUnavailableError(
            f"Nothing answers at {url} — start the server (llama-server, LM Studio, vLLM…) "
            "or check --base-url."
        )
    message = _message(exc)
    lowered = message.lower()
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status in (401, 403):
            return ConfigurationError(
                f"The server at {url} refused the API key (HTTP {status}: {message}) — "
                "pass the right --api-key."
            )
        if status == 404:
            return ModelNotFoundError(
                f"The server at {url} has no model {model} (HTTP 404: {message}) — check --model, and that "
                "the base URL ends with /v1."
            )
        if "memory" in lowered or "context" in lowered or "too long" in lowered:
            return ResourceExhaustedError(f"The server at {url} cannot fit this request: {message}")
        if status in RETRYABLE_STATUSES:
            return ServerBusyError(
                f"The server at {url} stayed busy (HTTP {status}: {message}); try again later."
            )
        return GenerationError(f"The server at {url} refused the request (HTTP {status}): {message}")
    if isinstance(exc, openai.APIError):  # an error event inside a 200 stream
        kind = ResourceExhaustedError if "memory" in lowered else GenerationError
        return kind(f"The server at {url} failed while answering with {model}: {message}")
    if isinstance(exc, ValueError):
        return GenerationError(f"The server at {url} sent an answer Captioneer cannot read: {exc}")
    raise exc


class OpenAIBackend(Backend):
    """Qwen3-VL behind one or several OpenAI-compatible servers.

    Configuration: ``base_urls`` (one or more; several share the work round robin), ``api_key``,
    ``model`` (the server's model name), ``allow_remote``; ``extra["request_timeout"]`` (seconds for one
    whole answer, default none), ``extra["retry_down_after"]`` (seconds a failed server sits out) and
    ``extra["parallel"]`` (requests each server answers at once in a batch, default 1).
    """

    name = "openai"
    # "batching": a batch is spread over the servers in rotation, answered concurrently.
    capabilities = Capabilities(
        vision=True,
        streaming=True,
        json_schema=True,
        batching=True,
        in_process=False,
        min_image_tokens=MIN_IMAGE_TOKENS,
    )

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        self.model = config.model.strip()
        down = positive_seconds(config.extra, "retry_down_after")
        self.pool = ServerPool(
            [normalize_base_url(url) for url in config.base_urls],
            down_seconds=DOWN_SECONDS if down is None else down,
        )
        self.request_timeout = positive_seconds(config.extra, "request_timeout")
        self.parallel = config.extra.get("parallel", 1)
        if isinstance(self.parallel, bool) or not isinstance(self.parallel, int) or self.parallel < 1:
            raise ConfigurationError(
                f"Engine option parallel must be a whole number ≥ 1, got {self.parallel!r}."
            )
        check_image_budget(config.image_tokens)
        self._loaded = False

    def _client(self, url: str, read_timeout: float | None) -> Any:
        import httpx
        import openai

        return openai.OpenAI(
            base_url=url,
            api_key=self.config.api_key or NO_KEY,
            timeout=httpx.Timeout(read_timeout, connect=CONNECT_TIMEOUT),
            max_retries=0,
        )

    def _list_models(self, server: Server) -> list[Any]:
        import openai

        client = self._client(server.url, METADATA_TIMEOUT)
        try:
            return list(client.models.list())
        except openai.NotFoundError:
            raise EngineUnavailableError(
                f"Something answers at {server.url}, but not with the OpenAI API (HTTP 404 for /models) — "
                "the base URL usually ends with /v1."
            ) from None
        except Exception as exc:
            raise translate_error(exc, server.url, self.model) from None
        finally:
            client.close()

    def load(self, progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> None:
        """Ask every server for its models (``/v1/models``); servers that do not answer sit out for now,
        servers without the model leave the rotation. Fails when no server can serve the model."""
        if self._loaded:
            return
        if not self.model:
            raise ConfigurationError("No model chosen: pass --model with a name the server lists.")
        if "thinking" in self.model.lower():
            log.warning(
                "%s is a Thinking model: Qwen3-VL Thinking models think before every answer whatever the "
                "request asks, which costs time and answer tokens — serve the Instruct model of that size.",
                self.model,
            )
        cancel = token_or_new(cancel)
        warn_if_remote(self.config)
        servers = self.pool.servers
        for index, server in enumerate(servers):
            cancel.raise_if_cancelled()
            if progress is not None:
                progress(index / len(servers), f"Checking {server.url}")
            try:
                entries = self._list_models(server)
            except EngineUnavailableError as exc:
                self.pool.mark_down(server, str(exc))
                if len(servers) > 1:
                    log.warning("%s — continuing without it for now.", exc)
                continue
            server.models = tuple(entry.id for entry in entries)
            served = [served_context(entry) for entry in entries if entry.id == self.model]
            server.max_model_len = served[0] if served else None
            advice = context_advice(server.url, self.model, server.max_model_len, self.config.image_tokens)
            if advice is not None:
                log.warning(advice)
            if server.models and self.model not in server.models:
                server.excluded = f"does not serve {self.model}"
                if len(servers) > 1:
                    log.warning("%s does not serve %s; leaving it out.", server.url, self.model)
        answering = [server for server in servers if not self.pool.is_down(server)]
        if not answering:
            raise self._all_down()
        if not self.pool.in_rotation():
            offered = sorted({name for server in answering for name in server.models})
            where = ", ".join(server.url for server in answering)
            raise ModelNotFoundError(
                f"{where} does not serve a model called {self.model}; it serves: {', '.join(offered)} — "
                "pass one of those with --model."
            )
        self._loaded = True
        if progress is not None:
            progress(1.0, f"{self.model} is ready on {len(self.pool.in_rotation())} server(s)")

    def _all_down(self) -> EngineUnavailableError:
        servers = self.pool.servers
        if len(servers) == 1:
            return EngineUnavailableError(servers[0].last_error or f"Nothing answers at {servers[0].url}.")
        return EngineUnavailableError(
            f"None of the servers answers ({', '.join(server.url for server in servers)}) — start them or "
            "check --base-url."
        )

    def generate(self, request: GenerationRequest, cancel: CancelToken | None = None) -> Iterator[str]:
        """Stream the answer from the next server in the rotation. Before anything is streamed, a server
        that does not answer is taken out and the next one tried, a busy one is retried with backoff, and
        a server that rejects ``response_format`` is asked again with a simpler one."""
        cancel = token_or_new(cancel)
        if not self._loaded:
            self.load(cancel=cancel)
        busy_attempt = 0
        failed: set[str] = set()
        while True:
            server = self.pool.pick()
            style = server.format_style
            yielded = False
            try:
                for text in self._stream(server, request, cancel):
                    yielded = True
                    yield text
                self.pool.mark_up(server)
                return
            except CaptioneerError:
                raise
            except Exception as exc:
                if yielded:
                    raise translate_error(exc, server.url, self.model) from None
                action = classify(exc)
                if action == "limits" and server.send_limits:
                    server.send_limits = False
                    log.info("%s takes no per-request image limits; images go as they are", server.url)
                    continue
                if action == "format" and style + 1 < len(RESPONSE_FORMATS):
                    server.format_style = max(server.format_style, style + 1)
                    log.info("%s rejects this response_format; using %s", server.url, server.style)
                    continue
                if action == "missing" and len(self.pool.in_rotation()) > 1:
                    server.excluded = f"does not serve {self.model}"
                    log.warning("%s does not serve %s; leaving it out.", server.url, self.model)
                    continue
                if action == "down":
                    error = translate_error(exc, server.url, self.model)
                    self.pool.mark_down(server, str(error))
                    failed.add(server.url)
                    if len(failed) < len(self.pool.in_rotation()):
                        sits_out = self.pool.down_seconds
                        log.warning("%s — trying another server; this one sits out %g s.", error, sits_out)
                        continue
                    raise (error if len(self.pool.servers) == 1 else self._all_down()) from None
                if action == "busy" and backoff(busy_attempt, cancel):
                    busy_attempt += 1
                    continue
                raise translate_error(exc, server.url, self.model) from None

    def generate_batch(
        self, requests: Sequence[GenerationRequest], cancel: CancelToken | None = None
    ) -> list[str]:
        """Answer ``requests`` concurrently, ``parallel`` at a time per server in rotation; answers come
        back in the order of ``requests``. The first failure (in that order) is raised once all are done."""
        cancel = token_or_new(cancel)
        if not self._loaded:
            self.load(cancel=cancel)
        workers = max(1, min(len(requests), len(self.pool.in_rotation()) * self.parallel))

        def answer(request: GenerationRequest) -> str:
            return "".join(self.generate(request, cancel))

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="captioneer-openai") as executor:
            futures = [executor.submit(answer, request) for request in requests]
        return [future.result() for future in futures]

    def _stream(self, server: Server, request: GenerationRequest, cancel: CancelToken) -> Iterator[str]:
        client = self._client(server.url, None)
        arguments = completion_arguments(self.model, request, server.style, server.send_limits)
        deadline = None if self.request_timeout is None else time.monotonic() + self.request_timeout

        def chunks() -> Iterator[Any]:
            stream = client.chat.completions.create(**arguments)
            try:
                yield from stream
            finally:
                stream.close()

        finished = False
        finish_reason: str | None = None
        usage: Any = None
        reasoning_seen = False
        pieces: list[str] = []
        try:
            for chunk in relay(
                chunks(),
                cancel=cancel,
                abandon=client.close,
                deadline=deadline,
                on_deadline=lambda: EngineTimeoutError(
                    f"The server at {server.url} did not finish the answer within {self.request_timeout:g} s."
                ),
            ):
                usage = getattr(chunk, "usage", None) or usage
                for choice in chunk.choices:
                    if choice.delta is not None and choice.delta.content:
                        pieces.append(choice.delta.content)
                        yield choice.delta.content
                    if choice.delta is not None and not reasoning_seen:
                        extra = choice.delta.model_extra or {}
                        reasoning_seen = bool(extra.get("reasoning_content") or extra.get("reasoning"))
                    if choice.finish_reason:
                        finished = True
                        finish_reason = choice.finish_reason
        finally:
            client.close()
        if not finished:
            raise GenerationError(
                f"The server at {server.url} ended the answer without finishing it (did it stop or crash?)."
            )
        self._check_answer(server, request, finish_reason, usage, reasoning_seen, "".join(pieces))

    def _check_answer(
        self,
        server: Server,
        request: GenerationRequest,
        finish_reason: str | None,
        usage: Any,
        reasoning_seen: bool,
        answer: str,
    ) -> None:
        """Say once per server that its model thinks; fail an answer the server's context cut short."""
        if shows_thinking(reasoning_seen, answer) and "thinking" not in server.warned:
            server.warned.add("thinking")
            log.warning(thinking_advice(server.url, self.model))
        asked = request.options.max_new_tokens
        problem = trimmed_answer(server.url, asked, finish_reason, usage, server.max_model_len)
        if problem is not None:
            raise GenerationError(problem)

    def unload(self) -> None:
        """Forget the session; the servers keep their models."""
        self._loaded = False

    def info(self) -> BackendInfo:
        servers = [
            {
                "url": server.url,
                "state": server.excluded or ("out of rotation" if self.pool.is_down(server) else "ok"),
                "response_format": server.style,
            }
            for server in self.pool.servers
        ]
        return BackendInfo(
            engine=self.name,
            model=self.model,
            loaded=self._loaded,
            details={"servers": servers},
        )
