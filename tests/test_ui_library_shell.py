"""The library window's shell, offscreen with pytest-qt on real catalogs, photos and settings files: its
menus and shortcuts, Settings shared with the quick-caption window, a sidebar that stays readable at the
minimum size, honest run progress (the first time left waits for a real rate; Pause waits for the photo in
flight; Resume on the panel that offers it), and the privacy question before photos go to another computer.

Runs use the stand-in engine of tests/fakes (a real Backend answering from pixel colours), slowed down so
pause and stop can be seen."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QApplication

from captioneer.desktop.core.engine_setup import Overrides, servers_to_ask
from captioneer.desktop.core.settings import Settings, load_settings, save_settings, settings_path
from captioneer.desktop.library.catalog import open_catalog
from captioneer.desktop.library.run_spec import RATE_AFTER_PHOTOS
from captioneer.desktop.ui.library_dialogs_view import RemoteQuestionView
from captioneer.desktop.ui.library_privacy import privacy_note
from captioneer.desktop.ui.library_run_dialog_view import RunDialogView
from captioneer.desktop.ui.library_view import MINIMUM_SIZE, preferences_keys
from captioneer.desktop.ui.library_window import LibraryWindow, open_library
from captioneer.desktop.ui.library_workers import RunRequest
from captioneer.desktop.ui.main_window import MainWindow
from captioneer.desktop.ui.settings_dialog import SettingsDialog
from tests.fakes.tagging_engine import FakeEngine, fake_config
from tests.test_ui_library import make_photos

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore(
        "OpenType support missing", "propagateSizeHints", "does not support raise", "grabbing the keyboard"
    ),
]

REMOTE = "http://192.0.2.10:11434"


class Opened:
    """Stands in for the engine host and records every time an engine was opened (photos about to go)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.count = 0

    def __call__(self, config):
        self.count += 1
        return FakeEngine(fake_config(delay=self.delay))


@pytest.fixture
def library(qtbot):
    windows: list[LibraryWindow] = []

    def make(delay: float = 0.0, local: bool = True) -> LibraryWindow:
        overrides = Overrides(engine="gguf", model="fake-model.gguf") if local else None
        opener = Opened(delay)
        window = LibraryWindow(overrides=overrides, opener=opener)
        window.opened = opener
        qtbot.addWidget(window.view)
        with qtbot.waitSignal(window.browse.filtered, timeout=10_000):
            window.view.show()
        qtbot.waitExposed(window.view)
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.shutdown()


def answer_modal(qtbot, kind: type, choose) -> None:
    """When a modal dialog of ``kind`` opens, ``choose(dialog)`` answers it (exec() blocks the test)."""

    def poll() -> None:
        dialog = QApplication.activeModalWidget()
        if isinstance(dialog, kind):
            choose(dialog)
        else:
            QTimer.singleShot(20, poll)

    QTimer.singleShot(0, poll)


def folder_run(window: LibraryWindow, root: Path) -> RunRequest:
    return RunRequest(scope=str(root), spec=window.runs.run_spec("keywords", "English"), folder=root)


# ---- menus and shortcuts ----


def test_the_menu_bar_has_every_library_command_with_its_shortcut(qtbot, library) -> None:
    window = library()
    view = window.view
    menus = {action.text().replace("&", ""): action.menu() for action in view.menuBar().actions()}
    assert list(menus) == ["File", "Edit", "Photos", "View", "Help"]

    def entries(name: str) -> list[str]:
        return [a.text().replace("&", "") for a in menus[name].actions() if not a.isSeparator()]

    assert entries("File") == ["Add Folder…", "Rescan", "Export…", "Import…", "Close Window"]
    assert entries("Edit") == ["Search", "Settings…"]
    assert entries("Photos") == ["Tag Photos…", "Pause Run", "Stop Run", "Write Metadata…", "Undo a Write…"]
    assert "Show Folders and Filters" in entries("View") and "Keyboard Shortcuts" in entries("Help")
    assert view.tag_action.shortcut() == QKeySequence("Ctrl+T")
    assert QKeySequence("Ctrl+,") in view.settings_action.shortcuts()
    assert view.settings_action.shortcuts() == preferences_keys()
    assert view.stop_action.shortcut() == QKeySequence("Ctrl+.")
    assert not view.pause_action.isEnabled() and not view.stop_action.isEnabled()  # no run yet
    view.sidebar_action.trigger()
    assert not view.splitter.widget(0).isVisible()
    view.sidebar_action.trigger()
    view.details_action.trigger()
    assert view.splitter.widget(0).isVisible() and not view.detail.isVisible()


