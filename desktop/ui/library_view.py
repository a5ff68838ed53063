"""The library window's layout: folders and filters on the left, the thumbnail grid with its search box in the
middle, the photo's details on the right, the run panel below. Layout only; library_window.py wires it."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QFont, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QMainWindow,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QToolBar,
    QTreeWidget,
    QVBoxLayout,
    QWidget,
)

from captioneer.desktop.library.browse import KIND_FILTERS, KIND_LABELS, STATUS_FILTERS, STATUS_LABELS
from captioneer.desktop.ui.library_detail_view import DetailPanel
from captioneer.desktop.ui.library_run_view import Banner, RunPanel
from captioneer.desktop.ui.theme import app_icon, heading, set_themed_style

MINIMUM_SIZE = QSize(1024, 660)
"""Small enough for a 1366×768 laptop screen; big enough for the sidebar, the grid and the detail panel."""
SIDEBAR_MIN_WIDTH = 200
GRID_MIN_WIDTH = 400
"""Two columns of thumbnails at the default tile size, with the scroll bar."""


def add_shortcut(
    key: str, owner: QWidget, slot: Callable[[], object], context: Qt.ShortcutContext
) -> QShortcut:
    """A shortcut for ``key`` that calls ``slot`` only in ``context`` of ``owner``. (PySide 6 drops a context
    given to the constructor together with a slot, which makes every such shortcut window-wide: two of them
    on one key then cancel each other out.)"""
    shortcut = QShortcut(QKeySequence(key), owner)
    shortcut.setContext(context)
    shortcut.activated.connect(slot)
    return shortcut


def preferences_keys() -> list[QKeySequence]:
    """The platform's Settings shortcut (⌘, on macOS), and Ctrl+, where the platform has none (Windows, most
    Linux desktops), so Settings has a key everywhere."""
    keys = QKeySequence.keyBindings(QKeySequence.StandardKey.Preferences)
    comma = QKeySequence("Ctrl+,")
    return keys if comma in keys else [*keys, comma]


class PhotoGrid(QListView):
    """The virtualised grid: uniform tiles in icon mode; only visible rows are ever asked for."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setUniformItemSizes(True)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(5000)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setSpacing(2)
        self.setWordWrap(False)
        self.setDragEnabled(False)
        self.setAccessibleName("Photos")


