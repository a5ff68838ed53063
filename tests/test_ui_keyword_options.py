"""Tag Photos' Keywords group in the library window, offscreen on a real catalog: the folder rules line for
the chosen photos, one run per rule, and the keyword choices applied and remembered (the stand-in engine of
tests/fakes answers from pixel colours, as in tests/test_ui_library.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from captioneer.desktop.library.catalog import open_catalog
from captioneer.desktop.library.folder_rules import RULES_TEMPLATE, ensure_rules_file, rules_path
from captioneer.desktop.library.scanner import scan_library
from tests.test_ui_library import make_photos, open_window  # noqa: F401 (open_window is a fixture)

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore(
        "OpenType support missing", "propagateSizeHints", "does not support raise", "grabbing the keyboard"
    ),
]


def test_rules_line_one_run_per_rule_and_keyword_choices(qtbot, tmp_path: Path, open_window) -> None:  # noqa: F811
    root = tmp_path / "Photos"
    make_photos(root)  # 2023/IMG_000-002 (red, green, blue), 2024/IMG_003-005
    with open_catalog() as catalog:
        scan_library(catalog, root)
    rules_path().parent.mkdir(parents=True, exist_ok=True)
    rule = '[[rule]]\nname = "New"\nfolder = "*/2024/*"\ntask = "caption"\n'
    rules_path().write_text(rule, encoding="utf-8")
    window = open_window()
    window.view.grid.selectAll()
    seen: dict[str, str] = {}

    def fill_and_start() -> None:
        dialog = next(
            w for w in QApplication.topLevelWidgets() if w.windowTitle() == "Tag Photos" and w.isVisible()
        )
        dialog.scope_selection.setChecked(True)
        seen["selection"] = dialog.keywords.rules.text()
        dialog.scope_filter.setChecked(True)
        seen["filter"] = dialog.keywords.rules.text()
        dialog.task.setCurrentIndex(dialog.task.findData("keywords"))
        dialog.keywords.required.setText("Client X")
        dialog.keywords.excluded.setText("Red")
        dialog.keywords.min_count.setValue(2)
        dialog.start_button.click()

    QTimer.singleShot(200, fill_and_start)
    with qtbot.waitSignal(window.runs.finished, timeout=20_000) as finished:
        window.view.tag_action.trigger()
    assert seen["selection"] == "1 rule: New → caption (3 photos); 3 photos by your choices"
    assert seen["filter"] == seen["selection"]
    assert finished.args[0].state == "done"
    assert finished.args[0].message.startswith("2 runs (folder rules) finished")
    with open_catalog(readonly=True) as catalog:
        results = {Path(r.path).stem: r for r in catalog.results()}
    assert {name: result.task for name, result in results.items()} == {
        "IMG_000": "keywords", "IMG_001": "keywords", "IMG_002": "keywords",
        "IMG_003": "caption", "IMG_004": "caption", "IMG_005": "caption",
    }  # fmt: skip
    for result in results.values():
        assert result.keywords[0] == "Client X"
        assert "red" not in [keyword.casefold() for keyword in result.keywords]  # IMG_000 is red
    assert len(results["IMG_000"].keywords) > 1  # the model's other keywords stay
    # A caption task gives no keywords of its own: it is never "too few".
    assert all(results[name].review != "needs_review" for name in ("IMG_003", "IMG_004", "IMG_005"))
    assert window.session.prefs.keyword_choices["required"] == ["Client X"]
    assert window.session.prefs.keyword_choices["min_keywords"] == 2


def test_a_broken_rules_file_is_said_and_no_run_starts(qtbot, tmp_path: Path, open_window) -> None:  # noqa: F811
    rules_path().parent.mkdir(parents=True, exist_ok=True)
    rules_path().write_text("[[rule]]\ntask = 'caption'\n", encoding="utf-8")
    window = open_window()
    seen: dict[str, object] = {}

    def look_and_cancel() -> None:
        dialog = next(
            w for w in QApplication.topLevelWidgets() if w.windowTitle() == "Tag Photos" and w.isVisible()
        )
        seen["rules"] = dialog.keywords.rules.text()
        seen["start"] = dialog.start_button.isEnabled()
        dialog.reject()

    QTimer.singleShot(200, look_and_cancel)
    window.view.tag_action.trigger()
    qtbot.waitUntil(lambda: "rules" in seen, timeout=10_000)
    assert "rule 1 needs a folder pattern" in str(seen["rules"])
    assert seen["start"] is False


def test_open_rules_file_starts_from_a_commented_example(tmp_path: Path) -> None:
    path = ensure_rules_file(tmp_path / "config" / "folder-rules.toml")
    assert path.read_text(encoding="utf-8") == RULES_TEMPLATE
    path.write_text("# mine\n", encoding="utf-8")
    assert ensure_rules_file(path).read_text(encoding="utf-8") == "# mine\n"  # never overwritten
