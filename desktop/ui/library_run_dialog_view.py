"""The Tag Photos dialog, layout only: which photos (selection, folder, what the filter shows), the task,
language and vocabulary, and the model that will tag them; the context, keyword and video options on tabs
below, so the dialog fits a 1366×768 laptop screen."""

from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from captioneer.desktop.ui.context_view import ContextGroupView
from captioneer.desktop.ui.keyword_options_view import KeywordOptionsView
from captioneer.desktop.ui.theme import set_error_style
from captioneer.desktop.ui.video_options_view import VideoOptionsView

SCOPES = ("selection", "folder", "filter")
MIN_PAGE_HEIGHT = 160
"""The option pages' height when the screen is too low for the tallest (which then scrolls)."""


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
        self.clip_warning = QLabel()  # under the model: its context cannot hold a clip at the budget
        self.clip_warning.setWordWrap(True)
        set_error_style(self.clip_warning)
        self.clip_warning.hide()
        form = QFormLayout()
        form.addRow("Photos", scopes)
        task_row = QHBoxLayout()  # one row for both: the dialog must fit a 768-pixel-high screen
        task_row.addWidget(self.task, 2)
        task_row.addWidget(QLabel("Language"))
        task_row.addWidget(self.language, 1)
        form.addRow("Task", task_row)
        form.addRow("Vocabulary", vocabulary_row)
        form.addRow("", self.vocabulary_only)
        form.addRow("", self.redo)
        form.addRow("Model", self.engine)
        form.addRow("", self.clip_warning)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.start_button = self.buttons.addButton("Start Tagging", QDialogButtonBox.ButtonRole.AcceptRole)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        self.context = ContextGroupView()
        self.keywords = KeywordOptionsView()
        self.videos = VideoOptionsView()
        self.options = QTabWidget()
        for group, title in ((self.context, "Context"), (self.keywords, "Keywords"), (self.videos, "Videos")):
            page = QWidget()
            page_layout = QVBoxLayout(page)
            page_layout.addWidget(group)
            page_layout.addStretch(1)
            self.options.addTab(OptionsPage(page), title)
        self.videos_tab = self.options.count() - 1
        layout.addWidget(self.options, 1)
        layout.addWidget(self.buttons)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

    def showEvent(self, event: QShowEvent) -> None:
        """Open at full height where the screen has room (Qt stops a new window at two thirds of the screen:
        512 pixels on a 768-pixel laptop), else at what the screen leaves free, the option pages scrolling."""
        super().showEvent(event)
        screen = self.screen().availableGeometry()
        frame = self.frameGeometry().height() - self.height()
        least = self.minimumSizeHint().height()
        height = fitted_height(self.sizeHint().height(), frame, screen.height(), least)
        if height != self.height():
            self.resize(self.width(), height)
            self.move(self.x(), max(screen.top(), min(self.y(), screen.bottom() - height - frame)))


class OptionsPage(QScrollArea):
    """A tab's page that asks for its content's full size but scrolls when the screen is too low for it."""

    def __init__(self, content: QWidget) -> None:
        super().__init__()
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setWidget(content)

    def sizeHint(self) -> QSize:
        # QScrollArea caps its hint at a few dozen lines; the page should open whole where the screen allows.
        return self.widget().sizeHint()

    def minimumSizeHint(self) -> QSize:
        return QSize(self.widget().minimumSizeHint().width(), MIN_PAGE_HEIGHT)


def fitted_height(height: int, frame: int, available: int, least: int) -> int:
    """The dialog's height on a screen with ``available`` pixels free: as it is when it fits with its window
    ``frame``, else what the screen leaves, but never below its ``least`` height."""
    if height + frame <= available:
        return height
    return max(least, available - frame)
