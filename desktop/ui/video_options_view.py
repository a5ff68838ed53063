"""The Tag Photos dialog's Videos group, layout only: the clip budget and the line saying what it buys for
the clips of the chosen photos."""

from __future__ import annotations

from PySide6.QtWidgets import QFormLayout, QGroupBox, QLabel, QSpinBox, QWidget

from captioneer.desktop.core.settings import MAX_VIDEO_TOKENS, MIN_VIDEO_TOKENS


class VideoOptionsView(QGroupBox):
    """How many tokens each video clip may spend, and what that means for the clips chosen."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Video clips", parent)
        self.setToolTip(
            "A clip is sent as one request: frames sampled over its length, together no more than the clip "
            "budget. More tokens: more or sharper frames, more memory and time."
        )
        self.budget = QSpinBox()
        self.budget.setRange(MIN_VIDEO_TOKENS, MAX_VIDEO_TOKENS)
        self.budget.setSingleStep(512)
        self.budget.setSuffix(" tokens per clip")
        self.plan = QLabel()
        self.plan.setWordWrap(True)
        form = QFormLayout(self)
        form.addRow("Clip budget", self.budget)
        form.addRow(self.plan)
