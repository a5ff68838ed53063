"""The library window's dialogs, layout only: what to do with photos
already reviewed (Reviewed Photos), whether photos may go to another computer (Send Photos), the metadata
write with its per-file preview (Write Metadata), and the list of writes to undo one of (Undo a Write)."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QListWidget,
    QMessageBox,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

WRITE_MODES = (
    ("sidecar", "XMP sidecar next to each photo (photo files untouched)"),
    ("embedded", "Inside the photo files (XMP and IPTC)"),
    ("both", "Both: inside the photo and a sidecar"),
)


class ReviewedQuestionView(QMessageBox):
    """Tagging again would meet photos whose current result was reviewed: skip, replace or keep both."""

    def __init__(self, count: int, task: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Reviewed Photos")
        self.setIcon(QMessageBox.Icon.Question)
        self.setText(
            f"{count:,} of these photos already have a {task} result you reviewed (approved, edited, "
            "rejected or written). What should this run do with them?"
        )
        self.setInformativeText(
            "Skip: leave them as they are.\n"
            "Replace: the new result becomes current; the reviewed one is kept as an older version and is "
            "never written.\n"
            "Keep both: the reviewed result stays current and is what is shown and written; the new one is "
            "kept as a version."
        )
        self.skip_button = self.addButton("Skip Them", QMessageBox.ButtonRole.AcceptRole)
        self.replace_button = self.addButton("Replace", QMessageBox.ButtonRole.DestructiveRole)
        self.keep_button = self.addButton("Keep Both as Versions", QMessageBox.ButtonRole.ActionRole)
        self.cancel_button = self.addButton(QMessageBox.StandardButton.Cancel)
        self.setDefaultButton(self.skip_button)
        self.setEscapeButton(self.cancel_button)


class RemoteQuestionView(QMessageBox):
    """Tagging would send photos to servers on other computers: ask once per address before the first goes."""

    def __init__(self, servers: Sequence[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Send Photos to Another Computer?")
        self.setIcon(QMessageBox.Icon.Question)
        named = "\n".join(servers)
        self.setText(f"Tagging sends each photo to a server that is not this computer:\n{named}")
        self.setInformativeText(
            "Send Photos: the photos of this run, and of later runs to the same server, go there to be "
            "described. Cancel: nothing is sent; choose a local engine in Settings to keep photos here."
        )
        self.send_button = self.addButton("Send Photos", QMessageBox.ButtonRole.AcceptRole)
        self.cancel_button = self.addButton(QMessageBox.StandardButton.Cancel)
        self.setDefaultButton(self.cancel_button)  # Enter must not send photos away
        self.setEscapeButton(self.cancel_button)


class WriteDialogView(QDialog):
    """Where to write, the per-file metadata diff, then Write."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Write Metadata")
        self.resize(820, 620)
        self.mode = QComboBox()
        for value, label in WRITE_MODES:
            self.mode.addItem(label, value)
        self.unreviewed = QCheckBox("Also write results nobody approved (not rejected ones)")
        self.summary = QLabel("Preparing the preview…")
        self.summary.setWordWrap(True)
        self.preview = QPlainTextEdit()
        self.preview.setReadOnly(True)
        self.preview.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.preview.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.write_button = self.buttons.addButton("Write", QDialogButtonBox.ButtonRole.ActionRole)
        self.write_button.setEnabled(False)
        form = QFormLayout()
        form.addRow("Write to", self.mode)
        form.addRow("", self.unreviewed)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.summary)
        layout.addWidget(self.preview, 1)
        layout.addWidget(self.buttons)
        self.buttons.rejected.connect(self.reject)


class UndoWriteDialogView(QDialog):
    """The write operations, newest first; Undo puts back the files of the chosen one."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Undo a Write")
        self.resize(720, 420)
        self.operations = QListWidget()
        self.summary = QLabel(
            "Choose a write: its photos and sidecars go back to exactly what they were before it, and its "
            "results back to approved. Undo the newest write of a photo first."
        )
        self.summary.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.undo_button = self.buttons.addButton("Undo This Write", QDialogButtonBox.ButtonRole.ActionRole)
        self.undo_button.setEnabled(False)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.operations, 1)
        layout.addWidget(self.buttons)
        self.buttons.rejected.connect(self.reject)
