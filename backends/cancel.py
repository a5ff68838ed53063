"""A cancel token: set from any thread, checked by engines between tokens."""

from __future__ import annotations

import threading

from captioneer.backends.errors import Cancelled


class CancelToken:
    """A thread-safe flag. Engines call :meth:`raise_if_cancelled` between tokens."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds; return True at once if cancelled meanwhile."""
        return self._event.wait(timeout)


def token_or_new(cancel: CancelToken | None) -> CancelToken:
    """The caller's token, or a fresh one that nobody will cancel."""
    return cancel if cancel is not None else CancelToken()
