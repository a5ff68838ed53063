"""uvicorn's server, made to stop the way Captioneer stops: Ctrl+C or SIGTERM cancel the requests in flight at
once (uvicorn alone would wait for them to finish) and are not raised again afterwards, so the command still
unloads the engine and picks its exit status."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

import uvicorn

from captioneer.desktop.server.service import Service


class StoppableServer(uvicorn.Server):
    """A uvicorn server for ``service``; ``signals`` lists the signals that stopped it."""

    def __init__(self, config: uvicorn.Config, service: Service) -> None:
        super().__init__(config)
        self.service = service
        self.signals: list[int] = []

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signals reach the main thread only (a server run by tests in a thread)
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.signals.append(sig)
        self.service.stop()
        super().handle_exit(sig, frame)
