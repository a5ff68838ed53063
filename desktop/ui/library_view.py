"""The library window's layout: folders and filters on the left, the thumbnail grid with its search box in the
middle, the photo's details on the right, the run panel below. Layout only; library_window.py wires it."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QFont, QKeySequence, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLayout,
    QLayoutItem,
    QLineEdit,
    QListView,
    QListWidget,
    QMainWindow,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QToolBar,
    QTreeWidget,
    QVBoxLayout,
    QWidget,
)

from captioneer.desktop.library.browse import STATUS_FILTERS, STATUS_LABELS
from captioneer.desktop.ui.theme import app_icon

PREVIEW_EDGE = 360


def _heading(text: str) -> QLabel:
    label = QLabel(text)
    font = label.font()
    font.setBold(True)
    label.setFont(font)
    return label


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


class PhotoPreview(QLabel):
    """The selected photo, scaled to fit whatever room the panel has (again whenever that changes)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._source = QPixmap()
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(QSize(PREVIEW_EDGE, 240))
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.setStyleSheet("QLabel { background: palette(dark); border-radius: 6px; color: palette(light); }")

    def show_photo(self, pixmap: QPixmap | None, text: str = "") -> None:
        """Show a photo, or (with None) a line of text in its place."""
        self._source = pixmap if pixmap is not None else QPixmap()
        if pixmap is None:
            self.setPixmap(QPixmap())
            self.setText(text)
        else:
            self._fit()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        if not self._source.isNull():
            self.setPixmap(
                self._source.scaled(
                    self.size(),
                    Qt.AspectRatioMode.KeepAspectRatio,
                    Qt.TransformationMode.SmoothTransformation,
                )
            )


class _FlowLayout(QLayout):
    """Lays its items out left to right, wrapping to a new line when the width is used up."""

    def __init__(self, parent: QWidget | None = None, spacing: int = 4) -> None:
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self._spacing = spacing
        self.setContentsMargins(0, 0, 0, 0)

    def addItem(self, item: QLayoutItem) -> None:  # noqa: N802 - Qt's name
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:  # noqa: N802
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:  # noqa: N802
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self) -> Qt.Orientation:  # noqa: N802
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:  # noqa: N802
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802
        return self._place(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect: QRect) -> None:  # noqa: N802
        super().setGeometry(rect)
        self._place(rect, move=True)

    def sizeHint(self) -> QSize:  # noqa: N802
        return self.minimumSize()

    def minimumSize(self) -> QSize:  # noqa: N802
        size = QSize()
        for item in self._items:
            size = size.expandedTo(item.minimumSize())
        return size

    def _place(self, rect: QRect, move: bool) -> int:
        x, y, line = rect.x(), rect.y(), 0
        for item in self._items:
            hint = item.sizeHint()
            if x + hint.width() > rect.right() + 1 and line > 0:
                x, y, line = rect.x(), y + line + self._spacing, 0
            if move:
                item.setGeometry(QRect(QPoint(x, y), hint))
            x += hint.width() + self._spacing
            line = max(line, hint.height())
        return y + line - rect.y()


