"""One loaded engine shared by the quick-caption and library windows (see :class:`EngineService`)."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from captioneer.backends.base import Backend, BackendInfo, Capabilities, EngineConfig, ProgressCallback
from captioneer.backends.cancel import CancelToken, token_or_new
from captioneer.backends.registry import backend_class
from captioneer.backends.request import GenerationRequest
from captioneer.desktop.core.engine_setup import open_backend
from captioneer.desktop.core.settings import load_settings
from captioneer.desktop.ui.workers import BackendOpener

log = logging.getLogger(__name__)

_LOCK_POLL_SECONDS = 0.05


@dataclass
class _Shared:
    """One engine and who is using it."""

    config: EngineConfig
    backend: Backend
    users: int = 0
    turn: threading.Lock = field(default_factory=threading.Lock)  # one request at a time, whole


def _host_from_saved_settings(config: EngineConfig) -> Backend:
    """The app's engine: through the engine host process, recycled per the settings saved now (either
    window may have changed them)."""
    return open_backend(load_settings(), config)


class EngineService:
    """Hands every window the same loaded engine for the same :class:`EngineConfig`.

    Each window's worker asks :meth:`opener` for a backend as before, and gets a :class:`EngineLease`: its
    ``load`` joins the shared engine (starting the engine host and loading the model only for the first
    user), its ``unload`` leaves it (the host exits when the last user leaves), and a different
    configuration gets an engine of its own. Requests from different windows take turns: each waits for
    the other's whole answer, so nothing interleaves inside the host, and a cancel reaches only the
    request whose token it is (a request still waiting for its turn gives up at once).
    """

    def __init__(self, open_engine: BackendOpener = _host_from_saved_settings) -> None:
        self._open_engine = open_engine
        self._lock = threading.Lock()
        self._shared: list[_Shared] = []
        self.engines_opened = 0

    def opener(self, config: EngineConfig) -> Backend:
        """A :data:`~captioneer.desktop.ui.workers.BackendOpener`: a lease on the engine for ``config``."""
        return EngineLease(self, config)

    def users(self, config: EngineConfig) -> int:
        """How many leases hold the engine for ``config`` now."""
        with self._lock:
            return next((shared.users for shared in self._shared if shared.config == config), 0)

    def _join(self, config: EngineConfig) -> _Shared:
        with self._lock:
            for shared in self._shared:
                if shared.config == config:
                    shared.users += 1
                    return shared
            shared = _Shared(config, self._open_engine(config), users=1)
            self._shared.append(shared)
            self.engines_opened += 1
            return shared

    def _leave(self, shared: _Shared) -> None:
        with self._lock:
            shared.users -= 1
            if shared.users > 0:
                return
            self._shared.remove(shared)
        log.info("last user left the %s engine: unloading it", shared.config.engine)
        shared.backend.unload()

    def close(self) -> None:
        """Unload every engine still held (the app is quitting)."""
        with self._lock:
            shared_list, self._shared = self._shared, []
        for shared in shared_list:
            shared.backend.unload()


class EngineLease(Backend):
    """One window's use of a shared engine, with the Backend interface the workers already speak."""

    name: ClassVar[str] = "shared"
    capabilities: Capabilities  # the engine's, set per instance

    def __init__(self, service: EngineService, config: EngineConfig) -> None:
        self.config = config
        self.capabilities = backend_class(config.engine).capabilities
        self._service = service
        self._shared: _Shared | None = None

    @classmethod
    def read_options(cls, config: EngineConfig) -> Any:
        """Nothing to check here: the engine the lease joins checks its own options."""
        return None

    def _engine(self) -> Backend:
        if self._shared is None:
            self._shared = self._service._join(self.config)
        return self._shared.backend

    def load(self, progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> None:
        """Join the shared engine and make sure it is loaded (the first user loads it)."""
        self._engine().load(progress, cancel)

    def concurrency(self) -> int:
        return self._engine().concurrency()

    @contextlib.contextmanager
    def _turn(self, cancel: CancelToken) -> Iterator[Backend]:
        """Wait for this request's turn on the engine, giving up as soon as it is cancelled; an engine
        that answers several requests at once (a server) needs no turns."""
        engine = self._engine()
        assert self._shared is not None
        if engine.concurrency() > 1:
            yield engine
            return
        turn = self._shared.turn
        while not turn.acquire(timeout=_LOCK_POLL_SECONDS):
            cancel.raise_if_cancelled()
        try:
            yield engine
        finally:
            turn.release()

    def generate(self, request: GenerationRequest, cancel: CancelToken | None = None) -> Iterator[str]:
        cancel = token_or_new(cancel)
        with self._turn(cancel) as engine:
            return (yield from engine.generate(request, cancel))

    def generate_batch(
        self, requests: Sequence[GenerationRequest], cancel: CancelToken | None = None
    ) -> list[str]:
        cancel = token_or_new(cancel)
        with self._turn(cancel) as engine:
            return engine.generate_batch(requests, cancel)

    def unload(self) -> None:
        """Leave the shared engine; it unloads when nobody else uses it."""
        shared, self._shared = self._shared, None
        if shared is not None:
            self._service._leave(shared)

    def info(self) -> BackendInfo:
        if self._shared is None:
            return BackendInfo(engine=self.config.engine, model=self.config.model)
        return self._shared.backend.info()
