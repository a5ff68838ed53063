"""The library window's right-hand panel: the photo's preview, its results for review (caption,
title, alt text, keyword chips), what a write will change and its file facts. library_review.py drives it."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QRect, QSize, Qt
from PySide6.QtGui import QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLayoutItem,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

PREVIEW_EDGE = 360


class PhotoPreview(QLabel):
    """The selected photo, scaled to fit whatever room the panel has (again whenever that changes)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._source = QPixmap()
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(QSize(PREVIEW_EDGE, 240))
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        # Text in window-text, not light: "Cannot show this photo: <why>" must be readable in both themes.
        self.setStyleSheet(
            "QLabel { background: palette(dark); border-radius: 6px; color: palette(window-text); }"
        )

    def show_photo(self, pixmap: QPixmap | None, text: str = "") -> None:
        """Show a photo, or (with None) a line of text in its place."""
        self._source = pixmap if pixmap is not None else QPixmap()
        if pixmap is None:
            self.setPixmap(QPixmap())
            self.setText(text)
        else:
            self._fit()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        if not self._source.isNull():
            self.setPixmap(
                self._source.scaled(
                    self.size(),
                    Qt.AspectRatioMode.KeepAspectRatio,
                    Qt.TransformationMode.SmoothTransformation,
                )
            )


class _FlowLayout(QLayout):
    """Lays its items out left to right, wrapping to a new line when the width is used up."""

    def __init__(self, parent: QWidget | None = None, spacing: int = 4) -> None:
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self._spacing = spacing
        self.setContentsMargins(0, 0, 0, 0)

    def addItem(self, item: QLayoutItem) -> None:  # noqa: N802 - Qt's name
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:  # noqa: N802
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:  # noqa: N802
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self) -> Qt.Orientation:  # noqa: N802
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:  # noqa: N802
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802
        return self._place(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect: QRect) -> None:  # noqa: N802
        super().setGeometry(rect)
        self._place(rect, move=True)

    def sizeHint(self) -> QSize:  # noqa: N802
        return self.minimumSize()

    def minimumSize(self) -> QSize:  # noqa: N802
        size = QSize()
        for item in self._items:
            size = size.expandedTo(item.minimumSize())
        return size

    def _place(self, rect: QRect, move: bool) -> int:
        x, y, line = rect.x(), rect.y(), 0
        for item in self._items:
            hint = item.sizeHint()
            if x + hint.width() > rect.right() + 1 and line > 0:
                x, y, line = rect.x(), y + line + self._spacing, 0
            if move:
                item.setGeometry(QRect(QPoint(x, y), hint))
            x += hint.width() + self._spacing
            line = max(line, hint.height())
        return y + line - rect.y()


class KeywordChips(QWidget):
    """The keywords already in the photo's files, as read-only chips: Write merges with them and never
    removes them, so they are shown, not edited here."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Keywords already in the file")
        self._layout = _FlowLayout(self)
        self.chips: list[QLabel] = []

    def set_keywords(self, keywords: tuple[str, ...], note: str | None = None) -> None:
        for chip in self.chips:
            self._layout.removeWidget(chip)
            chip.deleteLater()
        self.chips = []
        for keyword in keywords:
            chip = QLabel(keyword)
            chip.setTextFormat(Qt.TextFormat.PlainText)
            chip.setToolTip("Already in the file (read-only)")
            chip.setStyleSheet(
                "QLabel { border: 1px solid palette(mid); border-radius: 8px; padding: 1px 6px; "
                "background: palette(alternate-base); }"
            )
            self._layout.addWidget(chip)
            self.chips.append(chip)
        self.setToolTip(note or "")
        self.updateGeometry()

    def keywords(self) -> list[str]:
        return [chip.text() for chip in self.chips]


class DetailPanel(QWidget):
    """The selected photo, big, with its caption, title, alt text and keywords ready to edit."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.preview = PhotoPreview()
        self.preview.show_photo(None, "No photo selected")
        self.name = QLabel()
        self.name.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.name.setWordWrap(True)
        bold = self.name.font()
        bold.setBold(True)
        self.name.setFont(bold)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.caption = QPlainTextEdit()
        self.caption.setPlaceholderText("Caption (dc:description)")
        self.caption.setTabChangesFocus(True)
        self.caption.setMinimumHeight(70)
        self.caption.setMaximumHeight(130)
        self.caption.setAccessibleName("Caption")
        self.title = QLineEdit()
        self.title.setPlaceholderText("Title")
        self.title.setAccessibleName("Title")
        self.alt_text = QLineEdit()
        self.alt_text.setPlaceholderText("Alt text for screen readers (≤ 150 characters)")
        self.alt_text.setAccessibleName("Alt text")
        self.keywords = QLineEdit()
        self.keywords.setPlaceholderText("Keywords, separated by ;")
        self.keywords.setAccessibleName("Keywords")
        self.existing = KeywordChips()
        self.existing_note = QLabel()
        self.existing_note.setWordWrap(True)
        self.existing_note.setTextFormat(Qt.TextFormat.PlainText)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Caption", self.caption)
        form.addRow("Title", self.title)
        form.addRow("Alt text", self.alt_text)
        form.addRow("Keywords", self.keywords)
        form.addRow("In the file", self.existing)
        form.addRow("", self.existing_note)
        self.form = form
        self.approve_button = QPushButton("Approve  (A)")
        self.reject_button = QPushButton("Reject  (R)")
        self.save_button = QPushButton("Save Edits")
        self.save_button.setToolTip("Save the edited text (Ctrl+S); Ctrl+Return saves and approves")
        self.revert_button = QPushButton("Revert")
        buttons = QHBoxLayout()
        for button in (self.approve_button, self.reject_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.revert_button)
        buttons.addWidget(self.save_button)
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.info.setForegroundRole(self.info.foregroundRole())
        small = self.info.font()
        small.setPointSizeF(small.pointSizeF() * 0.9)
        self.info.setFont(small)
        # Every task's current result of the photo (the editor above edits the newest), and the one combined
        # change the next write makes: the same text the write preview diffs.
        self.results = QLabel()
        self.results.setWordWrap(True)
        self.results.setFont(small)
        self.results.setAccessibleName("Current results")
        self.will_write = QLabel()
        self.will_write.setWordWrap(True)
        self.will_write.setFont(small)
        self.will_write.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.will_write.setAccessibleName("Will be written")
        layout = QVBoxLayout(self)
        layout.addWidget(self.preview, 1)
        layout.addWidget(self.name)
        layout.addWidget(self.status)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.results)
        layout.addWidget(self.will_write)
        layout.addWidget(self.info)
        self.editors: tuple[QWidget, ...] = (self.caption, self.title, self.alt_text, self.keywords)
