"""How fast Cancel stops the window's caption worker, on the real tiny gguf and transformers models through
the engine host process, and whether the host (and its loaded model) survives it.

``.venv/bin/python bench/cancel_latency.py`` prints one line per engine and moment of the cancel:

* ``encoding``: 1 s into a 4,096-token image, while the engine encodes the image (~10 s on the tiny models on
  2 cores, before the first token);
* ``streaming``: at the first streamed chunk of a long answer (between tokens).

For each: seconds from the cancel to the worker's ``cancelled`` signal, the host's pid before and after, its
start count (1 = never reloaded) and the seconds the next caption took. The worker is the window's own
:class:`~captioneer.desktop.ui.workers.CaptionWorker`, given the app's shared engine
(:class:`~captioneer.desktop.ui.engine_service.EngineService`), called on this thread.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image, ImageDraw
from PySide6.QtCore import QCoreApplication

from captioneer.backends.base import EngineConfig
from captioneer.backends.cancel import CancelToken
from captioneer.backends.host import HostedBackend
from captioneer.backends.request import SamplingOptions
from captioneer.desktop.core.tasks import TaskOptions
from captioneer.desktop.ui.engine_service import EngineService
from captioneer.desktop.ui.workers import CaptionJob, CaptionWorker

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
BIG_TOKENS = 4096


def configs() -> dict[str, EngineConfig]:
    gguf = FIXTURES / "tiny-qwen3vl-gguf"
    return {
        "gguf": EngineConfig(engine="gguf", model=str(gguf / "model.gguf"), image_tokens=BIG_TOKENS,
                             options={"mmproj": str(gguf / "mmproj.gguf"), "threads": 2}),
        "transformers": EngineConfig(engine="transformers", model=str(FIXTURES / "tiny-qwen3vl"),
                                     image_tokens=BIG_TOKENS,
                                     options={"quant": "fp32", "device": "cpu", "threads": 2}),
    }


def photo(folder: Path, name: str, edge: int) -> Path:
    image = Image.new("RGB", (edge, edge), "white")
    ImageDraw.Draw(image).ellipse((edge // 8, edge // 8, edge * 7 // 8, edge * 7 // 8), fill="royalblue")
    path = folder / name
    image.save(path)
    return path


def job(card: int, path: Path, max_tokens: int) -> CaptionJob:
    return CaptionJob(card, path, "caption", TaskOptions(),
                      SamplingOptions(temperature=0.0, max_new_tokens=max_tokens), BIG_TOKENS)


def measure(engine: str, config: EngineConfig, folder: Path) -> None:
    service = EngineService()
    worker = CaptionWorker(service.opener)
    small, big = photo(folder, "small.png", 256), photo(folder, "big.png", 2048)
    worker.run_batch(config, [job(1, small, 8)], CancelToken())  # loads the model
    host = service._shared[0].backend
    assert isinstance(host, HostedBackend)
    for moment in ("encoding", "streaming"):
        cancel = CancelToken()
        marks: dict[str, float] = {}

        def fire(cancel: CancelToken = cancel, marks: dict[str, float] = marks) -> None:
            if "cancel" not in marks:
                marks["cancel"] = time.perf_counter()
                cancel.cancel()

        def on_cancelled(_card: int, marks: dict[str, float] = marks) -> None:
            marks.setdefault("cancelled", time.perf_counter())

        def on_chunk(_card: int, _text: str, fire=fire) -> None:
            fire()

        worker.cancelled.connect(on_cancelled)
        if moment == "encoding":
            timer = threading.Timer(1.0, fire)
            timer.start()
            target = job(2, big, 8)
        else:
            worker.chunk.connect(on_chunk)
            target = job(2, small, 4000)
        pid_before = host.pid
        worker.run_batch(config, [target], cancel)
        worker.cancelled.disconnect(on_cancelled)
        if moment == "streaming":
            worker.chunk.disconnect(on_chunk)
        started = time.perf_counter()
        worker.run_batch(config, [job(3, small, 8)], CancelToken())
        next_seconds = time.perf_counter() - started
        took = marks["cancelled"] - marks["cancel"] if "cancelled" in marks else float("nan")
        print(f"{engine:12} {moment:9} cancel→cancelled {took:6.3f} s  pid {pid_before} → {host.pid}  "
              f"host starts {host.starts}  next caption {next_seconds:5.2f} s", flush=True)
    worker.shutdown()
    service.close()


def main() -> int:
    QCoreApplication.instance() or QCoreApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as folder:
        for engine, config in configs().items():
            measure(engine, config, Path(folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
