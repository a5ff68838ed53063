"""Reviewing in the library window, offscreen with pytest-qt on real catalogs and photos: Escape cancels an
edit and unsaved edits are marked; moving on asks; keyword chips with autocomplete (Escape closes the list
first); a keyword added to or removed from every selected photo (undoable); an unusable answer cannot be
approved; status counts; search by file name; a failed photo stays visible, its counts agree with Rescan."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from captioneer.desktop.library.browse import STATUS_FILTERS, LibraryPrefs
from captioneer.desktop.library.catalog import open_catalog
from captioneer.desktop.library.runs import RunSpec, execute_run, plan_run
from captioneer.desktop.library.scanner import scan_library
from captioneer.desktop.ui.library_run_dialog_view import RunDialogView
from captioneer.desktop.ui.library_workers import RunRequest
from tests.fakes.tagging_engine import FakeEngine, fake_config
from tests.test_ui_library import (
    fake_args_config,
    fake_colour,
    filter_to,
    make_photos,
    open_window,
    press,
    stems,
    tag_directly,
)

__all__ = ["open_window"]  # the fixture, shared with test_ui_library

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore(
        "OpenType support missing", "propagateSizeHints", "does not support raise", "grabbing the keyboard"
    ),
]


def stored(stem: str):
    with open_catalog(readonly=True) as catalog:
        return next(r for r in catalog.results(current_only=True) if Path(r.path).stem == stem)


def answer_dialog(qtbot, button_text: str, always: bool = False) -> list[str]:
    """Click ``button_text`` in the next message box (ticking its checkbox first when ``always``); returns
    the box's text once it was seen."""
    seen: list[str] = []

    def click() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, click)
            return
        seen.append(box.text())
        if always:
            box.checkBox().setChecked(True)
        next(b for b in box.buttons() if b.text().replace("&", "") == button_text).click()

    QTimer.singleShot(0, click)
    return seen


@pytest.fixture
def tagged_window(tmp_path: Path, open_window):
    """The window on six photos the stand-in tagged (IMG_000 red … IMG_005 orange)."""
    root = tmp_path / "Photos"
    make_photos(root)
    tag_directly(root)
    return open_window()


def focus_grid(qtbot, window) -> None:
    """Give the grid the keyboard (offscreen, a closed message box hands activation back to nobody)."""
    window.view.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window.view, timeout=5_000)
    window.view.grid.setFocus()


def test_escape_cancels_an_edit_and_unsaved_edits_are_marked(qtbot, tagged_window) -> None:
    window = tagged_window
    detail = window.view.detail
    caption_label = detail.form.labelForField(detail.caption)
    before = stored("IMG_000").caption
    assert not detail.unsaved.isVisible() and not detail.save_button.isEnabled()

    press(qtbot, window, Qt.Key.Key_E)
    qtbot.keyClicks(detail.caption, "A new caption")
    assert detail.caption.property("unsaved") and caption_label.text() == "Caption ●"
    assert detail.unsaved.isVisible() and detail.save_button.isEnabled() and detail.revert_button.isEnabled()
    qtbot.keyClick(detail.caption, Qt.Key.Key_Escape)  # the edit is cancelled, not kept
    assert detail.caption.toPlainText() == before and detail.caption.hasFocus()
    assert not detail.caption.property("unsaved") and not detail.unsaved.isVisible()
    assert caption_label.text() == "Caption"
    qtbot.keyClick(detail.caption, Qt.Key.Key_Escape)  # nothing left to cancel: back to the grid
    assert window.view.grid.hasFocus()
    assert stored("IMG_000").caption == before and not stored("IMG_000").edited

    # Enter in a one-line field saves it.
    detail.title.setFocus()
    detail.title.clear()
    qtbot.keyClicks(detail.title, "My red square")
    assert detail.title.property("unsaved")
    qtbot.keyClick(detail.title, Qt.Key.Key_Return)
    assert stored("IMG_000").title == "My red square" and not detail.unsaved.isVisible()


