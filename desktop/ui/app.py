"""Qt application setup for the Captioneer window: style, light/dark theme, icon and the crash handler."""

from __future__ import annotations

import platform
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory, QWidget

from captioneer.desktop import __version__
from captioneer.desktop.core.paths import logs_dir, resource_path

if TYPE_CHECKING:
    from captioneer.desktop.core.captioning import CaptionResult
    from captioneer.desktop.core.engine_setup import Overrides
    from captioneer.desktop.ui.main_window import MainWindow

THEMES = ("system", "light", "dark")


def app_icon() -> QIcon:
    """The Captioneer icon (resources/icons/captioneer.svg)."""
    return QIcon(str(resource_path("icons/captioneer.svg")))


def create_app(argv: Sequence[str] | None = None) -> QApplication:
    """The one QApplication, created on first use with Captioneer's name and icon."""
    app = QApplication.instance()
    if app is None:
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication(list(argv) if argv is not None else ["captioneer"])
    assert isinstance(app, QApplication)
    app.setApplicationName("Captioneer")
    app.setApplicationDisplayName("Captioneer")
    app.setApplicationVersion(__version__)
    app.setOrganizationName("Captioneer")
    app.setDesktopFileName("captioneer")
    app.setWindowIcon(app_icon())
    return app


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


def apply_theme(app: QApplication, theme: str) -> None:
    """``system`` follows the desktop (native style and palette); ``light``/``dark`` force Fusion colours."""
    if theme not in THEMES:
        raise ValueError(f"unknown theme {theme!r}; choose one of {', '.join(THEMES)}")
    if theme == "system":
        app.styleHints().unsetColorScheme()
        return
    app.setStyle(QStyleFactory.create("Fusion"))
    if theme == "dark":
        app.styleHints().setColorScheme(Qt.ColorScheme.Dark)
        app.setPalette(dark_palette())
    else:
        app.styleHints().setColorScheme(Qt.ColorScheme.Light)
        app.setPalette(app.style().standardPalette())


def is_dark(widget: QWidget | None = None) -> bool:
    """Whether the current palette is dark (window colour darker than its text)."""
    palette = widget.palette() if widget is not None else QGuiApplication.palette()
    return palette.color(QPalette.ColorRole.Window).lightness() < palette.color(
        QPalette.ColorRole.WindowText
    ).lightness()


def crash_report(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> str:
    """A plain-text report of an unexpected error: versions, platform and the traceback. Stays local."""
    from PySide6 import __version__ as pyside_version
    from PySide6.QtCore import qVersion

    lines = [
        f"Captioneer {__version__} crashed at {time.strftime('%Y-%m-%d %H:%M:%S %z')}",
        f"Python {platform.python_version()} on {platform.platform()} ({platform.machine()})",
        f"PySide6 {pyside_version}, Qt {qVersion()}",
        f"Thread: {threading.current_thread().name}",
        "",
        "".join(traceback.format_exception(exc_type, exc, tb)).rstrip(),
    ]
    return "\n".join(lines) + "\n"


def save_crash_report(report: str) -> Path:
    """Keep the report in the logs folder so it survives closing the dialog; nothing is sent anywhere."""
    folder = logs_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"crash-{time.strftime('%Y%m%d-%H%M%S')}.txt"
    path.write_text(report, encoding="utf-8")
    return path


class CrashHandler(QObject):
    """Catches unexpected exceptions on any thread and shows them in a dialog on the GUI thread."""

    crashed = Signal(str, str)  # report, saved path

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._previous = sys.excepthook
        self._showing = False
        self.crashed.connect(self._show, Qt.ConnectionType.QueuedConnection)

    def install(self) -> None:
        sys.excepthook = self.handle
        threading.excepthook = lambda args: self.handle(args.exc_type, args.exc_value, args.exc_traceback)

    def uninstall(self) -> None:
        sys.excepthook = self._previous
        threading.excepthook = threading.__excepthook__

    def handle(
        self, exc_type: type[BaseException], exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None or issubclass(exc_type, KeyboardInterrupt):
            self._previous(exc_type, exc, tb)  # type: ignore[arg-type]
            return
        report = crash_report(exc_type, exc, tb)
        sys.stderr.write(report)
        try:
            saved = str(save_crash_report(report))
        except OSError as err:
            saved = f"(could not save the report: {err.strerror})"
        self.crashed.emit(report, saved)

    @Slot(str, str)
    def _show(self, report: str, saved: str) -> None:
        if self._showing:  # one dialog at a time; later reports are in the logs folder
            return
        from captioneer.desktop.ui.crash_view import CrashDialog

        self._showing = True
        try:
            CrashDialog(report, saved, QApplication.activeWindow()).exec()
        finally:
            self._showing = False


SMOKE_TEST_DEADLINE_S = 900


def run_window(overrides: Overrides, smoke_test: Path | None = None) -> int:
    """Open the main window and run the event loop; with ``smoke_test`` caption that one image through the
    real path (engine host process included) and exit 0 when it worked, 1 when it did not."""
    from captioneer.backends.errors import CaptioneerError
    from captioneer.desktop.ui.main_window import MainWindow

    app = create_app(sys.argv[:1])
    crash_handler = CrashHandler(app)
    crash_handler.install()
    try:
        window = MainWindow(overrides)
    except CaptioneerError as exc:  # e.g. a settings file that no longer validates
        from PySide6.QtWidgets import QMessageBox

        QMessageBox.critical(None, "Captioneer cannot start", str(exc))
        return exc.exit_code
    apply_theme(app, window.settings.theme)
    window.settingsChanged.connect(lambda settings: apply_theme(app, settings.theme))
    window.view.show()
    outcome: dict[str, int] = {}
    if smoke_test is not None:
        _start_smoke_test(app, window, smoke_test, outcome)
    elif not window.settings.first_run_done and not window.model_configured():
        QTimer.singleShot(0, window.open_wizard)
    status = app.exec()
    window.shutdown()
    crash_handler.uninstall()
    return outcome.get("status", status)


def _start_smoke_test(app: QApplication, window: MainWindow, image: Path, outcome: dict[str, int]) -> None:
    def done(result: CaptionResult) -> None:
        if result.ok:
            print(f"smoke test: ok in {result.seconds:.1f} s: {result.text}", flush=True)
            outcome["status"] = 0
        else:
            print(f"smoke test: failed: {result.error}", file=sys.stderr, flush=True)
            outcome["status"] = 1
        window.view.close()
        app.quit()

    def cancelled(_card: int) -> None:
        print("smoke test: cancelled", file=sys.stderr, flush=True)
        outcome["status"] = 1
        app.quit()

    def too_slow() -> None:
        print(f"smoke test: no answer within {SMOKE_TEST_DEADLINE_S} s", file=sys.stderr, flush=True)
        outcome["status"] = 1
        app.quit()

    if not image.is_file():
        print(f"smoke test: {image} is not a file", file=sys.stderr, flush=True)
        outcome["status"] = 2
        QTimer.singleShot(0, app.quit)
        return
    window.resultReady.connect(done)
    window.cardCancelled.connect(cancelled)
    QTimer.singleShot(SMOKE_TEST_DEADLINE_S * 1000, too_slow)
    window.add_paths([image])
