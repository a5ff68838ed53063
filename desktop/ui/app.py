"""Qt application setup for the Captioneer window: the QApplication, the crash handler and the event loop
(the look lives in theme.py)."""

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
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from captioneer.backends.errors import cli_text
from captioneer.desktop import __version__
from captioneer.desktop.core.paths import logs_dir
from captioneer.desktop.ui.theme import app_icon, apply_theme

if TYPE_CHECKING:
    from captioneer.desktop.core.captioning import CaptionResult
    from captioneer.desktop.core.engine_setup import Overrides
    from captioneer.desktop.ui.main_window import MainWindow


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
    from captioneer.desktop.ui.engine_service import EngineService
    from captioneer.desktop.ui.main_window import MainWindow

    app = create_app(sys.argv[:1])
    crash_handler = CrashHandler(app)
    crash_handler.install()
    engines = EngineService()  # one engine process for the quick-caption and library windows
    try:
        window = MainWindow(overrides, opener=engines.opener)
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
    engines.close()
    crash_handler.uninstall()
    return outcome.get("status", status)


def _start_smoke_test(app: QApplication, window: MainWindow, image: Path, outcome: dict[str, int]) -> None:
    def done(result: CaptionResult) -> None:
        if result.ok:
            print(f"smoke test: ok in {result.seconds:.1f} s: {result.text}", flush=True)
            outcome["status"] = 0
        else:
            print(f"smoke test: failed: {cli_text(result.error or '')}", file=sys.stderr, flush=True)
            outcome["status"] = 1
        window.shutdown()  # first, so closing does not ask about the answer nobody copied
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
