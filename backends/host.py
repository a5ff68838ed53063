"""The engine host process: an in-process engine (gguf, transformers) in a child process of its own.

The child owns the model and serves the :class:`~captioneer.backends.base.Backend` interface over a pipe, so
a native
crash, an out-of-memory kill or a slow leak never takes the app down, and unloading really returns the memory
(the process exits). The GUI always goes through the host; ``captioneer caption --in-process`` does not.

Protocol (parent → child): ``("load",)``, ``("generate", request)``, ``("batch", requests)``, ``("info",)``,
``("exit",)``. The child answers with any number of ``("progress", fraction, message)`` or
``("chunk", text)`` and then exactly one ``("done", value, rss_bytes)`` or ``("error", error_state)``; a
generation's ``value`` is its finish reason, a batch's the list of answers
(:class:`~captioneer.backends.base.Completion`).
Cancellation is a shared event the child's engine checks between tokens.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import signal
import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from typing import Any, ClassVar

from captioneer.backends.base import (
    Backend,
    BackendInfo,
    Capabilities,
    EngineConfig,
    ProgressCallback,
)
from captioneer.backends.cancel import CancelToken, token_or_new
from captioneer.backends.errors import Cancelled, CaptioneerError, EngineCrashedError, GenerationError
from captioneer.backends.host_process import host_main, without_fault_hook
from captioneer.backends.registry import backend_class
from captioneer.backends.request import GenerationRequest, PreparedClip, PreparedImage

log = logging.getLogger(__name__)


_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class HostPolicy:
    """How the host process is looked after.

    Attributes:
        recycle_every: restart the host after this many requests (None: never).
        memory_limit_bytes: restart the host when its resident memory passes this after a request.
        max_crashes_per_image: a photo that crashed the host this many times is refused, not retried.
        cancel_grace_seconds: after a cancel, how long the engine may take to stop before it is killed.
        exit_grace_seconds: how long a clean exit may take before the process is killed.
    """

    recycle_every: int | None = None
    memory_limit_bytes: int | None = None
    max_crashes_per_image: int = 2
    cancel_grace_seconds: float = 5.0
    exit_grace_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.recycle_every is not None and self.recycle_every < 1:
            raise ValueError("recycle_every must be at least 1")
        if self.memory_limit_bytes is not None and self.memory_limit_bytes < 1:
            raise ValueError("memory_limit_bytes must be positive")
        if self.max_crashes_per_image < 1:
            raise ValueError("max_crashes_per_image must be at least 1")


class QuarantinedImageError(EngineCrashedError):
    """A photo crashed the engine host too often; it is reported instead of being tried again."""


def should_recycle(policy: HostPolicy, requests_served: int, rss_bytes: int | None) -> str | None:
    """Why the host should be restarted now (between requests), or None if it should not."""
    if policy.recycle_every is not None and requests_served >= policy.recycle_every:
        return f"served {requests_served} requests"
    limit = policy.memory_limit_bytes
    if limit is not None and rss_bytes is not None and rss_bytes > limit:
        return f"uses {rss_bytes / 2**20:.0f} MiB, over the {limit / 2**20:.0f} MiB limit"
    return None


def describe_exit(engine: str, exitcode: int | None, doing: str) -> str:
    """A person's explanation of how the host process ended unexpectedly."""
    why = ""
    if exitcode is None:
        what = "stopped responding"
    elif exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        what = f"was killed by {name}"
        why = {
            "SIGKILL": " (often the system running out of memory)",
            "SIGSEGV": " (a crash in the engine's native code)",
            "SIGBUS": " (a crash in the engine's native code)",
            "SIGABRT": " (the engine's native code aborted)",
        }.get(name, "")
    else:
        what = f"exited unexpectedly with status {exitcode}"
    return (
        f"The {engine} engine process {what} while {doing}{why}. "
        "Captioneer starts a fresh engine process for the next request."
    )


def _rebuild_error(state: dict[str, Any]) -> CaptioneerError:
    module_name = state["module"]
    cls: Any = None
    if module_name.startswith("captioneer.backends."):
        cls = getattr(importlib.import_module(module_name), state["type"], None)
    if not (isinstance(cls, type) and issubclass(cls, CaptioneerError)):
        cls = GenerationError
    exc = cls.__new__(cls)
    Exception.__init__(exc, state["message"])
    exc.__dict__.update(state["attrs"])
    return exc


