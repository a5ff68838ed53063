"""One long-lived thread that runs all of an in-process backend's torch work (see :class:`ComputeThread`)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class ComputeThread:
    """One long-lived thread that runs all of a backend's torch work: loading, preprocessing, generation.

    PyTorch's CPU kernels run on OpenMP, and every thread that starts parallel work gets a team of its own
    threads. Once a process holds more OpenMP threads than CPUs, libgomp stops letting idle team threads
    spin between parallel regions, and decoding on a CPU lost 17 % (5.9 → 4.9 tok/s, 2B bf16 on 2 cores,
    bench/README.md) as soon as generation ran on a fresh thread per request next to a team made while
    loading. Keeping every torch call on this one thread keeps one team. The thread is a daemon, so an
    interrupted load never holds up the interpreter's exit, and it ends when the model is unloaded (its
    team with it), so backends loaded one after another in a process never pile up teams.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def submit(self, job: Callable[[], Any]) -> Future[Any]:
        """Run ``job`` on the compute thread; its result or exception arrives through the future."""
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="transformers-compute", daemon=True)
                self._thread.start()
        future: Future[Any] = Future()
        self._jobs.put((job, future))
        return future

    def run(self, job: Callable[[], Any]) -> Any:
        """Run ``job`` on the compute thread and wait for it."""
        if threading.current_thread() is self._thread:
            return job()
        return self.submit(job).result()

    def stop(self) -> None:
        """End the thread after the work already queued and wait for it (a thread still tearing down its
        OpenMP team when the interpreter exits can abort the process); a later ``submit`` starts a fresh
        one."""
        with self._start_lock:
            thread, self._thread = self._thread, None
            if thread is None:
                return
            self._jobs.put(None)
        if thread is not threading.current_thread():
            thread.join()

    def _serve(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            job, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(job())
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread, which re-raises it
                future.set_exception(exc)
