"""The Tag Photos dialog's Context group, offscreen on a real library window: filled from the remembered
choices, read into the run's spec, remembered again, and off for tasks without a place for context; and the
details panel saying what a result was asked with."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from captioneer.desktop.core.context import PHOTO_VARIABLES
from captioneer.desktop.library.browse import LibraryPrefs
from captioneer.desktop.library.catalog import open_catalog
from captioneer.desktop.library.runs import RunSpec, execute_run, plan_run
from captioneer.desktop.library.scanner import scan_library
from captioneer.desktop.ui.library_run_dialog_view import RunDialogView
from tests.fakes.tagging_engine import FakeEngine, fake_config
from tests.test_ui_library_shell import answer_modal, library  # noqa: F401  (the fixture)

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore(
        "OpenType support missing", "propagateSizeHints", "does not support raise", "grabbing the keyboard"
    ),
]


def test_context_group_fills_from_prefs_builds_the_spec_and_is_remembered(qtbot, library) -> None:  # noqa: F811
    window = library()
    prefs = window.session.prefs
    prefs.context, prefs.context_event = ["place", "date", "nonsense"], "Gala"
    seen: dict[str, object] = {}

    def choose(dialog: RunDialogView) -> None:
        group = dialog.context
        seen["checked"] = [name for name, box in group.variables.items() if box.isChecked()]
        seen["event"] = group.event.text()
        dialog.task.setCurrentIndex(dialog.task.findData("ocr"))
        seen["ocr"] = (group.isEnabled(), group.note.text())
        dialog.task.setCurrentIndex(dialog.task.findData("keywords"))
        seen["keywords"] = group.isEnabled()
        group.variables["camera"].setChecked(True)
        group.people.setText("  Anna, Ben ")
        dialog.start_button.click()

    answer_modal(qtbot, RunDialogView, choose)
    chosen = window.runs.dialog.ask()
    assert seen["checked"] == ["date", "place"] and seen["event"] == "Gala"
    assert seen["ocr"] == (False, "This task does not use context (it does not describe the photo).")
    assert seen["keywords"] is True
    assert chosen is not None
    spec = chosen[0]
    assert spec.context == ("date", "place", "camera")
    assert (spec.context_event, spec.context_people, spec.context_location) == ("Gala", "Anna, Ben", "")
    assert prefs.context == ["date", "place", "camera"] and prefs.context_people == "Anna, Ben"


def test_a_task_without_context_slot_runs_without_the_remembered_context(qtbot, library) -> None:  # noqa: F811
    window = library()
    window.session.prefs.context = list(PHOTO_VARIABLES)

    def choose(dialog: RunDialogView) -> None:
        dialog.task.setCurrentIndex(dialog.task.findData("ocr"))
        dialog.start_button.click()

    answer_modal(qtbot, RunDialogView, choose)
    chosen = window.runs.dialog.ask()
    assert chosen is not None and chosen[0].task == "ocr" and chosen[0].context == ()
    assert window.session.prefs.context == list(PHOTO_VARIABLES)  # still remembered for the next time


def test_details_panel_says_what_the_result_was_asked_with(qtbot, tmp_path: Path, library) -> None:  # noqa: F811
    root = tmp_path / "Photos" / "Lake trip"
    root.mkdir(parents=True)
    Image.new("RGB", (64, 64), (10, 120, 200)).save(root / "IMG_001.png")
    with open_catalog() as catalog:
        scan_library(catalog, root.parent)
        spec = RunSpec(image_tokens=16, context=("folder",), context_event="Gala")
        plan = plan_run(catalog, str(root.parent), catalog.photos_under(root.parent), spec, fake_config())
        execute_run(catalog, plan.run_id, FakeEngine(fake_config()))
    window = library()
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=10_000)
    window.selection.select_row(0)
    info = window.review.detail.info.text()
    assert 'context: folder Lake trip · event Gala' in info


def test_context_choices_survive_a_restart() -> None:
    LibraryPrefs(context=["date", "place"], context_event="Gala", context_location="Bled").save()
    loaded = LibraryPrefs.load()
    assert (loaded.context, loaded.context_event, loaded.context_people, loaded.context_location) == (
        ["date", "place"],
        "Gala",
        "",
        "Bled",
    )
