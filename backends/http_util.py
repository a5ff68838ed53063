"""Shared plumbing for the server engines (ollama, openai): privacy, retries, cancellable streams."""

from __future__ import annotations

import functools
import ipaddress
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import Field

from captioneer.backends.base import EngineOptions
from captioneer.backends.cancel import CancelToken
from captioneer.backends.errors import GenerationError

T = TypeVar("T")

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a server to accept a connection; a running server on the LAN answers far faster."""

READ_TIMEOUT = 120.0
"""Seconds a server may stay silent in the middle of an answer (or before its first piece, while it reads
the image) before it counts as hung."""

REQUEST_TIMEOUT = 600.0
"""Seconds one server may take for one whole answer (the per-image deadline)."""

MAX_ANSWER_KB = 16384
"""Kilobytes one answer may send over the wire, framing included (16 MiB; a 512-token answer is ~150 kB)."""

TOKEN_CAP_FACTOR = 4
TOKEN_CAP_SLACK = 32
"""A stream may carry at most ``TOKEN_CAP_FACTOR × max_new_tokens + TOKEN_CAP_SLACK`` pieces: a server that
ignores ``max_tokens`` is cut off instead of streaming forever."""

RETRY_DOWN_AFTER = 30.0
"""Seconds a failing server is skipped before one trial request."""

METADATA_TIMEOUT = 15.0
"""Seconds for small requests (version, model lists, model details)."""

RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)
"""Backoff between attempts when a server says it is busy (HTTP 429 or 503): four retries, 7.5 s at most."""

RETRYABLE_STATUSES = frozenset({429, 503})

_POLL_SECONDS = 0.1


class EngineTimeoutError(GenerationError):
    """A server did not finish an answer within the allowed time."""


class ServerBusyError(GenerationError):
    """A server kept answering 'busy' (HTTP 429/503) after every retry."""


class StreamBrokenError(GenerationError):
    """A server ended or broke off an answer before finishing it (it stopped, crashed or was cut off)."""


class AnswerTooLongError(GenerationError):
    """A server sent far more than the answer may hold: it ignores ``max_tokens`` or streams garbage."""


class ServerOptions(EngineOptions):
    """The options every server engine takes: how long and how much it waits for and accepts, and how hard
    it uses each server (the CLI flags and settings of the same names). Read into :class:`ServerLimits`."""

    connect_timeout: float = Field(default=CONNECT_TIMEOUT, gt=0, strict=True)
    read_timeout: float = Field(default=READ_TIMEOUT, gt=0, strict=True)
    request_timeout: float = Field(default=REQUEST_TIMEOUT, gt=0, strict=True)
    max_answer_kb: int = Field(default=MAX_ANSWER_KB, ge=1, strict=True)
    parallel: int = Field(default=1, ge=1, strict=True)
    retry_down_after: float = Field(default=RETRY_DOWN_AFTER, gt=0, strict=True)


@dataclass(frozen=True)
class ServerLimits:
    """How long and how much a server engine waits for and accepts, and how hard it uses each server.

    Attributes:
        connect_timeout: seconds to open a connection.
        read_timeout: seconds of silence allowed before and between the pieces of an answer.
        request_timeout: seconds for one whole answer from one server (the per-image deadline).
        max_answer_bytes: bytes one answer may send (framing included).
        parallel: requests each server answers at once.
        retry_down_after: seconds a failing server is skipped before one trial request.
    """

    connect_timeout: float
    read_timeout: float
    request_timeout: float
    max_answer_bytes: int
    parallel: int
    retry_down_after: float

    @classmethod
    def from_options(cls, options: ServerOptions) -> ServerLimits:
        """The limits a server engine's (already checked) options set."""
        return cls(
            connect_timeout=options.connect_timeout,
            read_timeout=options.read_timeout,
            request_timeout=options.request_timeout,
            max_answer_bytes=options.max_answer_kb * 1024,
            parallel=options.parallel,
            retry_down_after=options.retry_down_after,
        )

    @property
    def socket_read_timeout(self) -> float:
        """The socket's own read timeout while an answer streams: only a backstop that frees the helper
        thread :func:`relay` left behind, so relay's idle limit, with its clearer message, fires first."""
        return 2 * self.read_timeout + 1.0


