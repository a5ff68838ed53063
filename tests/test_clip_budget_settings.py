"""The default clip budget: a validated settings.json key, edited in Settings next to the image budget, and
the one helper (``clip_budget``) that ``captioneer tag`` and the Tag Photos dialog read it through."""

from __future__ import annotations

import json

import pytest
from PySide6.QtWidgets import QDialogButtonBox

from captioneer.backends.errors import ConfigurationError
from captioneer.desktop.core.settings import (
    MAX_VIDEO_TOKENS,
    MIN_VIDEO_TOKENS,
    Settings,
    clip_budget,
    load_settings,
    save_settings,
    settings_path,
)
from captioneer.desktop.core.video_budget import DEFAULT_VIDEO_TOKENS
from captioneer.desktop.ui.settings_dialog import SettingsDialog, clip_budget_hint

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore("OpenType support missing", "propagateSizeHints"),
]


def test_the_clip_budget_defaults_and_survives_a_save(captioneer_home) -> None:
    assert Settings().video_tokens == DEFAULT_VIDEO_TOKENS == 4096
    save_settings(Settings(video_tokens=2048))
    assert json.loads(settings_path().read_text())["video_tokens"] == 2048
    assert load_settings().video_tokens == 2048


@pytest.mark.parametrize("tokens", [MIN_VIDEO_TOKENS - 1, MAX_VIDEO_TOKENS + 1, 0])
def test_a_clip_budget_out_of_range_in_the_file_is_refused_naming_the_file(captioneer_home, tokens) -> None:
    settings_path().parent.mkdir(parents=True, exist_ok=True)
    settings_path().write_text(json.dumps({"video_tokens": tokens}))
    with pytest.raises(ConfigurationError, match="(?s)settings file .* is not valid .*video_tokens"):
        load_settings()


@pytest.mark.parametrize(
    ("requested", "expected"),
    [(None, 2048), (64, 64), (8192, 8192), (MAX_VIDEO_TOKENS, MAX_VIDEO_TOKENS)],
)
def test_clip_budget_takes_the_request_else_the_settings(requested, expected) -> None:
    assert clip_budget(Settings(video_tokens=2048), requested) == expected


@pytest.mark.parametrize("requested", [63, 0, -5, MAX_VIDEO_TOKENS + 1])
def test_clip_budget_refuses_what_a_clip_cannot_use_in_one_line(requested) -> None:
    with pytest.raises(ConfigurationError) as caught:
        clip_budget(Settings(), requested)
    message = str(caught.value)
    assert "\n" not in message and f"{requested:,}" in message and "choose 64 to 24,576 tokens" in message


def test_settings_dialog_edits_the_clip_budget_next_to_the_image_budget(qtbot, captioneer_home) -> None:
    dialog = SettingsDialog(Settings(video_tokens=3072))
    qtbot.addWidget(dialog)
    assert dialog.video_tokens.value() == 3072
    assert dialog.video_tokens.minimum() == MIN_VIDEO_TOKENS
    assert dialog.video_tokens.maximum() == MAX_VIDEO_TOKENS
    # The hint counts full-size 16:9 frames: 1152×640 is 36×20 = 720 tokens.
    assert dialog.video_tokens_hint.text() == clip_budget_hint(3072)
    assert clip_budget_hint(7200) == "≈ 10.0 full-size frames (1152×640) per clip, or more smaller ones"
    dialog.video_tokens.setValue(7200)
    assert dialog.video_tokens_hint.text().startswith("≈ 10.0 full-size frames")
    dialog.video_tokens.setValue(10)  # the box stops at the smallest budget
    assert dialog.video_tokens.value() == MIN_VIDEO_TOKENS
    dialog.video_tokens.setValue(1536)
    dialog.buttons.button(QDialogButtonBox.StandardButton.Save).click()
    assert dialog.result() == dialog.DialogCode.Accepted
    assert dialog.result_settings().video_tokens == 1536


def test_tag_runs_with_the_settings_clip_budget(tmp_path, tiny_gguf, capsys) -> None:
    from PIL import Image

    from captioneer.desktop.cli import main
    from captioneer.desktop.library.catalog import open_catalog
    from captioneer.desktop.library.catalog.runs import list_runs

    save_settings(Settings(video_tokens=2048))
    root = tmp_path / "lib"
    root.mkdir()
    Image.new("RGB", (64, 48), (20, 90, 200)).save(root / "sky.jpg")
    model, mmproj = tiny_gguf
    engine = ["--model", str(model), "--mmproj", str(mmproj), "--image-tokens", "16", "--max-tokens", "8",
              "--threads", "1", "--in-process"]
    assert main(["tag", str(root), "--task", "caption", *engine]) == 0
    capsys.readouterr()
    with open_catalog() as catalog:
        assert [run.spec.video_tokens for run in list_runs(catalog)] == [2048]
