"""Both windows remember their place (size, position, maximized, the library's splitter) in windows.json in
the test's own config folder, and come back on a screen that is still there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtGui import QGuiApplication

from captioneer.desktop.core.engine_setup import Overrides
from captioneer.desktop.core.paths import config_dir
from captioneer.desktop.ui.geometry import fit_on_screen, geometry_path, load_places
from captioneer.desktop.ui.library_window import LibraryWindow
from captioneer.desktop.ui.main_window import MainWindow
from tests.fakes.tagging_engine import FakeEngine, fake_config

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore("OpenType support missing", "propagateSizeHints", "does not support raise"),
]

SCREEN = (0, 0, 1920, 1080)
SECOND = (1920, 0, 1280, 1024)


@pytest.mark.parametrize(
    ("rect", "screens", "minimum", "expected"),
    [
        ((100, 80, 900, 600), [SCREEN], (0, 0), (100, 80, 900, 600)),  # fits: unchanged
        ((2100, 50, 900, 600), [SCREEN, SECOND], (0, 0), (2100, 50, 900, 600)),  # on the second screen
        ((2100, 50, 900, 600), [SCREEN], (0, 0), (1020, 50, 900, 600)),  # second screen unplugged
        ((1500, 900, 900, 600), [SCREEN], (0, 0), (1020, 480, 900, 600)),  # hangs off the corner
        ((-400, -300, 900, 600), [SCREEN], (0, 0), (0, 0, 900, 600)),  # above and left of the screen
        ((0, 0, 2560, 1440), [(0, 0, 1366, 768)], (0, 0), (0, 0, 1366, 768)),  # the screen shrank
        ((10, 10, 300, 200), [SCREEN], (800, 500), (10, 10, 800, 500)),  # smaller than the window allows
        ((5, 5, 100, 100), [], (0, 0), (5, 5, 100, 100)),  # no screen known: leave it
    ],
)
def test_fit_on_screen(rect, screens, minimum, expected) -> None:
    assert fit_on_screen(rect, screens, minimum) == expected


def library(qtbot) -> LibraryWindow:
    window = LibraryWindow(
        overrides=Overrides(engine="gguf", model="fake-model.gguf"),
        opener=lambda config: FakeEngine(fake_config()),
    )
    qtbot.addWidget(window.view)
    return window


def screen_area() -> tuple[int, int, int, int]:
    area = QGuiApplication.primaryScreen().availableGeometry()
    return area.x(), area.y(), area.width(), area.height()


def test_the_library_window_reopens_where_it_was_closed(qtbot, captioneer_home: Path) -> None:
    assert not geometry_path().exists()
    window = library(qtbot)
    window.view.show()
    qtbot.waitExposed(window.view)
    minimum = window.view.minimumSize().expandedTo(window.view.minimumSizeHint())
    size = (minimum.width(), minimum.height() + 23)  # as wide as it goes: the offscreen screen is narrower
    window.view.resize(*size)
    window.view.move(21, 17)
    window.view.splitter.setSizes([301, 500, 350])
    qtbot.wait(50)
    splitter = window.view.splitter.sizes()
    window.view.close()  # closing is what saves it
    assert window.closed
    assert geometry_path().parent == config_dir() and str(captioneer_home) in str(geometry_path())
    saved = load_places()["library"]
    assert saved.rect[2:] == size and saved.splitter == tuple(splitter)

    again = library(qtbot)
    try:
        # The offscreen screen is 800 px square: a window wider than it comes back as narrow as it allows.
        _, _, screen_width, screen_height = screen_area()
        expected = tuple(
            max(min(saved, screen), least)
            for saved, screen, least in zip(
                size, (screen_width, screen_height), (minimum.width(), minimum.height()), strict=True
            )
        )
        assert (again.view.width(), again.view.height()) == expected
        assert again.view.x() == min(21, max(0, screen_width - expected[0])) and again.view.y() == min(
            17, max(0, screen_height - expected[1])
        )
        again.view.show()
        qtbot.waitExposed(again.view)
        assert again.view.splitter.sizes() == splitter
    finally:
        again.view.close()


def test_a_place_off_every_screen_comes_back_on_screen(qtbot) -> None:
    x, y, width, height = screen_area()
    geometry_path().parent.mkdir(parents=True, exist_ok=True)
    far = {"rect": [x + width + 3000, y + height + 2000, width * 3, height * 3], "maximized": False}
    geometry_path().write_text(json.dumps({"library": far, "main": far}), encoding="utf-8")
    window = library(qtbot)
    try:
        view = window.view
        assert view.width() <= max(width, view.minimumWidth()) and view.height() <= max(
            height, view.minimumHeight()
        )
        assert x <= view.x() < x + width and y <= view.y() < y + height
    finally:
        window.shutdown()


def test_the_main_window_remembers_its_size_and_maximized(qtbot) -> None:
    window = MainWindow(opener=lambda config: FakeEngine(fake_config()))
    qtbot.addWidget(window.view)
    try:
        window.view.show()
        qtbot.waitExposed(window.view)
        window.view.resize(701, 503)
        qtbot.wait(50)
        window.view.close()
        assert load_places()["main"].rect[2:] == (701, 503)
    finally:
        window.shutdown()
    again = MainWindow(opener=lambda config: FakeEngine(fake_config()))
    qtbot.addWidget(again.view)
    try:
        assert (again.view.width(), again.view.height()) == (701, 503)
        again.view.show()
        qtbot.waitExposed(again.view)
        again.view.showMaximized()
        qtbot.waitUntil(again.view.isMaximized)
        again.view.close()
        place = load_places()["main"]
        assert place.maximized and place.rect[2:] == (701, 503)
    finally:
        again.shutdown()
    third = MainWindow(opener=lambda config: FakeEngine(fake_config()))
    qtbot.addWidget(third.view)
    try:
        third.view.show()
        qtbot.waitUntil(third.view.isMaximized)
    finally:
        third.view.close()
        third.shutdown()


def test_an_unreadable_geometry_file_opens_at_the_default_size(qtbot) -> None:
    geometry_path().parent.mkdir(parents=True, exist_ok=True)
    geometry_path().write_text("{not json", encoding="utf-8")
    window = library(qtbot)
    try:
        assert load_places() == {}
        assert window.view.width() > 0
    finally:
        window.shutdown()
