"""The main window's layout: menus, the task bar, the drop area or the list of cards, and the status bar.
Layout only; :mod:`captioneer.desktop.ui.main_window` wires the behaviour."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, QSize, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QImage, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from captioneer.desktop.core.languages import OUTPUT_LANGUAGES
from captioneer.desktop.ui.theme import app_icon


def paths_from_mime(mime: QMimeData) -> list[Path]:
    """Local files and folders named by dropped or pasted URLs."""
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]


class MainView(QMainWindow):
    """Captioneer's main window."""

    pathsDropped = Signal(list)
    imageDropped = Signal(QImage)
    closing = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("Captioneer")
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.resize(980, 720)
        self.setMinimumSize(QSize(640, 420))
        self._build_actions()
        self._build_menus()
        self._build_task_bar()
        self._build_pages()
        self._build_status_bar()

    # -- structure -------------------------------------------------------------------------------------

    def _build_actions(self) -> None:
        self.open_action = QAction("&Open Photos…", self)
        self.open_action.setShortcut(QKeySequence.StandardKey.Open)
        self.open_folder_action = QAction("Open &Folder…", self)
        self.paste_action = QAction("&Paste Image", self)
        self.paste_action.setShortcut(QKeySequence.StandardKey.Paste)
        self.clear_action = QAction("&Clear List", self)
        self.quit_action = QAction("&Quit", self)
        self.quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        self.copy_all_text_action = QAction("Copy All as &Text", self)
        self.copy_all_text_action.setShortcut(QKeySequence("Ctrl+Shift+C"))
        self.copy_all_json_action = QAction("Copy All as &JSON", self)
        self.settings_action = QAction("&Settings…", self)
        self.settings_action.setShortcut(QKeySequence.StandardKey.Preferences)
        self.settings_action.setMenuRole(QAction.MenuRole.PreferencesRole)
        self.wizard_action = QAction("Set Up a &Model…", self)
        self.models_action = QAction("&Model Manager…", self)
        self.about_action = QAction("&About Captioneer", self)
        self.about_action.setMenuRole(QAction.MenuRole.AboutRole)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addActions([self.open_action, self.open_folder_action, self.paste_action])
        file_menu.addSeparator()
        file_menu.addAction(self.clear_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        edit_menu = bar.addMenu("&Edit")
        edit_menu.addActions([self.copy_all_text_action, self.copy_all_json_action])
        edit_menu.addSeparator()
        edit_menu.addAction(self.settings_action)
        models_menu = bar.addMenu("&Models")
        models_menu.addActions([self.wizard_action, self.models_action])
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.about_action)

    def _build_task_bar(self) -> None:
        self.task_combo = QComboBox()
        self.task_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.language_combo = QComboBox()
        self.language_combo.setEditable(True)
        self.language_combo.addItems(OUTPUT_LANGUAGES)
        self.language_combo.setToolTip("The language answers are written in (type any language)")
        self.language_combo.setMinimumContentsLength(10)
        self.question_edit = QLineEdit()
        self.question_edit.setPlaceholderText("Your question, e.g. “How many people are in the photo?”")
        self.question_edit.setClearButtonEnabled(True)
        self.run_button = QPushButton("Caption")
        self.run_button.setDefault(True)
        self.run_button.setToolTip("Run the task on every photo in the list")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop generating now")
        self.cancel_button.setEnabled(False)
        self.copy_all_button = QToolButton()
        self.copy_all_button.setText("Copy all")
        self.copy_all_button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        self.copy_all_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        copy_menu = QMenu(self.copy_all_button)
        copy_menu.addActions([self.copy_all_text_action, self.copy_all_json_action])
        self.copy_all_button.setMenu(copy_menu)
        self.copy_all_button.setDefaultAction(self.copy_all_text_action)
        self.copy_all_button.setText("Copy all")
        self.open_button = QPushButton("Open…")
        self.open_button.setToolTip("Choose photos to caption")
        self.paste_button = QPushButton("Paste")
        self.paste_button.setToolTip("Caption the image on the clipboard")

        bar = QHBoxLayout()
        bar.setContentsMargins(14, 10, 14, 10)
        bar.setSpacing(8)
        bar.addWidget(self.open_button)
        bar.addWidget(self.paste_button)
        bar.addSpacing(12)
        bar.addWidget(QLabel("Task"))
        bar.addWidget(self.task_combo)
        bar.addWidget(QLabel("Language"))
        bar.addWidget(self.language_combo)
        bar.addWidget(self.question_edit, 1)
        self.bar_stretch = QWidget()
        self.bar_stretch.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        bar.addWidget(self.bar_stretch)
        bar.addWidget(self.run_button)
        bar.addWidget(self.cancel_button)
        bar.addWidget(self.copy_all_button)
        self.task_bar = QFrame()
        self.task_bar.setObjectName("taskBar")
        self.task_bar.setStyleSheet("#taskBar { border-bottom: 1px solid palette(mid); }")
        self.task_bar.setLayout(bar)

        self.banner = QFrame()
        self.banner.setObjectName("banner")
        self.banner.setStyleSheet(
            "#banner { background: palette(alternate-base); border-bottom: 1px solid palette(mid); }"
        )
        self.banner_text = QLabel()
        self.banner_text.setWordWrap(True)
        self.banner_button = QPushButton("Set up a model…")
        banner_layout = QHBoxLayout(self.banner)
        banner_layout.setContentsMargins(14, 8, 14, 8)
        banner_layout.addWidget(self.banner_text, 1)
        banner_layout.addWidget(self.banner_button)
        self.banner.hide()

    def _build_pages(self) -> None:
        self.pages = QStackedWidget()
        self.empty_page = self._build_empty_page()
        self.cards_container = QWidget()
        self.cards_layout = QVBoxLayout(self.cards_container)
        self.cards_layout.setContentsMargins(14, 14, 14, 14)
        self.cards_layout.setSpacing(12)
        self.cards_layout.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setWidget(self.cards_container)
        self.pages.addWidget(self.empty_page)
        self.pages.addWidget(self.scroll)

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.task_bar)
        layout.addWidget(self.banner)
        layout.addWidget(self.pages, 1)
        self.setCentralWidget(central)

    def _build_empty_page(self) -> QWidget:
        page = QWidget()
        icon = QLabel()
        icon.setPixmap(app_icon().pixmap(QSize(96, 96)))
        icon.setAlignment(Qt.AlignmentFlag.AlignCenter)
        title = QLabel("Drop photos here")
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.8)
        font.setBold(True)
        title.setFont(font)
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint = QLabel(
            "Drag photos or whole folders onto this window, paste an image with Ctrl+V, or open files.\n"
            "JPEG, PNG, HEIC, WebP and camera RAW all work. Your photos never leave this computer."
        )
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint.setWordWrap(True)
        hint.setStyleSheet("color: palette(placeholder-text);")
        self.empty_open_button = QPushButton("Open Photos…")
        self.empty_paste_button = QPushButton("Paste Image")
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.empty_open_button)
        buttons.addWidget(self.empty_paste_button)
        buttons.addStretch(1)

        self.drop_zone = QFrame()
        self.drop_zone.setObjectName("dropZone")
        self.set_drop_highlight(False)
        zone = QVBoxLayout(self.drop_zone)
        zone.setContentsMargins(40, 40, 40, 40)
        zone.setSpacing(14)
        zone.addStretch(1)
        zone.addWidget(icon)
        zone.addWidget(title)
        zone.addWidget(hint)
        zone.addSpacing(6)
        zone.addLayout(buttons)
        zone.addStretch(1)
        outer = QVBoxLayout(page)
        outer.setContentsMargins(24, 24, 24, 24)
        outer.addWidget(self.drop_zone)
        return page

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.status_engine = QLabel()
        self.status_memory = QLabel()
        self.status_speed = QLabel()
        for label in (self.status_engine, self.status_memory, self.status_speed):
            label.setContentsMargins(8, 0, 8, 0)
            status.addPermanentWidget(label)

    # -- display -----------------------------------------------------------------------------------------

    def set_drop_highlight(self, on: bool) -> None:
        border = "palette(highlight)" if on else "palette(mid)"
        self.drop_zone.setStyleSheet(
            f"#dropZone {{ border: 2px dashed {border}; border-radius: 16px; background: palette(base); }}"
        )

    def show_cards(self, on: bool) -> None:
        self.pages.setCurrentWidget(self.scroll if on else self.empty_page)

    def add_card(self, card: QWidget) -> None:
        self.cards_layout.insertWidget(self.cards_layout.count() - 1, card)

    def show_question(self, on: bool) -> None:
        self.question_edit.setVisible(on)
        self.bar_stretch.setVisible(not on)

    def set_busy(self, busy: bool) -> None:
        self.cancel_button.setEnabled(busy)

    def set_banner(self, text: str | None, button: str = "Set up a model…") -> None:
        self.banner.setVisible(bool(text))
        self.banner_text.setText(text or "")
        self.banner_button.setText(button)

    # -- events ------------------------------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        mime = event.mimeData()
        if paths_from_mime(mime) or mime.hasImage():
            event.acceptProposedAction()
            self.set_drop_highlight(True)
        else:
            event.ignore()

    def dragLeaveEvent(self, event: object) -> None:
        self.set_drop_highlight(False)

    def dropEvent(self, event: QDropEvent) -> None:
        self.set_drop_highlight(False)
        mime = event.mimeData()
        paths = paths_from_mime(mime)
        if paths:
            self.pathsDropped.emit(paths)
        elif mime.hasImage():
            self.imageDropped.emit(QImage(mime.imageData()))
        else:
            event.ignore()
            return
        event.acceptProposedAction()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.closing.emit()
        super().closeEvent(event)