def test_moving_on_with_unsaved_edits_asks(qtbot, tagged_window) -> None:
    window = tagged_window
    detail = window.view.detail
    grid = window.view.grid
    before = stored("IMG_000").caption

    detail.caption.setPlainText("Discard me")
    seen = answer_dialog(qtbot, "Discard")
    grid.setFocus()
    press(qtbot, window, Qt.Key.Key_J)
    assert seen == ["IMG_000.png has edits you have not saved."]
    assert window.selection.current_row().name == "IMG_001.png" and stored("IMG_000").caption == before

    detail.caption.setPlainText("Stay here")
    seen = answer_dialog(qtbot, "Cancel")
    focus_grid(qtbot, window)
    press(qtbot, window, Qt.Key.Key_J)
    assert seen == ["IMG_001.png has edits you have not saved."]
    qtbot.waitUntil(lambda: window.selection.current_row().name == "IMG_001.png", timeout=5_000)
    assert window.review.shown.name == "IMG_001.png" and detail.caption.toPlainText() == "Stay here"

    answer_dialog(qtbot, "Save Edits", always=True)
    focus_grid(qtbot, window)
    press(qtbot, window, Qt.Key.Key_J)
    assert stored("IMG_001").caption == "Stay here" and window.selection.current_row().name == "IMG_002.png"
    assert window.session.prefs.save_edits_on_leave

    # Chosen once: from now on moving on saves without asking.
    detail.caption.setPlainText("Saved on the way")
    focus_grid(qtbot, window)
    press(qtbot, window, Qt.Key.Key_J)
    assert stored("IMG_002").caption == "Saved on the way"
    window.shutdown()
    assert LibraryPrefs.load().save_edits_on_leave


def test_keyword_chips_with_autocomplete(qtbot, tagged_window) -> None:
    window = tagged_window
    qtbot.waitUntil(lambda: "green" in window.browse.completion_words(), timeout=10_000)
    editor = window.view.detail.keywords
    field = editor.input
    completer = field.completer()
    stored_keywords = list(stored("IMG_000").keywords)
    assert editor.keywords() == stored_keywords and [c.word for c in editor.chips] == stored_keywords
    assert "red" in stored_keywords and "red" not in completer.model().stringList()  # not offered twice

    field.setFocus()
    qtbot.keyClicks(field, "gre")
    qtbot.waitUntil(lambda: completer.popup().isVisible(), timeout=5_000)
    assert completer.currentCompletion() == "green"
    qtbot.keyClick(completer.popup(), Qt.Key.Key_Escape)  # the first Escape closes the list only
    assert not completer.popup().isVisible() and field.text() == "gre"
    assert editor.property("unsaved")
    qtbot.keyClick(field, Qt.Key.Key_Escape)  # the second cancels the edit
    assert field.text() == "" and editor.keywords() == stored_keywords and not editor.property("unsaved")

    qtbot.keyClicks(field, "gre")
    qtbot.waitUntil(lambda: completer.popup().isVisible(), timeout=5_000)
    qtbot.keyClick(completer.popup(), Qt.Key.Key_Down)
    qtbot.keyClick(completer.popup(), Qt.Key.Key_Return)  # chosen: a chip
    qtbot.waitUntil(lambda: field.text() == "", timeout=5_000)
    assert editor.keywords() == [*stored_keywords, "green"]
    qtbot.keyClicks(field, "harbour, boats;")
    assert editor.keywords()[-2:] == ["harbour", "boats"]
    qtbot.keyClick(field, Qt.Key.Key_Backspace)  # Backspace in the empty box takes the last chip
    assert editor.keywords()[-1] == "harbour"
    first = editor.chips[0]
    first.setFocus()
    qtbot.keyClick(first, Qt.Key.Key_Delete)  # a chip with the keyboard
    qtbot.mouseClick(editor.chips[0], Qt.MouseButton.LeftButton)  # and with the mouse
    expected = [*stored_keywords[2:], "green", "harbour"]
    assert editor.keywords() == expected
    assert stored("IMG_000").keywords == tuple(stored_keywords)  # nothing saved yet
    field.setFocus()
    qtbot.keyClick(field, Qt.Key.Key_Return)  # Enter in the empty box saves
    assert stored("IMG_000").keywords == tuple(expected) and not editor.property("unsaved")


