"""Admission to the engine: at most N requests in flight, at most M waiting, everyone else turned away (429)
with a hint of when to try again. Lives on the server's event loop."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

from captioneer.backends.errors import Cancelled

POLL_SECONDS = 0.1
"""How often a waiting request checks that its client is still there."""


class QueueFull(Exception):
    """No room: every slot is busy and the queue is at its limit. ``retry_after`` is in whole seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"queue full; retry after {retry_after} s")
        self.retry_after = retry_after


def retry_after(mean_seconds: float | None, waiting: int, in_flight: int) -> int:
    """Seconds a turned-away client should wait: about the time to clear the queue ahead of it, between 1
    and 60; 1 before any request finished (nothing is known yet)."""
    if mean_seconds is None:
        return 1
    rounds = (waiting + 1) / max(1, in_flight)
    return max(1, min(60, math.ceil(mean_seconds * rounds)))


class Admission:
    """Counts who runs and who waits; :meth:`enter` and :meth:`leave` pair around each request's work."""

    def __init__(self, in_flight: int, max_queue: int) -> None:
        if in_flight < 1 or max_queue < 0:
            raise ValueError("in_flight must be at least 1 and max_queue at least 0")
        self.max_in_flight = in_flight
        self.max_queue = max_queue
        self.waiting = 0
        self.in_flight = 0
        self._slots = asyncio.Semaphore(in_flight)
        self._seconds_total = 0.0
        self._finished = 0

    @property
    def mean_seconds(self) -> float | None:
        return self._seconds_total / self._finished if self._finished else None

    async def enter(self, gone: Callable[[], Awaitable[bool]]) -> None:
        """Wait for a slot; ``gone`` says whether the client went away meanwhile.

        Raises:
            QueueFull: no free slot and the queue is full (nothing is counted).
            Cancelled: the client went away while waiting.
        """
        if self.in_flight >= self.max_in_flight and self.waiting >= self.max_queue:
            raise QueueFull(retry_after(self.mean_seconds, self.waiting, self.max_in_flight))
        self.waiting += 1
        acquiring = asyncio.ensure_future(self._slots.acquire())
        try:
            while not (await asyncio.wait({acquiring}, timeout=POLL_SECONDS))[0]:
                if await gone():
                    raise Cancelled("The client went away while waiting.")
        except BaseException:
            if acquiring.done() and not acquiring.cancelled():
                self._slots.release()  # it got the slot just as the wait ended
            else:
                acquiring.cancel()
            raise
        finally:
            self.waiting -= 1
        self.in_flight += 1

    def leave(self, seconds: float) -> None:
        """The request's work is over (answered, failed or cancelled) after ``seconds`` in flight."""
        self.in_flight -= 1
        self._seconds_total += seconds
        self._finished += 1
        self._slots.release()