def token_cap(max_new_tokens: int) -> int:
    """How many streamed pieces an answer capped at ``max_new_tokens`` may take before it is cut off."""
    return TOKEN_CAP_FACTOR * max_new_tokens + TOKEN_CAP_SLACK


def is_loopback_host(hostname: str) -> bool:
    """Whether ``hostname`` names this machine: ``localhost``, 127.0.0.0/8, ::1, or the unspecified
    address (0.0.0.0 / ::), which is where a client lands when OLLAMA_HOST is set for the server side."""
    name = hostname.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def is_loopback_url(url: str) -> bool:
    """Whether the server at ``url`` runs on this machine."""
    return is_loopback_host(urlsplit(url).hostname or "")


def privacy_warning(destinations: Sequence[str], allow_remote: bool) -> str | None:
    """The warning to show when photos would leave this machine, or None.

    Args:
        destinations: the addresses an engine sends photos to (its ``destinations``).
        allow_remote: the user allowed remote servers; it silences the warning.

    Returns:
        One line for the status bar or stderr, naming every remote server.
    """
    if allow_remote:
        return None
    remote = [url for url in destinations if not is_loopback_url(url)]
    if not remote:
        return None
    where = ", ".join(remote)
    return (
        f"Your photos will be sent to {where}, which is not this computer. "
        "Allow remote servers (--allow-remote) to stop this warning."
    )


def warn_if_remote(destinations: Sequence[str], allow_remote: bool) -> None:
    """Log the privacy warning (one line on stderr for the command line) when there is one."""
    message = privacy_warning(destinations, allow_remote)
    if message is not None:
        log.warning(message)


def relay(
    items: Iterable[T],
    *,
    cancel: CancelToken,
    abandon: Callable[[], None],
    deadline: float | None = None,
    on_deadline: Callable[[], Exception] | None = None,
    idle: float | None = None,
    on_idle: Callable[[], Exception] | None = None,
) -> Iterator[T]:
    """Iterate ``items`` (a blocking network stream) in a helper thread and yield them here.

    A hung server then never blocks the caller: cancellation, the deadline and the idle limit are checked
    every 0.1 s, and ``abandon`` (closing the connection) is called when the caller stops early.

    Args:
        items: the stream; its exceptions are re-raised here, in the caller's thread.
        cancel: raises :class:`~captioneer.backends.errors.Cancelled` as soon as it is set.
        abandon: closes the underlying connection so the helper thread ends.
        deadline: a ``time.monotonic()`` value after which ``on_deadline()`` is raised; None for no limit.
        on_deadline: builds the error raised when the deadline passes.
        idle: seconds allowed without an item (before the first one too); None for no limit. Unlike a
            socket timeout it also catches a server that trickles bytes but never completes a piece.
        on_idle: builds the error raised when the stream stays idle too long.
    """
    channel: queue.Queue[tuple[bool, object]] = queue.Queue()
    stopped = threading.Event()

    def pump() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                channel.put((True, item))
                if stopped.is_set():
                    break
        except Exception as exc:  # handed to the consumer, which translates it
            channel.put((False, exc))
        else:
            channel.put((False, None))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=pump, name="captioneer-stream", daemon=True)
    thread.start()
    last_item = time.monotonic()
    try:
        while True:
            cancel.raise_if_cancelled()
            wait = _POLL_SECONDS
            now = time.monotonic()
            if deadline is not None:
                remaining = deadline - now
                if remaining <= 0:
                    if on_deadline is None:
                        raise EngineTimeoutError("The server did not answer in time.")
                    raise on_deadline()
                wait = min(wait, remaining)
            if idle is not None:
                quiet_left = last_item + idle - now
                if quiet_left <= 0:
                    if on_idle is None:
                        raise EngineTimeoutError("The server stopped sending its answer.")
                    raise on_idle()
                wait = min(wait, quiet_left)
            try:
                is_item, value = channel.get(timeout=wait)
            except queue.Empty:
                continue
            last_item = time.monotonic()
            if not is_item:
                if value is None:
                    return
                raise value  # type: ignore[misc]
            yield value  # type: ignore[misc]
    finally:
        stopped.set()
        if thread.is_alive():
            abandon()


