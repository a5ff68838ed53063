"""The library window tags a folder holding a photo and a video clip with the real gguf engine (the tiny
model, through the engine host process): the engine, sized for one photo at the image budget, gets a context
that holds the clip's frames too, so the clip is answered whole rather than asked again at half its budget."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from PIL import Image

from captioneer.desktop.core.engine_setup import Overrides
from captioneer.desktop.core.settings import Settings, save_settings
from captioneer.desktop.library.catalog import open_catalog
from captioneer.desktop.ui.library_window import LibraryWindow
from tests.video_clips import KINDS, make_clip

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore("OpenType support missing", "propagateSizeHints"),
]


def test_the_window_tags_a_clip_with_a_context_that_holds_it(qtbot, tmp_path: Path, tiny_gguf) -> None:
    model, mmproj = tiny_gguf
    save_settings(Settings(temperature=0.0, max_tokens=32, first_run_done=True, video_tokens=3072))
    args = Overrides(
        engine="gguf", model=str(model), image_tokens=64, options={"mmproj": str(mmproj), "threads": 2}
    )
    root = tmp_path / "Phone"
    root.mkdir()
    Image.new("RGB", (256, 192), "seagreen").save(root / "IMG_0001.jpg")
    make_clip(root / "VID_0002.mp4", dataclasses.replace(KINDS["mp4"], width=1280, height=704), seconds=2.0)
    window = LibraryWindow(overrides=args)
    qtbot.addWidget(window.view)
    try:
        with qtbot.waitSignal(window.browse.filtered, timeout=10_000):
            window.view.show()
        with qtbot.waitSignal(window.browse.filtered, timeout=20_000):
            window.files.add_folder(root)
        assert window.model.rowCount() == 2
        spec = window.runs.run_spec("keywords", "English")
        assert spec.video_tokens == 3072  # the Settings default
        with qtbot.waitSignal(window.runs.finished, timeout=240_000) as finished:
            window.runs.start_run(window.runs.run_request("folder", spec))
        outcome = finished.args[0]
        assert outcome.state == "done", outcome.message
        with open_catalog(readonly=True) as catalog:
            by_name = {Path(photo.path).name: photo for photo in catalog.photos_under(root)}
            rows = catalog.db.execute(
                "SELECT photos.path, results.image_tokens FROM results JOIN photos ON photos.id = photo_id"
            ).fetchall()
            tokens = {Path(path).name: count for path, count in rows}
        assert set(tokens) == {"IMG_0001.jpg", "VID_0002.mp4"}, outcome.message
        # The clip was asked whole at its own budget: more tokens than the context sized for one photo holds.
        assert 2048 < tokens["VID_0002.mp4"] <= 3072
        assert by_name["VID_0002.mp4"].status == "present"
    finally:
        window.shutdown()
