"""The engine behind the HTTP API: one loaded backend, admission to it, its work on threads off the event
loop, cancellation when a client goes away or the server stops, the request counters, and what each failure
answers over HTTP."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from captioneer.backends.base import Backend, EngineConfig
from captioneer.backends.cancel import CancelToken
from captioneer.backends.errors import (
    Cancelled,
    CaptioneerError,
    ConfigurationError,
    EngineCrashedError,
    EngineNotInstalledError,
    EngineUnavailableError,
    ImageError,
    ModelFileError,
    ModelNotFoundError,
    ResourceExhaustedError,
)
from captioneer.desktop.core.engine_setup import Overrides
from captioneer.desktop.core.settings import Settings
from captioneer.desktop.server.admission import POLL_SECONDS, Admission, QueueFull

T = TypeVar("T")
Gone = Callable[[], Awaitable[bool]]


class BadRequest(CaptioneerError):
    """The request itself is wrong (missing image, bad field, network image URL…): HTTP 400."""


class AnswerFailed(CaptioneerError):
    """The engine answered, but no usable answer came of it (invalid or cut-off output, out of memory at
    every image size tried). ``kind`` is the answer pipeline's error kind."""

    def __init__(self, message: str, kind: str | None) -> None:
        super().__init__(message)
        self.kind = kind


class Stopping(CaptioneerError):
    """The server is shutting down and takes no new work."""


@dataclass(frozen=True)
class HttpError:
    """A failure as the API answers it."""

    status: int
    kind: str
    message: str
    code: str | None = None
    retry_after: int | None = None


def http_error(exc: BaseException) -> HttpError:
    """The HTTP answer for a failure raised while serving a request (a pure decision, tested by table)."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, BadRequest):
        return HttpError(400, "invalid_request", message)
    if isinstance(exc, ImageError):
        return HttpError(400, "invalid_image", f"The image cannot be used: {message}.", exc.kind)
    if isinstance(exc, QueueFull):
        return HttpError(429, "queue_full", "The server is busy and its queue is full: try again in "
                         f"{exc.retry_after} s (or start it with a larger --max-queue).",
                         retry_after=exc.retry_after)
    if isinstance(exc, AnswerFailed):
        return HttpError(422, "invalid_output", message, exc.kind)
    if isinstance(exc, EngineCrashedError):
        return HttpError(503, "engine_crashed", message)
    if isinstance(exc, (Stopping, Cancelled)):
        return HttpError(503, "stopping", "The server is shutting down: send the request again once it is "
                         "back.")
    if isinstance(exc, ResourceExhaustedError):
        return HttpError(503, "resources", message)
    if isinstance(exc, (EngineUnavailableError, ModelNotFoundError)):
        return HttpError(502, "engine_unavailable", message)
    if isinstance(exc, (EngineNotInstalledError, ModelFileError)):
        return HttpError(500, "engine_error", message)
    if isinstance(exc, ConfigurationError):  # what remains is about the request's own values
        return HttpError(400, "invalid_request", message)
    if isinstance(exc, CaptioneerError):
        return HttpError(502, "engine_error", message)
    return HttpError(500, "internal_error", f"The server failed: {type(exc).__name__}: {message}")


def model_id(config: EngineConfig) -> str:
    """The name the API gives the model: a model file's or folder's name (not the path), else the tag, repo
    id or server model name as given."""
    path = Path(config.model)
    return path.name if config.model and path.exists() else config.model


class Service:
    """One loaded backend shared by every request, and everything that decides when it works.

    The backend's generation runs on a pool of ``in_flight`` threads, so the event loop (and ``/health``)
    stays free while the engine works.
    """

    def __init__(
        self,
        backend: Backend,
        config: EngineConfig,
        settings: Settings,
        overrides: Overrides | None = None,
        *,
        in_flight: int = 1,
        max_queue: int = 16,
    ) -> None:
        self.backend = backend
        self.config = config
        self.settings = settings
        self.overrides = overrides or Overrides()
        self.model_id = model_id(config)
        self.created = int(time.time())
        self.admission = Admission(in_flight, max_queue)
        self.served = self.failed = self.cancelled = self.rejected = 0
        self.stopping = False
        self._executor = ThreadPoolExecutor(in_flight, thread_name_prefix="captioneer-serve")
        self._running: set[CancelToken] = set()
        self._lock = threading.Lock()

    async def admit(self, gone: Gone) -> CancelToken:
        """A slot for one request's work, and the token that cancels it.

        Raises:
            QueueFull: no room (counted as rejected).
            Cancelled: the client went away while waiting.
            Stopping: the server is shutting down.
        """
        if self.stopping:
            raise Stopping()
        try:
            await self.admission.enter(gone)
        except QueueFull:
            self.rejected += 1
            raise
        except Cancelled:
            self.cancelled += 1
            raise
        cancel = CancelToken()
        with self._lock:
            self._running.add(cancel)
        if self.stopping:  # it stopped while this request waited
            cancel.cancel()
        return cancel

    def launch(self, cancel: CancelToken, work: Callable[[CancelToken], T]) -> asyncio.Future[T]:
        """Run ``work`` for an admitted request on a worker thread; its slot is freed when the work ends,
        whatever happens to the client."""
        started = time.monotonic()
        future = asyncio.get_running_loop().run_in_executor(self._executor, work, cancel)

        def finished(done: asyncio.Future[Any]) -> None:
            with self._lock:
                self._running.discard(cancel)
            self.admission.leave(time.monotonic() - started)
            error = None if done.cancelled() else done.exception()
            if error is None and not done.cancelled():
                self.served += 1
            elif isinstance(error, Cancelled) or done.cancelled():
                self.cancelled += 1
            else:
                self.failed += 1

        future.add_done_callback(finished)
        return future

    async def run(self, gone: Gone, work: Callable[[CancelToken], T]) -> T:
        """Admit, run ``work`` off the event loop and return its result; a client that goes away cancels it
        (the slot stays taken until the engine has stopped)."""
        cancel = await self.admit(gone)
        future = self.launch(cancel, work)
        while not (await asyncio.wait({future}, timeout=POLL_SECONDS))[0]:
            if not cancel.cancelled and await gone():
                cancel.cancel()
        return future.result()

    def stop(self) -> None:
        """Take no new work and cancel what runs (the engines stop at their next token)."""
        self.stopping = True
        with self._lock:
            running = list(self._running)
        for cancel in running:
            cancel.cancel()

    def close(self) -> None:
        """After the server stopped: wait for the worker threads to end."""
        self.stop()
        self._executor.shutdown(wait=True)
