"""The quick-caption window keeps answers: Caption runs only what needs it, Re-run keeps a history, follow-ups
stay under the caption, a setup error shows once in a banner, lost answers are asked about, one file is one
card; and the grid, the privacy banner and question, and the shortcuts. Real widgets, real settings files, the
real gguf engine on the tiny model."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication, QKeySequence
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QDialog, QMessageBox

from captioneer.backends.base import Backend, BackendInfo, Capabilities
from captioneer.backends.errors import Cancelled
from captioneer.backends.registry import options_class
from captioneer.desktop.core.settings import Settings, load_settings, save_settings
from captioneer.desktop.ui.card_view import CardState
from captioneer.desktop.ui.main_window import MainWindow
from tests.test_ui_quick_caption import (
    ANSWER_TIMEOUT_MS,
    SHORT,
    gguf_args,
    open_window,  # noqa: F401 (a fixture)
    photo,
    wait_results,
)

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore("OpenType support missing", "propagateSizeHints"),
]

REMOTE = "http://192.0.2.10:8080/v1"  # TEST-NET-1: an address off this computer that nothing answers


class Dialogs:
    """Answers the window's questions and dialogs as a user would, and remembers what each asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.answers: list[str] = []
        self.timer = QTimer()
        self.timer.setInterval(30)
        self.timer.timeout.connect(self._poll)
        self.timer.start()

    def answer(self, *buttons: str) -> None:
        self.answers.extend(buttons)

    def _poll(self) -> None:
        box = QApplication.activeModalWidget()
        if box is None or not box.isVisible():
            return
        if isinstance(box, QMessageBox):
            self.asked.append(box.text())
            label = self.answers.pop(0) if self.answers else "Cancel"
            next(b for b in box.buttons() if b.text().replace("&", "") == label).click()
        elif isinstance(box, QDialog):
            self.asked.append(type(box).__name__)
            box.reject()


@pytest.fixture
def dialogs():
    helper = Dialogs()
    yield helper
    helper.timer.stop()


def idle(qtbot, window) -> None:
    qtbot.waitUntil(lambda: not window.busy, timeout=ANSWER_TIMEOUT_MS)


def test_caption_keeps_answers_rerun_keeps_history_and_follow_ups_stay_under_the_answer(
    qtbot, open_window, tiny_gguf, tmp_path, dialogs  # noqa: F811
) -> None:
    window = open_window(gguf_args(tiny_gguf), SHORT)
    view = window.view
    assert not view.privacy_banner.isVisible() and "never leave" in view.drop_hint.text()  # a local engine
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    window.add_paths([photo(tmp_path / "a.png"), photo(tmp_path / "b.png", "blue"), broken])
    wait_results(qtbot, window, 3)
    idle(qtbot, window)
    cards = {card.path.name: card for card in window.card_list.cards.values()}
    a = cards["a.png"]
    first_answer = a.view.text.text()
    assert a.view.state is CardState.DONE and first_answer

    # Caption again runs only the failed card; good answers are kept.
    ran: list[str] = []
    window.resultReady.connect(lambda result: ran.append(Path(result.path).name))
    view.run_button.click()
    qtbot.waitUntil(lambda: len(ran) == 1, timeout=ANSWER_TIMEOUT_MS)
    idle(qtbot, window)
    assert ran == ["broken.jpg"]
    assert a.view.text.text() == first_answer and len(a.history.answers) == 1

    # Re-run is explicit, and the earlier answer stays in the card's history.
    a.view.rerun_button.click()
    qtbot.waitUntil(lambda: len(ran) == 2, timeout=ANSWER_TIMEOUT_MS)
    idle(qtbot, window)
    assert len(a.history.answers) == 2 and a.view.history_label.text().endswith("2 of 2")
    assert a.view.earlier_button.isEnabled() and not a.view.later_button.isEnabled()
    a.view.earlier_button.click()
    assert a.view.text.text() == first_answer and a.view.history_label.text().endswith("1 of 2")
    assert "Short caption" in a.view.history_label.text() or "caption" in a.view.history_label.text().lower()

    # A follow-up is kept under the answer it follows; Copy text copies exactly what the card shows.
    a.view.follow_up.setText("What colour is the circle?")
    a.view.ask_button.click()
    qtbot.waitUntil(lambda: len(ran) == 3, timeout=ANSWER_TIMEOUT_MS)
    idle(qtbot, window)
    shown = a.view.text.text()
    assert shown.startswith(first_answer + "\n\nQ: What colour is the circle?\nA: ")
    assert a.history.current is a.history.answers[0] and len(a.history.answers) == 2
    a.view.copy_text.click()
    assert QGuiApplication.clipboard().text() == shown

    # Clear List asks while answers were not copied; Cancel keeps them.
    dialogs.answer("Cancel")
    view.clear_action.trigger()
    assert dialogs.asked == ["2 answers have not been copied. Discard them?"]
    assert len(window.card_list.cards) == 3
    dialogs.answer("Cancel", "Cancel")
    view.close()  # closing the window asks the same, and so does File ▸ Quit
    view.quit_action.trigger()
    assert view.isVisible() and len(dialogs.asked) == 3 and len(set(dialogs.asked)) == 1

    # Copy all copies what each card shows; then nothing is lost and Clear List asks nothing.
    a.view.later_button.click()
    view.copy_all_text_action.trigger()
    copied = QGuiApplication.clipboard().text()
    assert f"a.png\n{a.view.text.text()}\n" in copied
    assert f"b.png\n{cards['b.png'].view.text.text()}" in copied
    a.view.earlier_button.click()
    view.copy_all_text_action.trigger()
    assert f"a.png\n{shown}\n" in QGuiApplication.clipboard().text()
    view.clear_action.trigger()
    assert len(dialogs.asked) == 3 and not window.card_list.cards