class LibraryView(QMainWindow):
    """Every widget of the library window; the controller connects them."""

    closing = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Captioneer Library")
        self.setWindowIcon(app_icon())
        self.resize(1440, 900)
        self.setMinimumSize(MINIMUM_SIZE)

        self._build_actions()
        self._build_menus()
        toolbar = QToolBar("Library")
        toolbar.setObjectName("library-toolbar")
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.addToolBar(toolbar)
        for action in (self.add_folder_action, self.rescan_action, self.tag_action):
            toolbar.addAction(action)
        toolbar.addSeparator()
        for action in (self.write_action, self.undo_write_action):
            toolbar.addAction(action)
        toolbar.addSeparator()
        for action in (self.export_action, self.import_action):
            toolbar.addAction(action)

        # Left: libraries and folders, then the filters.
        self.folders = QTreeWidget()
        self.folders.setHeaderLabels(["Folder", "Photos"])
        self.folders.setColumnCount(2)
        self.folders.setUniformRowHeights(True)
        header = self.folders.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.folders.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.folders.setAccessibleName("Libraries and folders")
        self.statuses = QListWidget()
        self.statuses.setAccessibleName("Status filter")
        for status in STATUS_FILTERS:
            self.statuses.addItem(STATUS_LABELS[status])
        self.statuses.setCurrentRow(0)
        # Every status stays in view however small the window: the list never shrinks below its rows.
        self.statuses.setFixedHeight(self.statuses.sizeHintForRow(0) * len(STATUS_FILTERS) + 8)
        self.statuses.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.folders.setMinimumHeight(self.folders.fontMetrics().height() * 7)  # its header and a few rows
        self.kinds = QComboBox()
        self.kinds.setAccessibleName("Show photos, videos or both")
        for kind in KIND_FILTERS:
            self.kinds.addItem(KIND_LABELS[kind], kind)
        self.keyword_filter = QLineEdit()
        self.keyword_filter.setPlaceholderText("Keyword (e.g. beach, sun*)")
        self.keyword_filter.setClearButtonEnabled(True)
        self.text_filter = QLineEdit()
        self.text_filter.setPlaceholderText("Caption or title contains…")
        self.text_filter.setClearButtonEnabled(True)
        left = QWidget()
        left.setMinimumWidth(SIDEBAR_MIN_WIDTH)
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(6, 6, 0, 6)
        left_layout.addWidget(heading("Libraries"))
        left_layout.addWidget(self.folders, 1)
        left_layout.addWidget(self.kinds)
        left_layout.addWidget(heading("Status"))
        left_layout.addWidget(self.statuses)
        left_layout.addWidget(heading("Keyword"))
        left_layout.addWidget(self.keyword_filter)
        left_layout.addWidget(heading("Text"))
        left_layout.addWidget(self.text_filter)

        # Middle: the search box over the grid.
        self.search = QLineEdit()
        self.search.setClearButtonEnabled(True)
        self.search.setPlaceholderText(
            'Search (Ctrl+F): beach sunset · "on the beach" · light* · ocr:menu · dog OR cat · -status:new'
        )
        self.search.setAccessibleName("Search")
        self.search_error = QLabel()
        self.search_error.setWordWrap(True)
        set_themed_style(
            self.search_error, lambda dark: f"QLabel {{ color: {'#ff7b6e' if dark else '#c0392b'}; }}"
        )
        self.search_error.hide()
        self.count = QLabel()
        self.hint = QLabel("A approve · R reject · E edit · J/K next/previous · U undo · Ctrl+F search")
        hint_font = QFont(self.hint.font())
        hint_font.setPointSizeF(hint_font.pointSizeF() * 0.9)
        self.hint.setFont(hint_font)
        # In a narrow window both wrap onto a second line instead of being cut off mid-word.
        for label in (self.count, self.hint):
            label.setWordWrap(True)
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.grid = PhotoGrid()
        self.banner = Banner()
        self.banner.hide()
        self.privacy_banner = Banner()
        self.privacy_banner.setAccessibleName("Where photos go")
        self.privacy_banner.hide()
        middle = QWidget()
        middle.setMinimumWidth(GRID_MIN_WIDTH)
        middle_layout = QVBoxLayout(middle)
        middle_layout.setContentsMargins(0, 6, 0, 6)
        middle_layout.addWidget(self.privacy_banner)
        middle_layout.addWidget(self.banner)
        middle_layout.addWidget(self.search)
        middle_layout.addWidget(self.search_error)
        row = QHBoxLayout()
        row.addWidget(self.count, 3)
        row.addWidget(self.hint, 2)
        middle_layout.addLayout(row)
        middle_layout.addWidget(self.grid, 1)

        self.detail = DetailPanel()
        # Scrolls rather than squeezing its fields over the preview when the window is small.
        details = QScrollArea()
        details.setWidgetResizable(True)
        details.setFrameShape(QFrame.Shape.NoFrame)
        details.setWidget(self.detail)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(middle)
        self.splitter.addWidget(details)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setStretchFactor(2, 0)
        self.splitter.setSizes([230, 800, 410])
        self.splitter.setCollapsible(0, False)  # a collapsed sidebar looks like a lost one
        self.splitter.setCollapsible(1, False)
        self.sidebar_action.toggled.connect(left.setVisible)
        self.details_action.toggled.connect(details.setVisible)

        self.run_panel = RunPanel()
        self.run_panel.hide()
        # Ctrl+Return tags from the grid; in the detail panel it saves and approves an edit (library_review).
        # Escape stops the run from its panel (elsewhere Escape leaves an edit); a stopped run resumes later.
        for key in ("Ctrl+Return", "Ctrl+Enter"):
            add_shortcut(key, self.grid, self.tag_action.trigger, Qt.ShortcutContext.WidgetShortcut)
        add_shortcut(
            "Escape", self.run_panel, self.stop_action.trigger, Qt.ShortcutContext.WidgetWithChildrenShortcut
        )
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(4, 0, 4, 4)
        layout.addWidget(self.splitter, 1)
        layout.addWidget(self.run_panel)
        self.setCentralWidget(central)

    # -- menus -----------------------------------------------------------------------------------------

    def _build_actions(self) -> None:
        def action(text: str, *keys: QKeySequence | QKeySequence.StandardKey | str) -> QAction:
            made = QAction(text, self)
            if keys:
                made.setShortcuts([QKeySequence(key) for key in keys])
            self.addAction(made)  # shortcuts work while the menu bar is hidden (macOS, full screen)
            return made

        self.add_folder_action = action("&Add Folder…", QKeySequence.StandardKey.Open)
        self.rescan_action = action("&Rescan", QKeySequence.StandardKey.Refresh)
        self.export_action = action("&Export…")
        self.import_action = action("&Import…")
        self.close_action = action("&Close Window", QKeySequence.StandardKey.Close)
        self.close_action.triggered.connect(self.close)
        self.settings_action = action("&Settings…", *preferences_keys())
        self.settings_action.setMenuRole(QAction.MenuRole.PreferencesRole)
        self.tag_action = action("&Tag Photos…", "Ctrl+T")
        self.pause_action = action("&Pause Run", "Ctrl+Shift+P")
        self.pause_action.setEnabled(False)
        self.stop_action = action("S&top Run", "Ctrl+.")
        self.stop_action.setEnabled(False)
        self.write_action = action("&Write Metadata…", "Ctrl+Shift+W")
        self.undo_write_action = action("&Undo a Write…")
        self.search_action = action("&Search", QKeySequence.StandardKey.Find)
        self.sidebar_action = action("Show &Folders and Filters")
        self.sidebar_action.setCheckable(True)
        self.sidebar_action.setChecked(True)
        self.details_action = action("Show &Details")
        self.details_action.setCheckable(True)
        self.details_action.setChecked(True)
        self.shortcuts_action = action("&Keyboard Shortcuts")
        self.about_action = action("&About Captioneer")
        self.about_action.setMenuRole(QAction.MenuRole.AboutRole)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addActions([self.add_folder_action, self.rescan_action])
        file_menu.addSeparator()
        file_menu.addActions([self.export_action, self.import_action])
        file_menu.addSeparator()
        file_menu.addAction(self.close_action)
        edit_menu = bar.addMenu("&Edit")
        edit_menu.addAction(self.search_action)
        edit_menu.addSeparator()
        edit_menu.addAction(self.settings_action)
        photos_menu = bar.addMenu("&Photos")
        photos_menu.addActions([self.tag_action, self.pause_action, self.stop_action])
        photos_menu.addSeparator()
        photos_menu.addActions([self.write_action, self.undo_write_action])
        view_menu = bar.addMenu("&View")
        view_menu.addActions([self.sidebar_action, self.details_action])
        help_menu = bar.addMenu("&Help")
        help_menu.addActions([self.shortcuts_action, self.about_action])

    def closeEvent(self, event: QCloseEvent) -> None:
        self.closing.emit()
        super().closeEvent(event)
