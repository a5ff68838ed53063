"""One engine for both windows, and Cancel within one token, with the real gguf engine on the tiny model
through the engine host process: the quick-caption window and the library window it opens share one host
(counted), take turns on it, cancel only their own request, and a cancel never costs the loaded model."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest
from PIL import Image, ImageDraw
from PySide6.QtCore import QTimer

from captioneer.backends.host import HostedBackend
from captioneer.desktop.core.captioning import CaptionResult
from captioneer.desktop.core.engine_setup import Overrides
from captioneer.desktop.core.settings import Settings, save_settings
from captioneer.desktop.library.catalog import open_catalog
from captioneer.desktop.ui.card_view import CardState
from captioneer.desktop.ui.engine_service import EngineService
from captioneer.desktop.ui.library_window import LibraryWindow
from captioneer.desktop.ui.main_window import MainWindow

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore("OpenType support missing", "propagateSizeHints"),
]

TIMEOUT_MS = 180_000
BIG_IMAGE_TOKENS = 4096
"""A budget at which the tiny model's image encoding takes ~10 s here: a cancel lands inside it."""


def host_pids() -> set[int]:
    """This process's engine host children (multiprocessing's resource tracker does not count)."""
    return {
        child.pid
        for child in psutil.Process().children(recursive=True)
        if "multiprocessing.spawn" in " ".join(child.cmdline())
    }


class HostCounter:
    """Samples the engine host processes every 20 ms, so a host that lived briefly is counted too."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.timer = QTimer()
        self.timer.setInterval(20)
        self.timer.timeout.connect(lambda: self.seen.update(host_pids()))
        self.timer.start()


def picture(path: Path, colour: str, size: tuple[int, int] = (256, 192)) -> Path:
    image = Image.new("RGB", size, "white")
    width, height = size
    ImageDraw.Draw(image).ellipse((width // 8, height // 8, width * 7 // 8, height * 7 // 8), fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def overrides(tiny_gguf: tuple[Path, Path], image_tokens: int) -> Overrides:
    model, mmproj = tiny_gguf
    return Overrides(engine="gguf", model=str(model), image_tokens=image_tokens,
                     options={"mmproj": str(mmproj), "threads": 2})


def hosted(service: EngineService) -> HostedBackend:
    """The one engine the service holds now."""
    (shared,) = service._shared
    assert isinstance(shared.backend, HostedBackend)
    return shared.backend


@pytest.fixture
def quick_window(qtbot):
    """The app's wiring: one EngineService, its opener given to the quick-caption window."""
    made: list[MainWindow] = []

    def make(args: Overrides, settings: Settings) -> tuple[MainWindow, EngineService]:
        save_settings(settings)
        service = EngineService()
        window = MainWindow(args, opener=service.opener)  # closed below after shutdown, not by qtbot,
        # so closing it never asks whether to discard its answers
        window.view.show()
        qtbot.waitExposed(window.view)
        made.append(window)
        return window, service

    yield make
    for window in made:
        for library in window.findChildren(LibraryWindow):
            library.view.close()
        window.shutdown()
        window.view.close()
    assert not host_pids(), "an engine host outlived the windows"


def caption(qtbot, window: MainWindow, path: Path) -> CaptionResult:
    results: list[CaptionResult] = []
    window.resultReady.connect(results.append)
    window.add_paths([path])
    qtbot.waitUntil(lambda: bool(results), timeout=TIMEOUT_MS)
    window.resultReady.disconnect(results.append)
    return results[0]


