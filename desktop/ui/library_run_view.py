"""The library window's run panel (the tagging run in progress) and its banner (offer to resume, notices).
Layout only; library_runs.py drives them."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from captioneer.desktop.ui.theme import heading


class RunPanel(QFrame):
    """The running (or paused, or stopped) tagging run: what it is working on now, how far, how fast; pause,
    resume and stop."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)  # a click on the panel, then Escape, stops the run
        self.live = QLabel()
        self.live.setFixedSize(QSize(96, 72))
        self.live.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.live.setStyleSheet("QLabel { background: palette(dark); border-radius: 4px; }")
        self.title = heading("Tagging")
        self.current = QLabel()
        self.current.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.stats = QLabel()
        self.event = QLabel()
        self.event.setWordWrap(True)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setToolTip("Pause after the photo being tagged now")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Go on tagging where the run left off")
        self.resume_button.hide()
        self.cancel_button = QPushButton("Stop")
        self.cancel_button.setToolTip("Stop now (Esc); Resume tags the rest, the photo being tagged included")
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
        buttons.addWidget(self.resume_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.close_button)
        buttons.addStretch(1)
        layout = QHBoxLayout(self)
        layout.addWidget(self.live)
        layout.addLayout(text, 1)
        layout.addLayout(buttons)


class Banner(QFrame):
    """A one-line notice across the top with up to two buttons (offer to resume a run, where photos go)."""

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