def _reap(process: multiprocessing.process.BaseProcess, conn: Connection) -> None:
    """Last resort when a HostedBackend is dropped or the interpreter exits: no orphan engine process."""
    conn.close()
    if process.is_alive():
        process.kill()
    process.join(5)


class HostedBackend(Backend):
    """Any in-process engine, run in the engine host process and used through the same interface.

    A crash becomes :class:`~captioneer.backends.errors.EngineCrashedError` and the next request starts a
    fresh host
    (loading the model again); a photo that crashed it ``max_crashes_per_image`` times is refused with
    :class:`QuarantinedImageError`. The host is recycled between requests per :class:`HostPolicy`.
    One request at a time, like every backend.
    """

    name: ClassVar[str] = "host"
    capabilities: Capabilities  # the hosted engine's, set per instance

    def __init__(
        self, config: EngineConfig, policy: HostPolicy | None = None, start_method: str = "spawn"
    ) -> None:
        """
        Args:
            config: the engine to host.
            policy: recycling and crash limits.
            start_method: how the process starts: ``spawn`` (a fresh interpreter; works everywhere) or, on
                Linux, ``forkserver``, which starts much faster when the engine's modules are preloaded with
                ``multiprocessing.get_context("forkserver").set_forkserver_preload([...])``.
        """
        super().__init__(config)
        self.policy = policy or HostPolicy()
        self.capabilities = replace(backend_class(config.engine).capabilities)
        self._context = multiprocessing.get_context(start_method)
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._cancel_event: Any = None
        self._finalizer: weakref.finalize | None = None
        self._wanted = False  # load() was called and unload() was not: restart after a crash or recycle
        self._lock = threading.Lock()
        self._served = 0
        self._rss: int | None = None
        self._engine_info: BackendInfo | None = None  # the engine's last answer to "info"
        self._crashes: Counter[str] = Counter()
        self.starts = 0
        self.recycles = 0
        self.crashes = 0

    @classmethod
    def read_options(cls, config: EngineConfig) -> Any:
        """The hosted engine's options, checked here so that a typo fails before a process starts."""
        engine_config, _fault = without_fault_hook(config)
        return backend_class(config.engine).read_options(engine_config)

    # -- process lifetime ------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The host process's id while it runs."""
        return self._process.pid if self._process is not None and self._process.is_alive() else None

    def _start(self, progress: ProgressCallback | None, cancel: CancelToken) -> None:
        parent_conn, child_conn = self._context.Pipe()
        self._cancel_event = self._context.Event()
        process = self._context.Process(
            target=host_main,
            args=(child_conn, self._cancel_event, self.config.model_dump()),
            name=f"captioneer-{self.config.engine}-host",
            daemon=True,
        )
        process.start()
        child_conn.close()
        self._process, self._conn = process, parent_conn
        self._finalizer = weakref.finalize(self, _reap, process, parent_conn)
        self._served = 0
        self.starts += 1
        try:
            for reply in self._exchange(("load",), cancel, "loading the model"):
                if reply[0] == "progress" and progress is not None:
                    progress(reply[1], reply[2])
            for reply in self._exchange(("info",), cancel, "describing itself"):
                self._engine_info = reply[1]
        except BaseException as exc:
            # An error the engine answered with leaves an idle host that exits cleanly; anything else
            # (Ctrl+C while loading, say) may find it busy, so it is killed.
            self._stop(kill=not isinstance(exc, CaptioneerError))
            raise

    def _stop(self, kill: bool = False) -> None:
        """End the host process: ask it to exit, wait a little, then kill it (at once with ``kill``).
        Always leaves no child behind."""
        process, conn = self._process, self._conn
        if process is None or conn is None:
            return
        self._process = self._conn = None
        if self._finalizer is not None:
            self._finalizer.detach()
        if kill:
            if process.is_alive():
                process.kill()
        elif process.is_alive():
            self._cancel_event.set()  # a request still running stops at the next token
            try:
                conn.send(("exit",))
                deadline = time.monotonic() + self.policy.exit_grace_seconds
                while time.monotonic() < deadline and process.is_alive():
                    if conn.poll(_POLL_SECONDS):
                        conn.recv()  # drain replies so the child never blocks on a full pipe
            except (EOFError, OSError):
                log.debug("engine host: pipe closed while stopping (the process is exiting)")
        conn.close()
        process.join(self.policy.exit_grace_seconds if process.is_alive() else None)
        if process.is_alive():
            log.warning("engine host %s did not exit in time; killing it", process.pid)
            process.kill()
            process.join()
        self._rss = None
        self._engine_info = None

    def _ensure_running(self, cancel: CancelToken) -> None:
        if self._process is not None and self._process.is_alive():
            return
        if self._process is not None:
            log.warning("the %s engine host died while idle (exit code %s); starting a new one",
                        self.config.engine, self._process.exitcode)
            self.crashes += 1
            self._stop()
        if not self._wanted:
            raise GenerationError(f"The {self.config.engine} engine is not loaded: call load() first.")
        self._start(None, cancel)

    def _crashed(self, doing: str) -> EngineCrashedError:
        process = self._process
        exitcode = None
        if process is not None:
            process.join(1.0)
            exitcode = process.exitcode
        self._stop()
        self.crashes += 1
        return EngineCrashedError(describe_exit(self.config.engine, exitcode, doing))

    def _exchange(
        self, message: tuple[Any, ...], cancel: CancelToken, doing: str
    ) -> Iterator[tuple[Any, ...]]:
        """Send one request and yield every reply up to and including the final one.

        Raises:
            EngineCrashedError: the process died.
            Cancelled: cancelled (and, if the engine did not stop in time, the process was killed).
            CaptioneerError: the engine's own error, rebuilt with its type.
        """
        process, conn = self._process, self._conn
        assert process is not None and conn is not None
        self._cancel_event.clear()
        cancelled_at: float | None = None
        try:
            conn.send(message)
        except OSError:
            raise self._crashed(doing) from None
        while True:
            if cancel.cancelled and cancelled_at is None:
                self._cancel_event.set()
                cancelled_at = time.monotonic()
            grace = self.policy.cancel_grace_seconds
            if cancelled_at is not None and time.monotonic() - cancelled_at > grace:
                log.warning("engine host did not stop within %.0f s of a cancel; killing it", grace)
                self._stop(kill=True)
                raise Cancelled()
            ready = wait([conn, process.sentinel], timeout=_POLL_SECONDS)
            if not ready:
                continue
            if conn not in ready:
                raise self._crashed(doing)  # the process ended and left nothing more to read
            try:
                reply = conn.recv()
            except (EOFError, OSError):
                raise self._crashed(doing) from None
            if reply[0] == "error":
                raise _rebuild_error(reply[1])
            yield reply
            if reply[0] == "done":
                self._rss = reply[2]
                return

    def _finish_request(self) -> None:
        """Between requests: recycle the host if the policy says so (it restarts on the next request)."""
        self._served += 1
        reason = should_recycle(self.policy, self._served, self._rss)
        if reason is not None:
            log.info("recycling the %s engine host: it %s", self.config.engine, reason)
            self.recycles += 1
            self._stop()

    def _refuse_quarantined(self, images: Sequence[PreparedImage | PreparedClip]) -> None:
        for image in images:
            count = self._crashes[image.sha256]
            if count >= self.policy.max_crashes_per_image:
                name = image.source or "this image"
                raise QuarantinedImageError(
                    f"Skipped {name}: it crashed the {self.config.engine} engine {count} times, so "
                    "Captioneer does not try it again. Try a smaller image budget or another engine for it."
                )

    def _doing(self, images: Sequence[PreparedImage | PreparedClip]) -> str:
        names = list(dict.fromkeys(image.source or "an image" for image in images))  # a clip's frames: once
        return "captioning " + ", ".join(names) if names else "generating"

    # -- the Backend interface -------------------------------------------------------------------------

    def load(self, progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> None:
        cancel = token_or_new(cancel)
        with self._lock:
            self._wanted = True
            if self._process is not None and self._process.is_alive():
                return
            try:
                self._start(progress, cancel)
            except BaseException:
                self._wanted = False
                raise

    def generate(self, request: GenerationRequest, cancel: CancelToken | None = None) -> Iterator[str]:
        cancel = token_or_new(cancel)
        self._refuse_quarantined(request.media)
        doing = self._doing(request.media)
        with self._lock:
            self._ensure_running(cancel)
            finished = False
            finish_reason: str | None = None
            try:
                for reply in self._exchange(("generate", request), cancel, doing):
                    if reply[0] == "chunk":
                        yield reply[1]
                    elif reply[0] == "done":
                        finish_reason = reply[1]
                finished = True
            except EngineCrashedError:
                self._crashes.update(image.sha256 for image in request.media)
                raise
            except CaptioneerError:
                finished = True  # the engine answered with an error: the host is fine and in step
                raise
            finally:
                if not finished and self._process is not None:
                    # The consumer stopped reading early: stop the engine and get back in step.
                    self._abandon(doing)
            self._finish_request()
            return finish_reason

    def _abandon(self, doing: str) -> None:
        """The consumer of a stream went away mid-request: stop the engine and read the request's remaining
        replies, so the next request starts in step; a host that does not stop in time is killed."""
        process, conn = self._process, self._conn
        assert process is not None and conn is not None
        self._cancel_event.set()
        deadline = time.monotonic() + self.policy.cancel_grace_seconds
        while time.monotonic() < deadline:
            ready = wait([conn, process.sentinel], timeout=_POLL_SECONDS)
            if conn in ready:
                try:
                    reply = conn.recv()
                except (EOFError, OSError):
                    break
                if reply[0] in ("done", "error"):
                    return
            elif ready:
                break
        self._stop(kill=True)

    def generate_batch(
        self, requests: Sequence[GenerationRequest], cancel: CancelToken | None = None
    ) -> list[str]:
        cancel = token_or_new(cancel)
        images = [image for request in requests for image in request.media]
        self._refuse_quarantined(images)
        doing = self._doing(images)
        with self._lock:
            self._ensure_running(cancel)
            texts: list[str] = []
            try:
                for reply in self._exchange(("batch", list(requests)), cancel, doing):
                    if reply[0] == "done":
                        texts = reply[1]
            except EngineCrashedError:
                self._crashes.update(image.sha256 for image in images)
                raise
            self._finish_request()
            return texts

    def unload(self) -> None:
        if self._cancel_event is not None:
            self._cancel_event.set()  # a generation running in another thread stops at the next token
        with self._lock:
            self._wanted = False
            self._stop()

    def info(self) -> BackendInfo:
        """The hosted engine's description, with the host's pid, resident memory and counters. While a
        request runs it answers at once from what the host last reported, so a status bar never waits."""
        if not self._lock.acquire(blocking=False):
            return self._describe(busy=True)
        try:
            if self._process is None or not self._process.is_alive():
                self._engine_info = None
            else:
                for reply in self._exchange(("info",), CancelToken(), "describing itself"):
                    self._engine_info = reply[1]
        finally:
            self._lock.release()
        return self._describe(busy=False)

    def _describe(self, busy: bool) -> BackendInfo:
        host = {
            "host_pid": self.pid,
            "host_busy": busy,
            "host_requests": self._served,
            "host_starts": self.starts,
            "host_recycles": self.recycles,
            "host_crashes": self.crashes,
            "host_rss_bytes": self._rss,
        }
        engine_info = self._engine_info
        if engine_info is None:
            return BackendInfo(
                engine=self.config.engine, model=self.config.model, quant=self.config.options.get("quant"),
                loaded=self.pid is not None, memory_bytes=self._rss, details=host,
            )
        details = {**engine_info.details, **host, "engine_memory_bytes": engine_info.memory_bytes}
        return replace(engine_info, memory_bytes=self._rss, details=details)


def open_backend(
    config: EngineConfig, in_process: bool = False, policy: HostPolicy | None = None
) -> Backend:
    """The backend the app should use for ``config``: in-process engines run in the engine host process
    unless ``in_process`` is set; server engines (Ollama, OpenAI-compatible) are returned as they are.

    Raises:
        ConfigurationError: unknown engine, or its library is not installed.
    """
    engine_class = backend_class(config.engine)
    if in_process or not engine_class.capabilities.in_process:
        return engine_class(config)
    return HostedBackend(config, policy)

