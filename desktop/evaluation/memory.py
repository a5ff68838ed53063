"""Peak resident memory of the engine host process while a profile runs: a sampling thread, and on Linux the
kernel's own high-water mark (VmHWM), which also catches peaks between two samples."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path

import psutil

SAMPLE_SECONDS = 0.2


def high_water_mark(pid: int) -> int | None:
    """The most memory process ``pid`` has had resident since it started (Linux ``VmHWM``), in bytes;
    None where the system does not say."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1]) * 1024
    return None


def resident_bytes(pid: int) -> int | None:
    """Process ``pid``'s resident memory now, or None when it is gone (or not ours to read)."""
    try:
        return psutil.Process(pid).memory_info().rss
    except (psutil.Error, OSError):
        return None


class PeakMemory:
    """Samples the resident memory of whichever process ``pid()`` names (it changes when the engine host is
    restarted after a crash) until stopped; :attr:`peak` is the largest seen, None when no process was seen.

    Use as a context manager around the load and the photos.
    """

    def __init__(self, pid: Callable[[], int | None], interval: float = SAMPLE_SECONDS) -> None:
        self._pid = pid
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)
        self._lock = threading.Lock()
        self.peak: int | None = None

    def sample(self) -> None:
        """Take one sample now (also called by the thread)."""
        pid = self._pid()
        if pid is None:
            return
        seen = [value for value in (resident_bytes(pid), high_water_mark(pid)) if value is not None]
        if seen:
            with self._lock:
                self.peak = max([*seen, *([self.peak] if self.peak is not None else [])])

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.sample()

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
