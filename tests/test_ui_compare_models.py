"""Models ▸ Compare Models…: the table, chart and settings decisions as tables of cases, the chart's painted
pixels in light and dark, and the whole dialog on the real tiny gguf engine through the real evaluation
runner, on photos made by the test whose keywords exiftool wrote (the answer key; nothing is written)."""

from __future__ import annotations

import csv
import hashlib
import shutil
import subprocess
from pathlib import Path

import psutil
import pytest
from PIL import Image, ImageDraw
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor, QImage, QPalette
from PySide6.QtWidgets import QApplication, QMessageBox

from captioneer.desktop.core.settings import Settings, load_settings, save_settings
from captioneer.desktop.evaluation import report
from captioneer.desktop.evaluation.scores import EvaluationProgress, Profile, ProfileScore
from captioneer.desktop.ui.compare_models import CompareModelsDialog, open_compare_models
from captioneer.desktop.ui.compare_table import (
    chart_bars,
    chart_metrics,
    detail_label,
    profile_grid,
    progress_steps,
    progress_text,
    settings_for_profile,
    table_columns,
    table_row,
)
from captioneer.desktop.ui.engine_service import EngineService
from captioneer.desktop.ui.main_window import MainWindow
from captioneer.desktop.ui.score_chart_view import Bar, ScoreChart
from captioneer.desktop.ui.theme import apply_theme

EXIFTOOL = shutil.which("exiftool")

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore("OpenType support missing", "propagateSizeHints"),
]

Q4 = Profile("2B Q4_K_M@512", "gguf", "/m/q4.gguf", 512, (("mmproj", "/m/mmproj.gguf"),))
HF = Profile("4B (all precisions)@512", "transformers", "/m/4b", 512, (("quant", "nf4"),))


# ------------------------------------------------------------------------------------------ decisions


@pytest.mark.parametrize(
    ("label", "tokens", "expected"),
    [("2B Q4_K_M@512", 256, "2B Q4_K_M@256"), ("model.gguf@1024", 512, "model.gguf@512"),
     ("qwen3-vl:2b", 256, "qwen3-vl:2b@256"), ("a@b@64", 128, "a@b@128")],
)
def test_detail_label_replaces_only_the_last_image_detail(label: str, tokens: int, expected: str) -> None:
    assert detail_label(Profile(label, "gguf", "m", 1), tokens) == expected


def test_the_grid_is_every_checked_model_at_every_checked_detail_least_detail_first() -> None:
    grid = profile_grid([Q4, HF], [1024, 256, 256])
    assert [p.label for p in grid] == ["2B Q4_K_M@256", "2B Q4_K_M@1024", "4B (all precisions)@256",
                                       "4B (all precisions)@1024"]
    assert [p.image_tokens for p in grid] == [256, 1024, 256, 1024]
    assert grid[0].options == Q4.options and grid[2].model == HF.model
    assert profile_grid([Q4], []) == [] and profile_grid([], [256]) == []


@pytest.mark.parametrize(
    ("profile", "expected"),
    [(Q4, ("gguf", "/m/q4.gguf", "/m/mmproj.gguf", None, 512)),
     (HF, ("transformers", "/m/4b", None, "nf4", 512)),
     (Profile("qwen3-vl:2b@256", "ollama", "qwen3-vl:2b", 256), ("ollama", "qwen3-vl:2b", None, None, 256))],
)
def test_use_this_model_takes_engine_model_projector_precision_and_detail(profile: Profile, expected) -> None:
    before = Settings(engine="transformers", model="/old", mmproj="/old-mmproj", quant="bf16",
                      image_tokens=64, temperature=0.7)
    after = settings_for_profile(before, profile)
    assert (after.engine, after.model, after.mmproj, after.quant, after.image_tokens) == expected
    assert after.temperature == 0.7  # everything else is kept


def _score(label: str = "2B Q4_K_M@512", **fields) -> ProfileScore:
    return ProfileScore(Profile(label, "gguf", "/m", 512), **fields)


def test_table_shows_caption_metrics_only_when_some_profile_has_them() -> None:
    plain = [_score(photos=3, keyword_f1=0.5)]
    assert table_columns(plain) == ["Profile", "KW-P", "KW-R", "KW-F1", "s/photo", "Load s", "Peak memory",
                                    "Failed"]
    scored = [*plain, _score(caption_metrics={"CIDEr": 0.4, "BLEU-4": 0.1})]
    assert table_columns(scored)[1:3] == ["BLEU-4", "CIDEr"]


