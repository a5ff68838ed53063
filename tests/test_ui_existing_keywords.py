"""The library window shows the keywords already in a photo's files as read-only chips, filters by them and
offers them in keyword autocomplete (real PNGs and sidecars written by exiftool, offscreen Qt)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from PySide6.QtWidgets import QLabel

from tests.test_ui_library import filter_to, make_photos, open_window, press, stems, tag_directly

__all__ = ["open_window"]  # the fixture, shared with test_ui_library

pytestmark = [
    pytest.mark.skipif(shutil.which("exiftool") is None, reason="needs exiftool"),
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore(
        "OpenType support missing", "propagateSizeHints", "does not support raise", "grabbing the keyboard"
    ),
]


def test_review_panel_chips_filter_and_autocomplete(qtbot, tmp_path: Path, open_window) -> None:
    from PySide6.QtCore import Qt

    root = tmp_path / "Photos"
    photos = make_photos(root)
    subprocess.run(
        [
            "exiftool",
            "-q",
            "-overwrite_original",
            "-XMP-dc:Subject=Grandma",
            "-XMP-dc:Subject=Porto",
            str(photos[0]),
        ],
        check=True,
    )
    subprocess.run(
        [
            "exiftool",
            "-q",
            "-o",
            str(photos[1]) + ".xmp",
            "-XMP-digiKam:TagsList=Trips/Lisbon",
            str(photos[1]),
        ],
        check=True,
    )
    (photos[2].with_name(photos[2].name + ".xmp")).write_text("<x:xmpmeta>Tom & Jerry", encoding="utf-8")
    tag_directly(root)
    window = open_window()
    detail = window.view.detail
    assert window.selection.current_row().name == "IMG_000.png"
    assert detail.existing.keywords() == ["Grandma", "Porto"]
    assert all(isinstance(chip, QLabel) for chip in detail.existing.chips)  # shown, not editable
    assert detail.existing.isVisible() and not detail.existing_note.isVisible()
    assert "Grandma" not in detail.keywords.keywords()  # the result's own keywords stay the editable ones
    # Autocomplete offers the photo's own file keywords first, then the library's.
    suggestions = detail.keywords.input.completer().model().stringList()
    assert suggestions[:2] == ["Grandma", "Porto"]
    press(qtbot, window, Qt.Key.Key_J)
    assert detail.existing.keywords() == ["Lisbon"]
    press(qtbot, window, Qt.Key.Key_J)  # a malformed sidecar: no chips, and a note saying why
    assert detail.existing.keywords() == [] and not detail.existing.isVisible()
    assert (
        detail.existing_note.isVisible()
        and "IMG_002.png.xmp is not well-formed" in detail.existing_note.text()
    )

    filter_to(qtbot, window, keyword="lisbon")
    assert stems(window) == ["IMG_001"]
    filter_to(qtbot, window, keyword="", query="keyword:porto")
    assert stems(window) == ["IMG_000"]
    qtbot.waitUntil(lambda: "Grandma" in window.browse.completion_words(), timeout=10_000)
    assert "Lisbon" in window.browse.completion_words()
