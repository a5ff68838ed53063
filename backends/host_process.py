"""The engine host process's side (see :mod:`captioneer.backends.host`): build the engine in the child and
answer the parent over the pipe until told to exit."""

from __future__ import annotations

import logging
import os
import signal
import traceback
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from captioneer.backends.base import Backend, EngineConfig, collect
from captioneer.backends.cancel import CancelToken
from captioneer.backends.errors import CaptioneerError, GenerationError
from captioneer.backends.registry import create_backend
from captioneer.backends.request import GenerationRequest, PreparedClip, PreparedImage

log = logging.getLogger(__name__)

FAULT_INJECTION_KEY = "host_fault_injection"
"""Test-only fault-injection hook, an option of the host in ``EngineConfig.options``:
``{"abort_on_image": sha256}`` makes the host process call ``os.abort()`` when asked to caption that image,
the way a native engine crash would end it. The host removes the key before the engine sees its options."""


class SharedCancelToken(CancelToken):
    """A cancel token backed by an event shared with the parent process."""

    def __init__(self, event: Any) -> None:
        super().__init__()
        self._event = event


def _resident_bytes() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _error_state(exc: BaseException, engine: str) -> dict[str, Any]:
    """An exception as plain data that survives the pipe with its type and attributes."""
    if isinstance(exc, CaptioneerError):
        return {
            "module": type(exc).__module__,
            "type": type(exc).__qualname__,
            "message": str(exc),
            "attrs": dict(vars(exc)),
        }
    return {
        "module": GenerationError.__module__,
        "type": GenerationError.__qualname__,
        "message": f"The {engine} engine failed unexpectedly ({type(exc).__name__}: {exc}).",
        "attrs": {"host_traceback": "".join(traceback.format_exception(exc))},
    }


def _inject_fault(fault: dict[str, Any] | None, images: Sequence[PreparedImage | PreparedClip]) -> None:
    """Test-only: die like a native crash when asked to (see :data:`FAULT_INJECTION_KEY`)."""
    if fault and fault.get("abort_on_image") in {image.sha256 for image in images}:
        if os.name == "posix":
            import resource

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a test's deliberate abort leaves no core file
        os.abort()


def without_fault_hook(config: EngineConfig) -> tuple[EngineConfig, dict[str, Any] | None]:
    """The engine's own configuration, and the host's test-only fault hook (:data:`FAULT_INJECTION_KEY`)."""
    options = dict(config.options)
    fault = options.pop(FAULT_INJECTION_KEY, None)
    return config.model_copy(update={"options": options}), fault


def host_main(conn: Connection, cancel_event: Any, config_data: dict[str, Any]) -> None:
    """The host process: build the engine in here and answer the parent until told to exit."""
    # Ctrl+C in a terminal reaches the whole process group; the parent decides what stops and when.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    config, fault = without_fault_hook(EngineConfig(**config_data))
    cancel = SharedCancelToken(cancel_event)
    engine: Backend | None = None

    def progress(fraction: float, message: str) -> None:
        conn.send(("progress", fraction, message))

    while True:
        try:
            message = conn.recv()
        except EOFError:
            break  # the parent is gone: nothing left to serve
        kind = message[0]
        try:
            if kind == "load":
                engine = engine or create_backend(config)
                engine.load(progress, cancel)
                conn.send(("done", None, _resident_bytes()))
            elif kind == "generate":
                request: GenerationRequest = message[1]
                _inject_fault(fault, request.media)
                completion = collect(
                    engine.generate(request, cancel), lambda chunk: conn.send(("chunk", chunk))
                )
                conn.send(("done", completion.finish_reason, _resident_bytes()))
            elif kind == "batch":
                requests: list[GenerationRequest] = message[1]
                _inject_fault(fault, [image for request in requests for image in request.media])
                conn.send(("done", engine.generate_batch(requests, cancel), _resident_bytes()))
            elif kind == "info":
                conn.send(("done", engine.info(), _resident_bytes()))
            elif kind == "exit":
                if engine is not None:
                    engine.unload()
                conn.send(("done", None, _resident_bytes()))
                break
            else:
                raise GenerationError(f"The engine host got an unknown request '{kind}'.")
        except BrokenPipeError:
            break
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the parent as an error reply
            if not isinstance(exc, CaptioneerError):
                log.exception("engine host: unexpected failure")
            conn.send(("error", _error_state(exc, config.engine)))
    conn.close()
