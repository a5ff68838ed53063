"""The crash dialog: what went wrong, the full report to copy, and where it was saved. Nothing is sent."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)


class CrashDialog(QDialog):
    """Shows an unexpected error with a copyable report."""

    def __init__(self, report: str, saved_path: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Captioneer hit an unexpected error")
        self.resize(720, 480)
        self.report = report

        headline = QLabel(
            "<b>Something went wrong inside Captioneer.</b><br>"
            "Your photos and saved results are not affected. The details below stay on this computer — "
            "nothing is sent anywhere. If you report the problem, copy the report and paste it into your "
            "message."
        )
        headline.setWordWrap(True)
        self.details = QPlainTextEdit(report)
        self.details.setReadOnly(True)
        self.details.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.saved = QLabel(f"Saved as {saved_path}")
        self.saved.setWordWrap(True)
        self.saved.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.copy_button = QPushButton("Copy report")
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.copy_button.clicked.connect(self.copy_report)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.setSpacing(10)
        layout.addWidget(headline)
        layout.addWidget(self.details, 1)
        layout.addWidget(self.saved)
        layout.addWidget(buttons)

    def copy_report(self) -> None:
        QGuiApplication.clipboard().setText(self.report)
        self.copy_button.setText("Copied")
