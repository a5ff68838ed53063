"""The Settings dialog's server limits (requests at once, timeouts, answer cap) reach the server engines."""

from __future__ import annotations

import json

import pytest
from PySide6.QtWidgets import QDialogButtonBox

from captioneer.backends.openai_engine import OpenAIBackend
from captioneer.desktop.core.settings import Settings
from captioneer.desktop.ui.main_window import MainWindow
from captioneer.desktop.ui.settings_dialog import SettingsDialog

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore("OpenType support missing", "propagateSizeHints"),
]


def test_server_limits_are_shown_edited_saved_and_used(qtbot, captioneer_home) -> None:
    window = MainWindow()
    qtbot.addWidget(window.view)
    settings = Settings(engine="openai", model="qwen3-vl-2b", openai_base_urls=["http://127.0.0.1:8080/v1"])
    dialog = SettingsDialog(settings, window.view)
    qtbot.addWidget(dialog)
    assert dialog.server_parallel.value() == 1 and dialog.server_parallel.isEnabled()
    assert dialog.server_read_timeout.value() == 120.0 and dialog.server_request_timeout.value() == 600.0
    assert dialog.server_max_answer_kb.value() == 16384

    dialog.server_parallel.setValue(4)
    dialog.server_connect_timeout.setValue(2.5)
    dialog.server_read_timeout.setValue(45)
    dialog.server_request_timeout.setValue(300)
    dialog.server_retry_down_after.setValue(10)
    dialog.server_max_answer_kb.setValue(2048)
    dialog.buttons.button(QDialogButtonBox.StandardButton.Save).click()
    chosen = dialog.result_settings()
    window.apply_settings(chosen)

    saved = json.loads((captioneer_home / "config" / "settings.json").read_text())
    assert (saved["server_parallel"], saved["server_read_timeout"], saved["server_max_answer_kb"]) == (
        4, 45.0, 2048
    )
    backend = OpenAIBackend(window.engine_config())
    assert backend.concurrency() == 4
    limits = backend.limits
    assert (limits.connect_timeout, limits.read_timeout, limits.request_timeout) == (2.5, 45.0, 300.0)
    assert (limits.retry_down_after, limits.max_answer_bytes) == (10.0, 2048 * 1024)


def test_server_limits_are_greyed_out_for_in_process_engines(qtbot) -> None:
    dialog = SettingsDialog(Settings(engine="gguf"))
    qtbot.addWidget(dialog)
    assert not dialog.server_parallel.isEnabled() and not dialog.server_read_timeout.isEnabled()
    dialog.engine.setCurrentIndex(dialog.engine.findData("ollama"))
    assert dialog.server_parallel.isEnabled() and dialog.server_request_timeout.isEnabled()
