"""Live theme switching reaches every kind of widget: both windows open with real cards (the tiny gguf engine)
and a tagged library, plus the settings and crash dialogs, switched light → dark → light while open; the
rendered pixels of representative widgets must follow each switch and text must stay readable."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QApplication, QWidget

from captioneer.desktop.core.engine_setup import Overrides
from captioneer.desktop.core.settings import Settings, load_settings, save_settings
from captioneer.desktop.ui.card_view import CardState
from captioneer.desktop.ui.crash_view import CrashDialog
from captioneer.desktop.ui.library_window import LibraryWindow
from captioneer.desktop.ui.main_window import MainWindow
from captioneer.desktop.ui.model_manager import ModelManagerDialog
from captioneer.desktop.ui.settings_dialog import SettingsDialog
from captioneer.desktop.ui.theme import apply_theme
from captioneer.desktop.ui.wizard import SetupWizard
from tests.test_ui_library import fake_args, fake_opener, make_photos, tag_directly

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore("OpenType support missing", "propagateSizeHints"),
]


def _pixels(widget: QWidget) -> list[QColor]:
    QApplication.processEvents()
    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    step = max(1, min(image.width(), image.height()) // 40)
    return [
        image.pixelColor(x, y) for y in range(0, image.height(), step) for x in range(0, image.width(), step)
    ]


def background_lightness(widget: QWidget) -> int:
    """The median lightness of what ``widget`` paints: its background, since text covers little of it."""
    values = sorted(colour.lightness() for colour in _pixels(widget))
    return values[len(values) // 2]


def _luminance(colour: QColor) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(colour.red()) + 0.7152 * channel(colour.green()) + 0.0722 * channel(colour.blue())


def _contrast(one: QColor, other: QColor) -> float:
    low, high = sorted((_luminance(one), _luminance(other)))
    return (high + 0.05) / (low + 0.05)


def text_contrast(widget: QWidget) -> float:
    """The WCAG contrast between ``widget``'s background (its median pixel) and its most distinct pixel."""
    pixels = _pixels(widget)
    background = sorted(pixels, key=QColor.lightness)[len(pixels) // 2]
    base = _luminance(background)
    best = max(pixels, key=lambda colour: abs(_luminance(colour) - base))
    return _contrast(background, best)


def test_both_windows_and_the_dialogs_follow_a_live_theme_switch(qtbot, tiny_gguf, tmp_path: Path) -> None:
    app = QApplication.instance()
    model, mmproj = tiny_gguf
    save_settings(Settings(max_tokens=8, first_run_done=True))
    main = MainWindow(
        Overrides(engine="gguf", model=str(model), options={"mmproj": str(mmproj), "threads": 2})
    )
    qtbot.addWidget(main.view)
    root = tmp_path / "Photos"
    photos = make_photos(root, 3)
    tag_directly(root)
    library = LibraryWindow(overrides=fake_args(), opener=fake_opener())
    qtbot.addWidget(library.view)
    try:
        apply_theme(app, "light")
        main.view.resize(900, 700)
        main.view.show()
        results = []
        main.resultReady.connect(results.append)
        broken = tmp_path / "cut.jpg"
        broken.write_bytes(photos[0].read_bytes()[:40])
        main.add_paths([photos[0], broken])
        qtbot.waitUntil(lambda: len(results) == 2, timeout=90_000)
        cards = {card.path.name: card.view for card in main.card_list.cards.values()}
        failed = cards["cut.jpg"]
        assert failed.state is CardState.FAILED

        library.view.show()
        library.view.run_panel.show()  # as during a run
        qtbot.waitUntil(lambda: library.model.rowCount() == 3, timeout=10_000)
        library.selection.select_row(0)
        qtbot.waitUntil(lambda: bool(library.view.detail.caption.toPlainText()), timeout=10_000)

        settings = SettingsDialog(load_settings(), main.view)
        qtbot.addWidget(settings)
        settings.error.setText("Some values are not valid — server address: not a web address")
        settings.error.show()
        settings.show()
        crash = CrashDialog("Traceback (most recent call last):\nRuntimeError: example\n", "crash.txt")
        qtbot.addWidget(crash)
        crash.show()
        manager = ModelManagerDialog(load_settings(), main.view)
        qtbot.addWidget(manager)
        manager.show()
        wizard = SetupWizard(load_settings(), main.view)
        qtbot.addWidget(wizard)
        wizard.show()
        qtbot.waitUntil(lambda: wizard.hardware_page.table.rowCount() > 0, timeout=30_000)
        library.view.banner.text.setText("Run 1 stopped with 2 of 3 photos still to tag. Resume it?")
        library.view.banner.show()

        surfaces = {
            "quick window": main.view.scroll.viewport(),
            "card": cards[photos[0].name],
            "card chip": failed.chip,
            "library grid": library.view.grid.viewport(),
            "detail caption": library.view.detail.caption,
            "run panel": library.view.run_panel,
            "settings": settings,
            "crash report": crash.details,
            "model manager": manager,
            "wizard's model table": wizard.hardware_page.table.viewport(),
            "library banner": library.view.banner,
        }
        texts = {"failed card text": failed.text, "settings error": settings.error, "chip": failed.chip}
        for theme in ("light", "dark", "light"):
            apply_theme(app, theme)
            for name, widget in surfaces.items():
                lightness = background_lightness(widget)
                if theme == "dark":
                    assert lightness < 110, f"{name} stayed light in the dark theme ({lightness})"
                else:
                    assert lightness > 150, f"{name} stayed dark in the light theme ({lightness})"
            for name, widget in texts.items():
                assert text_contrast(widget) >= 3.0, f"{name} is hard to read in the {theme} theme"
    finally:
        apply_theme(app, "light")
        library.shutdown()
        main.shutdown()


def test_check_boxes_and_radio_buttons_show_on_the_dark_palette(qtbot) -> None:
    """Fusion outlines them in a darkened window colour, which vanished on dark (the Tag Photos and Write
    dialogs' choices could not be seen) and is faint on light; an unchecked one must stand out by 3:1."""
    from PySide6.QtWidgets import QCheckBox, QRadioButton

    app = QApplication.instance()
    boxes = [QCheckBox(), QRadioButton()]
    for box in boxes:
        qtbot.addWidget(box)
        box.resize(24, 24)
        box.show()
    try:
        for theme in ("light", "dark", "light"):
            apply_theme(app, theme)
            for box in boxes:
                assert text_contrast(box) >= 3.0, f"an unchecked {type(box).__name__} vanishes in {theme}"
    finally:
        apply_theme(app, "light")


def test_why_a_photo_cannot_be_shown_is_readable_in_both_themes(qtbot, tmp_path: Path) -> None:
    """The review panel's preview says why a photo cannot be shown in its place; its text was palette(light)
    on palette(dark): 2.6:1 on the light theme and 2:1 on the dark one."""
    from captioneer.desktop.ui.library_detail_view import PhotoPreview

    app = QApplication.instance()
    preview = PhotoPreview()
    qtbot.addWidget(preview)
    preview.resize(360, 240)
    preview.show_photo(None, "Cannot show this photo:\nfile is cut short: copy it again from the original")
    preview.show()
    try:
        for theme in ("light", "dark", "light"):
            apply_theme(app, theme)
            assert text_contrast(preview) >= 4.5, f"the preview's text is hard to read in the {theme} theme"
    finally:
        apply_theme(app, "light")


def test_the_grid_badges_are_readable_in_both_themes(qtbot) -> None:
    """The library grid's review badges paint small text (white on the light theme, near-black on the dark
    one) on these colours; "untagged", "review" and "approved" were 3.2–4.4:1 on the light theme."""
    from captioneer.desktop.ui.library_model import BADGES

    for status, (_text, light, dark) in BADGES.items():
        assert _contrast(QColor("#ffffff"), QColor(light)) >= 4.5, f"{status} badge on the light theme"
        assert _contrast(QColor("#101114"), QColor(dark)) >= 4.5, f"{status} badge on the dark theme"
