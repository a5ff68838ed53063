"""A stand-in for an Ollama server (Ollama cannot be installed here): a real HTTP server on 127.0.0.1.

It speaks the parts of Ollama's REST API that Captioneer uses, the way Ollama does: NDJSON streamed with
chunked transfer encoding, ``/api/version``, ``/api/tags``, ``/api/show`` (with ``capabilities``),
``/api/chat`` (``message.content`` pieces, then a ``done`` line with ``done_reason`` and counts),
``/api/pull`` (per-layer ``status``/``digest``/``total``/``completed``), errors as ``{"error": …}`` with
Ollama's status codes, and ``{"error": …}`` lines inside a 200 stream. It records every request body so
tests check what the client sent, and it can be scripted to fail, break a stream, hang before answering,
die or stall part-way through an answer, be slow to its first byte, or stream forever.

It is not Ollama: there is no model, answers come from the test's ``responder``.
"""

from __future__ import annotations

import base64
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.loopback import LoopbackServer

Responder = Callable[[dict[str, Any]], str]


@dataclass
class FakeModel:
    """A model the stand-in claims to have pulled."""

    name: str
    capabilities: tuple[str, ...] | None = ("completion", "vision")
    """None imitates an Ollama from before 0.6.4, whose /api/show has no capabilities."""
    size: int = 1_900_000_000
    family: str = "qwen3vl"


@dataclass
class RecordedRequest:
    method: str
    path: str
    body: dict[str, Any] | None


@dataclass
class ScriptedFailure:
    """Answer the next ``times`` requests to ``path`` with ``status`` and ``{"error": message}``."""

    path: str
    status: int
    message: str
    times: int = 1