def test_shortcuts_open_settings_and_tag_photos(qtbot, library) -> None:
    window = library()
    window.view.grid.setFocus()
    seen: list[str] = []
    answer_modal(qtbot, SettingsDialog, lambda dialog: (seen.append("settings"), dialog.reject()))
    qtbot.keyClick(window.view.grid, Qt.Key.Key_Comma, Qt.KeyboardModifier.ControlModifier)
    assert seen == ["settings"]
    for key in (Qt.Key.Key_T, Qt.Key.Key_Return):
        window.view.activateWindow()  # the closed dialog hands activation back (offscreen, it must be asked)
        qtbot.waitUntil(lambda: QApplication.activeWindow() is window.view)
        window.view.grid.setFocus()
        answer_modal(qtbot, RunDialogView, lambda dialog: (seen.append("tag"), dialog.reject()))
        qtbot.keyClick(window.view.grid, key, Qt.KeyboardModifier.ControlModifier)
    assert seen == ["settings", "tag", "tag"]


def test_escape_in_the_run_panel_stops_the_run(qtbot, tmp_path: Path, library) -> None:
    root = tmp_path / "Photos"
    make_photos(root, 10)  # a few seconds' run: time to stop it
    window = library(delay=0.3)
    with qtbot.waitSignal(window.runs.progressed, timeout=10_000):
        window.runs.start_run(folder_run(window, root))
    assert window.view.stop_action.isEnabled()
    window.view.run_panel.setFocus()
    with qtbot.waitSignal(window.runs.finished, timeout=10_000) as finished:
        qtbot.keyClick(window.view.run_panel, Qt.Key.Key_Escape)
    assert finished.args[0].state == "paused" and finished.args[0].counts.done < 10


# ---- settings shared with the quick-caption window ----


def test_settings_saved_in_the_library_reach_the_main_window_and_back(qtbot, tmp_path: Path) -> None:
    main = MainWindow(opener=lambda config: FakeEngine(fake_config()))
    qtbot.addWidget(main.view)
    themes: list[str] = []
    main.settingsChanged.connect(lambda settings: themes.append(settings.theme))  # as app.py's theme switch
    window = open_library(main)
    assert window is not None
    try:

        def choose_dark(dialog: SettingsDialog) -> None:
            dialog.theme.setCurrentIndex(dialog.theme.findData("dark"))
            dialog.buttons.accepted.emit()

        answer_modal(qtbot, SettingsDialog, choose_dark)
        window.view.settings_action.trigger()
        assert themes == ["dark"]
        assert main.settings.theme == "dark" and window.session.settings.theme == "dark"
        assert json.loads(settings_path().read_text(encoding="utf-8"))["theme"] == "dark"

        # A server engine chosen in the main window: the library shows where its photos would go.
        assert not window.view.privacy_banner.isVisible()
        main.apply_settings(
            main.settings.model_copy(
                update={"engine": "ollama", "model": "qwen3-vl:2b", "ollama_host": REMOTE}
            )
        )
        assert window.session.settings.engine == "ollama"
        assert (
            window.view.privacy_banner.isVisible() and "192.0.2.10" in window.view.privacy_banner.text.text()
        )
    finally:
        window.shutdown()
        main.shutdown()


# ---- the sidebar at the minimum size ----


def test_the_sidebar_stays_readable_at_the_minimum_size(qtbot, tmp_path: Path, library) -> None:
    root = tmp_path / "A folder with a rather long name for holiday photos"
    make_photos(root)
    window = library()
    with qtbot.waitSignal(window.browse.filtered, timeout=10_000):
        window.files.add_folder(root)
    view = window.view
    assert view.minimumSize() == MINIMUM_SIZE
    view.resize(MINIMUM_SIZE)
    qtbot.waitUntil(lambda: view.size() == MINIMUM_SIZE)
    qtbot.wait(50)
    statuses = view.statuses
    rows = statuses.count()
    last = statuses.visualItemRect(statuses.item(rows - 1))
    assert statuses.viewport().rect().contains(last), "every status filter is in view"
    for field in (view.keyword_filter, view.text_filter):
        assert field.isVisible() and field.height() >= field.minimumSizeHint().height()
        assert field.mapTo(view, field.rect().bottomLeft()).y() < view.statusBar().y()
    assert view.folders.height() >= view.folders.fontMetrics().height() * 7
    left = view.splitter.widget(0)
    assert left.width() >= 200 and not view.splitter.isCollapsible(0)
    assert view.folders.textElideMode() == Qt.TextElideMode.ElideMiddle
    assert view.grid.width() >= 2 * view.grid.gridSize().width()  # two columns of photos at least
    # The details of a photo scroll rather than stack their fields over the preview.
    view.grid.setCurrentIndex(window.model.index(0))
    qtbot.waitUntil(lambda: bool(view.detail.name.text()))
    qtbot.wait(100)
    layout = view.detail.layout()
    items = [layout.itemAt(index) for index in range(layout.count())]
    shown = [item for item in items if not item.isEmpty()]
    rects = [item.widget().geometry() if item.widget() else item.geometry() for item in shown]
    assert all(above.bottom() < below.top() for above, below in zip(rects, rects[1:], strict=False))