def test_a_row_formats_numbers_and_sorts_by_value_and_a_failed_profile_says_why() -> None:
    columns = table_columns([_score(caption_metrics={"CIDEr": 1})])
    good = dict(zip(columns, table_row(_score(photos=20, failed=2, seconds_per_photo=1.234, load_seconds=3.21,
                                              peak_memory_bytes=3 * 1024**3, keyword_precision=0.5,
                                              keyword_recall=0.25, keyword_f1=1 / 3,
                                              caption_metrics={"CIDEr": 1.2345}), columns), strict=True))
    assert good["CIDEr"] == ("1.234", 1.2345) or good["CIDEr"] == ("1.235", 1.2345)
    assert good["KW-F1"] == ("0.333", 1 / 3) and good["s/photo"] == ("1.23", 1.234)
    assert good["Load s"] == ("3.2", 3.21) and good["Failed"] == ("2 of 20", 2.0)
    assert good["Peak memory"][1] == 3 * 1024**3
    # The same peak reads the same in the window and in `captioneer evaluate`'s table (it once read 3.0 GB in
    # one and 3.2 GB in the other: binary and decimal units under one label).
    assert good["Peak memory"][0] == report.cells(_score(peak_memory_bytes=3 * 1024**3))["peak memory"]
    assert good["Peak memory"][0] == "3.2 GB"
    failed = table_row(_score(error="The model file is missing: choose it again."), columns)
    assert len(failed) == len(columns) and failed[0][0] == "2B Q4_K_M@512"
    assert failed[1] == ("The model file is missing: choose it again.", None)  # spanned over the scores
    assert failed[2:] == [("", None)] * (len(columns) - 2)


@pytest.mark.parametrize(
    ("scores", "expected"),
    [([_score(keyword_f1=0.5)], ["Keyword F1", "Keyword precision", "Keyword recall"]),
     ([_score(caption_metrics={"BLEU-4": 0.1, "CIDEr": 0.3})], ["CIDEr", "BLEU-4"]),
     ([_score(keyword_f1=0.5, caption_metrics={"CIDEr": 0.3})],
      ["Keyword F1", "Keyword precision", "Keyword recall", "CIDEr"]),
     ([_score()], [])],
)
def test_the_chart_offers_keyword_f1_first_else_cider(scores, expected: list[str]) -> None:
    assert chart_metrics(scores) == expected


def test_chart_bars_scale_cider_to_the_best_and_scores_to_one_and_say_why_a_bar_is_missing() -> None:
    scores = [_score("a", caption_metrics={"CIDEr": 2.5}, seconds_per_photo=1.5),
              _score("b", caption_metrics={"CIDEr": 0.5}),
              _score("c", error="Cannot load the model: out of memory.")]
    bars, top = chart_bars(scores, "CIDEr")
    assert top == 2.5
    assert [(b.label, b.value, b.value_text, b.speed_text) for b in bars[:2]] == [
        ("a", 2.5, "2.500", "1.50 s"), ("b", 0.5, "0.500", "—")]
    assert bars[2].value is None and bars[2].note == "Cannot load the model: out of memory."
    bars, top = chart_bars([_score(keyword_f1=0.2), _score(keyword_f1=None)], "Keyword F1")
    assert top == 1.0 and bars[0].value == 0.2 and bars[1].note == "no Keyword F1"


@pytest.mark.parametrize(
    ("event", "text", "steps"),
    [(EvaluationProgress(1, 3, "2B Q8_0@512", 13, 20, "captioning"), "2B Q8_0@512 · photo 14 of 20",
      (33, 60)),
     (EvaluationProgress(0, 2, "x@256", 0, 5, "loading"), "x@256 · loading the model", (0, 10)),
     (EvaluationProgress(1, 2, "x@256", 5, 5, "scoring"), "x@256 · scoring", (10, 10)),
     (EvaluationProgress(0, 1, "x@256", 5, 5, "captioning"), "x@256 · photo 5 of 5", (5, 5))],
)
def test_progress_says_which_profile_and_photo_and_counts_over_all_profiles(event, text, steps) -> None:
    assert progress_text(event) == text
    assert progress_steps(event) == steps


