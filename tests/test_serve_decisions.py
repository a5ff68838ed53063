"""The server's decisions, each a pure function or a small object, tested by table: what each failure answers
over HTTP, which image URLs are taken, which schema a response format asks for, what a model is called, and
how admission counts, refuses and lets a waiting client go."""

from __future__ import annotations

import asyncio
import base64

import pytest

from captioneer.backends.base import EngineConfig
from captioneer.backends.errors import (
    Cancelled,
    CaptioneerError,
    ConfigurationError,
    EngineCrashedError,
    EngineNotInstalledError,
    EngineUnavailableError,
    GenerationError,
    ImageError,
    ModelNotFoundError,
    ResourceExhaustedError,
)
from captioneer.desktop.server.admission import Admission, QueueFull
from captioneer.desktop.server.chat import image_bytes, response_schema
from captioneer.desktop.server.schemas import ResponseFormat
from captioneer.desktop.server.service import (
    AnswerFailed,
    BadRequest,
    Stopping,
    http_error,
    model_id,
)
from tests.conftest import TINY_GGUF_MODEL, TINY_HF_MODEL


@pytest.mark.parametrize(
    ("exc", "status", "kind", "code"),
    [
        (BadRequest("no image"), 400, "invalid_request", None),
        (ImageError("not an image file", "not-an-image"), 400, "invalid_image", "not-an-image"),
        (ImageError("image is too large to open safely", "too-large"), 400, "invalid_image", "too-large"),
        (ConfigurationError("Invalid generation option — temperature"), 400, "invalid_request", None),
        (AnswerFailed("Invalid output after 2 attempts", "invalid-output"), 422, "invalid_output",
         "invalid-output"),
        (QueueFull(3), 429, "queue_full", None),
        (EngineUnavailableError("Ollama is not running"), 502, "engine_unavailable", None),
        (ModelNotFoundError("no such model"), 502, "engine_unavailable", None),
        (GenerationError("the server broke off"), 502, "engine_error", None),
        (EngineCrashedError("The gguf engine process was killed"), 503, "engine_crashed", None),
        (ResourceExhaustedError("out of memory"), 503, "resources", None),
        (Stopping(), 503, "stopping", None),
        (Cancelled(), 503, "stopping", None),
        (EngineNotInstalledError("llama-cpp-python is not installed"), 500, "engine_error", None),
        (CaptioneerError("something else"), 502, "engine_error", None),
        (RuntimeError("boom"), 500, "internal_error", None),
    ],
)
def test_http_error(exc: Exception, status: int, kind: str, code: str | None) -> None:
    error = http_error(exc)
    assert (error.status, error.kind, error.code) == (status, kind, code)
    assert error.message and "\n" not in error.message
    assert (error.retry_after is not None) == (status == 429)


def test_a_full_queue_says_when_to_retry() -> None:
    error = http_error(QueueFull(7))
    assert error.retry_after == 7
    assert error.message == ("The server is busy and its queue is full: try again in 7 s (or start it with a "
                             "larger --max-queue).")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("data:image/jpeg;base64," + base64.b64encode(b"\xff\xd8jpeg").decode(), b"\xff\xd8jpeg"),
        ("data:image/png;name=x.png;base64,aGk=", b"hi"),
        ("data:;base64,aGk=", b"hi"),
        (" data:image/webp;base64,aGk= ", b"hi"),
        ("https://example.com/a.jpg", "never fetches images from the network"),
        ("HTTP://LAN/a.jpg", "never fetches images from the network"),
        ("file:///etc/passwd", "must be a base64 data URL"),
        ("data:image/png,rawbytes", "must be a base64 data URL"),
        ("data:image/png;base64,a b!", "not valid base64"),
    ],
)
def test_image_bytes(url: str, expected: bytes | str) -> None:
    if isinstance(expected, bytes):
        assert image_bytes(url) == expected
    else:
        with pytest.raises(BadRequest, match=expected):
            image_bytes(url)


SCHEMA = {"type": "object", "properties": {"caption": {"type": "string"}}}


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        (None, None),
        ({"type": "text"}, None),
        ({"type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA, "strict": True}}, SCHEMA),
        ({"type": "json_object", "schema": SCHEMA}, SCHEMA),
        ({"type": "json_object"}, {"type": "object"}),
    ],
)
def test_response_schema(fmt: dict | None, expected: dict | None) -> None:
    assert response_schema(None if fmt is None else ResponseFormat.model_validate(fmt)) == expected


def test_a_json_schema_format_without_its_schema_is_refused() -> None:
    with pytest.raises(BadRequest, match="needs its json_schema.schema"):
        response_schema(ResponseFormat(type="json_schema"))


@pytest.mark.parametrize(
    ("engine", "model", "expected"),
    [
        ("gguf", str(TINY_GGUF_MODEL), "model.gguf"),
        ("transformers", str(TINY_HF_MODEL), "tiny-qwen3vl"),
        ("transformers", "Qwen/Qwen3-VL-2B-Instruct", "Qwen/Qwen3-VL-2B-Instruct"),
        ("ollama", "qwen3-vl:2b-instruct", "qwen3-vl:2b-instruct"),
        ("openai", "Qwen/Qwen3-VL-8B-Instruct", "Qwen/Qwen3-VL-8B-Instruct"),
    ],
)
def test_model_id(engine: str, model: str, expected: str) -> None:
    assert model_id(EngineConfig(engine=engine, model=model)) == expected


def test_admission_counts_refuses_and_lets_a_waiting_client_go() -> None:
    async def scenario() -> None:
        admission = Admission(in_flight=1, max_queue=1)
        here = asyncio.Event()

        async def present() -> bool:
            return False

        async def went_away() -> bool:
            return here.is_set()

        await admission.enter(present)
        assert (admission.in_flight, admission.waiting) == (1, 0)
        waiter = asyncio.create_task(admission.enter(went_away))
        await asyncio.sleep(0.05)
        assert admission.waiting == 1
        with pytest.raises(QueueFull) as full:
            await admission.enter(present)
        assert full.value.retry_after == 1  # nothing finished yet: nothing known
        assert (admission.in_flight, admission.waiting) == (1, 1)  # the refused one is not counted
        here.set()
        with pytest.raises(Cancelled):
            await waiter
        assert (admission.in_flight, admission.waiting) == (1, 0)
        admission.leave(4.0)
        assert admission.in_flight == 0 and admission.mean_seconds == 4.0
        # The slot the client that went away never took is free: two enter in turn.
        await asyncio.wait_for(admission.enter(present), 1)
        second = asyncio.create_task(admission.enter(present))
        await asyncio.sleep(0.05)
        assert not second.done()
        admission.leave(2.0)
        await asyncio.wait_for(second, 1)
        assert (admission.in_flight, admission.waiting, admission.mean_seconds) == (1, 0, 3.0)

    asyncio.run(scenario())


def test_admission_limits_must_make_sense() -> None:
    with pytest.raises(ValueError):
        Admission(in_flight=0, max_queue=1)
    with pytest.raises(ValueError):
        Admission(in_flight=1, max_queue=-1)
