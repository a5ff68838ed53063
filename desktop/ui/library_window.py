"""The library window: one catalog, one grid, and the controllers that drive its parts (browse, review,
runs, files), each given the view pieces and the session it needs; this composes them and closes them."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QStringListModel, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import QMessageBox

from captioneer.backends.errors import CaptioneerError
from captioneer.desktop import __version__
from captioneer.desktop.core.engine_setup import Overrides
from captioneer.desktop.core.settings import Settings, load_settings, save_settings
from captioneer.desktop.library.browse import LibraryPrefs
from captioneer.desktop.library.catalog import Catalog, open_catalog
from captioneer.desktop.ui.geometry import restore_window, save_window
from captioneer.desktop.ui.library_browse import BrowseController
from captioneer.desktop.ui.library_detail_view import PREVIEW_EDGE
from captioneer.desktop.ui.library_files import FilesController
from captioneer.desktop.ui.library_model import PhotoGridModel, TileDelegate
from captioneer.desktop.ui.library_review import ReviewController
from captioneer.desktop.ui.library_runs import RunsController
from captioneer.desktop.ui.library_selection import GridSelection
from captioneer.desktop.ui.library_session import LibrarySession
from captioneer.desktop.ui.library_thumbs import ThumbnailCache
from captioneer.desktop.ui.library_view import LibraryView
from captioneer.desktop.ui.workers import BackendOpener, host_opener

GRID_REFRESH_MS = 700
SHORTCUTS_HELP = (
    "Review (in the grid): A approve · R reject · E or Enter edit · J/K next/previous · U or Ctrl+Z undo\n"
    "Editing: Ctrl+S save · Ctrl+Return save and approve · Escape leave the editor\n"
    "Tagging: Ctrl+T (or Ctrl+Return in the grid) Tag Photos… · Ctrl+Shift+P pause or resume · "
    "Ctrl+. (or Escape in the run panel) stop\n"
    "Ctrl+F search · Ctrl+, Settings · Ctrl+Shift+W Write Metadata… · Ctrl+W close the window\n"
    "On a Mac, ⌘ stands for Ctrl."
)


class LibraryWindow(QObject):
    """The album tagger's home: one catalog, one grid, one run at a time."""

    message = Signal(str)
    settingsChanged = Signal(object)  # Settings saved here, for the main window (theme switch, engine)

    def __init__(
        self,
        overrides: Overrides | None = None,
        opener: BackendOpener | None = None,
        catalog: Catalog | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._closed = False
        settings = load_settings()
        prefs = LibraryPrefs.load()
        self.catalog = catalog or open_catalog()
        self.session = LibrarySession(
            catalog=self.catalog,
            settings=settings,
            prefs=prefs,
            notify=self.notify,
            is_closed=lambda: self._closed,
        )
        self.prefs = self.session.prefs
        self.view = LibraryView()
        restore_window(self.view, "library", self.view.splitter)

        self.thumbs = ThumbnailCache(self.prefs.thumb_edge, parent=self)
        self.previews = ThumbnailCache(PREVIEW_EDGE * 2, threads=1, parent=self)
        self.model = PhotoGridModel(self.catalog, self.thumbs, self)
        self.delegate = TileDelegate(self.prefs.thumb_edge, self.view.grid)
        grid = self.view.grid
        grid.setModel(self.model)
        grid.setItemDelegate(self.delegate)
        grid.setGridSize(self.delegate.tile_size())
        self.selection = GridSelection(grid, self.model, self.catalog)

        self._grid_timer = QTimer(self)
        self._grid_timer.setSingleShot(True)
        self._grid_timer.setInterval(GRID_REFRESH_MS)
        self._grid_timer.timeout.connect(self._refresh_grid_rows)
        self._scroll_timer = QTimer(self)
        self._scroll_timer.setSingleShot(True)
        self._scroll_timer.setInterval(120)
        self._scroll_timer.timeout.connect(self._scroll_settled)
        self.view.closing.connect(self.shutdown)
        grid.verticalScrollBar().valueChanged.connect(self._scrolled)

        completions = QStringListModel(self)
        self.review = ReviewController(
            self.session, self.selection, self.view.detail, self.previews, completions, self
        )
        self.browse = BrowseController(
            self.session, self.view, self.selection, self.review, self.thumbs, completions, self
        )
        self.runs = RunsController(
            self.session,
            self.view,
            self.browse,
            self.selection,
            self.thumbs,
            opener or host_opener(settings),
            overrides or Overrides(),
            self,
        )
        self.files = FilesController(self.session, self.view, self.browse, self)
        self.runs.privacy.settingsChosen.connect(self.apply_settings)
        self.runs.privacy.refresh()
        self.view.settings_action.triggered.connect(self.open_settings)
        self.view.shortcuts_action.triggered.connect(self.show_shortcuts)
        self.view.about_action.triggered.connect(self.about)
        self.review.retagRequested.connect(lambda: self.runs.open_run_dialog(scope="selection", redo=True))
        self.runs.progressed.connect(self._run_progressed)
        if self.prefs.vocabulary and Path(self.prefs.vocabulary).is_file():
            try:
                self.browse.load_vocabulary(Path(self.prefs.vocabulary))
            except CaptioneerError as exc:
                self.notify(str(exc))
        self.browse.apply_filter()  # first, so the grid fills before the folder tree and keyword counts
        self.browse.refresh_overview()
        self.runs.offer_resume()

    def notify(self, text: str) -> None:
        """Tell the user something in the status bar (and anyone listening)."""
        self.view.statusBar().showMessage(text, 15_000)
        self.message.emit(text)

    # ---- settings and help ------------------------------------------------------------------------------

    def open_settings(self) -> None:
        """Edit ▸ Settings…: the same dialog as the quick-caption window; a saved change applies to both."""
        from captioneer.desktop.ui.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.session.settings, self.view)
        if dialog.exec():
            self.apply_settings(dialog.result_settings())

    def apply_settings(self, settings: Settings) -> None:
        """Save new settings and use them here; ``settingsChanged`` tells the main window."""
        save_settings(settings)
        self.use_settings(settings)
        self.settingsChanged.emit(settings)

    def use_settings(self, settings: Settings) -> None:
        """Settings saved (here or in the main window): the next run uses them, the privacy banner follows."""
        if self._closed:
            return
        self.session.settings = settings
        self.runs.privacy.refresh()

    def show_shortcuts(self) -> None:
        QMessageBox.information(self.view, "Keyboard Shortcuts", SHORTCUTS_HELP)

    def about(self) -> None:
        QMessageBox.about(
            self.view,
            "About Captioneer",
            f"<b>Captioneer {__version__}</b><p>Captions and keywords for your photo library with the "
            "Qwen3-VL models, written into the metadata Lightroom, digiKam and others read.</p>"
            "<p>Free software under the GNU GPL, version 3 or later.</p>",
        )

    # ---- the grid ----------------------------------------------------------------------------------------

    @Slot(int)
    def _scrolled(self, _value: int) -> None:
        self._scroll_timer.start()

    @Slot()
    def _scroll_settled(self) -> None:
        """Scrolling stopped: drop thumbnails queued for tiles that flew past; the visible ones ask again."""
        self.thumbs.forget_queued()
        self.view.grid.viewport().update()

    @Slot(object)
    def _run_progressed(self, _progress: object) -> None:
        """A run moved on: repaint the grid's rows soon (once per interval, however fast photos land)."""
        if not self._grid_timer.isActive():
            self._grid_timer.start()

    @Slot()
    def _refresh_grid_rows(self) -> None:
        if self._closed:
            return
        self.model.refresh()
        self.review.refresh_shown()  # the run may just have tagged the photo on show
        self.browse.recount()  # the status list's counts follow the run

    # ---- closing -----------------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the window was closed (its catalog is released)."""
        return self._closed

    def shutdown(self) -> None:
        """Stop a run (it stays resumable), finish background jobs, release the catalog; safe twice."""
        if self._closed:
            return
        self.review.leave_current()
        self._closed = True
        save_window(self.view, "library", self.view.splitter)
        for timer in (self._grid_timer, self._scroll_timer):
            timer.stop()
        self.browse.stop_typing()
        self.runs.shutdown()
        self.files.shutdown()
        for cache in (self.thumbs, self.previews):
            cache.blockSignals(True)  # what is still queued must not reach a closed catalog
            cache.wait()
        self.view.grid.setModel(None)  # nothing may page rows from the catalog once it is closed
        self.browse.shutdown()
        self.catalog.close()
        self.prefs.save()


