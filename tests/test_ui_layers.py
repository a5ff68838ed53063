"""The Qt layer's shape, checked from the source: views hold layout and import no controller (a view may
compose other views), the theme imports nothing of the project but where resources live, and a controller
never imports the window that composes it (the window hands it the view pieces and the session it drives)."""

from __future__ import annotations

from tests.test_architecture import graph

UI = "captioneer.desktop.ui."
THEME = UI + "theme"
QT_FREE = ("captioneer.desktop.core.", "captioneer.desktop.library.")
# Who may import a window: the app opens the main window, which opens the library window from its menu.
COMPOSED_BY = {
    UI + "app": set(),
    UI + "main_window": {UI + "app"},
    UI + "library_window": {UI + "main_window"},
}


def ui_modules() -> list[str]:
    return [module for module in graph() if module.startswith(UI)]


def test_views_import_only_the_theme_other_views_and_the_qt_free_core() -> None:
    views = [module for module in ui_modules() if module.endswith("_view")]
    assert len(views) >= 8  # the rule reaches every view, not none
    offenders = {
        view: sorted(
            name for name in graph()[view]
            if name != THEME and name not in views and not name.startswith(QT_FREE)
        )
        for view in views
    }
    assert {view: names for view, names in offenders.items() if names} == {}


def test_the_theme_imports_nothing_of_the_project_but_where_resources_live() -> None:
    assert graph()[THEME] <= {"captioneer.desktop.core.paths"}


def test_no_controller_imports_the_window_that_composes_it() -> None:
    offenders = {
        module: sorted(
            window for window, composers in COMPOSED_BY.items()
            if window in graph()[module] and module not in composers
        )
        for module in ui_modules()
    }
    assert {module: windows for module, windows in offenders.items() if windows} == {}