# ---- progress ----


def test_time_left_waits_for_a_real_rate_and_pause_waits_for_the_photo(
    qtbot, tmp_path: Path, library
) -> None:
    root = tmp_path / "Photos"
    make_photos(root, 12)
    window = library(delay=0.3)
    panel = window.view.run_panel
    progress: list = []
    shown: list[tuple[object, str]] = []  # each step with what the panel said then
    window.runs.progressed.connect(progress.append)
    window.runs.progressed.connect(lambda p: shown.append((p, panel.stats.text())))
    window.runs.start_run(folder_run(window, root))
    qtbot.waitUntil(lambda: any(p.eta_seconds is not None for p in progress), timeout=20_000)
    early = [(p, text) for p, text in shown if 1 <= p.finished < RATE_AFTER_PHOTOS]
    assert early, "a step after the first photos"
    assert all(p.eta_seconds is None and p.photos_per_minute is None for p, _ in early)
    assert all("time left: known after a few photos" in text for _, text in early)
    first = next(p for p in progress if p.eta_seconds is not None)
    assert first.finished >= RATE_AFTER_PHOTOS  # one or two photos are not a rate
    assert first.eta_seconds == pytest.approx((first.total - first.finished) / first.photos_per_minute * 60)
    assert any("photos/min" in text and "left" in text for p, text in shown if p is first)

    # Pause: the panel says it waits for the photo in flight, then that it is paused, with Resume on it.
    window.view.pause_action.trigger()
    assert panel.title.text() == "Pausing" and panel.stats.text() == "Pausing after this photo…"
    assert panel.pause_button.text() == "Pausing…" and not panel.pause_button.isEnabled()
    qtbot.waitUntil(lambda: progress[-1].paused, timeout=10_000)
    assert panel.title.text() == "Paused" and "Resume goes on with the next photo" in panel.stats.text()
    assert panel.current.text() == ""  # nothing is being tagged while paused
    assert panel.resume_button.isVisible() and not panel.pause_button.isVisible()
    assert window.view.pause_action.text() == "&Resume Run"
    frozen = progress[-1].finished
    qtbot.wait(800)
    assert progress[-1].finished == frozen
    with qtbot.waitSignal(window.runs.finished, timeout=20_000) as finished:
        panel.resume_button.click()
        assert panel.pause_button.isVisible() and panel.title.text() == "Tagging"
    assert finished.args[0].state == "done" and finished.args[0].counts.done == 12


def running(qtbot, tmp_path: Path, library) -> LibraryWindow:
    """A window tagging ten photos (a few seconds' run: time to stop it), its first photo done."""
    root = tmp_path / "Photos"
    make_photos(root, 10)
    window = library(delay=0.3)
    progress: list = []
    window.runs.progressed.connect(progress.append)
    window.runs.start_run(folder_run(window, root))
    qtbot.waitUntil(lambda: any(p.done >= 1 for p in progress), timeout=10_000)
    return window


def test_stop_offers_resume_on_the_run_panel(qtbot, tmp_path: Path, library) -> None:
    window = running(qtbot, tmp_path, library)
    panel = window.view.run_panel
    with qtbot.waitSignal(window.runs.finished, timeout=10_000) as stopped:
        panel.cancel_button.click()
    assert stopped.args[0].state == "paused"
    assert "resume" in panel.stats.text().lower()
    assert panel.resume_button.isVisible() and panel.close_button.isVisible()
    assert not window.view.banner.isVisible()  # one offer, on the panel that tells you about it
    assert window.view.pause_action.isEnabled() and window.view.pause_action.text() == "&Resume Run"
    with qtbot.waitSignal(window.runs.finished, timeout=20_000) as finished:
        panel.resume_button.click()
    assert finished.args[0].state == "done" and finished.args[0].counts.done == 10
    assert finished.args[0].run_id == stopped.args[0].run_id
    with open_catalog(readonly=True) as catalog:
        assert len(catalog.results()) == 10


def test_closing_a_stopped_run_panel_leaves_the_offer_in_the_banner(qtbot, tmp_path: Path, library) -> None:
    window = running(qtbot, tmp_path, library)
    with qtbot.waitSignal(window.runs.finished, timeout=10_000):
        window.runs.stop_run()
    window.view.run_panel.close_button.click()
    banner = window.view.banner
    assert banner.isVisible() and banner.accept_button.text() == "Resume"


# ---- privacy ----


@pytest.mark.parametrize(
    ("destinations", "allowed", "expected"),
    [
        ((), (), ()),
        ((REMOTE,), (), (REMOTE,)),
        ((REMOTE,), (REMOTE,), ()),
        (("http://a:1", "http://b:2"), ("http://b:2",), ("http://a:1",)),
    ],
)
def test_servers_to_ask(destinations, allowed, expected) -> None:
    assert servers_to_ask(destinations, allowed) == expected


