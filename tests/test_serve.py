"""`captioneer serve`'s HTTP API against a real uvicorn server on loopback, the tiny gguf model behind it in
the engine host process: every endpoint, the 400s, the token, the size limit, a full queue (429), clients that
go away, and an engine host killed mid-request. The other test_serve_*.py files reuse this file's harness."""

from __future__ import annotations

import io
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from PIL import Image, ImageDraw

from captioneer.backends.base import EngineConfig
from captioneer.backends.errors import ConfigurationError
from captioneer.backends.host import HostedBackend
from captioneer.desktop.commands.serve import listen_socket, url_of
from captioneer.desktop.core.settings import Settings
from captioneer.desktop.core.tasks import all_tasks
from captioneer.desktop.server.access import bearer_matches, listen_token
from captioneer.desktop.server.admission import retry_after
from captioneer.desktop.server.app import create_app
from captioneer.desktop.server.running import StoppableServer
from captioneer.desktop.server.service import Service

LONG = 4000
"""max_tokens that keeps the tiny model busy for many seconds, asked with :data:`LONG_TASK`."""
LONG_TASK = "description"
"""A task whose greedy answer from the tiny model on :func:`jpeg` runs to the length limit (≈10 s for
:data:`LONG` tokens on an idle 2-core machine; the caption task ends by itself after half a second), so a
request with it is still running when a test acts on it."""
PATIENCE = 300
"""Seconds a client waits for an answer: a 2-core machine shared with other test runs can be very slow. A
bound for a test that would otherwise hang, never a timing being tested."""


