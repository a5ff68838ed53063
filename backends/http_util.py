"""Shared plumbing for the server engines (ollama, openai): privacy, retries, cancellable streams."""

from __future__ import annotations

import ipaddress
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from backends.base import EngineConfig
from backends.cancel import CancelToken
from backends.errors import ConfigurationError, GenerationError

T = TypeVar("T")

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a server to accept a connection; a running server on the LAN answers far faster."""

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


def server_urls(config: EngineConfig) -> tuple[str, ...]:
    """The addresses an engine configuration sends photos to (resolved the way the engines resolve them)."""
    if config.engine == "ollama":
        from backends.ollama_engine import resolve_host

        return (resolve_host(config.host),)
    if config.engine == "openai":
        from backends.openai_engine import normalize_base_url

        return tuple(normalize_base_url(url) for url in config.base_urls)
    return ()


def privacy_warning(config: EngineConfig) -> str | None:
    """The warning to show when photos would leave this machine, or None.

    Args:
        config: the engine configuration; ``allow_remote`` silences the warning.

    Returns:
        One line for the status bar or stderr, naming every remote server.
    """
    if config.allow_remote:
        return None
    remote = [url for url in server_urls(config) if not is_loopback_url(url)]
    if not remote:
        return None
    where = ", ".join(remote)
    return (
        f"Your photos will be sent to {where}, which is not this computer. "
        "Allow remote servers (--allow-remote) to stop this warning."
    )


def warn_if_remote(config: EngineConfig) -> None:
    """Log the privacy warning (one line on stderr for the command line) when there is one."""
    message = privacy_warning(config)
    if message is not None:
        log.warning(message)


def relay(
    items: Iterable[T],
    *,
    cancel: CancelToken,
    abandon: Callable[[], None],
    deadline: float | None = None,
    on_deadline: Callable[[], Exception] | None = None,
) -> Iterator[T]:
    """Iterate ``items`` (a blocking network stream) in a helper thread and yield them here.

    A hung server then never blocks the caller: cancellation and the deadline are checked every
    0.1 s, and ``abandon`` (closing the connection) is called when the caller stops early.

    Args:
        items: the stream; its exceptions are re-raised here, in the caller's thread.
        cancel: raises :class:`~backends.errors.Cancelled` as soon as it is set.
        abandon: closes the underlying connection so the helper thread ends.
        deadline: a ``time.monotonic()`` value after which ``on_deadline()`` is raised; None for no limit.
        on_deadline: builds the error raised when the deadline passes.
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
    try:
        while True:
            cancel.raise_if_cancelled()
            wait = _POLL_SECONDS
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if on_deadline is None:
                        raise EngineTimeoutError("The server did not answer in time.")
                    raise on_deadline()
                wait = min(wait, remaining)
            try:
                is_item, value = channel.get(timeout=wait)
            except queue.Empty:
                continue
            if not is_item:
                if value is None:
                    return
                raise value  # type: ignore[misc]
            yield value  # type: ignore[misc]
    finally:
        stopped.set()
        if thread.is_alive():
            abandon()


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


def positive_seconds(extra: Mapping[str, Any], key: str) -> float | None:
    """A duration from ``EngineConfig.extra`` (e.g. ``request_timeout``), checked; None when absent."""
    value = extra.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigurationError(f"Engine option {key} must be a positive number of seconds, got {value!r}.")
    return float(value)