@dataclass
class FakeOllama:
    """The stand-in server. Use as a context manager; ``url`` is its address.

    Attributes:
        models: what ``/api/tags`` lists.
        responder: the answer text for a chat body (default: a fixed caption).
        chunk_words: words per streamed ``message.content`` piece.
        pull_library: tag → layer sizes that ``/api/pull`` downloads.
        pull_delay: seconds between pull progress lines (to cancel a pull half-way).
        failures: scripted HTTP errors, used up in order.
        stream_error: after this many chat pieces, emit ``{"error": …}`` inside the 200 stream.
        hang: requests to these paths wait until the server stops (or ``release`` is called).
        drop_stream_after: after this many chat pieces, close the connection without a ``done`` line.
        die_after: after this many chat pieces, drop the connection mid-body (a killed Ollama).
        stall_after: after this many chat pieces, send nothing more until the server stops.
        first_byte_delay: seconds before a chat answer's headers.
        endless: ignore ``num_predict`` and stream chat pieces until the client hangs up.
    """

    models: list[FakeModel] = field(default_factory=lambda: [FakeModel("qwen3-vl:2b-instruct")])
    responder: Responder = field(default=lambda body: "A red square on a white background.")
    chunk_words: int = 2
    pull_library: dict[str, list[int]] = field(default_factory=dict)
    pull_delay: float = 0.0
    failures: list[ScriptedFailure] = field(default_factory=list)
    stream_error: tuple[int, str] | None = None
    drop_stream_after: int | None = None
    hang: set[str] = field(default_factory=set)
    die_after: int | None = None
    stall_after: int | None = None
    first_byte_delay: float = 0.0
    endless: bool = False
    version: str = "0.12.10"
    requests: list[RecordedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._stopping = False
        self._server: LoopbackServer | None = None

    # lifecycle

    def start(self) -> FakeOllama:
        self._server = LoopbackServer(type("Handler", (_Handler,), {"fake": self}))
        return self

    def stop(self) -> None:
        self._stopping = True
        self._release.set()
        if self._server is not None:
            self._server.stop()
            self._server = None

    def release(self) -> None:
        """Let hanging requests go on."""
        self._release.set()

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the stand-in first"
        return f"http://127.0.0.1:{self._server.port}"

    # what the client sent

    def bodies(self, path: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r.body or {} for r in self.requests if r.path == path]

    def last_chat(self) -> dict[str, Any]:
        chats = self.bodies("/api/chat")
        assert chats, "no /api/chat request was made"
        return chats[-1]

    # helpers for the handler

    def _record(self, method: str, path: str, body: dict[str, Any] | None) -> None:
        with self._lock:
            self.requests.append(RecordedRequest(method, path, body))

    def _take_failure(self, path: str) -> ScriptedFailure | None:
        with self._lock:
            for failure in self.failures:
                if failure.path == path and failure.times > 0:
                    failure.times -= 1
                    return failure
        return None

    def _model(self, name: str) -> FakeModel | None:
        full = name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"
        return next((m for m in self.models if m.name == full), None)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeOllama

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        return

    # plumbing

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send_json(status, {"error": message})

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _line(self, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _read_body(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return None
        return json.loads(self.rfile.read(length))

    def _dispatch(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        body = self._read_body() if method == "POST" else None
        self.fake._record(method, path, body)
        if path in self.fake.hang:
            self.fake._release.wait()
            if self.fake._stopping:
                self.close_connection = True
                return
        failure = self.fake._take_failure(path)
        if failure is not None:
            self._error(failure.status, failure.message)
            return
        routes = {
            ("GET", "/api/version"): self._version,
            ("GET", "/api/tags"): self._tags,
            ("POST", "/api/show"): self._show,
            ("POST", "/api/chat"): self._chat,
            ("POST", "/api/pull"): self._pull,
        }
        route = routes.get((method, path))
        if route is None:
            data = b"404 page not found"  # Ollama's router answers unknown paths in plain text
            self.send_response(404)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        route(body or {})

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        try:
            self._dispatch(method)
        except (BrokenPipeError, ConnectionResetError):
            # The client went away (cancelled); Ollama stops the work then, and so do we.
            self.close_connection = True

    # endpoints

    def _version(self, body: dict[str, Any]) -> None:
        self._send_json(200, {"version": self.fake.version})

    def _tags(self, body: dict[str, Any]) -> None:
        models = [
            {
                "name": m.name,
                "model": m.name,
                "modified_at": "2026-11-01T10:00:00.000000+00:00",
                "size": m.size,
                "digest": "a" * 64,
                "details": {
                    "parent_model": "",
                    "format": "gguf",
                    "family": m.family,
                    "families": [m.family],
                    "parameter_size": "2.1B",
                    "quantization_level": "Q4_K_M",
                },
            }
            for m in self.fake.models
        ]
        self._send_json(200, {"models": models})

    def _show(self, body: dict[str, Any]) -> None:
        name = body.get("model") or body.get("name") or ""
        model = self.fake._model(name)
        if model is None:
            self._error(404, f"model '{name}' not found")
            return
        shown: dict[str, Any] = {
            "modelfile": f"FROM {model.name}",
            "parameters": "temperature 0.7\ntop_k 20\ntop_p 0.8",
            "template": "{{ .Prompt }}",
            "details": {"format": "gguf", "family": model.family, "parameter_size": "2.1B"},
            "model_info": {"general.architecture": model.family},
            "modified_at": "2026-11-01T10:00:00.000000+00:00",
        }
        if model.capabilities is not None:
            shown["capabilities"] = list(model.capabilities)
        self._send_json(200, shown)

    def _chat(self, body: dict[str, Any]) -> None:
        name = body.get("model", "")
        model = self.fake._model(name)
        if model is None:
            self._error(404, f'model "{name}" not found, try pulling it first')
            return
        messages = body.get("messages") or []
        images = [image for message in messages for image in message.get("images") or []]
        if images and "vision" not in (model.capabilities or ()):
            self._error(400, "this model does not support image input")
            return
        for image in images:
            try:
                base64.b64decode(image, validate=True)
            except ValueError:
                self._error(400, "illegal base64 data in image")
                return
        if body.get("think") is True and "thinking" not in (model.capabilities or ()):
            self._error(400, f'"{name}" does not support thinking')
            return
        text = self.fake.responder(body)
        words, size = text.split(" "), self.fake.chunk_words
        pieces = [" ".join(words[i : i + size]) + " " for i in range(0, len(words), size)]
        pieces[-1] = pieces[-1][:-1]
        stream = body.get("stream", True)
        created = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        if not stream:
            self._send_json(200, self._final(name, created, text, len(pieces)))
            return
        if self.fake.endless:
            pieces = itertools.cycle(piece if piece.endswith(" ") else piece + " " for piece in pieces)
        if self.fake._release.wait(self.fake.first_byte_delay) and self.fake._stopping:
            self.close_connection = True
            return
        self._start_stream()
        for index, piece in enumerate(pieces):
            if self.fake._stopping:
                self.close_connection = True
                return
            if self.fake.die_after is not None and index == self.fake.die_after:
                self.connection.shutdown(socket.SHUT_RDWR)  # mid-body, no terminating chunk: a killed Ollama
                self.close_connection = True
                return
            if self.fake.stall_after is not None and index == self.fake.stall_after:
                while not self.fake._stopping:
                    time.sleep(0.05)
                self.close_connection = True
                return
            if self.fake.stream_error is not None and index == self.fake.stream_error[0]:
                self._line({"error": self.fake.stream_error[1]})
                self._end_stream()
                return
            if self.fake.drop_stream_after is not None and index == self.fake.drop_stream_after:
                self._end_stream()
                return
            self._line(
                {
                    "model": name,
                    "created_at": created,
                    "message": {"role": "assistant", "content": piece},
                    "done": False,
                }
            )
        self._line(self._final(name, created, "", len(pieces)))
        self._end_stream()

    @staticmethod
    def _final(name: str, created: str, content: str, count: int) -> dict[str, Any]:
        return {
            "model": name,
            "created_at": created,
            "message": {"role": "assistant", "content": content},
            "done": True,
            "done_reason": "stop",
            "total_duration": 1_200_000_000,
            "load_duration": 100_000_000,
            "prompt_eval_count": 1100,
            "prompt_eval_duration": 800_000_000,
            "eval_count": count,
            "eval_duration": 300_000_000,
        }

    def _pull(self, body: dict[str, Any]) -> None:
        name = body.get("model") or body.get("name") or ""
        full = name if ":" in name else f"{name}:latest"
        self._start_stream()
        self._line({"status": "pulling manifest"})
        layers = self.fake.pull_library.get(full)
        if layers is None:
            self._line({"error": "pull model manifest: file does not exist"})
            self._end_stream()
            return
        for index, size in enumerate(layers):
            digest = f"sha256:{index:064x}"
            for done in [*range(0, size, max(1, size // 4)), size]:
                if self.fake._stopping:
                    return
                time.sleep(self.fake.pull_delay)
                status = f"pulling {digest[7:19]}"
                self._line({"status": status, "digest": digest, "total": size, "completed": done})
        for status in ("verifying sha256 digest", "writing manifest", "success"):
            self._line({"status": status})
        self._end_stream()
        with self.fake._lock:
            if self.fake._model(full) is None:
                self.fake.models.append(FakeModel(full))
