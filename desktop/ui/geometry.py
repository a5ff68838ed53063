"""Where each window was: its size, position, maximized state and splitter sizes, kept in windows.json beside
the settings and put back on the next start, on a screen that is still there."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMainWindow, QSplitter

from captioneer.backends.files import write_atomically
from captioneer.desktop.core.paths import config_dir

Rect = tuple[int, int, int, int]
"""x, y, width, height in desktop coordinates."""


@dataclass(frozen=True)
class WindowPlace:
    """One window's remembered place: its normal (not maximized) rectangle, whether it was maximized, and the
    sizes of its splitter's panes (empty when it has none)."""

    rect: Rect
    maximized: bool = False
    splitter: tuple[int, ...] = field(default=())


def geometry_path() -> Path:
    return config_dir() / "windows.json"


def load_places() -> dict[str, WindowPlace]:
    """Every remembered window by name; a missing or unreadable file remembers nothing (the windows open
    at their default size, which is no loss worth a message)."""
    try:
        data = json.loads(geometry_path().read_text(encoding="utf-8"))
        return {
            name: WindowPlace(
                rect=tuple(int(v) for v in place["rect"]),  # type: ignore[arg-type]
                maximized=bool(place.get("maximized", False)),
                splitter=tuple(int(v) for v in place.get("splitter", ())),
            )
            for name, place in data.items()
            if len(place["rect"]) == 4
        }
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def save_place(name: str, place: WindowPlace) -> None:
    """Remember ``name``'s place, keeping the other windows' (written atomically)."""
    places = load_places()
    places[name] = place
    path = geometry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {key: asdict(value) for key, value in sorted(places.items())}
    write_atomically(path, json.dumps(data, indent=2).encode("utf-8"))


def fit_on_screen(rect: Rect, screens: list[Rect], minimum: tuple[int, int] = (0, 0)) -> Rect:
    """``rect`` moved (and shrunk where it must) so that it lies on the screen it overlaps most, or on the
    first screen when it overlaps none (a monitor that was unplugged, a smaller one). Never smaller than
    ``minimum`` (the window's own minimum size) unless the screen itself is smaller."""
    if not screens:
        return rect
    x, y, width, height = rect

    def overlap(screen: Rect) -> int:
        sx, sy, sw, sh = screen
        w = min(x + width, sx + sw) - max(x, sx)
        h = min(y + height, sy + sh) - max(y, sy)
        return max(0, w) * max(0, h)

    best = max(screens, key=overlap)
    sx, sy, sw, sh = best if overlap(best) else screens[0]
    width = min(max(width, minimum[0]), sw)
    height = min(max(height, minimum[1]), sh)
    x = min(max(x, sx), sx + sw - width)
    y = min(max(y, sy), sy + sh - height)
    return x, y, width, height


def _screens() -> list[Rect]:
    return [
        (area.x(), area.y(), area.width(), area.height())
        for area in (screen.availableGeometry() for screen in QGuiApplication.screens())
    ]


def restore_window(window: QMainWindow, name: str, splitter: QSplitter | None = None) -> bool:
    """Put ``window`` (not yet shown) where it was when ``name`` was last saved; False when it never was."""
    place = load_places().get(name)
    if place is None:
        return False
    minimum = window.minimumSize()
    x, y, width, height = fit_on_screen(place.rect, _screens(), (minimum.width(), minimum.height()))
    window.resize(width, height)
    window.move(QPoint(x, y))
    if place.maximized:
        window.setWindowState(window.windowState() | Qt.WindowState.WindowMaximized)
    if splitter is not None and len(place.splitter) == splitter.count() and all(place.splitter):
        splitter.setSizes(list(place.splitter))
    return True


def save_window(window: QMainWindow, name: str, splitter: QSplitter | None = None) -> None:
    """Remember where ``window`` is now (its normal rectangle while maximized)."""
    maximized = window.isMaximized()
    normal = window.normalGeometry()
    if maximized and normal.isValid():
        # normalGeometry() leaves the frame out, move() puts it in: take the frame off so it does not creep.
        frame_x, frame_y = window.geometry().x() - window.x(), window.geometry().y() - window.y()
        rect = (normal.x() - frame_x, normal.y() - frame_y, normal.width(), normal.height())
    else:  # pos() is where move() puts the window, frame included; size() what resize() sets
        rect = (window.x(), window.y(), window.width(), window.height())
    place = WindowPlace(
        rect=rect, maximized=maximized, splitter=tuple(splitter.sizes()) if splitter is not None else ()
    )
    try:
        save_place(name, place)
    except OSError as exc:  # the window closes anyway; next time it opens at its default size
        logging.getLogger(__name__).warning("Could not remember the window's place: %s", exc)