# ------------------------------------------------------------------------------------------ chart pixels


def _grab(widget) -> QImage:
    QApplication.processEvents()
    return widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)


def _row_fill(image: QImage, y: int, colour: QColor) -> int:
    """How many pixels across row ``y`` are ``colour`` (the bar's fill)."""
    return sum(1 for x in range(image.width()) if image.pixelColor(x, y).rgb() == colour.rgb())


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_chart_paints_bars_in_proportion_readable_in_light_and_dark(qtbot, theme: str) -> None:
    apply_theme(QApplication.instance(), theme)
    try:
        chart = ScoreChart()
        qtbot.addWidget(chart)
        chart.resize(600, 160)
        bars = [Bar("full", 1.0, "1.000", "2.0 s"), Bar("quarter", 0.25, "0.250", "1.0 s"),
                Bar("broken", None, "", "—", "could not load")]
        chart.set_bars("Keyword F1", bars, 1.0)
        chart.show()
        qtbot.waitExposed(chart)
        image = _grab(chart)
        palette = chart.palette()
        fill = palette.color(QPalette.ColorRole.Highlight)
        base = palette.color(QPalette.ColorRole.Base)
        # Rows: title at 10..32, bars start at 40 and every 30 px; sample each bar's middle line.
        full, quarter, broken = (_row_fill(image, 40 + row * 30 + 11, fill) for row in range(3))
        assert full > 100
        assert quarter == pytest.approx(full / 4, abs=4)
        assert broken == 0
        assert image.pixelColor(2, 2).rgb() == base.rgb()  # the background follows the theme
        dark_background = base.lightness() < 128
        assert dark_background == (theme == "dark")
        text = palette.color(QPalette.ColorRole.WindowText)
        # The labels are drawn: pixels near the text colour exist left of the bars.
        label_pixels = [image.pixelColor(x, y) for x in range(0, 80) for y in range(40, 130)]
        assert any(abs(p.lightness() - text.lightness()) < 40 for p in label_pixels)
        assert abs(text.lightness() - base.lightness()) > 120  # readable on its background
    finally:
        apply_theme(QApplication.instance(), "light")


def test_an_empty_chart_says_what_to_do_instead_of_painting_bars(qtbot) -> None:
    chart = ScoreChart()
    qtbot.addWidget(chart)
    chart.resize(400, 120)
    image = _grab(chart)
    fill = chart.palette().color(QPalette.ColorRole.Highlight)
    assert all(_row_fill(image, y, fill) == 0 for y in range(0, 120, 10))
    colours = {image.pixelColor(x, 60).rgb() for x in range(image.width())}
    assert len(colours) > 1  # the hint text is painted across the middle


# ------------------------------------------------------------------------------------------ the dialog


def make_photos(root: Path) -> list[Path]:
    """Three photos; exiftool gives the first two keywords of their own (the answer key), the third none."""
    photos = []
    for index, colour in enumerate(("tomato", "seagreen", "royalblue")):
        image = Image.new("RGB", (256, 192), "white")
        ImageDraw.Draw(image).ellipse((30 + 10 * index, 20, 220, 170), fill=colour)
        path = root / f"IMG_{index:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, quality=92)
        photos.append(path)
    for path, words in zip(photos[:2], (["beach", "sunset"], ["forest"]), strict=True):
        subprocess.run([EXIFTOOL, "-q", "-overwrite_original", *(f"-XMP-dc:Subject={w}" for w in words),
                        str(path)], check=True)
    return photos


def hosted_pids() -> set[int]:
    """This process's engine host children (multiprocessing's resource tracker does not count)."""
    return {child.pid for child in psutil.Process().children(recursive=True)
            if "multiprocessing.spawn" in " ".join(child.cmdline())}


def digest(paths: list[Path]) -> list[str]:
    return [hashlib.sha256(path.read_bytes()).hexdigest() for path in paths]


def gguf_settings(model: Path, mmproj: Path) -> Settings:
    return Settings(engine="gguf", model=str(model), mmproj=str(mmproj), image_tokens=64, max_tokens=48,
                    temperature=0.0, first_run_done=True)


