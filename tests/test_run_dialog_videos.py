"""The Tag Photos dialog's Videos tab, offscreen on a real library window whose catalog holds real clips made
with PyAV: the plan line is what the sampling maths plans for the probed clips, follows the budget and the
engine, warns when the engine's context is too small; the chosen budget reaches the run's spec and the
settings; and the dialog fits a 768-pixel-high screen."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from PIL import Image

from captioneer.backends.base import EngineConfig
from captioneer.backends.gguf import context_size
from captioneer.backends.registry import engine_class
from captioneer.desktop.core.clip_costs import clips_to_probe, plan_line
from captioneer.desktop.core.settings import load_settings, settings_path
from captioneer.desktop.core.video import probe
from captioneer.desktop.core.video_budget import DEFAULT_VIDEO_TOKENS, SamplingMode, plan_sampling
from captioneer.desktop.library.catalog import open_catalog
from captioneer.desktop.library.scanner import scan_library
from captioneer.desktop.ui.library_run_dialog_view import RunDialogView, fitted_height
from tests.test_ui_library_shell import answer_modal, library  # noqa: F401  (the fixture)
from tests.video_clips import KINDS, make_clip

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore(
        "OpenType support missing", "propagateSizeHints", "does not support raise", "grabbing the keyboard"
    ),
]

HD = dataclasses.replace(KINDS["mp4"], width=1280, height=720)


def add_clips(root: Path) -> None:
    """The real scan catalogs the clips."""
    with open_catalog() as catalog:
        scan_library(catalog, root)


@pytest.fixture
def clip_library(tmp_path: Path) -> list[Path]:
    root = tmp_path / "Phone"
    root.mkdir()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(root / "IMG_0001.png")
    clips = [
        make_clip(root / "short.mp4", HD, seconds=1.0),
        make_clip(root / "walk.mp4", HD, seconds=3.0),
        make_clip(root / "portrait.mov", "mov", seconds=6.0, rotation=90),
    ]
    # A clip damaged after the scan (a disk error, a sync tool): the dialog meets it when it probes.
    broken = make_clip(root / "broken.mp4", seconds=0.5)
    add_clips(root)
    broken.write_bytes(b"not a video at all" * 100)
    return [*clips, broken]


def open_and(qtbot, window, act) -> dict:
    """Open Tag Photos, wait for the clips to be probed, run ``act(dialog, seen)``; what it saw."""
    seen: dict = {}

    def choose(dialog: RunDialogView) -> None:
        qtbot.waitUntil(lambda: "reading a few" not in dialog.videos.plan.text(), timeout=10_000)
        act(dialog, seen)

    answer_modal(qtbot, RunDialogView, choose)
    seen["chosen"] = window.runs.dialog.ask()
    return seen


def expected_line(clips: list[Path], tokens: int, context: int | None = None, **engine) -> str:
    """The line for the clips the dialog probes: the smallest, median and largest file."""
    chosen = clips_to_probe([(str(path), path.stat().st_size) for path in clips])
    assert len(chosen) == 3 and str(clips[3]) in chosen  # the broken file is the smallest
    probed = [probe(path) for path in chosen if path != str(clips[3])]
    return plan_line(4, probed, tokens, unreadable=1, context=context, **engine).text


def test_the_plan_line_follows_the_budget_and_reaches_the_spec(qtbot, library, clip_library) -> None:  # noqa: F811
    window = library()
    qtbot.waitUntil(lambda: window.model.rowCount() == 5, timeout=10_000)
    gguf = dict(
        video_input=False,
        engine="gguf",
        min_image_tokens=engine_class("gguf").capabilities.min_image_tokens,
    )

    def act(dialog: RunDialogView, seen: dict) -> None:
        videos = dialog.videos
        seen["tab"] = dialog.options.tabText(dialog.videos_tab)
        seen["budget"] = videos.budget.value()
        seen["line"] = videos.plan.text()
        videos.budget.setValue(1024)
        seen["line 1024"] = videos.plan.text()
        seen["warning"] = dialog.clip_warning.isVisible()
        dialog.start_button.click()

    seen = open_and(qtbot, window, act)
    assert seen["tab"] == "Videos (4)" and seen["budget"] == DEFAULT_VIDEO_TOKENS
    # A run with clips sizes gguf's context for the clip budget: no warning.
    assert seen["line"] == expected_line(clip_library, 4096, context=context_size(4096), **gguf)
    # Probed: the broken file, the 1 s and the 3 s 720p clips (the largest files); typical is the median.
    walk = plan_sampling(probe(clip_library[1]), 4096, mode=SamplingMode.IMAGES)
    assert seen["line"].startswith(
        "4 clips (1 could not be read; a run reports why) · a 0:01 1280×720 clip → 4 frames at 1152×640, "
        f"2,880 tokens; the longest, a 0:03 1280×720 clip → 6 frames at {walk.width}×{walk.height}, "
        f"{walk.total_tokens:,} tokens"
    )
    assert seen["line"].endswith("(frames as images: gguf)") and walk.total_tokens > 2000
    image_budget = window.runs.dialog.engine_config().image_tokens
    at_1024 = expected_line(clip_library, 1024, context=context_size(max(1024, image_budget)), **gguf)
    assert seen["line 1024"] == at_1024 != seen["line"]
    small = plan_sampling(probe(clip_library[1]), 1024, mode=SamplingMode.IMAGES)
    assert f"6 frames at {small.width}×{small.height}, {small.total_tokens:,} tokens" in seen["line 1024"]
    assert not seen["warning"]
    spec = seen["chosen"][0]
    assert spec.video_tokens == 1024
    assert json.loads(settings_path().read_text())["video_tokens"] == 1024  # remembered as the default
    assert load_settings().video_tokens == window.session.settings.video_tokens == 1024


def test_the_engine_sets_the_mode_and_a_small_context_is_warned(qtbot, library, clip_library) -> None:  # noqa: F811
    window = library()
    qtbot.waitUntil(lambda: window.model.rowCount() == 5, timeout=10_000)
    window.runs.dialog.engine_config = lambda: EngineConfig(engine="transformers", model="/m/qwen3-vl")

    def look(dialog: RunDialogView, seen: dict) -> None:
        seen["line"] = dialog.videos.plan.text()
        seen["warning"] = dialog.clip_warning.isVisibleTo(dialog)
        dialog.reject()

    seen = open_and(qtbot, window, look)
    assert seen["chosen"] is None and not seen["warning"]
    assert seen["line"] == expected_line(clip_library, 4096, video_input=True, engine="transformers")
    assert seen["line"].endswith("(true video: transformers)")
    walk = plan_sampling(probe(clip_library[1]), 4096, mode=SamplingMode.VIDEO)
    assert f"a 0:03 1280×720 clip → 6 frames at {walk.width}×{walk.height}" in seen["line"]

    window.runs.dialog.engine_config = lambda: EngineConfig(
        engine="gguf", model="fake-model.gguf", context_tokens=1024
    )

    def warned(dialog: RunDialogView, seen: dict) -> None:
        seen["shown"] = dialog.clip_warning.isVisibleTo(dialog)
        seen["warning"] = dialog.clip_warning.text()
        dialog.videos.budget.setValue(256)
        seen["after"] = dialog.clip_warning.isVisibleTo(dialog)
        dialog.reject()

    seen = open_and(qtbot, window, warned)
    assert seen["shown"] and seen["warning"].startswith("A clip needs about ")
    assert "but the gguf engine's context holds 1,024: lower the clip budget" in seen["warning"]
    assert "\n" not in seen["warning"]
    assert not seen["after"]  # 256 tokens and the prompt fit


def test_without_clips_the_videos_tab_says_so(qtbot, library, tmp_path: Path) -> None:  # noqa: F811
    root = tmp_path / "Stills"
    root.mkdir()
    Image.new("RGB", (64, 48), (40, 200, 40)).save(root / "IMG_0002.png")
    with open_catalog() as catalog:
        scan_library(catalog, root)
    window = library()
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=10_000)

    def look(dialog: RunDialogView, seen: dict) -> None:
        seen["tab"] = dialog.options.tabText(dialog.videos_tab)
        seen["line"] = dialog.videos.plan.text()
        seen["enabled"] = dialog.videos.budget.isEnabled()
        dialog.start_button.click()

    seen = open_and(qtbot, window, look)
    assert seen["tab"] == "Videos" and not seen["enabled"]
    assert seen["line"] == "No videos among these photos: the clip budget does not apply."
    assert seen["chosen"][0].video_tokens == DEFAULT_VIDEO_TOKENS


def test_the_dialog_fits_a_768_pixel_screen(qtbot, library, clip_library) -> None:  # noqa: F811
    window = library()

    def measure(dialog: RunDialogView, seen: dict) -> None:
        seen["least"] = dialog.minimumSizeHint().height()
        seen["natural"] = dialog.sizeHint().height()
        seen["height"] = dialog.frameGeometry().height()
        seen["screen"] = dialog.screen().availableGeometry().height()
        seen["tabs"] = [dialog.options.tabText(i) for i in range(dialog.options.count())]
        dialog.reject()

    seen = open_and(qtbot, window, measure)
    # 768 less a taskbar and the title bar is what a 1366×768 laptop leaves a dialog: the dialog fits it as it
    # is, can shrink to far less (the option pages scroll) and opens no taller than the screen.
    assert seen["natural"] <= 680 and seen["least"] <= 560
    assert seen["height"] <= seen["screen"]
    assert seen["tabs"] == ["Context", "Keywords", "Videos (4)"]


@pytest.mark.parametrize(
    ("height", "frame", "available", "least", "expected"),
    [(650, 30, 728, 450, 650), (650, 30, 680, 450, 650), (650, 30, 600, 450, 570), (650, 30, 400, 450, 450)],
)
def test_a_dialog_taller_than_the_screen_opens_at_what_the_screen_leaves(
    height: int, frame: int, available: int, least: int, expected: int
) -> None:
    assert fitted_height(height, frame, available, least) == expected
