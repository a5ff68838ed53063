"""The library window's layout: folders and filters on the left, the thumbnail grid with its search box in the
middle, the photo's details on the right, the run panel below. Layout only; library_window.py wires it."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QFont, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QMainWindow,
    QSplitter,
    QToolBar,
    QTreeWidget,
    QVBoxLayout,
    QWidget,
)

from captioneer.desktop.library.browse import STATUS_FILTERS, STATUS_LABELS
from captioneer.desktop.ui.library_detail_view import DetailPanel
from captioneer.desktop.ui.library_run_view import Banner, RunPanel
from captioneer.desktop.ui.theme import app_icon, heading, set_themed_style


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

        toolbar = QToolBar("Library")
        toolbar.setObjectName("library-toolbar")
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.addToolBar(toolbar)
        self.add_folder_action = QAction("Add Folder…", self)
        self.rescan_action = QAction("Rescan", self)
        self.tag_action = QAction("Tag Photos…", self)
        self.tag_action.setShortcut(QKeySequence("Ctrl+T"))
        self.write_action = QAction("Write Metadata…", self)
        self.write_action.setShortcut(QKeySequence("Ctrl+Shift+W"))
        self.undo_write_action = QAction("Undo a Write…", self)
        self.export_action = QAction("Export…", self)
        self.import_action = QAction("Import…", self)
        self.search_action = QAction("Search", self)
        self.search_action.setShortcut(QKeySequence.StandardKey.Find)
        self.addAction(self.search_action)
        for action in (self.add_folder_action, self.rescan_action, self.tag_action):
            toolbar.addAction(action)
        toolbar.addSeparator()
        for action in (self.write_action, self.undo_write_action):
            toolbar.addAction(action)
        toolbar.addSeparator()
        for action in (self.export_action, self.import_action):
            toolbar.addAction(action)
        for action in (self.tag_action, self.write_action):
            self.addAction(action)

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
        self.statuses.setMaximumHeight(self.statuses.sizeHintForRow(0) * (len(STATUS_FILTERS) + 1) + 6)
        self.keyword_filter = QLineEdit()
        self.keyword_filter.setPlaceholderText("Keyword (e.g. beach, sun*)")
        self.keyword_filter.setClearButtonEnabled(True)
        self.text_filter = QLineEdit()
        self.text_filter.setPlaceholderText("Caption or title contains…")
        self.text_filter.setClearButtonEnabled(True)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(6, 6, 0, 6)
        left_layout.addWidget(heading("Libraries"))
        left_layout.addWidget(self.folders, 1)
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
            'Search (Ctrl+F): beach sunset · keyword:"new york" · dog OR cat · -status:rejected · folder:2024'
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
        self.grid = PhotoGrid()
        self.banner = Banner()
        self.banner.hide()
        middle = QWidget()
        middle_layout = QVBoxLayout(middle)
        middle_layout.setContentsMargins(0, 6, 0, 6)
        middle_layout.addWidget(self.banner)
        middle_layout.addWidget(self.search)
        middle_layout.addWidget(self.search_error)
        row = QHBoxLayout()
        row.addWidget(self.count, 1)
        row.addWidget(self.hint)
        middle_layout.addLayout(row)
        middle_layout.addWidget(self.grid, 1)

        self.detail = DetailPanel()
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(middle)
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setStretchFactor(2, 0)
        self.splitter.setSizes([250, 780, 410])

        self.run_panel = RunPanel()
        self.run_panel.hide()
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(4, 0, 4, 4)
        layout.addWidget(self.splitter, 1)
        layout.addWidget(self.run_panel)
        self.setCentralWidget(central)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.closing.emit()
        super().closeEvent(event)