def test_a_keyword_for_every_selected_photo(qtbot, tagged_window) -> None:
    window = tagged_window
    detail = window.view.detail
    grid = window.view.grid
    assert not detail.bulk.isVisible()
    for row in (1, 2, 3):
        grid.selectionModel().select(window.model.index(row), grid.selectionModel().SelectionFlag.Select)
    assert detail.bulk.isVisible() and detail.bulk_label.text() == "4 selected:"

    qtbot.keyClicks(detail.bulk_keyword, "Holiday")
    qtbot.keyClick(detail.bulk_keyword, Qt.Key.Key_Return)  # Enter adds, like Add to All
    assert [("Holiday" in stored(f"IMG_00{i}").keywords) for i in range(6)] == [True] * 4 + [False] * 2
    assert window.review.shown.name == "IMG_000.png" and detail.keywords.keywords()[-1] == "Holiday"
    detail.bulk_keyword.setText("holiday")  # any case
    qtbot.mouseClick(detail.bulk_remove, Qt.MouseButton.LeftButton)
    assert not any("Holiday" in stored(f"IMG_00{i}").keywords for i in range(6))
    grid.setFocus()  # the review keys belong to the grid, not to the button just clicked
    press(qtbot, window, Qt.Key.Key_U)  # undo the removal
    assert [("Holiday" in stored(f"IMG_00{i}").keywords) for i in range(6)] == [True] * 4 + [False] * 2
    press(qtbot, window, Qt.Key.Key_U)  # and the addition
    assert not any("Holiday" in stored(f"IMG_00{i}").keywords for i in range(6))


def tag_with_one_invalid_answer(root: Path) -> None:
    """Tag the photos; the stand-in answers IMG_001 (green) with broken JSON every time."""
    red, green = (",".join(str(v) for v in fake_colour(k)) for k in (0, 1))
    with open_catalog() as catalog:
        scan_library(catalog, root)
        plan = plan_run(
            catalog, str(root), catalog.photos_under(root), RunSpec(image_tokens=16), fake_args_config()
        )
        execute_run(catalog, plan.run_id, FakeEngine(fake_config(invalid_on=(green,))))
    assert red  # the others answer normally


def test_an_unusable_answer_cannot_be_approved(qtbot, tmp_path: Path, open_window) -> None:
    root = tmp_path / "Photos"
    make_photos(root)
    tag_with_one_invalid_answer(root)
    broken = stored("IMG_001")
    assert not broken.caption and not broken.keywords and "invalid output" in (broken.review_reason or "")
    window = open_window()
    detail = window.view.detail
    messages: list[str] = []
    window.message.connect(messages.append)
    press(qtbot, window, Qt.Key.Key_J)
    assert window.review.shown.name == "IMG_001.png"
    assert not detail.approve_button.isEnabled() and detail.reject_button.isEnabled()
    assert detail.problem.isVisible() and "answer could not be used" in detail.problem.text()
    assert "invalid output" in detail.status.text()
    assert detail.retag_button.isVisible() and detail.edit_button.isVisible()

    press(qtbot, window, Qt.Key.Key_A)  # the shortcut skips it and says so
    assert stored("IMG_001").review == "needs_review"
    assert messages[-1].startswith("Nothing approved: 1 photo with no usable answer (IMG_001.png)")

    grid = window.view.grid
    for row in (0, 2):
        grid.selectionModel().select(window.model.index(row), grid.selectionModel().SelectionFlag.Select)
    assert detail.approve_button.isEnabled()  # the others can be approved: the empty one is skipped
    assert window.review.approve() == 2
    assert [stored(f"IMG_00{i}").review for i in range(3)] == ["approved", "needs_review", "approved"]
    assert messages[-1] == "Approved: 2 photos; skipped 1 photo with no usable answer (IMG_001.png)."

    # Re-tag offers the run dialog on the selection, tagging again.
    window.selection.select_row(1)
    shown: list[tuple[bool, bool]] = []

    def look_and_close() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, RunDialogView):
            QTimer.singleShot(20, look_and_close)
            return
        shown.append((dialog.scope_selection.isChecked(), dialog.redo.isChecked()))
        dialog.reject()

    QTimer.singleShot(0, look_and_close)
    qtbot.mouseClick(detail.retag_button, Qt.MouseButton.LeftButton)
    assert shown == [(True, True)]

    # Edit: typing a caption makes it approvable.
    focus_grid(qtbot, window)
    qtbot.mouseClick(detail.edit_button, Qt.MouseButton.LeftButton)
    assert detail.caption.hasFocus()
    qtbot.keyClicks(detail.caption, "A green square.")
    assert detail.approve_button.isEnabled()
    qtbot.mouseClick(detail.approve_button, Qt.MouseButton.LeftButton)
    assert stored("IMG_001").review == "approved" and stored("IMG_001").caption == "A green square."


def count_texts(window) -> dict[str, str]:
    return {status: window.view.statuses.item(i).text() for i, status in enumerate(STATUS_FILTERS)}