def jpeg(size: tuple[int, int] = (320, 240), colour: tuple[int, int, int] = (30, 120, 220)) -> bytes:
    image = Image.new("RGB", size, colour)
    w, h = size
    ImageDraw.Draw(image).ellipse((w // 4, h // 4, w * 3 // 4, h * 3 // 4), fill=(240, 200, 40))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


class LiveServer:
    """A real uvicorn server for ``service`` on a free loopback port, run in a thread, stopped as uvicorn
    stops (``should_exit``) after the service cancelled its work."""

    def __init__(self, service: Service, **app_options: Any) -> None:
        self.service = service
        self.sock = listen_socket("127.0.0.1", 0)
        self.url = url_of(self.sock)
        config = uvicorn.Config(create_app(service, **app_options), log_level="warning", lifespan="on")
        self.server = StoppableServer(config, service)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started, "the server to start")

    def stop(self) -> None:
        self.service.stop()
        self.server.should_exit = True
        self.thread.join(30)
        assert not self.thread.is_alive(), "uvicorn did not stop"
        self.service.close()
        self.sock.close()

    def health(self, **headers: str) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/health", headers=headers, timeout=PATIENCE)
        assert response.status_code == 200, response.text
        return response.json()


def wait_for(condition: Callable[[], Any], what: str, timeout: float = PATIENCE) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def gguf_config(tiny_gguf: tuple[Path, Path], image_tokens: int = 64) -> EngineConfig:
    model, mmproj = tiny_gguf
    return EngineConfig(
        engine="gguf", model=str(model), image_tokens=image_tokens,
        options={"mmproj": str(mmproj), "threads": 2},
    )


def serving(tiny_gguf: tuple[Path, Path]) -> Iterator[Callable[..., LiveServer]]:
    """Start servers for the tiny gguf model in the engine host process; every one is stopped, its engine
    unloaded, at the end (each test file's ``serve`` fixture)."""
    started: list[tuple[LiveServer, HostedBackend]] = []

    def start(
        *, in_flight: int = 1, max_queue: int = 16, config: EngineConfig | None = None, **app_options: Any
    ) -> LiveServer:
        config = config or gguf_config(tiny_gguf)
        backend = HostedBackend(config)
        backend.load()
        settings = Settings(temperature=0.0)
        service = Service(backend, config, settings, in_flight=in_flight, max_queue=max_queue)
        live = LiveServer(service, **app_options)
        started.append((live, backend))
        return live

    yield start
    for live, backend in started:
        live.stop()
        backend.unload()


@pytest.fixture
def serve(tiny_gguf: tuple[Path, Path]) -> Iterator[Callable[..., LiveServer]]:
    yield from serving(tiny_gguf)


def ask(
    live: LiveServer,
    image: bytes | None = None,
    timeout: float = PATIENCE,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> httpx.Response:
    files = {"image": ("photo.jpg", image, "image/jpeg")} if image is not None else None
    data = {key: str(value) for key, value in fields.items()}
    return httpx.post(f"{live.url}/v1/vision/completion", files=files, data=data, timeout=timeout,
                      headers=headers)


def in_background(call: Callable[[], httpx.Response]) -> tuple[threading.Thread, list[Any]]:
    """Run ``call`` on a thread; the list gets its response (or the exception it raised)."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as exc:  # noqa: BLE001 - the test inspects what happened
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"} and body["error"]["message"], body
    return body["error"]


# -- endpoints ----------------------------------------------------------------------------------------------


def test_health_models_tasks_and_openapi(serve: Callable[..., LiveServer]) -> None:
    live = serve()
    health = live.health()
    assert health["status"] == "ok" and health["engine"] == "gguf" and health["model"] == "model.gguf"
    assert health["loaded"] is True and health["memory_bytes"] > 0
    assert (health["waiting"], health["in_flight"], health["served"], health["failed"]) == (0, 0, 0, 0)
    models = httpx.get(f"{live.url}/v1/models").json()
    assert models["object"] == "list" and [entry["id"] for entry in models["data"]] == ["model.gguf"]
    tasks = httpx.get(f"{live.url}/v1/tasks").json()["tasks"]
    assert [task["id"] for task in tasks] == list(all_tasks())
    assert next(task for task in tasks if task["id"] == "keywords")["structured"] is True
    assert next(task for task in tasks if task["id"] == "question")["needs_question"] is True
    spec = httpx.get(f"{live.url}/openapi.json").json()
    assert set(spec["paths"]) == {"/health", "/v1/tasks", "/v1/models", "/v1/vision/completion",
                                  "/v1/chat/completions"}
    schemas = spec["components"]["schemas"]
    assert {"VisionResult", "ChatRequest", "ChatResponse", "Health", "ErrorResponse"} <= set(schemas)
    assert schemas["ChatRequest"]["properties"]["messages"]["type"] == "array"
    vision = spec["paths"]["/v1/vision/completion"]["post"]
    assert {"200", "400", "401", "413", "429", "503"} <= set(vision["responses"])
    docs = httpx.get(f"{live.url}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_vision_completion_plain_and_structured(serve: Callable[..., LiveServer]) -> None:
    live = serve()
    caption = ask(live, jpeg(), max_tokens=12)
    assert caption.status_code == 200, caption.text
    body = caption.json()
    assert isinstance(body["result"], str) and body["result"] == body["text"]
    assert (body["task"], body["engine"], body["model"]) == ("caption", "gguf", "model.gguf")
    assert body["attempts"] == 1
    assert 0 < body["image_tokens"] <= 64 and body["seconds"] > 0
    assert body["warning"] == (
        "The answer was cut off at 12 tokens; raise the maximum answer length (max_tokens)."
    )
    # The same greedy request answers the same: one pipeline, one prepared image.
    assert ask(live, jpeg(), max_tokens=12).json()["text"] == body["text"]
    question = ask(live, jpeg(), prompt="What colour is the sky?", max_tokens=8)
    assert question.status_code == 200 and question.json()["task"] == "question"
    keywords = ask(live, jpeg(), task="keywords")
    assert keywords.status_code == 200, keywords.text
    result = keywords.json()["result"]
    assert isinstance(result, dict) and isinstance(result["keywords"], list)
    assert isinstance(result["caption"], str)
    assert live.health()["served"] == 4


@pytest.mark.parametrize(
    ("image", "fields", "kind", "says"),
    [
        (None, {}, "invalid_request", "no image: send it as the multipart field 'image'"),
        (b"", {}, "invalid_request", "empty (0 bytes)"),
        (b"%PDF-1.4 not a photo", {}, "invalid_image", "The image cannot be used: not an image file."),
        (jpeg()[:600], {}, "invalid_image", "The image cannot be used: file is cut short"),
        (jpeg(), {"task": "poem"}, "invalid_request", "Unknown task 'poem': GET /v1/tasks lists the tasks"),
        (jpeg(), {"task": "question"}, "invalid_request", "needs a question: send the question as `prompt`"),
        (jpeg(), {"max_tokens": 0}, "invalid_request", "max_tokens"),
        (jpeg(), {"temperature": 9}, "invalid_request", "temperature"),
    ],
)
def test_vision_completion_bad_requests_get_400(
    serve: Callable[..., LiveServer], image: bytes | None, fields: dict[str, Any], kind: str, says: str
) -> None:
    live = serve()
    response = ask(live, image, **fields)
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["type"] == kind and says in error["message"], error
    assert "\n" not in error["message"]
    assert live.health()["served"] == 0


def test_an_image_too_large_to_open_safely_is_refused(serve: Callable[..., LiveServer]) -> None:
    """A small file that would decode to 400 megapixels (a decompression bomb) gets 400, not the server's
    memory."""
    out = io.BytesIO()
    Image.new("1", (20000, 20000)).save(out, "PNG")
    response = ask(serve(), out.getvalue())
    assert response.status_code == 400
    assert error_of(response)["code"] == "too-large"


# -- who may ask, and how much -----------------------------------------------------------------------------


def test_a_token_is_checked_on_every_request(serve: Callable[..., LiveServer]) -> None:
    live = serve(token="s3cret-token")
    for path in ("/health", "/v1/models", "/v1/tasks", "/openapi.json", "/docs", "/nowhere"):
        refused = httpx.get(f"{live.url}{path}")
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer", path
        assert "Authorization: Bearer" in error_of(refused)["message"]
        wrong = httpx.get(f"{live.url}{path}", headers={"Authorization": "Bearer s3cret-tokem"})
        assert wrong.status_code == 401
    assert ask(live, jpeg(), max_tokens=4).status_code == 401
    good = {"Authorization": "Bearer s3cret-token"}
    assert live.health(**good)["status"] == "ok"
    assert ask(live, jpeg(), headers=good, max_tokens=4).status_code == 200
    assert live.health(**good)["served"] == 1  # the refused requests never reached the engine


@pytest.mark.parametrize(
    ("header", "matches"),
    [("Bearer abc", True), ("bearer abc", True), ("Bearer  abc ", True), ("Bearer abd", False),
     ("Basic abc", False), ("abc", False), ("", False), (None, False), ("Bearer ", False)],
)
def test_bearer_matches(header: str | None, matches: bool) -> None:
    assert bearer_matches(header, "abc") is matches


def test_listening_beyond_this_machine_needs_allow_remote_and_a_token() -> None:
    for loopback in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        assert listen_token(loopback, False, None) == (None, False)
        assert listen_token(loopback, False, "given") == ("given", False)
    for remote in ("0.0.0.0", "::", "192.168.1.20", "myhost.lan"):
        with pytest.raises(ConfigurationError, match="pass --allow-remote as well") as refused:
            listen_token(remote, False, None)
        assert f"--bind {remote} would let other machines" in str(refused.value)
        made, made_up = listen_token(remote, True, None)
        assert made_up and len(made) >= 32 and made != listen_token(remote, True, None)[0]
        assert listen_token(remote, True, "given") == ("given", False)


def test_requests_over_the_size_limit_get_413(serve: Callable[..., LiveServer]) -> None:
    live = serve(max_request_bytes=100_000)
    big = jpeg((1200, 900)) + os.urandom(150_000)
    response = ask(live, big)
    assert response.status_code == 413
    assert "larger than this server's limit of 0.0953674 MB" in error_of(response)["message"]
    # Without a length (chunked), the limit holds all the same.
    chunked = httpx.post(f"{live.url}/v1/chat/completions", content=iter([b"{" + b" " * 60_000] * 3),
                         headers={"content-type": "application/json"})
    assert chunked.status_code == 413
    small = httpx.post(f"{live.url}/v1/chat/completions", content=iter([b'{"messages": []}']),
                       headers={"content-type": "application/json"})
    assert small.status_code == 400 and "messages" in error_of(small)["message"]
    assert ask(live, jpeg(), max_tokens=4).status_code == 200


# -- the queue ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mean", "waiting", "in_flight", "seconds"),
    [(None, 5, 1, 1), (0.2, 0, 1, 1), (2.5, 0, 1, 3), (2.0, 3, 1, 8), (2.0, 3, 2, 4), (30.0, 9, 1, 60)],
)
def test_retry_after(mean: float | None, waiting: int, in_flight: int, seconds: int) -> None:
    assert retry_after(mean, waiting, in_flight) == seconds


def test_a_full_queue_answers_429_and_health_answers_while_busy(serve: Callable[..., LiveServer]) -> None:
    live = serve(max_queue=1)
    busy, busy_outcome = in_background(lambda: ask(live, jpeg(), task=LONG_TASK, max_tokens=1000))
    wait_for(lambda: live.health()["in_flight"] == 1, "the first request to run")
    queued, queued_outcome = in_background(lambda: ask(live, jpeg(), max_tokens=4))
    health = wait_for(lambda: (h := live.health())["waiting"] == 1 and h, "the second request to wait")
    assert health["in_flight"] == 1 and health["loaded"]
    full = ask(live, jpeg(), max_tokens=4)
    assert full.status_code == 429
    assert int(full.headers["Retry-After"]) >= 1
    error = error_of(full)
    assert error["type"] == "queue_full" and "--max-queue" in error["message"]
    busy.join(PATIENCE)
    queued.join(PATIENCE)
    assert [outcome[0].status_code for outcome in (busy_outcome, queued_outcome)] == [200, 200]
    health = live.health()
    assert (health["served"], health["rejected"], health["failed"], health["waiting"]) == (2, 1, 0, 0)


def open_request(live: LiveServer, **fields: Any) -> socket.socket:
    """Send a vision request on a raw socket and leave the connection open: closing it is the client going
    away, at a moment the test chooses (not after a client timeout the engine might beat)."""
    request = httpx.Request("POST", f"{live.url}/v1/vision/completion",
                            files={"image": ("photo.jpg", jpeg(), "image/jpeg")},
                            data={key: str(value) for key, value in fields.items()})
    body = request.read()
    head = "".join(f"{name}: {value}\r\n" for name, value in request.headers.items())
    connection = socket.create_connection((request.url.host, request.url.port))
    connection.sendall(f"POST {request.url.raw_path.decode()} HTTP/1.1\r\n{head}\r\n".encode() + body)
    return connection


def test_a_client_that_goes_away_cancels_its_request(serve: Callable[..., LiveServer]) -> None:
    """Running or waiting: the client's request is cancelled when it disconnects, and the engine is free
    for the next request."""
    live = serve()
    running = open_request(live, task=LONG_TASK, max_tokens=LONG)
    wait_for(lambda: live.health()["in_flight"] == 1, "the long request to run")
    waiting = open_request(live, task=LONG_TASK, max_tokens=LONG)
    wait_for(lambda: live.health()["waiting"] == 1, "the second request to wait")
    waiting.close()
    wait_for(lambda: (h := live.health())["cancelled"] == 1 and h["waiting"] == 0, "the waiting one to go")
    assert live.health()["in_flight"] == 1  # the running one goes on meanwhile
    running.close()
    health = wait_for(lambda: (h := live.health())["cancelled"] == 2 and h, "the running one to be cancelled")
    assert (health["served"], health["failed"], health["in_flight"], health["waiting"]) == (0, 0, 0, 0)
    assert ask(live, jpeg(), max_tokens=4).status_code == 200


def test_an_engine_host_killed_mid_request_answers_503_and_the_server_keeps_serving(
    serve: Callable[..., LiveServer],
) -> None:
    live = serve()
    backend = live.service.backend
    first = ask(live, jpeg(), max_tokens=4)
    assert first.status_code == 200
    victim = backend.info().details["host_pid"]
    doomed, outcome = in_background(lambda: ask(live, jpeg(), task=LONG_TASK, max_tokens=LONG))
    wait_for(lambda: live.health()["in_flight"] == 1, "the long request to run")
    time.sleep(0.3)  # into the generation
    os.kill(victim, signal.SIGKILL)
    doomed.join(PATIENCE)
    response = outcome[0]
    assert response.status_code == 503
    error = error_of(response)
    assert error["type"] == "engine_crashed"
    assert "gguf engine process was killed by SIGKILL" in error["message"]
    again = ask(live, jpeg(), max_tokens=4)
    assert again.status_code == 200 and again.json()["text"] == first.json()["text"]
    assert backend.info().details["host_pid"] not in (None, victim)
    health = live.health()
    assert (health["served"], health["failed"]) == (2, 1)


def test_the_transformers_engine_serves_through_its_host_too(
    serve: Callable[..., LiveServer], tiny_hf_model: Path
) -> None:
    config = EngineConfig(engine="transformers", model=str(tiny_hf_model), image_tokens=64,
                          options={"quant": "fp32", "device": "cpu"})
    live = serve(config=config)
    assert httpx.get(f"{live.url}/v1/models").json()["data"][0]["id"] == "tiny-qwen3vl"
    response = ask(live, jpeg(), max_tokens=6)
    assert response.status_code == 200, response.text
    assert response.json()["engine"] == "transformers" and response.json()["text"]
    assert live.service.backend.info().details["host_pid"] not in (None, os.getpid())
