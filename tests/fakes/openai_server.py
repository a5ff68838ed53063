"""A stand-in for an OpenAI-compatible server, for what the real one in the tests (llama-cpp-python's
server on the tiny GGUF) cannot be made to do on demand: answer busy (429/503, once or forever), refuse an
API key, send an error event inside a 200 stream, end a stream early, die in the middle of an answer, stall
before its headers or after some pieces, be slow to its first byte, or stream forever.

It speaks ``GET /v1/models`` and streamed ``POST /v1/chat/completions`` (server-sent events, ``data: {…}``
chunks with ``choices[].delta.content`` and ``finish_reason``, then ``data: [DONE]``) on 127.0.0.1 and
records every request body. It is not a model: answers come from the test's ``responder``.
"""

from __future__ import annotations

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


@dataclass
class FakeOpenAI:
    """The stand-in server; use as a context manager. ``url`` ends with ``/v1``.

    Attributes:
        models: what ``/v1/models`` lists.
        responder: the answer text for a request body.
        failures: (status, message) answered to the next chat requests, used up in order.
        api_key: when set, requests without ``Authorization: Bearer <api_key>`` get 401.
        stream_error: after this many pieces, an ``{"error": …}`` event inside the 200 stream.
        drop_stream_after: after this many pieces, end the stream with no ``finish_reason``.
        hang_chat: chat requests wait until the server stops.
        reject_response_format: answer 400 to any request that has a ``response_format``.
        port: where to listen (0: any free port).
        piece_delay: seconds before each streamed piece (a slow model).
        windows: (start, end) ``time.monotonic()`` of every streamed answer, to see concurrency.
        finish_reason: the last chunk's ``finish_reason``; ``"length"`` is an answer cut off at max_tokens.
        always_fail: (status, message) answered to every chat request (busy forever).
        die_after: after this many pieces, drop the connection mid-body (a killed server).
        stall_after: after this many pieces, send nothing more until the server stops (a frozen server).
        first_byte_delay: seconds before the response headers (a slow server reading the image).
        endless: ignore ``max_tokens`` and stream pieces until the client hangs up.
        streamed: pieces sent, over all requests.

    Like vLLM (the ``vllm`` handlers):
        max_model_len: listed in ``/v1/models``; when set, ``max_tokens`` is silently lowered to what the
            prompt leaves of it, and an answer stopped there ends with ``finish_reason: "length"``.
        prompt_tokens: what every prompt counts, for that and for ``usage``.
        thinking: reasoning streamed as ``reasoning_content`` deltas before the answer, unless the request
            turns thinking off (``chat_template_kwargs.enable_thinking: false``) and ``thinking_switch``.
        refuse_processor_limits: answer 400 to requests with ``mm_processor_kwargs`` (vLLM's default).
        A final ``usage`` chunk is sent when the request asks for it (``stream_options.include_usage``).
    """

    models: list[str] = field(default_factory=lambda: ["qwen3-vl-2b"])
    responder: Callable[[dict[str, Any]], str] = field(default=lambda body: "A red square.")
    failures: list[tuple[int, str]] = field(default_factory=list)
    api_key: str | None = None
    stream_error: tuple[int, str] | None = None
    drop_stream_after: int | None = None
    hang_chat: bool = False
    reject_response_format: bool = False
    port: int = 0
    piece_delay: float = 0.0
    max_model_len: int | None = None
    prompt_tokens: int = 100
    thinking: str | None = None
    thinking_switch: bool = True
    refuse_processor_limits: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)
    windows: list[tuple[float, float]] = field(default_factory=list)
    finish_reason: str = "stop"
    always_fail: tuple[int, str] | None = None
    die_after: int | None = None
    stall_after: int | None = None
    first_byte_delay: float = 0.0
    endless: bool = False
    streamed: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: LoopbackServer | None = None

    def __enter__(self) -> FakeOpenAI:
        self._server = LoopbackServer(type("Handler", (_Handler,), {"fake": self}), self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start the stand-in first"
        return f"http://127.0.0.1:{self._server.port}/v1"

    def chats(self) -> list[dict[str, Any]]:
        with self._lock:
            return [body for body in self.requests if "messages" in body]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeOpenAI

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": {"message": message, "type": "error", "code": status}})

    def _event(self, payload: dict[str, Any] | str) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        data = f"data: {text}\n\n".encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _authorised(self) -> bool:
        key = self.fake.api_key
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self._error(401, "Invalid API Key")
        return False

    def do_GET(self) -> None:
        self.fake.requests.append({"path": self.path})
        if not self._authorised():
            return
        if self.path.rstrip("/") != "/v1/models":
            self._error(404, "Not Found")
            return
        data = [{"id": name, "object": "model", "owned_by": "stand-in"} for name in self.fake.models]
        if self.fake.max_model_len is not None:
            data = [{**entry, "max_model_len": self.fake.max_model_len} for entry in data]
        self._json(200, {"object": "list", "data": data})

    def do_POST(self) -> None:
        try:
            self._chat()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _chat(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        with self.fake._lock:
            self.fake.requests.append(body)
            failure = self.fake.failures.pop(0) if self.fake.failures else None
        if not self._authorised():
            return
        if self.path != "/v1/chat/completions":
            self._error(404, "Not Found")
            return
        failure = failure or self.fake.always_fail
        if failure is not None:
            self._error(*failure)
            return
        if self.fake.reject_response_format and "response_format" in body:
            self._error(400, "response_format is not supported")
            return
        if body.get("model") not in self.fake.models:
            self._error(404, f"The model `{body.get('model')}` does not exist.")
            return
        if self.fake.refuse_processor_limits and "mm_processor_kwargs" in body:
            self._error(400, "Per-request mm_processor_kwargs are disabled (parameter=mm_processor_kwargs)")
            return
        if self.fake.hang_chat:
            self.fake._stopping.wait()
            self.close_connection = True
            return
        words = self.fake.responder(body).split(" ")
        pieces = [word + " " for word in words[:-1]] + [words[-1]]
        pieces, finish = self._vllm_limit(body, pieces)
        if self.fake.endless:
            pieces = itertools.cycle(word + " " for word in words)
        if self.fake._stopping.wait(self.fake.first_byte_delay):
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        base = {"id": "chatcmpl-stand-in", "object": "chat.completion.chunk", "created": int(time.time())}
        base["model"] = body["model"]
        started = time.monotonic()
        for reasoning in self._vllm_thinking(body):
            delta = {"role": "assistant", "content": None, "reasoning_content": reasoning}
            self._event({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        for index, piece in enumerate(pieces):
            time.sleep(self.fake.piece_delay)
            if self.fake.stream_error is not None and index == self.fake.stream_error[0]:
                self._event({"error": {"message": self.fake.stream_error[1], "type": "server_error"}})
                break
            if self.fake.drop_stream_after is not None and index == self.fake.drop_stream_after:
                break
            if self.fake.die_after is not None and index == self.fake.die_after:
                self.connection.shutdown(socket.SHUT_RDWR)  # mid-body, no terminating chunk: a killed server
                self.close_connection = True
                return
            if self.fake.stall_after is not None and index == self.fake.stall_after:
                self.fake._stopping.wait()
                self.close_connection = True
                return
            if self.fake._stopping.is_set():
                self.close_connection = True
                return
            delta = {"role": "assistant", "content": piece} if index == 0 else {"content": piece}
            self._event({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
            with self.fake._lock:
                self.fake.streamed += 1
        else:
            completion_tokens = len(pieces)
            if finish == "stop" and self.fake.finish_reason != "stop":
                # An answer the test says was cut off at max_tokens: the usage a real server reports then.
                finish = self.fake.finish_reason
                completion_tokens = int(body.get("max_tokens") or completion_tokens)
            self._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
            if (body.get("stream_options") or {}).get("include_usage"):
                counts = {"prompt_tokens": self.fake.prompt_tokens, "completion_tokens": completion_tokens}
                counts["total_tokens"] = counts["prompt_tokens"] + counts["completion_tokens"]
                self._event({**base, "choices": [], "usage": counts})
        self._event("[DONE]")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        with self.fake._lock:
            self.fake.windows.append((started, time.monotonic()))

    def _vllm_limit(self, body: dict[str, Any], pieces: list[str]) -> tuple[list[str], str]:
        """vLLM's quiet trim: ``max_tokens`` lowered to what the prompt leaves of ``max_model_len``."""
        if self.fake.max_model_len is None:
            return pieces, "stop"
        room = self.fake.max_model_len - self.fake.prompt_tokens
        allowed = min(body.get("max_tokens") or len(pieces), room)
        return (pieces[:allowed], "length") if len(pieces) > allowed else (pieces, "stop")

    def _vllm_thinking(self, body: dict[str, Any]) -> list[str]:
        """The reasoning pieces a thinking model streams first, unless the request turned thinking off."""
        switched_off = (body.get("chat_template_kwargs") or {}).get("enable_thinking") is False
        if self.fake.thinking is None or (switched_off and self.fake.thinking_switch):
            return []
        return self.fake.thinking.split(" ")