def test_cancel_inside_image_encoding_keeps_the_engine_and_its_model(
    qtbot, quick_window, tiny_gguf, tmp_path: Path
) -> None:
    """Cancel in the quick window used to wait 5 s for llama.cpp to finish the image and then kill the
    engine host (the model loaded again). Now it stops inside the encoder, in the same process."""
    window, service = quick_window(overrides(tiny_gguf, BIG_IMAGE_TOKENS),
                                   Settings(max_tokens=24, temperature=0.0, first_run_done=True))
    assert caption(qtbot, window, picture(tmp_path / "small.png", "tomato")).ok
    host = hosted(service)
    pid = host.pid
    assert host_pids() == {pid}

    big = picture(tmp_path / "big.png", "royalblue", (2048, 2048))
    cancelled: list[int] = []
    window.cardCancelled.connect(cancelled.append)
    window.add_paths([big])
    qtbot.waitUntil(lambda: any(card.view.state is CardState.WORKING
                                for card in window.card_list.cards.values()), timeout=TIMEOUT_MS)
    qtbot.wait(700)  # the engine is preparing or encoding the 4,096-token image (~10 s in all here)
    clicked = time.perf_counter()
    window.view.cancel_button.click()
    qtbot.waitUntil(lambda: bool(cancelled), timeout=TIMEOUT_MS)
    took = time.perf_counter() - clicked
    print(f"\ncancel to 'cancelled' in the window: {took:.2f} s; host pid {pid} -> {host.pid}")
    assert took < 3.0  # the host's grace before a kill is 5 s
    card = window.card_list.cards[cancelled[0]]
    assert card.view.state is CardState.CANCELLED and card.result is None
    qtbot.waitUntil(lambda: not window.busy, timeout=10_000)

    again = caption(qtbot, window, picture(tmp_path / "again.png", "seagreen"))
    assert again.ok and again.text
    assert host.pid == pid and host.starts == 1 and host.crashes == 0  # no kill, no reload
    assert service.engines_opened == 1


def test_both_windows_share_one_engine_process(qtbot, quick_window, tiny_gguf, tmp_path: Path) -> None:
    """Caption in the quick window while the library tags a folder: one engine host ever starts, both get
    their answers, and cancelling the library's run neither cancels the quick window's request nor costs
    the model."""
    window, service = quick_window(overrides(tiny_gguf, 64),
                                   Settings(max_tokens=32, temperature=0.0, first_run_done=True))
    counter = HostCounter()
    window.open_library()
    (library,) = window.findChildren(LibraryWindow)
    qtbot.addWidget(library.view)
    root = tmp_path / "Photos"
    for index, colour in enumerate(("tomato", "seagreen", "royalblue", "gold")):
        picture(root / "Trip" / f"DSC_{index:04d}.jpg", colour)
    library.files.add_folder(root)
    qtbot.waitUntil(lambda: library.model.rowCount() == 4 and bool(library.browse.current_folder()),
                    timeout=30_000)

    # Both windows at once: the run and the quick caption take turns on the one engine.
    quick: list[CaptionResult] = []
    window.resultReady.connect(quick.append)
    spec = library.runs.run_spec("keywords", "English")
    with qtbot.waitSignal(library.runs.finished, timeout=TIMEOUT_MS) as finished:
        library.runs.start_run(library.runs.run_request("folder", spec))
        window.add_paths([picture(tmp_path / "quick.png", "purple")])
    outcome = finished.args[0]
    assert outcome.state == "done", outcome.message
    assert outcome.counts.done + outcome.counts.failed == 4 and outcome.counts.done >= 1
    qtbot.waitUntil(lambda: bool(quick), timeout=TIMEOUT_MS)
    assert quick[0].ok and quick[0].text
    host = hosted(service)
    pid = host.pid
    assert service.engines_opened == 1 and host.starts == 1
    assert service.users(window.engine_config()) == 1  # the run left; the quick window still holds it

    # The library's Stop cancels its run, not the quick window's caption waiting for its turn.
    stop_once = lambda _progress: library.runs.running and library.runs.stop_run()  # noqa: E731
    library.runs.progressed.connect(stop_once)
    with qtbot.waitSignal(library.runs.finished, timeout=TIMEOUT_MS) as stopped:
        library.runs.start_run(library.runs.run_request("folder", spec, redo=True))
        window.add_paths([picture(tmp_path / "quick2.png", "orange")])
    library.runs.progressed.disconnect(stop_once)
    qtbot.waitUntil(lambda: len(quick) == 2, timeout=TIMEOUT_MS)
    assert quick[1].ok and quick[1].text
    assert stopped.args[0].state in ("paused", "done"), stopped.args[0].message

    # The quick window keeps the model loaded: the next run uses the same process.
    with qtbot.waitSignal(library.runs.finished, timeout=TIMEOUT_MS) as again:
        library.runs.start_run(library.runs.run_request("folder", spec, redo=True))
    assert again.args[0].state == "done", again.args[0].message
    counter.seen.update(host_pids())
    counter.timer.stop()
    assert counter.seen == {pid}, f"engine hosts started: {sorted(counter.seen)}"
    assert host.pid == pid and host.starts == 1 and service.engines_opened == 1
    with open_catalog(readonly=True) as catalog:
        assert {r.engine for r in catalog.results()} == {"gguf"}
