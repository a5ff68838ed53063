"""The main window's layout: menus, the task bar, the drop area or the list of cards, and the status bar.
Layout only; :mod:`captioneer.desktop.ui.main_window` wires the behaviour."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QMimeData, QSize, Qt, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QImage,
    QKeySequence,
    QResizeEvent,
)
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
from captioneer.desktop.ui.card_grid_view import CardGrid
from captioneer.desktop.ui.card_view import CARD_MIN_WIDTH
from captioneer.desktop.ui.theme import app_icon, set_themed_style

ONE_ROW_WIDTH = 1060
"""Below this window width the task bar's run buttons move to a second row, so nothing is clipped."""


def shortcut_text(action: QAction) -> str:
    """An action's shortcut as this platform writes it (Ctrl+Return, ⌘↩)."""
    return action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)


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
        # The controller's say on closing (e.g. "discard answers not copied?"): False keeps the window open.
        self.close_guard: Callable[[], bool] = lambda: True
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
        self.settings_action.setMenuRole(QAction.MenuRole.PreferencesRole)
        self.wizard_action = QAction("Set Up a &Model…", self)
        self.models_action = QAction("&Model Manager…", self)
        self.compare_action = QAction("&Compare Models…", self)
        self.about_action = QAction("&About Captioneer", self)
        self.about_action.setMenuRole(QAction.MenuRole.AboutRole)
        self.run_action = QAction("&Caption", self)
        # Qt reads Ctrl as Cmd on macOS; Enter is the keypad's Return.
        self.run_action.setShortcuts([QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+Enter")])
        self.rerun_all_action = QAction("&Re-run All", self)
        self.rerun_all_action.setShortcut(QKeySequence("Ctrl+Shift+Return"))
        self.rerun_all_action.setEnabled(False)
        self.cancel_action = QAction("C&ancel", self)
        self.cancel_action.setShortcut(QKeySequence(Qt.Key.Key_Escape))
        self.cancel_action.setEnabled(False)
        # Preferences has no key on Windows and most Linux desktops: Ctrl+, is what other apps use there.
        preferences = QKeySequence.keyBindings(QKeySequence.StandardKey.Preferences)
        self.settings_action.setShortcuts(preferences or [QKeySequence("Ctrl+,")])

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
        caption_menu = bar.addMenu("&Caption")
        caption_menu.addActions([self.run_action, self.rerun_all_action, self.cancel_action])
        models_menu = bar.addMenu("&Models")
        models_menu.addActions([self.wizard_action, self.models_action, self.compare_action])
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.about_action)

    def _build_task_bar(self) -> None:
        self.open_button = QPushButton("Open…")
        self.paste_button = QPushButton("Paste")
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
        self.run_button.setToolTip(
            f"Run the task on the photos that have no answer for it yet ({shortcut_text(self.run_action)})"
        )
        self.run_action.setToolTip(self.run_button.toolTip())
        self.rerun_all_button = QPushButton("Re-run All")
        self.rerun_all_button.setToolTip(
            f"Run the task again on every photo; earlier answers stay in each card's history "
            f"({shortcut_text(self.rerun_all_action)})"
        )
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip(f"Stop generating now ({shortcut_text(self.cancel_action)})")
        self.cancel_button.setEnabled(False)
        self.rerun_all_button.setEnabled(False)
        self.open_button.setToolTip(f"Choose photos to caption ({shortcut_text(self.open_action)})")
        self.paste_button.setToolTip(f"Caption the clipboard's image ({shortcut_text(self.paste_action)})")
        self.copy_all_button = QToolButton()
        self.copy_all_button.setText("Copy all")
        self.copy_all_button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        self.copy_all_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        copy_menu = QMenu(self.copy_all_button)
        copy_menu.addActions([self.copy_all_text_action, self.copy_all_json_action])
        self.copy_all_button.setMenu(copy_menu)
        self.copy_all_button.setDefaultAction(self.copy_all_text_action)
        self.copy_all_button.setText("Copy all")

        bar = QHBoxLayout()
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
        # The run buttons end the task bar's row, or take a second row when the window is narrow.
        self._bar_rows = (bar, QHBoxLayout())
        self._bar_rows[1].setSpacing(8)
        self._bar_rows[1].addStretch(1)
        self.narrow_bar: bool | None = None
        rows = QVBoxLayout()
        rows.setContentsMargins(14, 10, 14, 10)
        rows.addLayout(bar)
        rows.addLayout(self._bar_rows[1])
        self.task_bar = QFrame()
        self.task_bar.setObjectName("taskBar")
        self.task_bar.setStyleSheet("#taskBar { border-bottom: 1px solid palette(mid); }")
        self.task_bar.setLayout(rows)
        self._arrange_task_bar(narrow=False)

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

        self.privacy_banner = QFrame()
        self.privacy_banner.setObjectName("privacyBanner")
        set_themed_style(
            self.privacy_banner,
            lambda dark: "#privacyBanner {{ background: {}; border-bottom: 1px solid palette(mid); }}"
            " QLabel {{ color: {}; }}".format(*(("#54401c", "#ffe3b0") if dark else ("#fff0d6", "#5c3800"))),
        )
        self.privacy_text = QLabel()
        self.privacy_text.setWordWrap(True)
        privacy_layout = QHBoxLayout(self.privacy_banner)
        privacy_layout.setContentsMargins(14, 8, 14, 8)
        privacy_layout.addWidget(self.privacy_text, 1)
        self.privacy_banner.hide()

    def _build_pages(self) -> None:
        self.pages = QStackedWidget()
        self.empty_page = self._build_empty_page()
        self.card_grid = CardGrid(CARD_MIN_WIDTH)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setWidget(self.card_grid)
        self.pages.addWidget(self.empty_page)
        self.pages.addWidget(self.scroll)

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.task_bar)
        layout.addWidget(self.privacy_banner)
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
        self.drop_hint = hint = QLabel()
        self.set_remote(None)
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

    def _arrange_task_bar(self, narrow: bool) -> None:
        if narrow == self.narrow_bar:
            return
        self.narrow_bar = narrow
        row = self._bar_rows[1 if narrow else 0]
        for widget in (self.run_button, self.rerun_all_button, self.cancel_button, self.copy_all_button):
            row.addWidget(widget)
        self.task_bar.layout().setSpacing(8 if narrow else 0)

    def set_drop_highlight(self, on: bool) -> None:
        border = "palette(highlight)" if on else "palette(mid)"
        self.drop_zone.setStyleSheet(
            f"#dropZone {{ border: 2px dashed {border}; border-radius: 16px; background: palette(base); }}"
        )

    def show_cards(self, on: bool) -> None:
        self.pages.setCurrentWidget(self.scroll if on else self.empty_page)
        self.rerun_all_action.setEnabled(on)  # nothing to re-run in an empty list
        self.rerun_all_button.setEnabled(on)

    def add_card(self, card: QWidget) -> None:
        self.card_grid.add(card)

    def remove_card(self, card: QWidget) -> None:
        self.card_grid.remove(card)

    def show_question(self, on: bool) -> None:
        self.question_edit.setVisible(on)
        self.bar_stretch.setVisible(not on)

    def set_busy(self, busy: bool) -> None:
        self.cancel_button.setEnabled(busy)
        self.cancel_action.setEnabled(busy)  # Escape cancels only while something runs

    def set_remote(self, banner: str | None) -> None:
        """Say where photos go: a banner when they leave this computer, the drop zone's promise when not."""
        self.privacy_banner.setVisible(bool(banner))
        self.privacy_text.setText(banner or "")
        paste = shortcut_text(self.paste_action)
        where = (
            "Photos you add are sent to the server named above." if banner
            else "Your photos never leave this computer."
        )
        self.drop_hint.setText(
            f"Drag photos or whole folders onto this window, paste an image with {paste}, or open files.\n"
            f"JPEG, PNG, HEIC, WebP and camera RAW all work. {where}"
        )

    def set_banner(self, text: str | None, button: str = "Set up a model…") -> None:
        self.banner.setVisible(bool(text))
        self.banner_text.setText(text or "")
        self.banner_button.setText(button)
        self.banner_button.setVisible(bool(button))

    # -- events ------------------------------------------------------------------------------------------

    def resizeEvent(self, event: QResizeEvent) -> None:
        self._arrange_task_bar(event.size().width() < ONE_ROW_WIDTH)
        super().resizeEvent(event)

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
        if not self.close_guard():
            event.ignore()
            return
        self.closing.emit()
        super().closeEvent(event)
