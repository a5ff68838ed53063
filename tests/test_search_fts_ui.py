"""The library window's search box on the full-text index, offscreen on real widgets and a real catalog:
stemmed words and prefixes typed into the box narrow the grid, NOT keeps untagged photos, and a photo's
tooltip quotes the words the search matched."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from captioneer.desktop.library.catalog import fts, open_catalog
from tests.test_ui_library import filter_to, make_photos, open_window, stems, tag_directly

__all__ = ["open_window"]  # the fixture, imported for its name

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore(
        "OpenType support missing", "propagateSizeHints", "does not support raise", "grabbing the keyboard"
    ),
]

CAPTIONS = {
    "IMG_000": "Family on the beach at sunset.",
    "IMG_001": "A small boat moored in the harbour.",
    "IMG_002": "Two dogs running along the shore.",
    "IMG_003": "A cat sleeping on a sofa.",
}


def test_search_box_uses_the_index_and_tooltips_quote_the_match(qtbot, tmp_path: Path, open_window) -> None:
    root = tmp_path / "Photos"
    make_photos(root)  # six photos; the last two stay untagged
    tag_directly(root)
    with open_catalog() as catalog:
        for result in catalog.results():
            stem = Path(result.path).stem
            if stem in CAPTIONS:
                catalog.edit_result(result.id, caption=CAPTIONS[stem])
            else:
                catalog.db.execute("DELETE FROM results WHERE id = ?", (result.id,))
    window = open_window()
    assert window.model.rowCount() == 6

    with qtbot.waitSignal(window.browse.filtered, timeout=10_000):
        qtbot.keyClicks(window.view.search, "sunsets")  # typed as a person would: the box waits, then asks
    assert stems(window) == ["IMG_000"]
    tooltip = window.model.data(window.model.index(0), Qt.ItemDataRole.ToolTipRole)
    assert "Matches: Family on the beach at [sunset]." in tooltip

    filter_to(qtbot, window, query="moor* OR run")
    assert stems(window) == ["IMG_001", "IMG_002"]
    tips = [window.model.data(window.model.index(row), Qt.ItemDataRole.ToolTipRole) for row in range(2)]
    assert "[moored]" in tips[0] and "[running]" in tips[1]

    filter_to(qtbot, window, query='"dogs running" OR caption:"sleeping on"')
    assert stems(window) == ["IMG_002", "IMG_003"]

    # NOT a word: photos without a result have no text, so they are let through.
    filter_to(qtbot, window, query="NOT beach NOT harbour")
    assert stems(window) == ["IMG_002", "IMG_003", "IMG_004", "IMG_005"]
    tooltip = window.model.data(window.model.index(0), Qt.ItemDataRole.ToolTipRole)
    assert "Matches:" not in tooltip  # nothing matched: only words under NOT


def test_without_fts5_the_window_says_its_search_matches_plain_text(
    qtbot, tmp_path: Path, open_window, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An SQLite without FTS5 cannot be made here, so its answer to "have you FTS5?" is faked."""
    root = tmp_path / "Photos"
    make_photos(root, count=2)
    tag_directly(root)
    monkeypatch.setattr(fts, "fts5_available", lambda db: False)
    window = open_window()
    assert "FTS5" not in window.view.count.text()
    filter_to(qtbot, window, query="squ")  # the stand-in's titles say "square": a substring, as before
    assert stems(window) == ["IMG_000", "IMG_001"]
    assert "words matched as plain text (this Python's SQLite has no FTS5)" in window.view.count.text()