def limited(
    items: Iterable[T],
    *,
    who: str,
    limits: ServerLimits,
    max_new_tokens: int,
    cancel: CancelToken,
    abandon: Callable[[], None],
    deadline_advice: str = "",
    cap_advice: str = "",
) -> Iterator[T]:
    """:func:`relay` under a server's limits: the per-image deadline, the read (idle) timeout and the piece
    cap (:func:`token_cap`), each failing with one line that names ``who`` (``"Ollama at URL"``, ``"The server
    at URL"``), plus ``deadline_advice`` / ``cap_advice`` where an engine has more to say."""
    cap = token_cap(max_new_tokens)
    for received, item in enumerate(
        relay(
            items,
            cancel=cancel,
            abandon=abandon,
            deadline=time.monotonic() + limits.request_timeout,
            on_deadline=lambda: EngineTimeoutError(
                f"{who} did not finish the answer within {limits.request_timeout:g} s (request timeout)"
                f"{deadline_advice}."
            ),
            idle=limits.read_timeout,
            on_idle=lambda: EngineTimeoutError(
                f"{who} sent nothing for {limits.read_timeout:g} s (read timeout) — "
                "it may be hung or overloaded."
            ),
        ),
        start=1,
    ):
        if received > cap:
            raise AnswerTooLongError(
                f"{who} sent more than {cap} pieces for an answer of at most {max_new_tokens} tokens"
                f"{cap_advice}; Captioneer cut it off."
            )
        yield item


def capped_transport(max_bytes: int, server: str) -> Any:
    """An ``httpx`` transport that counts the bytes of every response body and breaks the stream off with
    :class:`AnswerTooLongError` past ``max_bytes``, so a server streaming forever cannot fill memory or disk.

    Args:
        max_bytes: the most one response may carry.
        server: how the server is named in the error (its address).
    """
    return _capped_transport_class()(max_bytes, server)


@functools.cache
def _capped_transport_class() -> type:
    import httpx  # httpx comes with the server engines' client libraries, so it is imported only here

    class CappedStream(httpx.SyncByteStream):
        def __init__(self, inner: httpx.SyncByteStream, max_bytes: int, server: str) -> None:
            self._inner = inner
            self._max_bytes = max_bytes
            self._server = server

        def __iter__(self) -> Iterator[bytes]:
            received = 0
            for part in self._inner:
                received += len(part)
                if received > self._max_bytes:
                    raise AnswerTooLongError(
                        f"The server at {self._server} sent more than {self._max_bytes // 1024} kB for one "
                        "answer; Captioneer cut it off (raise --max-answer-kb if answers are meant to be "
                        "that long)."
                    )
                yield part

        def close(self) -> None:
            self._inner.close()

    class CappedTransport(httpx.HTTPTransport):
        def __init__(self, max_bytes: int, server: str) -> None:
            super().__init__()
            self._max_bytes = max_bytes
            self._server = server

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = super().handle_request(request)
            response.stream = CappedStream(response.stream, self._max_bytes, self._server)
            return response

    return CappedTransport


def backoff(attempt: int, cancel: CancelToken) -> bool:
    """Sleep before retry number ``attempt`` (0-based). Returns False when no retry is left.

    Raises:
        Cancelled: ``cancel`` was set while waiting.
    """
    if attempt >= len(RETRY_DELAYS):
        return False
    if cancel.wait(RETRY_DELAYS[attempt]):
        cancel.raise_if_cancelled()
    return True
