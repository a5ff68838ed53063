"""The library window, offscreen with pytest-qt, on real catalogs and photos: filters and search, keyboard
review with undo, editing with keyword autocomplete, runs with pause/stop/resume across a reopened window,
the metadata diff, write and undo (checked with exiftool), and CSV/JSON export and import.

Runs here use the stand-in engine of tests/fakes (a real Backend answering from pixel colours) so they take
a second; tests/test_ui_library_gguf.py runs the real gguf engine through the engine host process.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QModelIndex, Qt, QTimer
from PySide6.QtWidgets import QApplication

from captioneer.backends.base import EngineConfig
from captioneer.backends.errors import ConfigurationError
from captioneer.desktop.core.engine_setup import Overrides
from captioneer.desktop.library.browse import STATUS_FILTERS
from captioneer.desktop.library.catalog import open_catalog
from captioneer.desktop.library.runs import RunSpec, execute_run, plan_run
from captioneer.desktop.library.scanner import scan_library
from captioneer.desktop.ui.library_model import FAILED_ROLE, ROW_ROLE
from captioneer.desktop.ui.library_thumbs import thumbs_dir
from captioneer.desktop.ui.library_window import LibraryWindow
from captioneer.desktop.ui.library_workers import RunOutcome, RunRequest
from tests.fakes.tagging_engine import FakeEngine, fake_config

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    # The offscreen platform's own notices (a popup asks to raise itself and grab the keyboard) are not ours.
    pytest.mark.qt_log_ignore(
        "OpenType support missing", "propagateSizeHints", "does not support raise", "grabbing the keyboard"
    ),
]


def fake_colour(k: int) -> tuple[int, int, int]:
    """A pixel colour the stand-in engine names COLOURS[k] (red, green, blue, yellow, purple, orange, …)."""
    return (224, 0, 8 * ((k - 7) % 8) + 4)


def make_photos(root: Path, count: int = 6) -> list[Path]:
    """PNG photos (exact colours, so the stand-in's answers are known): 2023/IMG_000.png is "red", then
    green, blue; 2024/IMG_003.png is "yellow", then purple, orange."""
    paths = []
    for i in range(count):
        path = root / ("2023" if i < 3 else "2024") / f"IMG_{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (320, 240), fake_colour(i)).save(path)
        paths.append(path)
    return paths


def tag_directly(root: Path) -> None:
    """A finished run made by the core (as `captioneer tag` would), so the window has results to review."""
    with open_catalog() as catalog:
        scan_library(catalog, root)
        config = fake_config()
        spec = RunSpec(image_tokens=16)
        plan = plan_run(catalog, str(root), catalog.photos_under(root), spec, fake_args_config())
        execute_run(catalog, plan.run_id, FakeEngine(config))


def fake_args() -> Overrides:
    return Overrides(engine="gguf", model="fake-model.gguf")


def fake_args_config() -> EngineConfig:
    return EngineConfig(engine="gguf", model="fake-model.gguf", image_tokens=1024)


def fake_opener(delay: float = 0.0):
    """Stands in for the engine host: the fake engine, slowed down so pause and stop can be seen."""
    return lambda config: FakeEngine(fake_config(delay=delay))


@pytest.fixture
def open_window(qtbot):
    windows: list[LibraryWindow] = []

    def make(delay: float = 0.0) -> LibraryWindow:
        # Not qtbot.addWidget: qtbot closes its widgets before this fixture ends, and closing a window with
        # unsaved edits (left by a failing test) would ask about them and wait forever.
        window = LibraryWindow(overrides=fake_args(), opener=fake_opener(delay))
        with qtbot.waitSignal(window.browse.filtered, timeout=10_000):
            window.view.show()
        qtbot.waitExposed(window.view)
        window.view.activateWindow()
        window.view.grid.setFocus()
        windows.append(window)
        return window

    yield make
    for window in windows:
        if not window.closed:
            window.review.revert_edits()
        window.shutdown()
        window.view.close()
        window.view.deleteLater()


def stems(window: LibraryWindow) -> list[str]:
    return [Path(window.model.photo_row(row).path).stem for row in range(window.model.rowCount())]


def reviews(root: Path) -> dict[str, str]:
    with open_catalog(readonly=True) as catalog:
        return {Path(r.path).stem: r.review for r in catalog.results(current_only=True)}


def filter_to(qtbot, window: LibraryWindow, **fields: str) -> None:
    with qtbot.waitSignal(window.browse.filtered, timeout=10_000):
        assert window.browse.apply_filter(**fields)


def press(qtbot, window: LibraryWindow, key: Qt.Key, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    qtbot.keyClick(window.view.grid, key, modifier)


def test_window_shows_the_library_and_filters_it(qtbot, tmp_path: Path, open_window) -> None:
    root = tmp_path / "Photos"
    make_photos(root)
    tag_directly(root)
    window = open_window()
    assert window.model.rowCount() == 6
    qtbot.waitUntil(lambda: window.view.folders.topLevelItemCount() == 2, timeout=10_000)
    library = window.view.folders.topLevelItem(1)
    assert library.text(0) == "Photos" and library.text(1) == "6"
    assert [library.child(i).text(0) for i in range(library.childCount())] == ["2023", "2024"]

    with qtbot.waitSignal(window.browse.filtered, timeout=10_000):
        window.view.folders.setCurrentItem(library.child(1))
    assert stems(window) == ["IMG_003", "IMG_004", "IMG_005"]

    with qtbot.waitSignal(window.browse.filtered, timeout=10_000):
        window.view.statuses.setCurrentRow(STATUS_FILTERS.index("approved"))
    assert window.model.rowCount() == 0

    filter_to(qtbot, window, folder="", status="all")
    with qtbot.waitSignal(window.browse.filtered, timeout=10_000):
        qtbot.keyClicks(window.view.search, "keyword:red OR keyword:green")
    assert stems(window) == ["IMG_000", "IMG_001"]
    assert "search keyword:red OR keyword:green" in window.view.count.text()

    # A search that cannot be read says where, and leaves the grid as it was.
    assert not window.browse.apply_filter(query='caption:"open')
    assert window.view.search_error.isVisible() and "never closed" in window.view.search_error.text()
    assert stems(window) == ["IMG_000", "IMG_001"]


def test_keyboard_review_approve_reject_undo_and_edit(qtbot, tmp_path: Path, open_window) -> None:
    root = tmp_path / "Photos"
    make_photos(root)
    tag_directly(root)
    window = open_window()
    grid = window.view.grid
    assert window.selection.current_row().name == "IMG_000.png"
    detail = window.view.detail
    assert detail.caption.toPlainText().startswith("A red square")

    press(qtbot, window, Qt.Key.Key_A)  # approve, move on
    assert window.selection.current_row().name == "IMG_001.png"
    press(qtbot, window, Qt.Key.Key_R)  # reject, move on
    press(qtbot, window, Qt.Key.Key_J)  # skip one
    press(qtbot, window, Qt.Key.Key_K)  # back
    assert window.selection.current_row().name == "IMG_002.png"
    assert reviews(root) == {
        "IMG_000": "approved", "IMG_001": "rejected", "IMG_002": "new",
        "IMG_003": "new", "IMG_004": "new", "IMG_005": "new",
    }  # fmt: skip
    press(qtbot, window, Qt.Key.Key_U)  # take back the reject
    assert reviews(root)["IMG_001"] == "new"
    assert window.selection.current_row().name == "IMG_001.png"

    # Enter (or E) puts the cursor in the caption; Escape goes back; Ctrl+Return saves, approves, moves on.
    press(qtbot, window, Qt.Key.Key_Return)
    assert detail.caption.hasFocus()
    qtbot.keyClick(detail.caption, Qt.Key.Key_Escape)
    assert grid.hasFocus()
    press(qtbot, window, Qt.Key.Key_E)
    assert detail.caption.hasFocus()
    qtbot.keyClicks(detail.caption, "Two friends cycling along the harbour at dawn.")
    detail.keywords.set_keywords([])
    detail.keywords.add_keywords(["cycling", "harbour", "friends"])
    qtbot.keyClick(detail.caption, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert grid.hasFocus() and window.selection.current_row().name == "IMG_002.png"
    with open_catalog(readonly=True) as catalog:
        edited = next(r for r in catalog.results() if r.path.endswith("IMG_001.png"))
    assert edited.caption == "Two friends cycling along the harbour at dawn."
    assert (
        edited.keywords == ("cycling", "harbour", "friends") and edited.review == "approved" and edited.edited
    )
    press(qtbot, window, Qt.Key.Key_U)  # the edit goes back too
    with open_catalog(readonly=True) as catalog:
        restored = next(r for r in catalog.results() if r.path.endswith("IMG_001.png"))
    assert restored.caption.startswith("A green square") and restored.review == "new"

    # Several selected photos are approved at once; what the grid shows follows.
    grid.selectionModel().clearSelection()
    for row in (3, 4, 5):
        grid.selectionModel().select(window.model.index(row), grid.selectionModel().SelectionFlag.Select)
    assert window.review.approve() == 3
    assert [reviews(root)[f"IMG_00{i}"] for i in (3, 4, 5)] == ["approved"] * 3
    assert window.model.photo_row(4).review == "approved"


def test_keyword_autocomplete_offers_the_library_and_the_vocabulary(
    qtbot, tmp_path: Path, open_window
) -> None:
    root = tmp_path / "Photos"
    make_photos(root)
    tag_directly(root)
    vocabulary = tmp_path / "vocabulary.txt"
    vocabulary.write_text("harbour\nsunset = dusk, evening\n", encoding="utf-8")
    window = open_window()
    qtbot.waitUntil(lambda: "red" in window.browse.completion_words(), timeout=10_000)
    window.browse.load_vocabulary(vocabulary)
    words = window.browse.completion_words()
    assert words.index("red") < words.index("harbour") and "sunset" in words

    editor = window.view.detail.keywords
    field = editor.input
    completer = field.completer()
    editor.set_keywords([])
    field.setFocus()
    qtbot.keyClicks(field, "red; har")  # what a person types: "red" becomes a chip at the ";"
    qtbot.waitUntil(lambda: completer.popup().isVisible(), timeout=5_000)
    assert completer.currentCompletion() == "harbour"
    qtbot.keyClick(completer.popup(), Qt.Key.Key_Down)
    qtbot.keyClick(completer.popup(), Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: field.text() == "", timeout=5_000)
    assert editor.keywords() == ["red", "harbour"]


def test_run_pause_stop_and_resume_after_reopening(qtbot, tmp_path: Path, open_window) -> None:
    root = tmp_path / "Photos"
    make_photos(root)
    window = open_window(delay=0.25)
    with pytest.raises(ConfigurationError, match="Choose a folder"):
        window.runs.run_request("folder", window.runs.run_spec("keywords", "English"))
    request = RunRequest(scope=str(root), spec=window.runs.run_spec("keywords", "English"), folder=root)
    progress: list = []
    window.runs.progressed.connect(progress.append)
    with qtbot.waitSignal(window.runs.progressed, timeout=10_000):
        window.runs.start_run(request)
    assert window.view.run_panel.isVisible()
    qtbot.waitUntil(lambda: any(p.done >= 1 for p in progress), timeout=10_000)

    window.runs.toggle_pause()
    qtbot.wait(400)  # the photo in flight finishes, then nothing moves
    frozen = max(p.done for p in progress)
    qtbot.wait(700)
    assert max(p.done for p in progress) == frozen
    assert "paused" in window.view.run_panel.stats.text()
    shown: list[str] = []  # the photo the panel names after each step (the run may end before a check)
    window.runs.progressed.connect(lambda _p: shown.append(window.view.run_panel.current.text()))
    window.runs.toggle_pause()
    qtbot.waitUntil(lambda: max(p.done for p in progress) > frozen, timeout=10_000)
    assert any(name.endswith(".png") for name in shown)

    with qtbot.waitSignal(window.runs.finished, timeout=10_000) as stopped:
        window.runs.stop_run()
    outcome: RunOutcome = stopped.args[0]
    assert outcome.state == "paused" and 0 < outcome.counts.done < 6
    window.shutdown()

    # A new window (the app reopened) offers to resume, and finishes without redoing anything.
    again = open_window()
    banner = again.view.banner
    assert banner.isVisible() and f"Run {outcome.run_id}" in banner.text.text()
    with qtbot.waitSignal(again.runs.finished, timeout=20_000) as finished:
        banner.accept_button.click()
    assert finished.args[0].state == "done" and finished.args[0].counts.done == 6
    with open_catalog(readonly=True) as catalog:
        assert len(catalog.results()) == 6  # exactly once each
    qtbot.waitUntil(lambda: again.model.rowCount() == 6 and again.model.photo_row(5).review == "new")


def test_a_run_with_no_model_says_so(qtbot, tmp_path: Path) -> None:
    window = LibraryWindow(opener=fake_opener())
    qtbot.addWidget(window.view)
    try:
        with pytest.raises(ConfigurationError, match="No model chosen"):
            window.runs.run_spec("keywords", "English")
    finally:
        window.shutdown()


def exiftool_json(path: Path) -> dict:
    binary = shutil.which("exiftool")
    assert binary, "exiftool is needed to check what was written"
    out = subprocess.run(
        [binary, "-j", "-G1", "-struct", str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)[0]


def test_write_preview_write_and_undo_from_the_window(qtbot, tmp_path: Path, open_window) -> None:
    root = tmp_path / "Photos"
    photos = make_photos(root, 3)
    tag_directly(root)
    window = open_window()
    press(qtbot, window, Qt.Key.Key_A)
    press(qtbot, window, Qt.Key.Key_A)  # two approved, the third left new

    dialog = window.files.open_write_dialog()
    qtbot.waitUntil(lambda: dialog.write_button.isEnabled(), timeout=10_000)
    assert "2 results" in dialog.summary.text()
    preview = dialog.preview.toPlainText()
    assert "IMG_000.png.xmp" in preview and "IMG_002" not in preview and "red" in preview
    assert not any(p.with_name(p.name + ".xmp").exists() for p in photos)  # the preview touched nothing

    with qtbot.waitSignal(window.message, timeout=20_000, check_params_cb=lambda m: "written" in m):
        dialog.write_button.click()
    sidecar = photos[0].with_name(photos[0].name + ".xmp")
    assert sidecar.exists() and not photos[2].with_name(photos[2].name + ".xmp").exists()
    seen = exiftool_json(sidecar)
    assert "red" in seen["XMP-dc:Subject"] and seen["XMP-dc:Description"].startswith("A red square")
    assert reviews(root)["IMG_000"] == "written"
    qtbot.waitUntil(lambda: dialog.write_button.text() == "Written", timeout=5_000)  # not "Write 2 Files"
    assert not dialog.write_button.isEnabled() and dialog.preview.toPlainText().strip()
    dialog.close()

    undo_dialog = window.files.open_undo_dialog()
    assert undo_dialog.operations.count() == 1 and "2 photos" in undo_dialog.operations.item(0).text()
    undo_dialog.operations.setCurrentRow(0)
    with qtbot.waitSignal(window.message, timeout=20_000, check_params_cb=lambda m: "Undo write" in m):
        undo_dialog.undo_button.click()
    assert not sidecar.exists()
    assert reviews(root)["IMG_000"] == "approved"
    assert "undone" in undo_dialog.operations.item(0).text()
    undo_dialog.close()


def test_write_preview_and_result_show_iptc_notes(qtbot, tmp_path: Path, open_window) -> None:
    root = tmp_path / "Photos"
    root.mkdir()
    photo = root / "IMG_000.jpg"
    Image.new("RGB", (320, 240), fake_colour(0)).save(photo, quality=95)
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-IPTC:Keywords=Family", str(photo)], check=True)
    tag_directly(root)
    window = open_window()
    (result,) = window.catalog.results()
    caption = "A long caption about a red square. " * 70  # 2,449 bytes once trimmed
    window.catalog.edit_result(result.id, caption=caption, review="approved")
    window.prefs.write_mode = "embedded"

    dialog = window.files.open_write_dialog()
    qtbot.waitUntil(lambda: dialog.write_button.isEnabled(), timeout=10_000)
    note = "note: IPTC Caption-Abstract shortened to IPTC's limit of 2,000 bytes (2,449 bytes"
    assert note in dialog.preview.toPlainText()

    with qtbot.waitSignal(window.message, timeout=20_000, check_params_cb=lambda m: "written" in m):
        dialog.write_button.click()
    assert f"{photo}: IPTC Caption-Abstract shortened" in dialog.preview.toPlainText()
    assert "Done: write 1: 1 written" in dialog.summary.text()
    assert len(exiftool_json(photo)["IPTC:Caption-Abstract"].encode()) <= 2000
    dialog.close()


def write_from_the_dialog(qtbot, window: LibraryWindow) -> None:
    dialog = window.files.open_write_dialog()
    qtbot.waitUntil(lambda: dialog.write_button.isEnabled(), timeout=10_000)
    with qtbot.waitSignal(window.message, timeout=20_000, check_params_cb=lambda m: "written" in m):
        dialog.write_button.click()
    dialog.close()


def test_undo_a_write_after_two_writes_of_the_same_photo(qtbot, tmp_path: Path, open_window) -> None:
    root = tmp_path / "Photos"
    photos = make_photos(root, 1)
    tag_directly(root)
    window = open_window()
    press(qtbot, window, Qt.Key.Key_A)
    sidecar = photos[0].with_name(photos[0].name + ".xmp")
    write_from_the_dialog(qtbot, window)
    first = sidecar.read_bytes()
    (result,) = window.catalog.results()
    window.catalog.edit_result(result.id, caption="A red square, edited.")  # back to approved
    write_from_the_dialog(qtbot, window)
    assert exiftool_json(sidecar)["XMP-dc:Description"] == "A red square, edited."

    dialog = window.files.open_undo_dialog()
    labels = [dialog.operations.item(row).text() for row in range(dialog.operations.count())]
    assert [label.split(" · ")[0] for label in labels] == ["write 2", "write 1"]  # newest first

    dialog.operations.setCurrentRow(1)  # the older one: refused, nothing touched
    with qtbot.waitSignal(window.message, timeout=20_000, check_params_cb=lambda m: "Undo failed" in m):
        dialog.undo_button.click()
    assert "undo write 2 first" in dialog.summary.text()
    assert exiftool_json(sidecar)["XMP-dc:Description"] == "A red square, edited."

    dialog.operations.setCurrentRow(0)  # the newest: no force needed
    with qtbot.waitSignal(window.message, timeout=20_000, check_params_cb=lambda m: "Undo write 2" in m):
        dialog.undo_button.click()
    assert sidecar.read_bytes() == first
    assert reviews(root)["IMG_000"] == "approved"

    dialog.operations.setCurrentRow(1)
    with qtbot.waitSignal(window.message, timeout=20_000, check_params_cb=lambda m: "Undo write 1" in m):
        dialog.undo_button.click()
    assert not sidecar.exists()
    dialog.close()


def test_export_and_import_csv_and_json(qtbot, tmp_path: Path, open_window) -> None:
    root = tmp_path / "Photos"
    make_photos(root)
    tag_directly(root)
    window = open_window()
    filter_to(qtbot, window, folder=str(root / "2023"))
    exported = tmp_path / "out.csv"
    with qtbot.waitSignal(window.message, timeout=10_000, check_params_cb=lambda m: "Exported" in m) as done:
        window.files.export_results(exported)
    assert "Exported 3 results" in done.args[0]
    rows = list(csv.DictReader(exported.open(encoding="utf-8")))
    assert sorted(Path(row["path"]).stem for row in rows) == ["IMG_000", "IMG_001", "IMG_002"]

    rows[0]["caption"] = "A red postbox on a wet street."
    rows[0]["status"] = "approved"
    with exported.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with qtbot.waitSignal(window.browse.filtered, timeout=10_000):
        window.files.import_results(exported)
    changed = Path(rows[0]["path"]).stem
    assert reviews(root)[changed] == "approved"
    assert any(window.model.photo_row(i).caption == "A red postbox on a wet street." for i in range(3))

    as_json = tmp_path / "out.json"
    with qtbot.waitSignal(window.message, timeout=10_000, check_params_cb=lambda m: "Exported" in m):
        window.files.export_results(as_json)
    assert len(json.loads(as_json.read_text(encoding="utf-8"))) == 3

    broken = tmp_path / "broken.csv"
    broken.write_text("result_id,status\n999,approved\n", encoding="utf-8")
    with qtbot.waitSignal(window.message, timeout=10_000) as failed:
        window.files.import_results(broken)
    assert failed.args[0].startswith("Import failed")


def test_closing_the_window_mid_run_leaves_it_resumable(qtbot, tmp_path: Path, open_window) -> None:
    root = tmp_path / "Photos"
    make_photos(root)
    window = open_window(delay=0.3)
    spec = window.runs.run_spec("keywords", "English")
    progress: list = []
    window.runs.progressed.connect(progress.append)
    window.runs.start_run(RunRequest(scope=str(root), spec=spec, folder=root))
    qtbot.waitUntil(lambda: any(p.done >= 1 for p in progress), timeout=10_000)
    window.view.close()  # what the user does; the run stops after its photo and stays resumable
    with open_catalog(readonly=True) as catalog:
        state = catalog.db.execute("SELECT state FROM runs").fetchone()[0]
    assert state == "paused"
    QApplication.processEvents()


def test_grid_model_fetches_rows_a_page_at_a_time(qtbot, tmp_path: Path, open_window) -> None:
    root = tmp_path / "Photos"
    make_photos(root)
    tag_directly(root)
    window = open_window()
    model = window.model
    model.refresh()
    assert model.data(QModelIndex()) is None
    assert model.data(model.index(0), Qt.ItemDataRole.DisplayRole) == "IMG_000.png"
    assert "Keywords:" in model.data(model.index(0), Qt.ItemDataRole.ToolTipRole)
    assert model.data(model.index(1), ROW_ROLE).name == "IMG_001.png"
    assert model.data(model.index(1), FAILED_ROLE) is None
    qtbot.waitUntil(
        lambda: model.data(model.index(0), Qt.ItemDataRole.DecorationRole) is not None, timeout=10_000
    )
    pixmap = model.data(model.index(0), Qt.ItemDataRole.DecorationRole)
    assert max(pixmap.width(), pixmap.height()) == window.thumbs.edge
    assert list(thumbs_dir().rglob("*.jpg"))  # cached on disk for the next session


def test_tag_photos_dialog_starts_a_run_on_the_selection(qtbot, tmp_path: Path, open_window) -> None:
    root = tmp_path / "Photos"
    make_photos(root)
    with open_catalog() as catalog:
        scan_library(catalog, root)
    vocabulary = tmp_path / "words.txt"
    vocabulary.write_text("red\nblue\nsquare\n", encoding="utf-8")
    window = open_window()
    grid = window.view.grid
    for row in (0, 2):
        grid.selectionModel().select(window.model.index(row), grid.selectionModel().SelectionFlag.Select)
    seen: dict[str, object] = {}

    def fill_and_start() -> None:
        dialog = next(
            w for w in QApplication.topLevelWidgets() if w.windowTitle() == "Tag Photos" and w.isVisible()
        )
        seen["selection"] = dialog.scope_selection.text()
        seen["model"] = dialog.engine.text()
        dialog.scope_selection.setChecked(True)
        dialog.task.setCurrentIndex(dialog.task.findData("keywords"))
        dialog.vocabulary.setText(str(vocabulary))
        dialog.vocabulary_only.setChecked(True)
        dialog.start_button.click()

    QTimer.singleShot(200, fill_and_start)
    with qtbot.waitSignal(window.runs.finished, timeout=20_000) as finished:
        window.view.tag_action.trigger()
    assert seen == {"selection": "Selected photos (2)", "model": "fake-model.gguf (gguf)"}
    assert finished.args[0].state == "done" and finished.args[0].counts.done == 2
    with open_catalog(readonly=True) as catalog:
        results = {Path(r.path).stem: r for r in catalog.results()}
    assert set(results) == {"IMG_000", "IMG_002"}
    assert set(results["IMG_000"].keywords) <= {"red", "blue", "square"}  # only vocabulary words
    assert "square" in window.browse.completion_words()
    window.shutdown()
    again = LibraryWindow(overrides=fake_args(), opener=fake_opener())  # the vocabulary is remembered
    qtbot.addWidget(again.view)
    try:
        assert {"red", "blue", "square"} <= set(again.browse.completion_words())
    finally:
        again.shutdown()


def test_the_main_window_opens_one_library_window(qtbot, tmp_path: Path) -> None:
    from captioneer.desktop.ui.main_window import MainWindow

    main = MainWindow(fake_args())
    qtbot.addWidget(main.view)
    try:
        menu = next(a for a in main.view.menuBar().actions() if a.text() == "&Library")
        assert main.view.menuBar().actions()[-1].text() == "&Help"  # the Library menu sits before Help
        (action,) = menu.menu().actions()
        assert action.shortcut().toString() == "Ctrl+L"
        action.trigger()
        (library,) = main.findChildren(LibraryWindow)
        assert library.view.isVisible()
        action.trigger()  # a second time brings the same window forward
        assert main.findChildren(LibraryWindow) == [library]
        main.view.close()  # closing the app closes the library window and releases the catalog
        assert library.closed and not library.view.isVisible()
        with open_catalog():  # the writer lock is free again
            pass
    finally:
        main.shutdown()


def test_tagging_reviewed_photos_again_asks_and_the_panel_says_what_will_be_written(
    qtbot, tmp_path: Path, open_window
) -> None:
    root = tmp_path / "Photos"
    make_photos(root, 3)
    tag_directly(root)
    with open_catalog() as catalog:
        approved = [r for r in catalog.results() if not r.path.endswith("IMG_001.png")]
        catalog.set_review([r.id for r in approved], "approved")
    window = open_window()
    grid = window.view.grid
    for row in (0, 1, 2):
        grid.selectionModel().select(window.model.index(row), grid.selectionModel().SelectionFlag.Select)
    asked: list[str] = []

    def start(task: str, redo: bool) -> None:
        dialog = next(
            w for w in QApplication.topLevelWidgets() if w.windowTitle() == "Tag Photos" and w.isVisible()
        )
        dialog.scope_selection.setChecked(True)
        dialog.task.setCurrentIndex(dialog.task.findData(task))
        dialog.redo.setChecked(redo)
        QTimer.singleShot(200, answer_keep)
        dialog.start_button.click()

    def answer_keep() -> None:
        shown = [w for w in QApplication.topLevelWidgets() if w.isVisible()]
        question = next((w for w in shown if w.windowTitle() == "Reviewed Photos"), None)
        if question is not None:
            asked.append(question.text())
            question.keep_button.click()

    QTimer.singleShot(200, lambda: start("keywords", True))
    with qtbot.waitSignal(window.runs.finished, timeout=20_000) as finished:
        window.view.tag_action.trigger()
    assert len(asked) == 1
    assert asked[0].startswith("2 of these photos already have a Caption + keywords result")
    assert finished.args[0].counts.done == 3
    with open_catalog(readonly=True) as catalog:
        current = {Path(r.path).stem: r.id for r in catalog.results(current_only=True)}
        assert len(catalog.results()) == 6
    assert {current["IMG_000"], current["IMG_002"]} == {r.id for r in approved}  # the reviewed ones stayed

    # Another task: nothing of it was reviewed, so nobody is asked; the photo now has two current results.
    window.selection.select_row(0)
    QTimer.singleShot(200, lambda: start("caption", False))
    with qtbot.waitSignal(window.runs.finished, timeout=20_000):
        window.view.tag_action.trigger()
    assert len(asked) == 1
    detail = window.view.detail
    # The filter answers off the GUI thread, then the panel is read afresh.
    qtbot.waitUntil(lambda: detail.results.isVisible(), timeout=5_000)
    assert detail.results.text().count("\n") == 1
    keywords_result = next(r for r in approved if r.path.endswith("IMG_000.png"))
    will_write = detail.will_write.text()
    assert f"caption: {keywords_result.caption}" in will_write  # only the approved result, so far
    assert "keywords: " + "; ".join(keywords_result.keywords) in will_write
    window.review.approve()  # approves both tasks' results of the photo
    window.selection.select_row(0)
    with open_catalog(readonly=True) as catalog:
        caption_result = next(
            r for r in catalog.current_results(keywords_result.photo_id) if r.task == "caption"
        )
    assert caption_result.review == "approved"
    assert f"caption: {caption_result.caption}" in detail.will_write.text()

    dialog = window.files.open_write_dialog()
    qtbot.waitUntil(lambda: dialog.write_button.isEnabled(), timeout=10_000)
    preview = dialog.preview.toPlainText()
    assert preview.count("IMG_000.png.xmp") == 1 and "IMG_001" not in preview
    dialog.close()