def test_caption_asks_a_new_question_of_photos_that_answered_another(
    qtbot, open_window, tiny_gguf, tmp_path  # noqa: F811
) -> None:
    window = open_window(gguf_args(tiny_gguf), SHORT)
    view = window.view
    view.task_combo.setCurrentIndex(view.task_combo.findData("question"))
    view.question_edit.setText("How many circles are there?")
    window.add_paths([photo(tmp_path / "a.png")])
    wait_results(qtbot, window, 1)
    idle(qtbot, window)
    view.run_button.click()  # the same question again: answered already, nothing runs
    assert not window.busy
    view.question_edit.setText("What colour is the circle?")
    view.run_button.click()
    assert window.busy
    wait_results(qtbot, window, 1)
    idle(qtbot, window)
    (card,) = window.card_list.cards.values()
    assert [answer.question for answer in card.history.answers] == [
        "How many circles are there?", "What colour is the circle?"
    ]


def test_a_settings_error_shows_once_in_a_banner_and_never_overwrites_a_good_answer(
    qtbot, open_window, tiny_gguf, tmp_path, dialogs  # noqa: F811
) -> None:
    model, mmproj = tiny_gguf
    good = Settings(engine="gguf", model=str(model), mmproj=str(mmproj), max_tokens=24)
    window = open_window(None, good)
    view = window.view
    window.add_paths([photo(tmp_path / "a.png"), photo(tmp_path / "b.png", "blue")])
    wait_results(qtbot, window, 2)
    idle(qtbot, window)
    answers = {card.id: card.view.text.text() for card in window.card_list.cards.values()}

    window.apply_settings(good.model_copy(update={"model": str(tmp_path / "gone.gguf")}))
    view.rerun_all_action.trigger()
    wait_results(qtbot, window, 2)
    idle(qtbot, window)
    assert view.banner.isVisible() and "gone.gguf" in view.banner_text.text()
    for card in window.card_list.cards.values():
        assert card.view.state is CardState.DONE and card.view.text.text() == answers[card.id]
        assert len(card.history.answers) == 1 and "gone.gguf" not in card.view.text.text()
    assert view.banner_button.text() == "Open Model Manager…"  # a missing model file: choose the files again
    view.banner_button.click()  # the button opens the Model Manager, where the files are chosen again
    assert dialogs.asked == ["ModelManagerDialog"]

    window.apply_settings(good)
    assert not view.banner.isVisible()
    view.run_button.click()  # every card has its answer: nothing runs
    assert not window.busy and "Re-run All" in view.statusBar().currentMessage()
    dialogs.answer("Discard")
    view.clear_action.trigger()
    assert dialogs.asked[-1] == "2 answers have not been copied. Discard them?" and not window.card_list.cards


def test_the_same_file_added_twice_is_one_card(qtbot, open_window, tmp_path) -> None:  # noqa: F811
    window = open_window()
    album = tmp_path / "album"
    album.mkdir()
    a = photo(album / "a.png")
    (tmp_path / "link.png").symlink_to(a)
    batches: list[object] = []
    window.background.relay.collected.connect(batches.append)
    for spelling in (a, tmp_path / "link.png", album / ".." / "album" / "a.png", album):
        window.add_paths([spelling])
        count = len(batches)
        qtbot.waitUntil(lambda count=count: len(batches) == count + 1)
    assert len(window.card_list.cards) == 1
    assert "already in the list" in window.view.statusBar().currentMessage()