@pytest.fixture
def compare_dialog(qtbot):
    """Makes shown dialogs, as a user sees them, and closes each the way a user does (its threads stop)."""
    made: list[CompareModelsDialog] = []

    def make(*args, **kwargs) -> CompareModelsDialog:
        dialog = CompareModelsDialog(*args, **kwargs)
        qtbot.addWidget(dialog)
        dialog.show()
        made.append(dialog)
        return dialog

    yield make
    for dialog in made:
        dialog.close()
        assert not dialog.thread.isRunning()


def open_photos(qtbot, dialog: CompareModelsDialog, folder: Path) -> None:
    dialog.open_folder(folder)
    qtbot.waitUntil(lambda: dialog.photo_set is not None, timeout=20_000)


def dialog_on_photos(qtbot, compare_dialog, tmp_path: Path, settings: Settings) -> CompareModelsDialog:
    """A shown dialog with :func:`make_photos`' folder chosen and read."""
    make_photos(tmp_path / "Photos")
    dialog = compare_dialog(settings)
    open_photos(qtbot, dialog, tmp_path / "Photos")
    return dialog


def run_to_end(qtbot, dialog: CompareModelsDialog) -> None:
    assert dialog.run()
    # Not waitSignal on the worker: its signal is emitted on the worker's thread.
    qtbot.waitUntil(lambda: not dialog.running, timeout=300_000)


def cells(dialog: CompareModelsDialog, column: str) -> list[str]:
    index = dialog.columns.index(column)
    return [dialog.table.item(row, index).text() for row in range(dialog.table.rowCount())]


needs_exiftool = pytest.mark.skipif(EXIFTOOL is None, reason="exiftool writes the photos' own keywords")


@needs_exiftool
def test_compare_two_image_details_with_the_real_engine_then_save_csv_and_use_one(
    qtbot, tmp_path: Path, tiny_gguf
) -> None:
    model, mmproj = tiny_gguf
    photos = make_photos(tmp_path / "Photos")
    before = digest(photos)
    save_settings(gguf_settings(model, mmproj))
    main = MainWindow()  # closed below after its shutdown, not by qtbot
    try:
        main.view.compare_action.trigger()  # Models ▸ Compare Models…
        dialog = main.view.findChild(CompareModelsDialog)
        assert dialog is not None and dialog.isVisible()
        assert dialog.models.count() >= 1
        assert dialog.models.item(0).checkState() == Qt.CheckState.Checked  # the model in use
        assert dialog.details[64].isChecked() and not dialog.details[256].isChecked()
        dialog.details[256].setChecked(True)
        dialog.limit.setValue(0)
        assert "2 profiles" in dialog.profile_count.text()

        open_photos(qtbot, dialog, tmp_path / "Photos")
        assert dialog.photo_info.text().startswith("3 photos.")
        assert "2 of 3 carry keywords of their own" in dialog.photo_info.text()

        events: list[EvaluationProgress] = []
        dialog.worker.progressed.connect(events.append)  # runs on the worker's thread: only collect
        run_to_end(qtbot, dialog)
        labels = cells(dialog, "Profile")
        assert labels == [f"{model.name}@64", f"{model.name}@256"]
        for text in cells(dialog, "Failed"):  # "0 of 3", or "1 of 3: <why>" (a cut-off answer at 48 tokens)
            count, _, why = text.partition(": ")
            assert count.endswith(" of 3") and (count.startswith("0 ") or why)
        assert all(dialog.table.columnSpan(row, 1) == 1 for row in range(2))  # no reason shown
        assert all(text != "—" for text in cells(dialog, "Load s"))
        assert all(text != "—" for text in cells(dialog, "Peak memory"))  # the engine host's own memory
        assert dialog.progress.value() == dialog.progress.maximum() == 6
        assert dialog.progress_label.text() == "Done: 2 profiles compared."
        progress = [progress_text(event) for event in events]
        assert f"{model.name}@64 · loading the model" in progress
        assert f"{model.name}@256 · photo 3 of 3" in progress
        assert {(event.profile_index, event.profiles) for event in events} == {(0, 2), (1, 2)}
        assert dialog.metric_combo.currentText() == "Keyword F1"  # the photos carry keywords
        assert [bar.label for bar in dialog.chart.bars] == labels
        assert digest(photos) == before  # nothing was written to the photos
        assert not (tmp_path / "Photos" / "IMG_0000.jpg.xmp").exists()

        # Sort by a column, then Save CSV writes exactly what the table shows, in its order.
        dialog.table.horizontalHeader().setSortIndicator(0, Qt.SortOrder.DescendingOrder)
        target = tmp_path / "comparison.csv"
        assert dialog.save_csv(target)
        with target.open(newline="", encoding="utf-8") as fh:
            written = list(csv.reader(fh))
        assert written[0] == dialog.columns
        assert [row[0] for row in written[1:]] == [f"{model.name}@256", f"{model.name}@64"]
        assert written[1:] == [[dialog.table.item(r, c).text() for c in range(len(dialog.columns))]
                               for r in range(2)]

        # Use This Model: the @256 row (first after the sort) becomes the saved settings after a yes.
        dialog.table.selectRow(0)
        assert dialog.use_button.isEnabled()
        dialog.confirm = lambda _question, _detail: False
        dialog.use_button.click()
        assert load_settings().image_tokens == 64  # No leaves the settings alone
        dialog.confirm = lambda _question, _detail: True
        dialog.use_button.click()
        saved = load_settings()
        assert (saved.engine, saved.model, saved.mmproj, saved.image_tokens) == (
            "gguf", str(model), str(mmproj), 256)
        assert main.settings.image_tokens == 256
        dialog.close()
    finally:
        main.shutdown()
        main.view.close()


