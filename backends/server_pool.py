"""The servers a server engine (ollama, openai) sends requests to: a circuit breaker per server, at most
``parallel`` requests in flight on each, and the way one request moves on from a server that fails it."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TypeVar

from captioneer.backends.base import Stream
from captioneer.backends.cancel import CancelToken
from captioneer.backends.errors import (
    Cancelled,
    CaptioneerError,
    ConfigurationError,
    EngineUnavailableError,
    cli_text,
    marked_text,
    setting,
)
from captioneer.backends.http_util import RETRY_DELAYS

R = TypeVar("R")
log = logging.getLogger(__name__)

BREAKER_FAILURES = 3
"""Consecutive busy answers (HTTP 429/503) after which a server is skipped for a cool-down. A server that
cannot be reached, times out or breaks an answer off is skipped at once."""

TRIES_PER_SERVER = 2
"""How often one request may fail on the same server before it gives that server up."""

_WAIT_SECONDS = 0.1


@dataclass(frozen=True)
class Breaker:
    """A server's circuit breaker.

    ``closed``: requests flow. ``open``: the server is skipped until ``until`` (a ``time.monotonic()``
    value). ``half-open``: the cool-down is over and one trial request is on its way; its outcome closes or
    re-opens the breaker. ``failures`` counts consecutive busy or failed answers.
    """

    state: str = "closed"
    failures: int = 0
    until: float = 0.0


BREAKER_EVENTS = ("start", "success", "busy", "fault", "neutral")
"""``start``: a request is sent; ``success``: the server answered; ``busy``: it said 429/503; ``fault``:
unreachable, timed out, broke off or overflowed; ``neutral``: no verdict (cancelled, asked again at once)."""


def breaker_step(
    breaker: Breaker, event: str, now: float, *, cool_down: float, threshold: int = BREAKER_FAILURES
) -> Breaker:
    """The breaker after ``event`` at ``now``: a pure function, so its table of cases is its test."""
    if event == "start":
        return breaker if breaker.state == "closed" else replace(breaker, state="half-open")
    if event == "success":
        return Breaker()
    if event == "busy":
        failures = breaker.failures + 1
        if breaker.state != "closed" or failures >= threshold:
            return Breaker("open", failures, now + cool_down)
        return replace(breaker, failures=failures)
    if event == "fault":
        return Breaker("open", breaker.failures + 1, now + cool_down)
    if event == "neutral":
        # A trial that ended without a verdict gives the next request the trial.
        return replace(breaker, state="open") if breaker.state == "half-open" else breaker
    raise ValueError(f"unknown breaker event {event!r}")


def breaker_admits(breaker: Breaker, now: float) -> bool:
    """Whether a request may go to a server in this state now (at most one trial when cooled down)."""
    return breaker.state == "closed" or (breaker.state == "open" and now >= breaker.until)


@dataclass
class Server:
    """One server in the rotation."""

    url: str
    breaker: Breaker = field(default_factory=Breaker)
    in_flight: int = 0
    last_error: str = ""
    excluded: str | None = None
    broke_off: bool = False
    """It last failed in the middle of an answer: only a request that can restart elsewhere may be its
    trial (see :meth:`ServerPool.acquire`)."""
    format_style: int = 0
    models: tuple[str, ...] = ()
    max_model_len: int | None = None
    """The context its ``/v1/models`` declares for the model (vLLM, SGLang), if any."""
    send_limits: bool = True
    """Whether it takes per-request image processor limits (vLLM only with --trust-request-mm-kwargs)."""
    warned: set[str] = field(default_factory=set)
    """Warnings already given about it (once per server)."""


@dataclass(frozen=True)
class Fault:
    """What a failed attempt means for its server and its request.

    ``kind``: ``busy`` (back off; counts towards the breaker), ``down`` (skip the server for its cool-down,
    try another), ``again`` (ask again at once, e.g. with a simpler format; no verdict on the server), or
    ``request`` (this request cannot be answered anywhere: give ``error`` to the caller).
    """

    kind: str
    error: CaptioneerError


class NoServerLeftError(EngineUnavailableError):
    """Every server failed this request: there is nowhere left to send it."""


def clock_time(moment: float, clock: Callable[[], float]) -> str:
    """A ``clock()`` value as the wall-clock time a person reads (``14:05:31``)."""
    return time.strftime("%H:%M:%S", time.localtime(time.time() + moment - clock()))


class ServerPool:
    """Round robin over servers, ``parallel`` requests in flight on each, a circuit breaker per server.

    A request goes to the next server whose breaker is closed and that has a free slot; when every
    server it may still use is cooling down, it goes to the one that has cooled longest rather than
    waiting or failing untried.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        parallel: int = 1,
        cool_down: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ConfigurationError(
                "No OpenAI-compatible server given: "
                + setting("base_url", "pass --base-url", "add a server address in Settings")
                + ", e.g. http://127.0.0.1:8080/v1."
            )
        self.servers = [Server(url) for url in dict.fromkeys(urls)]
        self.parallel = parallel
        self.cool_down = cool_down
        self._clock = clock
        self._next = 0
        self._changed = threading.Condition()

    # -- taking and giving back slots ----------------------------------------------------------------------

    def acquire(self, tries: Mapping[str, int], cancel: CancelToken, *, trial: bool = True) -> Server:
        """A slot on the server the request should try next; waits while every usable server is full.

        Args:
            tries: how often this request already failed on each server (by URL).
            cancel: stops the wait.
            trial: whether the request may be the trial of a cooled-down server that broke off an answer.
                A streamed request may not while a healthy server remains: if the trial broke off too, the
                pieces already handed on could not be taken back.

        Raises:
            NoServerLeftError: the request failed on every server as often as allowed.
            ConfigurationError: no server serves the model.
            Cancelled: ``cancel`` was set while waiting.
        """
        with self._changed:
            while True:
                cancel.raise_if_cancelled()
                server = self._choose(tries, trial)
                if server is not None:
                    server.in_flight += 1
                    self._update(server, "start")
                    return server
                self._changed.wait(_WAIT_SECONDS)

    def _choose(self, tries: Mapping[str, int], trial: bool = True) -> Server | None:
        rotation = self.in_rotation()
        if not rotation:
            raise ConfigurationError("None of the servers serves the chosen model.")
        usable = [server for server in rotation if tries.get(server.url, 0) < TRIES_PER_SERVER]
        if not usable:
            raise self.no_server_left(rotation)
        now = self._clock()
        count = len(self.servers)
        order = [self.servers[(self._next + step) % count] for step in range(count)]
        free = [server for server in order if server in usable and server.in_flight < self.parallel]
        for fresh_only in (True, False):
            for server in free:
                if fresh_only and tries.get(server.url, 0):
                    continue
                if breaker_admits(server.breaker, now) and (trial or not server.broke_off):
                    self._next = (self.servers.index(server) + 1) % count
                    return server
        if any(server.breaker.state == "closed" for server in usable):
            return None  # a healthy server is busy: wait for its slot
        # Every server this request may use is cooling down: try the one that has cooled longest.
        return min(free, key=lambda server: server.breaker.until, default=None)

    def release(self, server: Server, event: str, reason: str = "") -> bool:
        """Give a slot back with what happened (a :data:`BREAKER_EVENTS` name other than ``start``).
        ``reason`` may name settings (:func:`~captioneer.backends.errors.marked_text`).

        Returns:
            True when this opened the server's breaker (it is skipped until its cool-down ends).
        """
        with self._changed:
            server.in_flight -= 1
            was_open = server.breaker.state == "open"
            self._update(server, event)
            if event == "success":
                server.broke_off = False
            if reason:
                server.last_error = reason
            opened = server.breaker.state == "open" and not was_open
            self._changed.notify_all()
        if opened:
            log.warning(
                "%s — skipping %s until %s, then trying it with one request.",
                cli_text(reason).rstrip("."),
                server.url,
                clock_time(server.breaker.until, self._clock),
            )
        return opened

    def trip(self, server: Server, reason: str) -> None:
        """Skip ``server`` for its cool-down (it did not answer when the engine was loaded). ``reason`` may
        name settings (:func:`~captioneer.backends.errors.marked_text`): it only goes into errors."""
        with self._changed:
            self._update(server, "fault")
            server.last_error = reason

    def _update(self, server: Server, event: str) -> None:
        server.breaker = breaker_step(server.breaker, event, self._clock(), cool_down=self.cool_down)

    # -- what people and callers see ------------------------------------------------------------------------

    def in_rotation(self) -> list[Server]:
        return [server for server in self.servers if server.excluded is None]

    def capacity(self) -> int:
        """How many requests the servers in rotation take at once."""
        return max(1, len(self.in_rotation())) * self.parallel

    def is_down(self, server: Server) -> bool:
        return server.breaker.state != "closed"

    def state(self, server: Server) -> str:
        """``ok``, why it left the rotation, or until when it is skipped."""
        if server.excluded is not None:
            return server.excluded
        if server.breaker.state == "closed":
            return "ok"
        if server.breaker.state == "half-open":
            return "trial request in flight"
        return f"skipped until {clock_time(server.breaker.until, self._clock)}"

    def no_server_left(self, servers: Sequence[Server] | None = None) -> NoServerLeftError:
        servers = list(servers if servers is not None else self.in_rotation())
        if len(servers) == 1:
            server = servers[0]
            return NoServerLeftError(server.last_error or f"The server at {server.url} does not answer.")
        reasons = "; ".join(f"{server.url}: {server.last_error or 'no answer'}" for server in servers)
        return NoServerLeftError(
            f"None of the servers can answer — {reasons}. Start or fix them (or check the addresses), then "
            "run the same command again to go on."
        )


