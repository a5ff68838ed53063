"""The photographer's whole round in the library window with the real gguf engine on the tiny model, through
the engine host process: add a folder, tag it, review by keyboard, write sidecars (read back with exiftool),
and find a photo by keyword in the search box."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import psutil
import pytest
from PIL import Image, ImageDraw
from PySide6.QtCore import Qt

from captioneer.desktop.core.engine_setup import Overrides
from captioneer.desktop.core.settings import Settings, save_settings
from captioneer.desktop.library.catalog import open_catalog
from captioneer.desktop.library.sidecars import WriteMode
from captioneer.desktop.ui.library_window import LibraryWindow

EXIFTOOL = shutil.which("exiftool")

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore("OpenType support missing", "propagateSizeHints"),
    pytest.mark.skipif(
        EXIFTOOL is None, reason="exiftool (libimage-exiftool-perl) is the independent reader"
    ),
]


def engine_hosts() -> list[psutil.Process]:
    """This process's engine host children (multiprocessing's own resource tracker does not count)."""
    return [
        child
        for child in psutil.Process().children(recursive=True)
        if "multiprocessing.spawn" in " ".join(child.cmdline())
    ]


def make_photos(root: Path) -> list[Path]:
    paths = []
    for i, colour in enumerate(("tomato", "seagreen", "royalblue")):
        image = Image.new("RGB", (256, 192), "white")
        ImageDraw.Draw(image).ellipse((30 + 10 * i, 20, 220, 170), fill=colour)
        path = root / "Trip" / f"DSC_{i:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, quality=92)
        paths.append(path)
    return paths


def test_tag_review_write_and_find_with_the_real_engine(qtbot, tmp_path: Path, tiny_gguf) -> None:
    model, mmproj = tiny_gguf
    save_settings(Settings(temperature=0.0, max_tokens=48, first_run_done=True))
    args = Overrides(
        engine="gguf", model=str(model), image_tokens=64, options={"mmproj": str(mmproj), "threads": 2}
    )
    root = tmp_path / "Photos"
    photos = make_photos(root)
    window = LibraryWindow(overrides=args)  # the app's own opener: the engine host process
    qtbot.addWidget(window.view)
    try:
        with qtbot.waitSignal(window.browse.filtered, timeout=10_000):
            window.view.show()
        qtbot.waitExposed(window.view)
        window.view.activateWindow()

        with qtbot.waitSignal(window.browse.filtered, timeout=20_000):
            window.files.add_folder(root)
        assert window.model.rowCount() == 3 and window.model.photo_row(0).status == "untagged"

        spec = window.runs.run_spec("keywords", "English")
        assert spec.image_tokens == 64
        hosts: list[int] = []
        window.runs.progressed.connect(lambda _p: hosts.append(len(engine_hosts())))
        seen: list = []
        window.runs.progressed.connect(seen.append)
        with qtbot.waitSignal(window.runs.finished, timeout=240_000) as finished:
            window.runs.start_run(window.runs.run_request("folder", spec))
        outcome = finished.args[0]
        assert outcome.state == "done", outcome.message
        assert outcome.counts.done + outcome.counts.failed == 3 and outcome.counts.done >= 1
        assert max(hosts) >= 1, "the model ran in this process, not in the engine host process"
        # The model load and the first photo give no speed and no time left: one photo is not a rate.
        assert seen and all(
            p.eta_seconds is None and p.photos_per_minute is None for p in seen if p.finished < 2
        )
        qtbot.waitUntil(lambda: window.model.photo_row(0).status != "untagged", timeout=10_000)

        # Review at keyboard speed: approve each tagged photo (A leaves an empty answer unapproved).
        window.view.grid.setFocus()
        for row in range(3):
            window.selection.select_row(row)
            qtbot.keyClick(window.view.grid, Qt.Key.Key_A)
        with open_catalog(readonly=True) as catalog:
            results = catalog.results()
            usable = [bool(r.caption.strip() or r.keywords or r.title or r.alt_text) for r in results]
            assert [r.review == "approved" for r in results] == usable
            assert {r.engine for r in results} == {"gguf"} and {r.model for r in results} == {model.name}

        # The tiny model's text is noise, and an empty answer has nothing to write.
        writable = [r for r in results if r.caption or r.keywords]
        assert writable, "the tiny model gave no photo a caption or keywords"
        with qtbot.waitSignal(
            window.message, timeout=60_000, check_params_cb=lambda m: "written" in m
        ) as wrote:
            window.files.write_metadata(WriteMode.SIDECAR)
        assert f"{len(writable)} written" in wrote.args[0]
        for result in results:
            sidecar = Path(result.path + ".xmp")
            if result not in writable:
                assert not sidecar.exists()
                continue
            out = subprocess.run(
                [EXIFTOOL, "-j", "-G1", str(sidecar)], capture_output=True, text=True, check=True
            )
            seen = json.loads(out.stdout)[0]
            subject = seen.get("XMP-dc:Subject", [])
            subject = subject if isinstance(subject, list) else [subject]
            assert [str(k) for k in subject] == list(result.keywords) or not result.keywords
            if result.caption:
                assert seen["XMP-dc:Description"] == result.caption
        assert all(p.read_bytes()[:2] == b"\xff\xd8" for p in photos)  # the photos themselves untouched

        # Find a photo by one of its keywords, from the search box.
        tagged = next((r for r in results if r.keywords), None)
        if tagged is None:
            return
        word = tagged.keywords[0]
        expected = {r.path for r in results if word.casefold() in map(str.casefold, r.keywords)}
        qtbot.keyClicks(window.view.search, f'keyword:"{word}"')

        def shown() -> set[str]:
            return {window.model.photo_row(i).path for i in range(window.model.rowCount())}

        qtbot.waitUntil(
            lambda: window.browse.filter.query == f'keyword:"{word}"' and shown() == expected, timeout=10_000
        )
        assert tagged.path in shown() and len(shown()) < 3 or len(expected) == 3
    finally:
        window.shutdown()
    assert not engine_hosts(), "the engine host process outlived the window"