def test_status_counts_and_file_name_search(qtbot, tmp_path: Path, open_window) -> None:
    root = tmp_path / "Photos"
    make_photos(root)
    tag_directly(root)
    Image.new("RGB", (32, 32), (1, 2, 3)).save(root / "2024" / "IMG_120.png")
    with open_catalog() as catalog:
        scan_library(catalog, root)
    window = open_window()
    qtbot.waitUntil(lambda: count_texts(window)["new"] == "New (6)", timeout=10_000)
    assert count_texts(window)["all"] == "All photos (7)"
    assert count_texts(window)["untagged"] == "Not tagged yet (1)"
    assert count_texts(window)["approved"] == "Approved (0)"

    with qtbot.waitSignal(window.browse.countsShown, timeout=10_000):
        press(qtbot, window, Qt.Key.Key_A)
    assert count_texts(window)["approved"] == "Approved (1)" and count_texts(window)["new"] == "New (5)"

    # File names: the name: field with a wildcard, and plain words.
    with qtbot.waitSignal(window.browse.filtered, timeout=10_000):
        qtbot.keyClicks(window.view.search, "name:img_12*")
    assert stems(window) == ["IMG_120"]
    filter_to(qtbot, window, query="IMG_00")
    assert stems(window) == [f"IMG_00{i}" for i in range(6)]
    # The counts follow the search: what each status would show with it.
    qtbot.waitUntil(lambda: count_texts(window)["all"] == "All photos (6)", timeout=10_000)
    assert count_texts(window)["untagged"] == "Not tagged yet (0)"


def test_a_failed_photo_stays_visible_and_counts_agree_with_rescan(
    qtbot, tmp_path: Path, open_window
) -> None:
    root = tmp_path / "Photos"
    make_photos(root)
    (root / "2024" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # cut short
    tag_directly(root)
    window = open_window()
    messages: list[str] = []
    window.message.connect(messages.append)
    assert "broken" in stems(window)
    qtbot.waitUntil(lambda: count_texts(window)["failed"] == "Failed (1)", timeout=10_000)

    with qtbot.waitSignal(window.browse.filtered, timeout=10_000):
        window.view.statuses.setCurrentRow(STATUS_FILTERS.index("failed"))
    assert stems(window) == ["broken"]
    detail = window.view.detail
    assert window.review.shown.name == "broken.png"
    assert detail.problem.isVisible() and detail.problem.text().startswith("This file cannot be read: ")
    assert detail.status.text() == "Failed: cannot be read"
    assert not detail.approve_button.isEnabled()

    call = window.files.rescan()
    qtbot.waitUntil(lambda: any(m.startswith("Rescanned") for m in messages), timeout=20_000)
    assert call is not None
    summary = next(m for m in messages if m.startswith("Rescanned"))
    photos = int(re.search(r"(\d+) photos", summary).group(1))
    unreadable = int(re.search(r"(\d+) unreadable", summary).group(1))
    filter_to(qtbot, window, status="all")
    qtbot.waitUntil(lambda: count_texts(window)["all"] == f"All photos ({photos})", timeout=10_000)
    assert count_texts(window)["failed"] == f"Failed ({unreadable})"
    assert window.model.rowCount() == photos == 7


def test_status_counts_follow_a_run_while_it_goes(qtbot, tmp_path: Path, open_window) -> None:
    root = tmp_path / "Photos"
    make_photos(root)
    with open_catalog() as catalog:
        scan_library(catalog, root)
    window = open_window(delay=0.4)
    qtbot.waitUntil(lambda: count_texts(window)["untagged"] == "Not tagged yet (6)", timeout=10_000)
    request = RunRequest(scope=str(root), spec=window.runs.run_spec("keywords", "English"), folder=root)
    with qtbot.waitSignal(window.runs.finished, timeout=30_000):
        window.runs.start_run(request)
        # Mid-run, the counts already moved: some photos are new, some still untagged.
        qtbot.waitUntil(
            lambda: (
                count_texts(window)["new"] not in ("New (0)", "New (6)")
                and count_texts(window)["untagged"] != "Not tagged yet (6)"
            ),
            timeout=20_000,
        )
    qtbot.waitUntil(lambda: count_texts(window)["new"] == "New (6)", timeout=10_000)
    assert count_texts(window)["untagged"] == "Not tagged yet (0)"


def test_closing_the_window_with_unsaved_edits_asks(qtbot, tagged_window) -> None:
    window = tagged_window
    window.view.detail.caption.setPlainText("Typed just before closing")
    seen = answer_dialog(qtbot, "Save Edits")
    window.view.close()
    assert seen == ["IMG_000.png has edits you have not saved."] and window.closed
    assert stored("IMG_000").caption == "Typed just before closing"
