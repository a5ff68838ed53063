"""Captioneer's look: the light/dark palettes, the theme switch, the dark-palette test and the app icon.
Imports only Qt and where resources live, so every view can use it without importing a controller."""

from __future__ import annotations

from collections.abc import Callable
from weakref import WeakKeyDictionary

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPainter, QPalette, QPen
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QProxyStyle,
    QStyle,
    QStyleFactory,
    QStyleOption,
    QWidget,
)

from captioneer.desktop.core.paths import resource_path

THEMES = ("system", "light", "dark")


def app_icon() -> QIcon:
    """The Captioneer icon (resources/icons/captioneer.svg)."""
    return QIcon(str(resource_path("icons/captioneer.svg")))


def dark_palette() -> QPalette:
    """A calm dark palette for Fusion, used when the user picks the dark theme."""
    palette = QPalette()
    window, base, text = QColor(37, 39, 43), QColor(28, 30, 33), QColor(230, 231, 233)
    disabled = QColor(128, 130, 134)
    highlight = QColor(70, 130, 230)
    roles = {
        QPalette.ColorRole.Window: window,
        QPalette.ColorRole.WindowText: text,
        QPalette.ColorRole.Base: base,
        QPalette.ColorRole.AlternateBase: QColor(45, 48, 53),
        QPalette.ColorRole.ToolTipBase: QColor(50, 53, 58),
        QPalette.ColorRole.ToolTipText: text,
        QPalette.ColorRole.PlaceholderText: disabled,
        QPalette.ColorRole.Text: text,
        QPalette.ColorRole.Button: QColor(50, 53, 58),
        QPalette.ColorRole.ButtonText: text,
        QPalette.ColorRole.BrightText: QColor(255, 90, 90),
        QPalette.ColorRole.Light: QColor(70, 73, 78),
        QPalette.ColorRole.Midlight: QColor(58, 61, 66),
        QPalette.ColorRole.Mid: QColor(60, 63, 68),
        QPalette.ColorRole.Dark: QColor(20, 21, 23),
        QPalette.ColorRole.Shadow: QColor(0, 0, 0),
        QPalette.ColorRole.Highlight: highlight,
        QPalette.ColorRole.HighlightedText: QColor(255, 255, 255),
        QPalette.ColorRole.Link: QColor(110, 165, 255),
        QPalette.ColorRole.LinkVisited: QColor(170, 140, 255),
    }
    for role, color in roles.items():
        palette.setColor(role, color)
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, disabled)
    return palette


class OutlinedFusionStyle(QProxyStyle):
    """Fusion with check box and radio button outlines that stand out from the window (3:1): Fusion draws
    them in the window colour made darker, which vanishes on a dark window and is faint on a light one."""

    _INDICATORS = (
        QStyle.PrimitiveElement.PE_IndicatorCheckBox,
        QStyle.PrimitiveElement.PE_IndicatorRadioButton,
        QStyle.PrimitiveElement.PE_IndicatorItemViewItemCheck,
    )

    def __init__(self) -> None:
        super().__init__("Fusion")

    def drawPrimitive(
        self,
        element: QStyle.PrimitiveElement,
        option: QStyleOption,
        painter: QPainter,
        widget: QWidget | None = None,
    ) -> None:
        super().drawPrimitive(element, option, painter, widget)
        if element not in self._INDICATORS:
            return
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        outline = QColor(option.palette.color(QPalette.ColorRole.WindowText))  # type: ignore[attr-defined]
        outline.setAlpha(150)
        painter.setPen(QPen(outline, 1))
        box = QRectF(option.rect).adjusted(0.5, 0.5, -0.5, -0.5)  # type: ignore[attr-defined]  # crisp 1-px lines
        if element is QStyle.PrimitiveElement.PE_IndicatorRadioButton:
            painter.drawEllipse(box.adjusted(1, 1, -1, -1))
        else:
            painter.drawRoundedRect(box, 2, 2)
        painter.restore()


# The desktop's own style and palette, kept before the first forced theme so "system" can bring them back.
_SYSTEM_LOOK: dict[str, object] = {}
# Widgets whose style sheet depends on light or dark: rebuilt from their maker whenever the theme changes.
_SHEET_MAKERS: WeakKeyDictionary[QWidget, Callable[[bool], str]] = WeakKeyDictionary()


def apply_theme(app: QApplication, theme: str) -> None:
    """``system`` follows the desktop (native style and palette); ``light``/``dark`` force Fusion colours.

    Switching is live: every open widget is restyled, including style sheets that name palette colours."""
    if theme not in THEMES:
        raise ValueError(f"unknown theme {theme!r}; choose one of {', '.join(THEMES)}")
    if not _SYSTEM_LOOK:
        _SYSTEM_LOOK.update(style=app.style().name(), palette=QPalette(app.palette()))
    if theme == "system":
        app.styleHints().unsetColorScheme()
        app.setStyle(QStyleFactory.create(str(_SYSTEM_LOOK["style"])))
        app.setPalette(_SYSTEM_LOOK["palette"])  # type: ignore[arg-type]
    else:
        app.setStyle(OutlinedFusionStyle())
        if theme == "dark":
            app.styleHints().setColorScheme(Qt.ColorScheme.Dark)
            app.setPalette(dark_palette())
        else:
            app.styleHints().setColorScheme(Qt.ColorScheme.Light)
            app.setPalette(app.style().standardPalette())
    restyle(app)


def restyle(app: QApplication) -> None:
    """Apply every style sheet again: Qt resolves ``palette(...)`` in a sheet once, when it is set."""
    dark = is_dark()  # the application's palette: a widget's own may not have followed yet
    for widget in app.allWidgets():
        maker = _SHEET_MAKERS.get(widget)
        sheet = maker(dark) if maker is not None else widget.styleSheet()
        if sheet:
            widget.setStyleSheet("")
            widget.setStyleSheet(sheet)


def set_themed_style(widget: QWidget, maker: Callable[[bool], str]) -> None:
    """Give ``widget`` the style sheet ``maker(dark)`` now and again after every theme switch."""
    _SHEET_MAKERS[widget] = maker
    widget.setStyleSheet(maker(is_dark(widget)))


# Red text for errors, readable on both palettes (Fusion's light BrightText is white, so not bright-text).
ERROR_TEXT = {False: "#b3261e", True: "#ff8a80"}


def set_error_style(label: QLabel) -> None:
    """Show ``label``'s text in the error red of the current theme, following theme switches."""
    set_themed_style(label, lambda dark: f"color: {ERROR_TEXT[dark]};")


def is_dark(widget: QWidget | None = None) -> bool:
    """Whether the current palette is dark (window colour darker than its text)."""
    palette = widget.palette() if widget is not None else QGuiApplication.palette()
    return (
        palette.color(QPalette.ColorRole.Window).lightness()
        < palette.color(QPalette.ColorRole.WindowText).lightness()
    )


def heading(text: str) -> QLabel:
    """A bold label that titles a group of widgets."""
    label = QLabel(text)
    font = label.font()
    font.setBold(True)
    label.setFont(font)
    return label
