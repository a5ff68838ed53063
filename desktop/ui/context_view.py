"""The Tag Photos dialog's Context group, layout only: a check box for each fact taken from the photos and
the three fields typed for the whole run (event, people, location)."""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QFormLayout, QGridLayout, QGroupBox, QLabel, QLineEdit, QWidget

from captioneer.desktop.core.context import PHOTO_VARIABLES, VARIABLE_LABELS

COLUMNS = 2


class ContextGroupView(QGroupBox):
    """What each photo's prompt is told about it: facts from its files and library, and typed fields."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Context in the prompt", parent)
        self.setToolTip(
            "Tell the model what the photo's files and folders say, and what you know of the shoot. It is "
            "asked to use it only where the photo agrees; each result records what it was told."
        )
        self.variables: dict[str, QCheckBox] = {}
        boxes = QGridLayout()
        for index, name in enumerate(PHOTO_VARIABLES):
            box = QCheckBox(VARIABLE_LABELS[name])
            self.variables[name] = box
            boxes.addWidget(box, index // COLUMNS, index % COLUMNS)
        self.event = QLineEdit()
        self.event.setPlaceholderText("optional, e.g. Anna's wedding")
        self.people = QLineEdit()
        self.people.setPlaceholderText("optional, e.g. Anna, Ben")
        self.location = QLineEdit()
        self.location.setPlaceholderText("optional, e.g. Lake Bled")
        self.note = QLabel()
        self.note.setWordWrap(True)
        form = QFormLayout(self)
        form.addRow(boxes)
        form.addRow("Event", self.event)
        form.addRow("People", self.people)
        form.addRow("Location", self.location)
        form.addRow(self.note)