@dataclass
class Failover:
    """One request's way through the pool: the next server to try, and what each failure means."""

    pool: ServerPool
    cancel: CancelToken
    tries: Counter[str] = field(default_factory=Counter)
    busy: int = 0

    trial: bool = True

    def next_server(self) -> Server:
        return self.pool.acquire(self.tries, self.cancel, trial=self.trial)

    def succeeded(self, server: Server) -> None:
        self.pool.release(server, "success")

    def abandoned(self, server: Server) -> None:
        self.pool.release(server, "neutral")

    def failed(self, server: Server, fault: Fault, *, partial: bool, can_restart: bool) -> None:
        """Record ``fault`` and return when the request should go on (to a server :meth:`next_server`
        picks); raise when it cannot.

        Args:
            server: where the attempt failed.
            fault: what the failure means.
            partial: part of the answer had arrived when it failed.
            can_restart: False once part of the answer was handed to the caller, who cannot take it back.
        """
        if fault.kind == "again":
            self.pool.release(server, "neutral")
            return
        if fault.kind == "request":
            # The server did answer; the request itself is what cannot be served.
            self.pool.release(server, "success")
            raise fault.error
        if fault.kind == "busy":
            opened = self.pool.release(server, "busy", marked_text(fault.error))
            self.busy += 1
            if opened or self.busy > len(RETRY_DELAYS):
                self.tries[server.url] += 1
            if self.cancel.wait(RETRY_DELAYS[min(self.busy, len(RETRY_DELAYS)) - 1]):
                raise Cancelled()
        else:
            server.broke_off = partial
            self.pool.release(server, "fault", marked_text(fault.error))
            self.tries[server.url] += 1
        if not can_restart:
            raise fault.error


