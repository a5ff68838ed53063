"""A bounded load on `captioneer serve`: 48 requests from 8 concurrent clients through a queue of 3, every
429 retried after its Retry-After: every request answered exactly once, none lost, none run twice, and the
resident memory of the server and its engine host about where it started. (Figures: bench/serve_load.py.)"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.test_serve import PATIENCE, LiveServer, jpeg, serving

CLIENTS = 8
PER_CLIENT = 6
MEMORY_SLACK = 150 * 2**20
"""Generous: a leak of an image per request (48 × a few MB) or a stuck generation would pass it by far."""


@pytest.fixture
def serve(tiny_gguf: tuple[Path, Path]) -> Iterator[Callable[..., LiveServer]]:
    yield from serving(tiny_gguf)


def resident(live: LiveServer) -> int:
    """Resident memory of this process (the server runs in it) plus its engine host."""
    host = live.service.backend.info().details["host_pid"]
    return psutil.Process(os.getpid()).memory_info().rss + psutil.Process(host).memory_info().rss


def test_every_request_answered_once_under_load_and_memory_flat(serve: Callable[..., LiveServer]) -> None:
    live = serve(max_queue=3)
    photos = [jpeg((320 + 16 * index, 240), (20 * index, 100, 200 - 10 * index)) for index in range(CLIENTS)]
    answered: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def client(number: int) -> None:
        with httpx.Client(timeout=PATIENCE) as http:
            for turn in range(PER_CLIENT):
                ident = f"{number}-{turn}"
                while True:
                    response = http.post(f"{live.url}/v1/vision/completion", data={"max_tokens": "6"},
                                         files={"image": (f"{ident}.jpg", photos[number], "image/jpeg")})
                    with lock:
                        statuses[response.status_code] += 1
                    if response.status_code != 429:
                        break
                    time.sleep(int(response.headers["Retry-After"]))
                assert response.status_code == 200, response.text
                with lock:
                    answered[ident] += 1

    def run_clients() -> None:
        threads = [threading.Thread(target=client, args=(number,)) for number in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(PATIENCE)

    client(0)  # warm up: the first answers grow the engine's caches once
    answered.clear()
    statuses.clear()
    before = resident(live)
    run_clients()
    after = resident(live)
    assert set(answered) == {f"{n}-{t}" for n in range(CLIENTS) for t in range(PER_CLIENT)}
    assert set(answered.values()) == {1}
    health = live.health()
    assert health["served"] == PER_CLIENT + CLIENTS * PER_CLIENT  # with the warm-up: nothing ran twice
    assert (health["failed"], health["cancelled"], health["waiting"], health["in_flight"]) == (0, 0, 0, 0)
    assert statuses[429] == health["rejected"] > 0  # the queue did fill, and every 429 was retried
    assert set(statuses) == {200, 429}
    assert after - before < MEMORY_SLACK, f"resident memory grew {(after - before) / 2**20:.0f} MiB"