@needs_exiftool
def test_cancel_keeps_the_finished_profiles_and_drops_the_one_cut_short(
    qtbot, compare_dialog, tmp_path: Path, tiny_gguf
) -> None:
    model, mmproj = tiny_gguf
    dialog = dialog_on_photos(qtbot, compare_dialog, tmp_path, gguf_settings(model, mmproj))
    dialog.details[256].setChecked(True)

    tokens: list = []
    dialog.start.connect(lambda _job, token: tokens.append(token))

    def cancel_inside_the_second(event: EvaluationProgress) -> None:
        if event.profile_index == 1 and event.phase == "captioning" and event.done == 1:
            tokens[0].cancel()  # Cancel's own token, set on the worker's thread: no photo more may start

    dialog.worker.progressed.connect(cancel_inside_the_second, Qt.ConnectionType.DirectConnection)
    run_to_end(qtbot, dialog)
    assert cells(dialog, "Profile") == [f"{model.name}@64"]
    assert dialog.progress_label.text() == "Cancelled: 1 profile finished."
    assert dialog.run_button.isEnabled() and not dialog.cancel_button.isEnabled()
    assert dialog.csv_button.isEnabled()


@needs_exiftool
def test_a_profile_that_cannot_load_says_why_in_its_row_and_the_others_still_run(
    qtbot, compare_dialog, tmp_path: Path, tiny_gguf
) -> None:
    model, mmproj = tiny_gguf
    broken = tmp_path / "broken-Q4_K_M.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    dialog = dialog_on_photos(qtbot, compare_dialog, tmp_path, gguf_settings(model, mmproj))
    dialog.add_model(Profile("broken-Q4_K_M.gguf@64", "gguf", str(broken), 64, (("mmproj", str(mmproj)),)),
                     checked=True)
    run_to_end(qtbot, dialog)
    assert cells(dialog, "Profile") == [f"{model.name}@64", "broken-Q4_K_M.gguf@64"]
    note = dialog.table.item(1, 1).text()
    assert "broken-Q4_K_M.gguf" in note and "--" not in note  # the window's words, no command-line flags
    assert dialog.table.columnSpan(1, 1) == len(dialog.columns) - 1  # the reason across the score columns
    assert dialog.table.columnSpan(0, 1) == 1 and cells(dialog, "Load s")[0] != ""
    bars = dialog.chart.bars
    assert bars[1].value is None and bars[1].note == note
    # Sorting by name (as a header click does) moves the reason's span with its row.
    dialog.table.horizontalHeader().setSortIndicator(0, Qt.SortOrder.AscendingOrder)
    qtbot.waitUntil(lambda: dialog.table.columnSpan(0, 1) > 1)
    assert cells(dialog, "Profile")[0] == "broken-Q4_K_M.gguf@64" and dialog.table.columnSpan(1, 1) == 1
    dialog.table.selectRow(0)
    assert not dialog.use_button.isEnabled()  # a profile that never ran cannot become the settings
    dialog.table.selectRow(1)
    assert dialog.use_button.isEnabled()


