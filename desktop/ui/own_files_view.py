"""The "use model files I already have" panel, layout only: the button, what was found, and the button that
chooses a missing vision projector. The wizard's first page and the model manager both show it."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from captioneer.desktop.ui.theme import set_error_style

USE_FILES_TEXT = "Use Model Files I Already Have…"


def _value() -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class OwnFilesView(QWidget):
    """Button, then (once something is picked) model, projector and image detail, or what is wrong."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.use_button = QPushButton(USE_FILES_TEXT)
        self.use_button.setToolTip(
            "Pick a Qwen3-VL .gguf file (its vision projector next to it is found for you), its mmproj "
            "file, or a Transformers model folder (its config.json)."
        )
        self.choose_mmproj_button = QPushButton("Choose Vision Projector…")
        self.choose_mmproj_button.hide()
        self.model = _value()
        self.mmproj = _value()
        self.image_detail = _value()
        self.details = QWidget()
        form = QFormLayout(self.details)
        form.setContentsMargins(0, 0, 0, 0)
        form.setVerticalSpacing(2)
        form.addRow("Model:", self.model)
        form.addRow("Vision projector:", self.mmproj)
        form.addRow("Image detail:", self.image_detail)
        self.details.hide()
        self.error = _value()
        set_error_style(self.error)
        self.error.hide()
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(self.use_button)
        buttons.addWidget(self.choose_mmproj_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addLayout(buttons)
        layout.addWidget(self.details)
        layout.addWidget(self.error)
