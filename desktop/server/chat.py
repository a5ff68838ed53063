"""``POST /v1/chat/completions``, OpenAI-compatible: chat messages with inline images become one
:class:`~captioneer.backends.request.GenerationRequest`; the answer comes back whole or as OpenAI's SSE
chunks. This server never fetches an image from the network."""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from captioneer.backends.cancel import CancelToken
from captioneer.backends.errors import ConfigurationError, InvalidOutputError, TruncatedOutputError
from captioneer.backends.request import GenerationRequest, SamplingOptions
from captioneer.desktop.core.answering import generate_answer
from captioneer.desktop.core.engine_setup import sampling_choices
from captioneer.desktop.core.images import engine_budget, prepare_image
from captioneer.desktop.server.schemas import ChatRequest, ImagePart, ResponseFormat
from captioneer.desktop.server.service import BadRequest, Service

_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^;,]*)*?);base64,(?P<data>.*)", re.S)
DEFAULT_ANSWER_TOKENS = 512
"""The answer length when neither the request, the flags nor the settings give one."""


@dataclass(frozen=True)
class ChatAsk:
    """A chat request taken apart: the prompts, the images' bytes, the schema and the sampling options."""

    system: str | None
    prompt: str
    images: tuple[bytes, ...]
    json_schema: dict[str, Any] | None
    sampling: SamplingOptions


def image_bytes(url: str) -> bytes:
    """The bytes of a base64 ``data:`` URL.

    Raises:
        BadRequest: a network URL (never fetched) or a data URL that is not base64.
    """
    if re.match(r"(?i)https?://", url):
        raise BadRequest(
            "This server never fetches images from the network: send the image inline as a base64 data URL "
            "(data:image/jpeg;base64,…)."
        )
    match = _DATA_URL.fullmatch(url.strip())
    if match is None:
        raise BadRequest("An image_url must be a base64 data URL (data:image/jpeg;base64,…).")
    try:
        return base64.b64decode(match.group("data"), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("An image's data URL is not valid base64.") from None


def response_schema(fmt: ResponseFormat | None) -> dict[str, Any] | None:
    """The JSON schema the answer must follow: a ``json_schema`` format's schema, a ``json_object`` format's
    own schema or any object; None for text."""
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_schema":
        if fmt.json_schema is None:
            raise BadRequest("response_format of type json_schema needs its json_schema.schema.")
        return fmt.json_schema.schema_
    return fmt.schema_ or {"type": "object"}


def chat_ask(service: Service, body: ChatRequest) -> ChatAsk:
    """Take ``body`` apart before it waits for the engine.

    Raises:
        BadRequest: an earlier assistant turn, no user message, a network image, or a bad sampling value.
    """
    systems: list[str] = []
    texts: list[str] = []
    images: list[bytes] = []
    for message in body.messages:
        if message.role == "assistant":
            raise BadRequest(
                "This server answers one request about images at a time: send system and user messages only "
                "(no earlier assistant turns)."
            )
        parts = message.content if isinstance(message.content, list) else None
        text = message.content if isinstance(message.content, str) else "\n".join(
            part.text for part in parts or [] if not isinstance(part, ImagePart)
        )
        if message.role == "system":
            if parts is not None and any(isinstance(part, ImagePart) for part in parts):
                raise BadRequest("Images belong in user messages, not in the system message.")
            systems.append(text)
            continue
        images.extend(image_bytes(part.image_url.url) for part in parts or [] if isinstance(part, ImagePart))
        if text:
            texts.append(text)
    if not texts and not images:
        raise BadRequest("The request has no user message: send one with the question and the image.")
    return ChatAsk(
        system="\n".join(systems) or None,
        prompt="\n".join(texts),
        images=tuple(images),
        json_schema=response_schema(body.response_format),
        sampling=chat_sampling(service, body),
    )


def chat_sampling(service: Service, body: ChatRequest) -> SamplingOptions:
    """The request's sampling values over the server's flags over the settings."""
    chosen = sampling_choices(service.settings, service.overrides)
    given = {
        "max_new_tokens": body.max_completion_tokens or body.max_tokens,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "top_k": body.top_k,
        "presence_penalty": body.presence_penalty,
        "seed": body.seed,
    }
    values = {"max_new_tokens": DEFAULT_ANSWER_TOKENS, **chosen}
    values.update({key: value for key, value in given.items() if value is not None})
    try:
        return SamplingOptions.from_user(**values)
    except ConfigurationError as exc:
        raise BadRequest(str(exc)) from None


def answer_chat(
    service: Service, ask: ChatAsk, cancel: CancelToken, on_chunk: Callable[[str], None] | None = None
) -> tuple[str, str]:
    """Prepare the images and generate the answer (on a worker thread): its text and finish reason.

    Like any OpenAI-compatible server, a structured answer is returned as generated (constrained by the
    schema where the engine can) and not retried; the client validates it.

    Raises:
        ImageError: an image is not usable.
        Cancelled: ``cancel`` was set.
        CaptioneerError: the engine failed.
    """
    backend, config = service.backend, service.config
    budget = engine_budget(config.image_tokens, backend.capabilities)
    request = GenerationRequest(
        prompt=ask.prompt,
        images=tuple(prepare_image(data, budget) for data in ask.images),
        system=ask.system,
        json_schema=ask.json_schema,
        options=ask.sampling,
    )
    try:
        answer = generate_answer(backend, request, on_chunk=on_chunk, cancel=cancel, retries=0)
    except InvalidOutputError as exc:
        return exc.raw, "length" if isinstance(exc, TruncatedOutputError) else "stop"
    return answer.text, "length" if answer.truncated_at is not None else "stop"


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def chunk_event(ident: str, created: int, model: str, delta: dict[str, str], finish: str | None) -> bytes:
    """One streamed ``chat.completion.chunk`` as a server-sent event."""
    chunk = {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return sse(chunk)


def sse(data: dict[str, Any] | str) -> bytes:
    """A server-sent event carrying ``data`` (JSON unless it is already text, like ``[DONE]``)."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {text}\n\n".encode()
