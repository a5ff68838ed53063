"""How the openai engine reads a server's failures: the one place they become messages for people, what each
means for the server pool (busy, down, ask again, or the request itself), and the ladder of
``response_format`` styles a server that rejects one is asked with next."""

from __future__ import annotations

import logging
from typing import Any

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
    RETRYABLE_STATUSES,
    AnswerTooLongError,
    EngineTimeoutError,
    ServerBusyError,
    StreamBrokenError,
)
from captioneer.backends.server_pool import Fault, Server

log = logging.getLogger(__name__)

RESPONSE_FORMATS = ("json_schema", "json_object", "none")
"""Ways to ask for schema-constrained JSON, best first: OpenAI's ``json_schema``; ``json_object`` with a
``schema`` (llama-cpp-python's server and others); none (the answer is still validated by the caller)."""


def format_style(server: Server) -> str:
    """The ``response_format`` style (one of :data:`RESPONSE_FORMATS`) ``server`` is asked with now."""
    return RESPONSE_FORMATS[server.format_style]


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"]
        if isinstance(inner, str):
            return inner
    return str(getattr(exc, "message", "") or exc)


def fault_of(exc: Exception, server: Server, model: str, others: int) -> Fault:
    """What a failed attempt on ``server`` means: ``busy`` (HTTP 429/503), ``down`` (unreachable, timed out,
    broken off, overflowing, or a server error: the request moves to another server), ``again`` (the
    server rejects the ``response_format``, or lacks the model while ``others`` servers remain: ask anew),
    or ``request`` (nothing another server would do better)."""
    import openai

    error = translate_error(exc, server.url, model)
    if isinstance(error, (EngineUnavailableError, EngineTimeoutError, StreamBrokenError, AnswerTooLongError)):
        return Fault("down", error)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status in RETRYABLE_STATUSES:
            return Fault("busy", error)
        # vLLM refuses per-request processor limits unless started with --trust-request-mm-kwargs.
        if status in (400, 422) and "mm_processor_kwargs" in _message(exc) and server.send_limits:
            server.send_limits = False
            log.info("%s takes no per-request image limits; images go as they are", server.url)
            return Fault("again", error)
        # llama-cpp-python's server answers an unknown response_format with 500, others with 400/422.
        simpler = server.format_style + 1 < len(RESPONSE_FORMATS)
        if status in (400, 422, 500) and "response_format" in _message(exc) and simpler:
            server.format_style += 1
            log.info("%s rejects this response_format; using %s", server.url, format_style(server))
            return Fault("again", error)
        if status == 404 and others:
            server.excluded = f"does not serve {model}"
            log.warning("%s does not serve %s; leaving it out.", server.url, model)
            return Fault("again", error)
        if status >= 500 and not isinstance(error, ResourceExhaustedError):
            return Fault("down", error)
    return Fault("request", error)


def translate_error(exc: Exception, url: str, model: str) -> CaptioneerError:
    """The one choke point that turns client, HTTP and in-stream failures into messages for people."""
    import httpx
    import openai

    if isinstance(exc, CaptioneerError):
        return exc
    if isinstance(exc, (openai.APIConnectionError, httpx.TransportError)):
        # The client wraps transport failures, also those in the middle of a stream; the cause says which.
        cause = exc.__cause__ if isinstance(exc, openai.APIConnectionError) else exc
        if isinstance(cause, httpx.ConnectTimeout):
            return EngineUnavailableError(
                f"The server at {url} did not accept a connection in time (connect timeout) — check the "
                "address and the network."
            )
        if isinstance(cause, httpx.TimeoutException) or (
            cause is None and isinstance(exc, openai.APITimeoutError)
        ):
            return EngineTimeoutError(
                f"The server at {url} did not answer in time (read timeout) — check that it is running and "
                "not overloaded."
            )
        if isinstance(cause, httpx.TransportError) and not isinstance(cause, httpx.ConnectError):
            return StreamBrokenError(
                f"The connection to the server at {url} broke while it was answering "
                f"({cause.__class__.__name__}) — did it stop or crash?"
            )
        return EngineUnavailableError(
            f"Nothing answers at {url} — start the server (llama-server, LM Studio, vLLM…) "
            + setting("base_url", "or check --base-url.", "or check the server addresses in Settings.")
        )
    message = _message(exc)
    lowered = message.lower()
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status in (401, 403):
            return ConfigurationError(
                f"The server at {url} refused the API key (HTTP {status}: {message}) — "
                + setting("api_key", "pass the right --api-key.", "set the right API key in Settings.")
            )
        if status == 404:
            return ModelNotFoundError(
                f"The server at {url} has no model {model} (HTTP 404: {message}) — check "
                + setting("model", "--model", "the Model") + ", and that the base URL ends with /v1."
            )
        if "memory" in lowered or "context" in lowered or "too long" in lowered:
            return ResourceExhaustedError(f"The server at {url} cannot fit this request: {message}")
        if status in RETRYABLE_STATUSES:
            return ServerBusyError(f"The server at {url} is busy (HTTP {status}: {message}).")
        return GenerationError(f"The server at {url} refused the request (HTTP {status}): {message}")
    if isinstance(exc, openai.APIError):  # an error event inside a 200 stream
        kind = ResourceExhaustedError if "memory" in lowered else GenerationError
        return kind(f"The server at {url} failed while answering with {model}: {message}")
    if isinstance(exc, ValueError):
        return GenerationError(f"The server at {url} sent an answer Captioneer cannot read: {exc}")
    raise exc
