"""Settings dialog (persisted under CAPTIONEER_HOME), light/dark themes and the crash handler, offscreen."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtGui import QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QDialogButtonBox

from captioneer.desktop.core.paths import config_dir, logs_dir
from captioneer.desktop.core.settings import Settings, load_settings
from captioneer.desktop.ui.app import CrashHandler, crash_report
from captioneer.desktop.ui.crash_view import CrashDialog
from captioneer.desktop.ui.main_window import MainWindow
from captioneer.desktop.ui.settings_dialog import SettingsDialog, budget_hint
from captioneer.desktop.ui.theme import apply_theme, is_dark

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore("OpenType support missing", "propagateSizeHints"),
]


def test_settings_dialog_shows_edits_and_persists_settings(qtbot, captioneer_home, tiny_hf_model) -> None:
    window = MainWindow()
    qtbot.addWidget(window.view)
    dialog = SettingsDialog(Settings(ollama_host="http://127.0.0.1:11434"), window.view)
    qtbot.addWidget(dialog)
    assert dialog.engine.currentData() == "gguf" and dialog.mmproj.isEnabled()
    assert not dialog.quant.isEnabled()
    assert dialog.ollama_host.text() == "http://127.0.0.1:11434"
    assert dialog.max_tokens.text() == "Task default"

    dialog.engine.setCurrentIndex(dialog.engine.findData("transformers"))
    assert not dialog.mmproj.isEnabled() and dialog.quant.isEnabled()
    dialog.model.setText(str(tiny_hf_model))  # Save checks the folder: it must be a real model
    dialog.quant.setCurrentIndex(dialog.quant.findData("nf4"))
    dialog.image_tokens.setValue(512)
    assert dialog.image_tokens_hint.text() == budget_hint(512) == "≈ 0.5 megapixels per photo"
    dialog.max_tokens.setValue(200)
    dialog.temperature.setValue(0.7)
    dialog.language.setCurrentText("Français")
    dialog.openai_urls.setPlainText("http://127.0.0.1:8080/v1\n\n  http://127.0.0.1:8081/v1 \n")
    dialog.metadata_mode.setCurrentIndex(dialog.metadata_mode.findData("embedded"))
    dialog.theme.setCurrentIndex(dialog.theme.findData("dark"))
    dialog.buttons.button(QDialogButtonBox.StandardButton.Save).click()
    assert dialog.result() == dialog.DialogCode.Accepted
    chosen = dialog.result_settings()
    window.apply_settings(chosen)

    saved = json.loads((captioneer_home / "config" / "settings.json").read_text())
    assert config_dir() == captioneer_home / "config"
    assert saved["engine"] == "transformers" and saved["quant"] == "nf4" and saved["image_tokens"] == 512
    assert saved["openai_base_urls"] == ["http://127.0.0.1:8080/v1", "http://127.0.0.1:8081/v1"]
    assert load_settings() == chosen
    assert (chosen.max_tokens, chosen.temperature, chosen.language) == (200, 0.7, "Français")
    assert (chosen.metadata_mode, chosen.theme, chosen.ollama_host) == ("embedded", "dark", "http://127.0.0.1:11434")
    # The window follows: the banner is gone and the status bar names the new engine.
    assert not window.view.banner.isVisible()
    assert window.view.status_engine.text().startswith("transformers · tiny-qwen3vl")
    window.shutdown()


def test_cancel_keeps_the_old_settings(qtbot) -> None:
    original = Settings(language="Deutsch")
    dialog = SettingsDialog(original)
    qtbot.addWidget(dialog)
    dialog.language.setCurrentText("Italiano")
    dialog.buttons.button(QDialogButtonBox.StandardButton.Cancel).click()
    assert dialog.result() == dialog.DialogCode.Rejected
    assert dialog.result_settings() == original


def test_themes_switch_the_palette(qtbot) -> None:
    app = QApplication.instance()
    try:
        apply_theme(app, "dark")
        assert is_dark()
        apply_theme(app, "light")
        assert not is_dark()
    finally:
        apply_theme(app, "light")
    with pytest.raises(ValueError):
        apply_theme(app, "purple")


def test_crash_handler_saves_a_report_and_shows_it(qtbot) -> None:
    handler = CrashHandler()
    try:
        raise RuntimeError("boom in a slot")
    except RuntimeError as exc:
        error = exc
    shown: list[CrashDialog] = []

    def close_dialog() -> None:
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, CrashDialog)
        shown.append(dialog)
        dialog.copy_button.click()
        dialog.reject()

    with qtbot.waitSignal(handler.crashed, timeout=5000) as signal:
        handler.handle(RuntimeError, error, error.__traceback__)
    report, saved = signal.args
    QTimer.singleShot(0, close_dialog)
    qtbot.waitUntil(lambda: bool(shown), timeout=5000)
    assert "RuntimeError: boom in a slot" in report and "Captioneer" in report and "Python" in report
    assert saved.startswith(str(logs_dir())) and Path(saved).read_text(encoding="utf-8") == report
    assert QGuiApplication.clipboard().text() == report
    assert shown[0].details.toPlainText() == report


def test_crash_report_has_versions_and_the_traceback() -> None:
    try:
        {}["missing"]
    except KeyError as exc:
        report = crash_report(KeyError, exc, exc.__traceback__)
    assert report.splitlines()[0].startswith("Captioneer ")
    assert "PySide6" in report and "Traceback (most recent call last)" in report and "KeyError" in report


def test_theme_switching_is_live_for_style_sheets_and_themed_colours(qtbot) -> None:
    """A style sheet naming palette colours and a colour chosen for light or dark both follow a switch, and
    "system" brings the desktop's own palette back after a forced theme."""
    from PySide6.QtWidgets import QLabel

    from captioneer.desktop.ui.theme import set_themed_style

    app = QApplication.instance()
    original = app.palette().color(QPalette.ColorRole.Window).name()
    panel = QLabel("panel")
    panel.setStyleSheet("QLabel { background: palette(window); }")
    chip = QLabel("chip")
    set_themed_style(chip, lambda dark: f"QLabel {{ background: {'#000080' if dark else '#ffff00'}; }}")
    for widget in (panel, chip):
        qtbot.addWidget(widget)
        widget.resize(40, 40)
        widget.show()

    def colour(widget: QLabel) -> str:
        app.processEvents()
        return widget.grab().toImage().pixelColor(30, 30).name()

    try:
        apply_theme(app, "light")
        assert (colour(panel), colour(chip)) == ("#efefef", "#ffff00")
        apply_theme(app, "dark")
        assert (colour(panel), colour(chip)) == ("#25272b", "#000080")
        apply_theme(app, "system")
        assert app.palette().color(QPalette.ColorRole.Window).name() == original
    finally:
        apply_theme(app, "light")
