"""One image's card in the quick-caption list: thumbnail, state, the streamed answer, copy buttons and a
follow-up question. Layout and display only; the controller decides what happens."""

from __future__ import annotations

from enum import Enum

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QFontDatabase, QImage, QPixmap
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
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

from captioneer.desktop.ui.theme import set_themed_style

THUMB_EDGE = 132


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

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("card")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.setStyleSheet(
            # alternate-base, not base: text fields inside the card (base) must stand out in both themes.
            "#card { background: palette(alternate-base); border: 1px solid palette(mid);"
            " border-radius: 10px; }"
        )
        self.state = CardState.WAITING

        self.thumbnail = QLabel()
        self.thumbnail.setFixedSize(QSize(THUMB_EDGE, THUMB_EDGE))
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

        right = QVBoxLayout()
        right.setSpacing(8)
        right.addLayout(header)
        right.addWidget(self.progress)
        right.addWidget(self.text)
        right.addStretch(1)
        right.addWidget(self.actions)
        right.addWidget(self.follow_row)

        grid = QGridLayout(self)
        grid.setContentsMargins(12, 12, 12, 12)
        grid.setHorizontalSpacing(14)
        grid.addWidget(self.thumbnail, 0, 0, Qt.AlignmentFlag.AlignTop)
        grid.addLayout(right, 0, 1)
        grid.setColumnStretch(1, 1)
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
            QSize(THUMB_EDGE, THUMB_EDGE) * ratio,
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
            self.text, lambda on_dark: f"color: {'#ff9d97' if on_dark else '#a3261f'};" if failed else ""
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

    def set_copy_enabled(self, text: bool, alt_text: bool, keywords: bool) -> None:
        self.copy_text.setEnabled(text)
        self.copy_alt.setEnabled(alt_text)
        self.copy_keywords.setEnabled(keywords)
        self.copy_alt.setToolTip("" if alt_text else "Run the Alt text or Social-media task to get alt text")
        self.copy_keywords.setToolTip(
            "" if keywords else "Run the Caption + keywords or Social-media task to get keywords"
        )

    def flash_copied(self, what: str) -> None:
        button = {"text": self.copy_text, "alt_text": self.copy_alt, "keywords": self.copy_keywords}[what]
        button.setText("Copied ✓")
        labels = {"text": "Copy text", "alt_text": "Copy alt text", "keywords": "Copy keywords"}
        QTimer.singleShot(1200, button, lambda: button.setText(labels[what]))