def open_library(
    owner: QObject, overrides: Overrides | None = None, opener: BackendOpener | None = None
) -> LibraryWindow | None:
    """Show the library window for ``owner`` (the main window's controller, whose ``view`` is its window):
    the open one brought to the front, or a new one that closes with the owner's window. ``opener`` is the
    engine its runs use: the owner's, so both windows share one loaded model. A catalog that cannot be
    opened is explained in a message box, and None is returned."""
    for window in owner.findChildren(LibraryWindow):
        if not window.closed:
            view = window.view
            # Out of the Dock or taskbar, but still maximized if it was (showNormal would undo that).
            view.setWindowState(view.windowState() & ~Qt.WindowState.WindowMinimized)
            view.show()
            view.raise_()
            view.activateWindow()
            return window
    parent = getattr(owner, "view", None)
    try:
        window = LibraryWindow(overrides=overrides, opener=opener, parent=owner)
    except CaptioneerError as exc:
        QMessageBox.warning(parent, "Captioneer Library", str(exc))
        return None
    if parent is not None and hasattr(parent, "closing"):
        parent.closing.connect(window.view.close)
    # One set of settings for both windows: saved in either, used in both (the app's theme switch listens to
    # the main window's signal).
    if hasattr(owner, "settingsChanged") and hasattr(owner, "apply_settings"):
        owner.settingsChanged.connect(window.use_settings)
        window.settingsChanged.connect(owner.apply_settings)
    window.view.show()
    return window
