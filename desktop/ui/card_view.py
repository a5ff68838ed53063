"""One image's card in the quick-caption grid: thumbnail, state, the streamed answer, the earlier answers to
browse, copy and re-run buttons and a follow-up question. Layout and display only; the controller decides."""

from __future__ import annotations

from enum import Enum

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QFontDatabase, QImage, QPixmap
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from captioneer.desktop.ui.theme import ERROR_TEXT, set_themed_style

THUMB_HEIGHT = 180
THUMB_EDGE = 360  # the widest thumbnail drawn on a card (at most THUMB_HEIGHT high)
CARD_MIN_WIDTH = 380  # the grid fits as many columns of at least this width as the window allows


class CardState(Enum):
    WAITING = "Waiting"
    WORKING = "Writing…"
    DONE = "Done"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


# (light theme, dark theme) chip colours: background, text. Chosen for contrast on both palettes.
_CHIP_COLOURS = {
    CardState.WAITING: (("#e4e7ec", "#3b4048"), ("#3b4048", "#d5d9e0")),
    CardState.WORKING: (("#dbe8ff", "#1d4ea8"), ("#1f3b6b", "#cfe0ff")),
    CardState.DONE: (("#dcf2e3", "#1c6b3a"), ("#1e4a2f", "#c9f0d6")),
    CardState.FAILED: (("#fde2e1", "#a3261f"), ("#5a2422", "#ffd2cf")),
    CardState.CANCELLED: (("#fff0d6", "#8a5300"), ("#54401c", "#ffe3b0")),
}