class KeywordChips(QWidget):
    """The keywords already in the photo's files, as read-only chips: Write merges with them and never
    removes them, so they are shown, not edited here."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Keywords already in the file")
        self._layout = _FlowLayout(self)
        self.chips: list[QLabel] = []

    def set_keywords(self, keywords: tuple[str, ...], note: str | None = None) -> None:
        for chip in self.chips:
            self._layout.removeWidget(chip)
            chip.deleteLater()
        self.chips = []
        for keyword in keywords:
            chip = QLabel(keyword)
            chip.setTextFormat(Qt.TextFormat.PlainText)
            chip.setToolTip("Already in the file (read-only)")
            chip.setStyleSheet(
                "QLabel { border: 1px solid palette(mid); border-radius: 8px; padding: 1px 6px; "
                "background: palette(alternate-base); }"
            )
            self._layout.addWidget(chip)
            self.chips.append(chip)
        self.setToolTip(note or "")
        self.updateGeometry()

    def keywords(self) -> list[str]:
        return [chip.text() for chip in self.chips]


class DetailPanel(QWidget):
    """The selected photo, big, with its caption, title, alt text and keywords ready to edit."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.preview = PhotoPreview()
        self.preview.show_photo(None, "No photo selected")
        self.name = QLabel()
        self.name.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.name.setWordWrap(True)
        bold = self.name.font()
        bold.setBold(True)
        self.name.setFont(bold)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.caption = QPlainTextEdit()
        self.caption.setPlaceholderText("Caption (dc:description)")
        self.caption.setTabChangesFocus(True)
        self.caption.setMinimumHeight(70)
        self.caption.setMaximumHeight(130)
        self.caption.setAccessibleName("Caption")
        self.title = QLineEdit()
        self.title.setPlaceholderText("Title")
        self.title.setAccessibleName("Title")
        self.alt_text = QLineEdit()
        self.alt_text.setPlaceholderText("Alt text for screen readers (≤ 150 characters)")
        self.alt_text.setAccessibleName("Alt text")
        self.keywords = QLineEdit()
        self.keywords.setPlaceholderText("Keywords, separated by ;")
        self.keywords.setAccessibleName("Keywords")
        self.existing = KeywordChips()
        self.existing_note = QLabel()
        self.existing_note.setWordWrap(True)
        self.existing_note.setTextFormat(Qt.TextFormat.PlainText)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Caption", self.caption)
        form.addRow("Title", self.title)
        form.addRow("Alt text", self.alt_text)
        form.addRow("Keywords", self.keywords)
        form.addRow("In the file", self.existing)
        form.addRow("", self.existing_note)
        self.form = form
        self.approve_button = QPushButton("Approve  (A)")
        self.reject_button = QPushButton("Reject  (R)")
        self.save_button = QPushButton("Save Edits")
        self.save_button.setToolTip("Save the edited text (Ctrl+S); Ctrl+Return saves and approves")
        self.revert_button = QPushButton("Revert")
        buttons = QHBoxLayout()
        for button in (self.approve_button, self.reject_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.revert_button)
        buttons.addWidget(self.save_button)
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.info.setForegroundRole(self.info.foregroundRole())
        small = self.info.font()
        small.setPointSizeF(small.pointSizeF() * 0.9)
        self.info.setFont(small)
        # Every task's current result of the photo (the editor above edits the newest), and the one combined
        # change the next write makes: the same text the write preview diffs.
        self.results = QLabel()
        self.results.setWordWrap(True)
        self.results.setFont(small)
        self.results.setAccessibleName("Current results")
        self.will_write = QLabel()
        self.will_write.setWordWrap(True)
        self.will_write.setFont(small)
        self.will_write.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.will_write.setAccessibleName("Will be written")
        layout = QVBoxLayout(self)
        layout.addWidget(self.preview, 1)
        layout.addWidget(self.name)
        layout.addWidget(self.status)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.results)
        layout.addWidget(self.will_write)
        layout.addWidget(self.info)
        self.editors: tuple[QWidget, ...] = (self.caption, self.title, self.alt_text, self.keywords)


class RunPanel(QFrame):
    """The running (or paused) tagging run: what it is working on now, how far, how fast, pause and cancel."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.live = QLabel()
        self.live.setFixedSize(QSize(96, 72))
        self.live.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.live.setStyleSheet("QLabel { background: palette(dark); border-radius: 4px; }")
        self.title = _heading("Tagging")
        self.current = QLabel()
        self.current.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.stats = QLabel()
        self.event = QLabel()
        self.event.setWordWrap(True)
        self.pause_button = QPushButton("Pause")
        self.cancel_button = QPushButton("Stop")
        self.cancel_button.setToolTip("Stop after the current photo; the run can be resumed later")
        self.close_button = QPushButton("Close")
        self.close_button.setToolTip("Hide this panel")
        self.close_button.hide()
        text = QVBoxLayout()
        top = QHBoxLayout()
        top.addWidget(self.title)
        top.addWidget(self.current, 1)
        text.addLayout(top)
        text.addWidget(self.progress)
        text.addWidget(self.stats)
        text.addWidget(self.event)
        buttons = QVBoxLayout()
        buttons.addWidget(self.pause_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.close_button)
        buttons.addStretch(1)
        layout = QHBoxLayout(self)
        layout.addWidget(self.live)
        layout.addLayout(text, 1)
        layout.addLayout(buttons)


class Banner(QFrame):
    """A one-line notice across the top with up to two buttons (offer to resume a run, read-only notes)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.setStyleSheet(
            "#banner { background: palette(alternate-base); border: 1px solid palette(mid); "
            "border-radius: 6px; }"
        )
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.accept_button = QPushButton("Resume")
        self.dismiss_button = QPushButton("Not Now")
        layout = QHBoxLayout(self)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.accept_button)
        layout.addWidget(self.dismiss_button)


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
        left_layout.addWidget(_heading("Libraries"))
        left_layout.addWidget(self.folders, 1)
        left_layout.addWidget(_heading("Status"))
        left_layout.addWidget(self.statuses)
        left_layout.addWidget(_heading("Keyword"))
        left_layout.addWidget(self.keyword_filter)
        left_layout.addWidget(_heading("Text"))
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
        self.search_error.setStyleSheet("QLabel { color: #c0392b; }")
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