def test_the_cards_fill_a_wide_window_in_columns_and_one_column_at_the_minimum_size(
    qtbot, open_window, tmp_path  # noqa: F811
) -> None:
    window = open_window()
    view = window.view
    view.resize(1600, 1000)
    window.add_paths([photo(tmp_path / "first.png")])
    cards = window.card_list.cards
    qtbot.waitUntil(lambda: len(cards) == 1)
    first = next(iter(cards.values())).view
    qtbot.waitUntil(lambda: 0 < first.width() < 1600 / 2)  # one photo takes one column, not the whole row
    window.add_paths([photo(tmp_path / f"{i}.png") for i in range(5)])
    qtbot.waitUntil(lambda: len(cards) == 6)
    qtbot.waitUntil(lambda: len({card.view.x() for card in cards.values()}) >= 3)
    assert view.card_grid.columns >= 3
    view.resize(view.minimumSize())
    qtbot.waitUntil(lambda: view.card_grid.columns == 1)
    viewport = view.scroll.viewport().width()
    qtbot.waitUntil(lambda: len({card.view.x() for card in cards.values()}) == 1)
    assert all(card.view.geometry().right() <= viewport for card in cards.values())
    bar = (view.open_button, view.paste_button, view.task_combo, view.language_combo, view.run_button,
           view.rerun_all_button, view.cancel_button, view.copy_all_button)
    clipped = [type(w).__name__ for w in bar if w.width() < w.sizeHint().width()]
    assert clipped == [] and view.narrow_bar, "nothing in the task bar is squeezed at the minimum size"


class FakeRemoteServer(Backend):
    """A fake of a server off this computer (none can be reached from a test): it records each photo it is
    sent and streams its answer slowly, until cancelled, as a busy server does."""

    name = "openai"
    capabilities = Capabilities()
    Options = options_class("openai")
    received: list[object] = []

    def load(self, progress=None, cancel=None) -> None:
        return None

    def generate(self, request, cancel=None):
        FakeRemoteServer.received.append(request)
        yield "A red circle"
        deadline = time.monotonic() + 10
        while not (cancel and cancel.cancelled) and time.monotonic() < deadline:
            time.sleep(0.01)
        if cancel and cancel.cancelled:
            raise Cancelled()  # what the real server engines do between tokens
        yield "."

    def unload(self) -> None:
        return None

    def info(self) -> BackendInfo:
        return BackendInfo(engine="openai", model="qwen3-vl-2b")


def test_a_remote_server_shows_a_banner_and_asks_once_before_the_first_photo_leaves(
    qtbot, tmp_path, dialogs
) -> None:
    save_settings(Settings(engine="openai", model="qwen3-vl-2b", openai_base_urls=[REMOTE]))
    FakeRemoteServer.received = []
    window = MainWindow(opener=FakeRemoteServer)
    view = window.view
    view.show()
    try:
        assert view.privacy_banner.isVisible() and REMOTE in view.privacy_text.text()
        assert "never leave" not in view.drop_hint.text()

        dialogs.answer("Cancel")
        window.add_paths([photo(tmp_path / "a.png")])
        cards = window.card_list.cards
        qtbot.waitUntil(lambda: bool(cards) and "not sent" in next(iter(cards.values())).view.chip.text())
        assert dialogs.asked == [f"Send photos to {REMOTE}?"]
        assert not window.busy and FakeRemoteServer.received == []
        assert load_settings().remote_servers_allowed == []

        dialogs.answer("Send Photos")
        view.run_button.click()
        assert len(dialogs.asked) == 2 and load_settings().remote_servers_allowed == [REMOTE]
        qtbot.waitUntil(lambda: len(FakeRemoteServer.received) == 1)
        view.activateWindow()
        qtbot.waitUntil(view.isActiveWindow)
        QTest.keyClick(view, Qt.Key.Key_Escape)  # Escape cancels while busy
        idle(qtbot, window)
        assert next(iter(cards.values())).view.state is CardState.CANCELLED

        view.run_button.click()  # the address is remembered: no second question
        qtbot.waitUntil(lambda: len(FakeRemoteServer.received) == 2)
        assert len(dialogs.asked) == 2
        window.cancel()
        idle(qtbot, window)
    finally:
        window.shutdown()
        view.close()
        view.deleteLater()


def test_shortcuts_for_caption_cancel_settings_open_and_paste_show_in_menus_and_tooltips(
    qtbot, open_window, dialogs  # noqa: F811
) -> None:
    window = open_window()
    view = window.view
    native = QKeySequence.SequenceFormat.NativeText
    assert view.run_action.shortcut() == QKeySequence("Ctrl+Return")
    assert view.cancel_action.shortcut() == QKeySequence(Qt.Key.Key_Escape)
    assert view.settings_action.shortcuts(), "Settings needs a key on every platform"
    for action, button in ((view.run_action, view.run_button), (view.cancel_action, view.cancel_button),
                           (view.open_action, view.open_button), (view.paste_action, view.paste_button)):
        assert action.shortcut().toString(native) in button.toolTip()
    menu = next(a.menu() for a in view.menuBar().actions() if a.text() == "&Caption")
    assert menu.actions() == [view.run_action, view.rerun_all_action, view.cancel_action]
    assert not view.cancel_action.isEnabled()  # Escape cancels only while busy

    view.activateWindow()
    qtbot.waitUntil(view.isActiveWindow)
    QTest.keyClick(view, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert "Add photos first" in view.statusBar().currentMessage()
    QTest.keySequence(view, view.settings_action.shortcuts()[0])
    assert dialogs.asked == ["SettingsDialog"]
