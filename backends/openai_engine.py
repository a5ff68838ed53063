"""The `openai` engine: OpenAI-compatible servers (llama-server, LM Studio, vLLM, SGLang), one or several."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

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
    marked_text,
    setting,
)
from captioneer.backends.http_util import (
    METADATA_TIMEOUT,
    EngineTimeoutError,
    ServerLimits,
    ServerOptions,
    StreamBrokenError,
    capped_transport,
    limited,
    warn_if_remote,
)
from captioneer.backends.openai_errors import fault_of, format_style, translate_error
from captioneer.backends.request import GenerationRequest
from captioneer.backends.server_pool import Fault, Server, ServerPool, answer_each, serve

log = logging.getLogger(__name__)


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
    """The ``response_format`` for ``schema`` in one of the
    :data:`~captioneer.backends.openai_errors.RESPONSE_FORMATS`."""
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
            "enlarge every photo to that size — "
            + setting("image_tokens", f"pass --image-tokens {MIN_IMAGE_TOKENS}",
                      f"set “Image detail” in Settings to {MIN_IMAGE_TOKENS} tokens") + " or more."
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
    """The one-line warning for a server whose model thinks although asked not to."""
    return (
        f"The server at {url} runs {model} as a thinking model: it thinks before every answer although "
        "Captioneer asked it not to (chat_template_kwargs enable_thinking=false), which costs time and "
        "answer tokens — serve a Qwen3-VL Instruct model (or start llama-server with --reasoning-budget 0)."
    )


class OpenAIBackend(Backend):
    """Qwen3-VL behind one or several OpenAI-compatible servers.

    Configuration: ``model`` (the server's model name), ``image_tokens``, ``allow_remote``, and the
    :class:`Options`.
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

    class Options(ServerOptions):
        """The servers, plus the :class:`ServerOptions` (``parallel``: requests in flight per server,
        ``retry_down_after``: seconds a failing server is skipped).

        Attributes:
            base_urls: the servers (one or more; several share the work round robin).
            api_key: for servers that want one.
        """

        base_urls: tuple[str, ...] = ()
        api_key: str | None = None

    options: Options

    @classmethod
    def destinations(cls, config: EngineConfig) -> tuple[str, ...]:
        return tuple(normalize_base_url(url) for url in cls.read_options(config).base_urls)

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        self.model = config.model.strip()
        self.limits = ServerLimits.from_options(self.options)
        check_image_budget(config.image_tokens)
        self.pool = ServerPool(
            [normalize_base_url(url) for url in self.options.base_urls],
            parallel=self.limits.parallel,
            cool_down=self.limits.retry_down_after,
        )
        self._loaded = False

    def concurrency(self) -> int:
        """``parallel`` requests on every server in rotation."""
        return self.pool.capacity()

    def _client(self, url: str, read_timeout: float) -> Any:
        import httpx
        import openai

        timeout = httpx.Timeout(read_timeout, connect=self.limits.connect_timeout)
        return openai.OpenAI(
            base_url=url,
            api_key=self.options.api_key or NO_KEY,
            timeout=timeout,
            max_retries=0,
            http_client=httpx.Client(
                timeout=timeout, transport=capped_transport(self.limits.max_answer_bytes, url)
            ),
        )

    def _list_models(self, server: Server) -> list[Any]:
        import openai

        client = self._client(server.url, min(METADATA_TIMEOUT, self.limits.read_timeout))
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
            raise ConfigurationError(
                "No model chosen: " + setting("model", "pass --model with", "set the Model to")
                + " a name the server lists."
            )
        if "thinking" in self.model.lower():
            log.warning(
                "%s is a Thinking model: Qwen3-VL Thinking models think before every answer whatever the "
                "request asks, which costs time and answer tokens — serve the Instruct model of that size.",
                self.model,
            )
        cancel = token_or_new(cancel)
        warn_if_remote([server.url for server in self.pool.servers], self.config.allow_remote)
        servers = self.pool.servers
        for index, server in enumerate(servers):
            cancel.raise_if_cancelled()
            if progress is not None:
                progress(index / len(servers), f"Checking {server.url}")
            try:
                entries = self._list_models(server)
            except (EngineUnavailableError, EngineTimeoutError) as exc:
                self.pool.trip(server, marked_text(exc))
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
                + setting("model", "pass one of those with --model.", "set the Model to one of those.")
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
            + setting("base_url", "check --base-url.", "check the OpenAI-compatible servers in Settings.")
        )

    def generate(self, request: GenerationRequest, cancel: CancelToken | None = None) -> Iterator[str]:
        """Stream the answer from the next server in the rotation. Until the first piece arrives, a server
        that fails (unreachable, hung, busy, broken off) hands the request to another one, and a server that
        rejects ``response_format`` is asked again with a simpler one; a server that fails after that has
        its failure raised, since the pieces already handed on cannot be taken back.

        Raises:
            NoServerLeftError: every server failed this request.
        """
        cancel = token_or_new(cancel)
        if not self._loaded:
            self.load(cancel=cancel)
        return (yield from self._serve(request, cancel, stream=True))

    def generate_batch(
        self, requests: Sequence[GenerationRequest], cancel: CancelToken | None = None
    ) -> list[str | CaptioneerError]:
        """Answer ``requests`` concurrently, ``parallel`` at a time on each server in rotation, in the order
        of ``requests``. An answer that fails part-way starts again from scratch on another server; a request
        that cannot be answered gets its error in its place, and the others keep their answers.

        Raises:
            Cancelled: ``cancel`` was set.
        """
        cancel = token_or_new(cancel)
        if not self._loaded:
            self.load(cancel=cancel)

        return answer_each(
            requests,
            lambda request: collect(self._serve(request, cancel, stream=False)),
            self.pool.capacity(),
            "captioneer-openai",
        )

    def _serve(self, request: GenerationRequest, cancel: CancelToken, *, stream: bool) -> Iterator[str]:
        def fault(exc: Exception, server: Server) -> Fault:
            return fault_of(exc, server, self.model, len(self.pool.in_rotation()) - 1)

        return serve(
            self.pool, cancel, lambda server: self._stream(server, request, cancel), fault, stream=stream
        )

    def _stream(self, server: Server, request: GenerationRequest, cancel: CancelToken) -> Iterator[str]:
        limits = self.limits
        client = self._client(server.url, limits.socket_read_timeout)
        arguments = completion_arguments(self.model, request, format_style(server), server.send_limits)

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
            for chunk in limited(
                chunks(),
                who=f"The server at {server.url}",
                limits=limits,
                max_new_tokens=request.options.max_new_tokens,
                cancel=cancel,
                abandon=client.close,
                cap_advice=" — it ignores max_tokens",
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
            raise StreamBrokenError(
                f"The server at {server.url} ended the answer without finishing it (did it stop or crash?)."
            )
        self._check_answer(server, request, finish_reason, usage, reasoning_seen, "".join(pieces))
        return finish_reason

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
                "state": self.pool.state(server),
                "response_format": format_style(server),
            }
            for server in self.pool.servers
        ]
        return BackendInfo(
            engine=self.name,
            model=self.model,
            loaded=self._loaded,
            details={"servers": servers},
        )