def test_run_says_what_is_missing_and_waits_for_another_windows_engine(
    qtbot, compare_dialog, tmp_path: Path
) -> None:
    (tmp_path / "Photos").mkdir()
    Image.new("RGB", (64, 48), "white").save(tmp_path / "Photos" / "a.jpg")
    busy = "The main window is captioning. Wait for it to finish or cancel it."
    dialog = compare_dialog(Settings(image_tokens=512), engine_busy=lambda: busy)
    assert not dialog.run()
    assert "Choose a folder of photos first" in dialog.banner_text.text()
    open_photos(qtbot, dialog, tmp_path / "Photos")
    assert not dialog.run()  # no model is installed here
    assert "Check at least one model" in dialog.banner_text.text()
    dialog.add_detail(48).setChecked(True)  # an image detail of one's own is counted too
    assert dialog.detail_box.itemAt(1).widget() is dialog.details[48]  # listed first, under the heading
    dialog.add_model(Profile("x@512", "gguf", str(tmp_path / "x.gguf"), 512), checked=True)
    assert dialog.profile_count.text() == "2 profiles to compare: x@48, x@512"
    assert not dialog.run()
    assert dialog.banner_text.text() == busy and not dialog.running


def test_a_bad_reference_file_is_explained_and_changes_nothing(compare_dialog, tmp_path: Path) -> None:
    dialog = compare_dialog(Settings())
    bad = tmp_path / "refs.json"
    bad.write_text('{"images": []', encoding="utf-8")
    assert not dialog.set_references(bad)
    assert dialog.banner.isVisibleTo(dialog) and "refs.json" in dialog.banner_text.text()
    assert dialog.references is None and not dialog.references_clear.isVisibleTo(dialog)
    good = tmp_path / "good.json"
    good.write_text('{"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": '
                    '[{"image_id": 1, "caption": "a white square"}]}', encoding="utf-8")
    assert dialog.set_references(good)
    assert dialog.references is not None and not dialog.banner.isVisibleTo(dialog)


@needs_exiftool
def test_running_a_comparison_unloads_the_idle_captioning_engine_first(
    qtbot, tmp_path: Path, tiny_gguf
) -> None:
    """One model in memory at a time: the quick window's loaded engine (its host process) goes before the
    comparison loads its own, and the next caption loads it again."""
    model, mmproj = tiny_gguf
    photos = make_photos(tmp_path / "Photos")
    save_settings(gguf_settings(model, mmproj))
    service = EngineService()
    main = MainWindow(opener=service.opener)  # closed below after its shutdown, not by qtbot
    try:
        answers: list = []
        main.resultReady.connect(answers.append)
        main.add_paths([photos[0]])
        qtbot.waitUntil(lambda: bool(answers) and not main.busy, timeout=180_000)
        config = main.engine_config()
        assert service.users(config) == 1  # the quick window keeps its engine loaded between photos
        quick_host = hosted_pids()
        assert quick_host

        dialog = open_compare_models(main)
        open_photos(qtbot, dialog, tmp_path / "Photos")
        dialog.limit.setValue(1)
        assert dialog.run()
        qtbot.waitUntil(lambda: service.users(config) == 0, timeout=30_000)  # released before it loads
        qtbot.waitUntil(lambda: not dialog.running, timeout=180_000)
        assert cells(dialog, "Profile") == [f"{model.name}@64"]
        qtbot.waitUntil(lambda: not (quick_host & hosted_pids()), timeout=30_000)  # that process is gone
        dialog.close()

        main.add_paths([photos[1]])
        qtbot.waitUntil(lambda: len(answers) == 2 and not main.busy, timeout=180_000)
        assert service.users(config) == 1  # and the next caption loaded it again
    finally:
        main.shutdown()
        main.view.close()
        service.close()


def test_comparing_waits_while_the_main_window_captions(qtbot) -> None:
    main = MainWindow()
    try:
        assert main.engine_in_use() is None
        main._live.append(object())  # a batch in flight, as _run leaves it until the batch is done
        assert "The main window is captioning" in (main.engine_in_use() or "")
    finally:
        main._live.clear()
        main.shutdown()
        main.view.close()


