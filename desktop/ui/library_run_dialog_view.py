"""The Tag Photos dialog, layout only: which photos (selection, folder, what the filter shows), the task,
language and vocabulary, and the model that will tag them."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from captioneer.desktop.ui.context_view import ContextGroupView
from captioneer.desktop.ui.keyword_options_view import KeywordOptionsView

SCOPES = ("selection", "folder", "filter")


class RunDialogView(QDialog):
    """Choose the photos (selection, folder, what the filter shows), the task, language and vocabulary."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Tag Photos")
        self.scope_buttons = QButtonGroup(self)
        self.scope_selection = QRadioButton()
        self.scope_folder = QRadioButton()
        self.scope_filter = QRadioButton()
        scopes = QVBoxLayout()
        for index, button in enumerate((self.scope_selection, self.scope_folder, self.scope_filter)):
            self.scope_buttons.addButton(button, index)
            scopes.addWidget(button)
        self.task = QComboBox()
        self.language = QLineEdit()
        self.vocabulary = QLineEdit()
        self.vocabulary.setPlaceholderText("optional: a text file, one keyword a line")
        self.vocabulary_browse = QPushButton("Choose…")
        vocabulary_row = QHBoxLayout()
        vocabulary_row.addWidget(self.vocabulary, 1)
        vocabulary_row.addWidget(self.vocabulary_browse)
        self.vocabulary_only = QCheckBox("Only keywords from the vocabulary")
        self.vocabulary_only.setEnabled(False)
        self.vocabulary.textChanged.connect(lambda text: self.vocabulary_only.setEnabled(bool(text.strip())))
        self.redo = QCheckBox("Tag again photos that already have a result from this model")
        self.engine = QLabel()
        self.engine.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Photos", scopes)
        form.addRow("Task", self.task)
        form.addRow("Language", self.language)
        form.addRow("Vocabulary", vocabulary_row)
        form.addRow("", self.vocabulary_only)
        form.addRow("", self.redo)
        form.addRow("Model", self.engine)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.start_button = self.buttons.addButton("Start Tagging", QDialogButtonBox.ButtonRole.AcceptRole)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        self.context = ContextGroupView()
        layout.addWidget(self.context)
        self.keywords = KeywordOptionsView()
        layout.addWidget(self.keywords)
        layout.addWidget(self.buttons)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