def test_privacy_note_names_the_server() -> None:
    assert privacy_note(()) == ""
    assert REMOTE in privacy_note((REMOTE,)) and "another computer" in privacy_note((REMOTE,))
    assert "asks before anything is sent" in privacy_note((REMOTE,), ())
    assert "You agreed" in privacy_note((REMOTE,), (REMOTE,))


def remote_settings() -> None:
    save_settings(Settings(engine="ollama", model="qwen3-vl:2b", ollama_host=REMOTE))


def test_a_local_engine_shows_no_privacy_banner_and_never_asks(qtbot, tmp_path: Path, library) -> None:
    root = tmp_path / "Photos"
    make_photos(root, 2)
    window = library()
    assert not window.view.privacy_banner.isVisible()
    with qtbot.waitSignal(window.runs.finished, timeout=10_000):
        assert window.runs.start_run(folder_run(window, root))


def test_a_remote_server_is_named_and_asked_about_before_the_first_photo(
    qtbot, tmp_path: Path, library
) -> None:
    root = tmp_path / "Photos"
    make_photos(root, 2)
    remote_settings()
    window = library(local=False)
    banner = window.view.privacy_banner
    assert banner.isVisible() and REMOTE in banner.text.text()
    request = folder_run(window, root)

    asked: list[str] = []

    def cancel(dialog: RemoteQuestionView) -> None:
        asked.append(dialog.text())
        assert dialog.defaultButton() is dialog.cancel_button  # Enter does not send photos away
        dialog.cancel_button.click()

    answer_modal(qtbot, RemoteQuestionView, cancel)
    assert window.runs.start_run(request) is False
    assert REMOTE in asked[0] and window.opened.count == 0 and not window.runs.running
    assert load_settings().remote_servers_allowed == []
    with open_catalog(readonly=True) as catalog:
        assert catalog.photos_under(root) == []  # not even scanned: nothing started

    answer_modal(qtbot, RemoteQuestionView, lambda dialog: dialog.send_button.click())
    with qtbot.waitSignal(window.runs.finished, timeout=10_000) as finished:
        assert window.runs.start_run(request)
    assert finished.args[0].state == "done" and window.opened.count == 1
    assert load_settings().remote_servers_allowed == [REMOTE]

    # Remembered per address: the next run (and the next window) does not ask again.
    request = RunRequest(scope="again", spec=request.spec, folder=root, redo=True)
    with qtbot.waitSignal(window.runs.finished, timeout=10_000):
        assert window.runs.start_run(request)
    assert window.opened.count == 2 and banner.isVisible() and "You agreed" in banner.text.text()


def test_the_privacy_banner_opens_settings(qtbot, library) -> None:
    remote_settings()
    window = library(local=False)
    seen: list[bool] = []
    answer_modal(qtbot, SettingsDialog, lambda dialog: (seen.append(True), dialog.reject()))
    window.view.privacy_banner.accept_button.click()
    assert seen == [True]


def test_photos_menu_resumes_a_stopped_run(qtbot, tmp_path: Path, library) -> None:
    window = running(qtbot, tmp_path, library)
    with qtbot.waitSignal(window.runs.finished, timeout=10_000):
        window.view.stop_action.trigger()
    with qtbot.waitSignal(window.runs.finished, timeout=20_000) as finished:
        window.view.pause_action.trigger()
    assert finished.args[0].state == "done" and finished.args[0].counts.done == 10
    assert not window.view.pause_action.isEnabled()  # nothing left to pause or resume


def test_without_a_model_the_tag_dialog_names_the_setting_not_an_option(qtbot, library) -> None:
    window = library(local=False)  # nothing chosen in the settings either
    seen: list[tuple[str, bool]] = []

    def look(dialog: RunDialogView) -> None:
        seen.append((dialog.engine.text(), dialog.start_button.isEnabled()))
        dialog.reject()

    answer_modal(qtbot, RunDialogView, look)
    window.view.tag_action.trigger()
    text, can_start = seen[0]
    assert "Settings" in text and "--" not in text and not can_start


def test_opening_the_library_again_keeps_it_maximized(qtbot) -> None:
    main = MainWindow(opener=lambda config: FakeEngine(fake_config()))
    qtbot.addWidget(main.view)
    window = open_library(main)
    try:
        window.view.showMaximized()
        qtbot.waitUntil(window.view.isMaximized)
        window.view.showMinimized()
        qtbot.waitUntil(window.view.isMinimized)
        assert open_library(main) is window
        assert window.view.isMaximized() and not window.view.isMinimized()
    finally:
        window.shutdown()
        main.shutdown()
