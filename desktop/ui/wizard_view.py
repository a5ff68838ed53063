"""The first-run wizard's pages, layout only: this computer and the recommendation, the download, the test
caption. :mod:`captioneer.desktop.ui.wizard` fills them and decides when each page is complete."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from captioneer.desktop.ui.own_files_view import OwnFilesView

PROFILE_COLUMNS = ("Model", "Engine", "Precision", "Image detail", "Memory", "Speed")


def _wrapped(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label


class CheckedPage(QWizardPage):
    """A wizard page whose "complete" state is decided by a function the controller sets."""

    def __init__(self) -> None:
        super().__init__()
        self.complete_when: Callable[[], bool] = lambda: True

    def isComplete(self) -> bool:  # Qt override
        return self.complete_when()


class HardwarePageView(CheckedPage):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Your computer")
        self.setSubTitle("Captioneer checks what this computer has and suggests the models that fit it.")
        self.checking = QLabel("Checking this computer…")
        self.facts = QFormLayout()
        self.facts.setHorizontalSpacing(18)
        self.facts.setVerticalSpacing(4)
        self.table = QTableWidget(0, len(PROFILE_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(PROFILE_COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.reason = _wrapped()
        self.reason.setMinimumHeight(self.fontMetrics().lineSpacing() * 3)
        layout = QVBoxLayout(self)
        layout.setSpacing(10)
        layout.addWidget(self.checking)
        layout.addLayout(self.facts)
        self.videos = QCheckBox("My library has videos: choose a model that fits a video clip too")
        self.videos.setToolTip(
            "A clip is sent as one request with all its frames (the clip budget in Settings): it needs more "
            "memory than a photo. Models that fit photos only are listed after the others."
        )
        layout.addWidget(self.videos)
        layout.addWidget(QLabel("<b>Recommended for this computer</b> (best first — pick one):"))
        layout.addWidget(self.table, 1)
        layout.addWidget(self.reason)
        self.own_files = OwnFilesView()
        layout.addWidget(self.own_files)

    def add_fact(self, label: str, value: str) -> None:
        self.facts.addRow(f"{label}:", _wrapped(value))


class DownloadPageView(CheckedPage):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Download the model")
        self.setSubTitle("The model is downloaded once and kept on this computer. Only the download itself "
                         "uses the internet; your photos never leave this computer.")
        self.what = _wrapped()
        self.where = _wrapped()
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.status = _wrapped()
        self.download_button = QPushButton("Download")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.download_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setSpacing(12)
        layout.addWidget(self.what)
        layout.addWidget(self.where)
        layout.addSpacing(8)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        layout.addStretch(1)


class TestPageView(CheckedPage):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Test caption")
        self.setSubTitle("One picture is captioned with your choice, to measure its speed and memory here.")
        self.picture = QLabel()
        self.picture.setFixedSize(QSize(192, 144))
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture.setStyleSheet("background: palette(alternate-base); border-radius: 6px;")
        self.caption = _wrapped("…")
        self.measured = _wrapped()
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setTextVisible(False)
        self.progress.setFixedHeight(6)
        self.retry_button = QPushButton("Run the test again")
        self.retry_button.hide()
        self.fix_button = QPushButton()
        self.fix_button.hide()
        right = QVBoxLayout()
        right.setSpacing(8)
        right.addWidget(self.progress)
        right.addWidget(self.caption)
        right.addWidget(self.measured)
        right.addStretch(1)
        retry_row = QHBoxLayout()
        retry_row.addStretch(1)
        retry_row.addWidget(self.fix_button)
        retry_row.addWidget(self.retry_button)
        right.addLayout(retry_row)
        row = QHBoxLayout()
        row.setSpacing(16)
        row.addWidget(self.picture, 0, Qt.AlignmentFlag.AlignTop)
        row.addLayout(right, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addStretch(1)
        self.setFinalPage(True)


class SetupWizardView(QWizard):
    """The wizard window and its three pages."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Set up a model")
        self.setWizardStyle(QWizard.WizardStyle.ModernStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        self.setMinimumSize(QSize(840, 600))
        self.hardware_page = HardwarePageView()
        self.download_page = DownloadPageView()
        self.test_page = TestPageView()
        self.addPage(self.hardware_page)
        self.addPage(self.download_page)
        self.addPage(self.test_page)
        self.setButtonText(QWizard.WizardButton.FinishButton, "Save and start")