class CardView(QFrame):
    """The widgets of one card. Signals carry the user's intent to the controller."""

    copyRequested = Signal(str)  # "text", "alt_text" or "keywords"
    followUpRequested = Signal(str)
    removeRequested = Signal()
    rerunRequested = Signal()
    browseRequested = Signal(int)  # -1 earlier answer, +1 later answer

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("card")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Maximum)
        self.setMinimumWidth(CARD_MIN_WIDTH)
        self.setStyleSheet(
            # alternate-base, not base: text fields inside the card (base) must stand out in both themes.
            "#card { background: palette(alternate-base); border: 1px solid palette(mid);"
            " border-radius: 10px; }"
        )
        self.state = CardState.WAITING

        self.thumbnail = QLabel()
        self.thumbnail.setFixedHeight(THUMB_HEIGHT)
        self.thumbnail.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.thumbnail.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.thumbnail.setStyleSheet("background: palette(window); border-radius: 6px;")
        self.thumbnail.setText("…")

        self.name = QLabel(name)
        font = self.name.font()
        font.setBold(True)
        self.name.setFont(font)
        self.name.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.name.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.chip = QLabel()
        self.chip.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.remove_button = QToolButton()
        self.remove_button.setText("✕")
        self.remove_button.setToolTip("Remove this image from the list")
        self.remove_button.setAutoRaise(True)
        self.remove_button.clicked.connect(self.removeRequested)

        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setTextVisible(False)
        self.progress.setFixedHeight(4)
        self.progress.hide()

        self.text = QLabel()
        self.text.setTextFormat(Qt.TextFormat.PlainText)  # model output is never interpreted as markup
        self.text.setWordWrap(True)
        self.text.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        self.text.setMinimumHeight(self.fontMetrics().lineSpacing() * 2)

        self.earlier_button = QToolButton()
        self.earlier_button.setText("◀")
        self.earlier_button.setToolTip("Show the earlier answer")
        self.earlier_button.setAutoRaise(True)
        self.earlier_button.clicked.connect(lambda: self.browseRequested.emit(-1))
        self.later_button = QToolButton()
        self.later_button.setText("▶")
        self.later_button.setToolTip("Show the later answer")
        self.later_button.setAutoRaise(True)
        self.later_button.clicked.connect(lambda: self.browseRequested.emit(1))
        self.history_label = QLabel()
        self.history_label.setStyleSheet("color: palette(placeholder-text);")
        self.history_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.history_row = QWidget()
        history = QHBoxLayout(self.history_row)
        history.setContentsMargins(0, 0, 0, 0)
        history.setSpacing(4)
        history.addWidget(self.earlier_button)
        history.addWidget(self.history_label, 1)
        history.addWidget(self.later_button)
        self.history_row.hide()

        self.copy_text = QPushButton("Copy text")
        self.copy_alt = QPushButton("Copy alt text")
        self.copy_keywords = QPushButton("Copy keywords")
        self.actions = QWidget()
        buttons = QHBoxLayout(self.actions)
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.setSpacing(6)
        for button, what in (
            (self.copy_text, "text"), (self.copy_alt, "alt_text"), (self.copy_keywords, "keywords")
        ):
            button.setEnabled(False)
            button.clicked.connect(lambda _checked=False, what=what: self.copyRequested.emit(what))
            buttons.addWidget(button)
        buttons.addStretch(1)
        self.rerun_button = QPushButton("Re-run")
        self.rerun_button.setToolTip("Run the chosen task on this photo again; earlier answers are kept")
        self.rerun_button.clicked.connect(self.rerunRequested)
        buttons.addWidget(self.rerun_button)

        self.follow_up = QLineEdit()
        self.follow_up.setPlaceholderText("Ask a follow-up question about this image…")
        self.follow_up.setClearButtonEnabled(True)
        self.ask_button = QPushButton("Ask")
        self.follow_up.returnPressed.connect(self._emit_follow_up)
        self.ask_button.clicked.connect(self._emit_follow_up)
        self.follow_row = QWidget()
        follow = QHBoxLayout(self.follow_row)
        follow.setContentsMargins(0, 0, 0, 0)
        follow.setSpacing(6)
        follow.addWidget(self.follow_up, 1)
        follow.addWidget(self.ask_button)

        header = QHBoxLayout()
        header.setSpacing(8)
        header.addWidget(self.name, 1)
        header.addWidget(self.chip)
        header.addWidget(self.remove_button)

        column = QVBoxLayout(self)
        column.setContentsMargins(12, 12, 12, 12)
        column.setSpacing(8)
        column.addWidget(self.thumbnail)
        column.addLayout(header)
        column.addWidget(self.progress)
        column.addWidget(self.history_row)
        column.addWidget(self.text)
        column.addStretch(1)
        column.addWidget(self.actions)
        column.addWidget(self.follow_row)
        self.set_state(CardState.WAITING)
        self.show_actions(False)

    def _emit_follow_up(self) -> None:
        question = self.follow_up.text().strip()
        if question:
            self.followUpRequested.emit(question)

    def set_thumbnail(self, image: QImage) -> None:
        pixmap = QPixmap.fromImage(image)
        ratio = self.devicePixelRatioF()
        scaled = pixmap.scaled(
            QSize(THUMB_EDGE, THUMB_HEIGHT) * ratio,
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
        scaled.setDevicePixelRatio(ratio)
        self.thumbnail.setPixmap(scaled)

    def set_thumbnail_error(self, reason: str) -> None:
        self.thumbnail.setText("No preview")
        self.thumbnail.setToolTip(reason)

    def set_state(self, state: CardState, detail: str = "") -> None:
        self.state = state
        light, dark = _CHIP_COLOURS[state]
        self.chip.setText(f"{state.value} · {detail}" if detail else state.value)
        set_themed_style(
            self.chip,
            lambda on_dark: "background: {}; color: {}; border-radius: 9px; padding: 2px 10px;".format(
                *(dark if on_dark else light)
            ),
        )
        self.progress.setVisible(state is CardState.WORKING)
        failed = state is CardState.FAILED
        set_themed_style(
            self.text, lambda on_dark: f"color: {ERROR_TEXT[on_dark]};" if failed else ""
        )

    def set_text(self, text: str, monospace: bool = False) -> None:
        font = (
            QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont) if monospace else self.font()
        )
        self.text.setFont(font)
        self.text.setText(text)

    def show_actions(self, on: bool) -> None:
        """Copy buttons and the follow-up field, shown once there is an answer to copy or ask about."""
        self.actions.setVisible(on)
        self.follow_row.setVisible(on)

    def show_history(self, heading: str, position: int, count: int) -> None:
        """Which answer is on show: "Short caption · 14:05 · 2 of 3", with arrows to the others."""
        self.history_row.setVisible(count > 0)
        self.history_label.setText(f"{heading} · {position} of {count}" if count > 1 else heading)
        self.earlier_button.setVisible(count > 1)
        self.later_button.setVisible(count > 1)
        self.earlier_button.setEnabled(position > 1)
        self.later_button.setEnabled(position < count)

    def set_copy_enabled(self, text: bool, alt_text: bool, keywords: bool) -> None:
        self.copy_text.setEnabled(text)
        # Shown only when the answer has them: a narrow card has no room for buttons that cannot work.
        for button, on in ((self.copy_alt, alt_text), (self.copy_keywords, keywords)):
            button.setEnabled(on)
            button.setVisible(on)

    def flash_copied(self, what: str) -> None:
        button = {"text": self.copy_text, "alt_text": self.copy_alt, "keywords": self.copy_keywords}[what]
        button.setText("Copied ✓")
        labels = {"text": "Copy text", "alt_text": "Copy alt text", "keywords": "Copy keywords"}
        QTimer.singleShot(1200, button, lambda: button.setText(labels[what]))
