"""The setup wizard's "My library has videos" choice: the same recommendation as `captioneer recommend
--videos`, at the clip budget in the settings, shown in the profile table (offscreen)."""

from __future__ import annotations

import pytest

from captioneer.backends.hardware import hypothetical_hardware
from captioneer.backends.recommend import recommend
from captioneer.desktop.core.clip_costs import clip_budget_estimate
from captioneer.desktop.core.settings import Settings
from captioneer.desktop.ui.wizard import SetupWizard, profile_cells

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore("OpenType support missing", "propagateSizeHints"),
]

EIGHT_GB = hypothetical_hardware("nvidia", vram_gb=8, ram_gb=32)


def test_profile_cells_show_a_clip_or_photos_only() -> None:
    ranked = recommend(EIGHT_GB, clips=clip_budget_estimate(4096))
    fits, photos_only = ranked[0], next(p for p in ranked if not p.clip_fits)
    cells = profile_cells(fits)
    assert cells[4] == f"{fits.memory_gb:.1f} GB · clip {fits.clip.memory.total_gb:.1f} GB"
    assert cells[5] == f"≈ {fits.seconds_per_photo:.0f} s / photo · {fits.clip.seconds:.0f} s / clip"
    assert profile_cells(photos_only)[4] == f"{photos_only.memory_gb:.1f} GB · photos only"
    assert profile_cells(recommend(EIGHT_GB)[0])[4].endswith(" GB")  # no clip without videos


def test_the_videos_choice_reranks_for_clips_at_the_settings_budget(qtbot) -> None:
    wizard = SetupWizard(Settings(video_tokens=4096), prober=lambda _settings: EIGHT_GB)
    qtbot.addWidget(wizard)
    wizard.show()
    qtbot.waitUntil(wizard.hardware_page.isComplete, timeout=20_000)
    page = wizard.hardware_page
    assert not page.videos.isChecked()
    assert wizard.selected_profile().variant.id == "qwen3-vl-8b-gguf-q4_k_m"

    page.videos.setChecked(True)
    expected = recommend(EIGHT_GB, clips=clip_budget_estimate(4096))
    assert [p.variant.id for p in wizard.profiles] == [p.variant.id for p in expected]
    first = wizard.selected_profile()
    assert first.variant.id == expected[0].variant.id != "qwen3-vl-8b-gguf-q4_k_m" and first.clip_fits
    assert page.table.item(0, 0).text().startswith("★ ") and "s / clip" in page.table.item(0, 5).text()
    eight = next(row for row, p in enumerate(wizard.profiles) if p.variant.id == "qwen3-vl-8b-gguf-q4_k_m")
    assert page.table.item(eight, 4).text().endswith("photos only")
    assert "Videos: a 4,096-token clip needs" in page.reason.text()

    page.videos.setChecked(False)
    assert wizard.selected_profile().variant.id == "qwen3-vl-8b-gguf-q4_k_m"
    assert wizard.selected_profile().clip is None