def test_photos_go_to_a_server_off_this_computer_only_after_a_yes(
    qtbot, compare_dialog, tmp_path: Path
) -> None:
    (tmp_path / "Photos").mkdir()
    Image.new("RGB", (64, 48), "white").save(tmp_path / "Photos" / "a.jpg")
    server = "http://192.0.2.7:8000/v1"  # TEST-NET: never reached, the answer is no
    dialog = compare_dialog(Settings(engine="openai", model="qwen3-vl", openai_base_urls=[server]))
    dialog.add_model(Profile("qwen3-vl@512", "openai", "qwen3-vl", 512), checked=True)
    open_photos(qtbot, dialog, tmp_path / "Photos")
    asked: list[str] = []

    def answer_no() -> None:
        box = QApplication.activeModalWidget()
        asked.append(box.text() if isinstance(box, QMessageBox) else "")
        box.reject()

    QTimer.singleShot(200, answer_no)
    assert not dialog.run()
    assert asked and "192.0.2.7" in asked[0]
    assert dialog.banner_text.text() == "Nothing was sent: the comparison did not run."
    assert not dialog.running and dialog.settings.remote_servers_allowed == []


def test_a_vocabulary_is_read_when_chosen_and_goes_to_the_runner(
    qtbot, compare_dialog, tmp_path: Path
) -> None:
    dialog = compare_dialog(Settings())
    unreadable = tmp_path / "latin1.txt"
    unreadable.write_bytes("caf\xe9 = coffee shop".encode("latin-1"))
    assert not dialog.set_vocabulary(unreadable)
    assert "latin1.txt" in dialog.banner_text.text() and dialog.vocabulary is None
    good = tmp_path / "words.txt"
    good.write_text("sea = ocean, seaside\n", encoding="utf-8")
    assert dialog.set_vocabulary(good)
    assert dialog.vocabulary is not None and dialog.vocabulary.lookup("ocean") == "sea"
    assert dialog.vocabulary_label.text() == str(good) and dialog.vocabulary_clear.isVisibleTo(dialog)
    jobs: list = []
    dialog.start.connect(lambda job, _token: jobs.append(job))
    (tmp_path / "Photos").mkdir()
    Image.new("RGB", (64, 48), "white").save(tmp_path / "Photos" / "a.jpg")
    open_photos(qtbot, dialog, tmp_path / "Photos")
    missing = tmp_path / "missing.gguf"  # cannot load: the run ends at once with its reason
    dialog.add_model(Profile("missing@512", "gguf", str(missing), 512), checked=True)
    assert dialog.run()
    qtbot.waitUntil(lambda: not dialog.running, timeout=60_000)
    assert jobs and jobs[0].vocabulary is dialog.vocabulary
    dialog.vocabulary_clear.click()
    assert dialog.vocabulary is None and dialog.vocabulary_label.text().startswith("None")


def test_the_folder_chosen_last_wins_and_every_folder_read_stops_on_close(
    qtbot, compare_dialog, tmp_path: Path
) -> None:
    big, small = tmp_path / "Big", tmp_path / "Small"
    for index in range(80):
        big.mkdir(exist_ok=True)
        Image.new("RGB", (32, 24), "white").save(big / f"{index:03d}.jpg")
    small.mkdir()
    Image.new("RGB", (32, 24), "white").save(small / "only.jpg")
    dialog = compare_dialog(Settings())
    dialog.open_folder(big)
    dialog.open_folder(small)  # before the big folder's keywords are all read
    qtbot.waitUntil(lambda: dialog.photo_set is not None, timeout=20_000)
    qtbot.wait(300)  # the big folder's read, cancelled, may still report: it must not be shown
    assert dialog.photo_set.folder == small and dialog.photo_set.photos == [small / "only.jpg"]
    assert dialog.photo_info.text().startswith("1 photo. 0 of 1 carry keywords")
    assert dialog.folder_label.text() == str(small)


def test_save_csv_that_cannot_write_says_so_in_the_banner(compare_dialog, tmp_path: Path) -> None:
    dialog = compare_dialog(Settings())
    target = tmp_path / "taken.csv"
    target.mkdir()  # a folder where the file should go
    assert not dialog.save_csv(target)
    assert dialog.banner_text.text().startswith("Cannot save taken.csv:")
    assert "Choose another folder or name" in dialog.banner_text.text()
