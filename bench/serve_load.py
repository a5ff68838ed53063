"""Load on `captioneer serve`, as clients see it: requests/s, latency, 429s and the server's memory.

``.venv/bin/python bench/serve_load.py`` starts ``captioneer serve --port 0`` with the tiny gguf model (or
the engine flags given after ``--``, e.g. ``-- --model Q4.gguf --mmproj mmproj.gguf``), sends ``--requests``
vision completions from ``--clients`` concurrent clients (each 429 retried after its Retry-After), then
prints:

* requests/s over the whole run, and p50/p95 latency of a request from first send to its answer (retries
  and queueing included) and of the engine's work alone (the answer's ``seconds``);
* how many 429s were sent back, and whether every request was answered exactly once (the server's own
  ``served`` count must equal the number of requests);
* resident memory of the server process plus its engine host, after one warm-up request and after the run.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "fixtures" / "tiny-qwen3vl-gguf"
sys.path.insert(0, str(ROOT))

from tests.test_serve import jpeg  # noqa: E402 - the same photos the tests send


def resident(pid: int) -> int:
    process = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-queue", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("engine", nargs="*", help="engine flags for captioneer serve (after --)")
    args = parser.parse_args()
    engine = args.engine or ["--model", str(TINY / "model.gguf"), "--mmproj", str(TINY / "mmproj.gguf"),
                             "--image-tokens", "64"]
    server = subprocess.Popen(
        [sys.executable, "-m", "captioneer.desktop.cli", "serve", "--port", "0",
         "--max-queue", str(args.max_queue), *engine],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )
    assert server.stdout is not None
    url = server.stdout.readline().strip()
    if not url:
        return server.wait() or 1
    photo = jpeg((1600, 1200))
    fields = {"max_tokens": str(args.max_tokens), "temperature": "0"}
    try:
        httpx.post(f"{url}/v1/vision/completion", data=fields, timeout=600,
                   files={"image": ("warm.jpg", photo, "image/jpeg")}).raise_for_status()
        before = resident(server.pid)
        whole: list[float] = []
        engine_seconds: list[float] = []
        rejected = 0
        lock = threading.Lock()
        todo = iter(range(args.requests))

        def client() -> None:
            nonlocal rejected
            with httpx.Client(timeout=600) as http:
                for _ in iter(lambda: next(todo, None), None):
                    first = time.perf_counter()
                    while True:
                        response = http.post(f"{url}/v1/vision/completion", data=fields,
                                             files={"image": ("p.jpg", photo, "image/jpeg")})
                        if response.status_code != 429:
                            break
                        with lock:
                            rejected += 1
                        time.sleep(int(response.headers["Retry-After"]))
                    response.raise_for_status()
                    done = time.perf_counter()
                    with lock:
                        whole.append(done - first)
                        engine_seconds.append(response.json()["seconds"])

        started = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        after = resident(server.pid)
        health = httpx.get(f"{url}/health").json()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    print(f"{args.requests} requests from {args.clients} clients, queue {args.max_queue}, "
          f"{args.max_tokens} tokens each, on {os.cpu_count()} CPUs")
    print(f"  {args.requests / elapsed:.2f} requests/s ({elapsed:.1f} s)")
    print(f"  latency with retries: p50 {percentile(whole, 0.5):.2f} s, p95 {percentile(whole, 0.95):.2f} s")
    work = engine_seconds
    print(f"  engine work alone:    p50 {percentile(work, 0.5):.2f} s, p95 {percentile(work, 0.95):.2f} s "
          f"(mean {statistics.mean(work):.2f} s)")
    print(f"  429 sent back: {rejected} (server counted {health['rejected']})")
    print(f"  answered {len(whole)}/{args.requests}; server served {health['served'] - 1} (+1 warm-up), "
          f"failed {health['failed']}")
    print(f"  RSS server + engine host: {before / 2**20:.0f} MiB before, {after / 2**20:.0f} MiB after "
          f"({(after - before) / 2**20:+.0f} MiB)")
    return 0 if len(whole) == args.requests == health["served"] - 1 and not health["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