def serve(
    pool: ServerPool,
    cancel: CancelToken,
    attempt: Callable[[Server], Iterator[str]],
    fault_of: Callable[[Exception, Server], Fault],
    *,
    stream: bool,
) -> Iterator[str]:
    """Answer one request through the pool, moving it to another server when one fails.

    Args:
        pool: the servers.
        cancel: stops waiting and streaming.
        attempt: streams the answer from one server; raises on any failure.
        fault_of: what a failure of ``attempt`` means (called with the exception and the server).
        stream: True hands pieces on as they come, so only a failure before the first piece can move to
            another server; False hands on one whole answer, and any failed attempt starts again from scratch
            elsewhere (two partial answers are never glued together).
    """
    failover = Failover(pool, cancel, trial=not stream)
    while True:
        server = failover.next_server()
        pieces: list[str] = []
        reader = Stream(attempt(server))
        try:
            for text in reader:
                pieces.append(text)
                if stream:
                    yield text
        except Cancelled:
            failover.abandoned(server)
            raise
        except Exception as exc:
            try:
                fault = fault_of(exc, server)
            except BaseException:  # not a server failure but a bug: give the slot back and let it show
                failover.abandoned(server)
                raise
            failover.failed(server, fault, partial=bool(pieces), can_restart=not (stream and pieces))
            continue
        except BaseException:  # the caller stopped reading (GeneratorExit) or Ctrl-C: no verdict
            failover.abandoned(server)
            raise
        failover.succeeded(server)
        if not stream:
            yield "".join(pieces)
        return reader.finish_reason


def answer_each(
    requests: Sequence[R],
    answer: Callable[[R], str],
    workers: int,
    thread_name: str,
) -> list[str | CaptioneerError]:
    """Each request's answer, or the error that stopped it, in the order of ``requests``, ``workers`` at a
    time: one failed request does not cost the others their answers (the server engines' ``generate_batch``).

    Raises:
        Cancelled: the answers were cancelled.
    """

    def one(request: R) -> str | CaptioneerError:
        try:
            return answer(request)
        except Cancelled:
            raise
        except CaptioneerError as exc:
            return exc

    if len(requests) == 1:
        return [one(requests[0])]
    width = max(1, min(len(requests), workers))
    with ThreadPoolExecutor(max_workers=width, thread_name_prefix=thread_name) as executor:
        futures = [executor.submit(one, request) for request in requests]
    return [future.result() for future in futures]
