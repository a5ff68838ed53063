"""The library window's right-hand panel: the photo's preview, its results for review (caption,
title, alt text, keyword chips), what a write will change and its file facts. library_review.py drives it."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import QKeyEvent, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLayoutItem,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from captioneer.desktop.ui.theme import set_themed_style

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

    def insert_widget(self, index: int, widget: QWidget) -> None:
        """Add ``widget`` at ``index`` (``addWidget`` only appends)."""
        self.addWidget(widget)
        self._items.insert(index, self._items.pop())
        self.invalidate()

    def itemAt(self, index: int) -> QLayoutItem | None:  # noqa: N802
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:  # noqa: N802
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self) -> Qt.Orientation:  # noqa: N802
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:  # noqa: N802
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802
        margins = self.contentsMargins()
        inner = QRect(0, 0, width - margins.left() - margins.right(), 0)
        return self._place(inner, move=False) + margins.top() + margins.bottom()

    def setGeometry(self, rect: QRect) -> None:  # noqa: N802
        super().setGeometry(rect)
        margins = self.contentsMargins()
        self._place(rect.marginsRemoved(margins), move=True)

    def sizeHint(self) -> QSize:  # noqa: N802
        return self.minimumSize()

    def minimumSize(self) -> QSize:  # noqa: N802
        size = QSize()
        for item in self._items:
            size = size.expandedTo(item.minimumSize())
        margins = self.contentsMargins()
        size += QSize(margins.left() + margins.right(), margins.top() + margins.bottom())
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


class KeywordChip(QToolButton):
    """One keyword of the result being edited: click it (its ×) or press Delete or Backspace on it to remove
    it."""

    removeRequested = Signal(str)

    def __init__(self, word: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.word = word
        self.setText(f"{word}  ✕")
        self.setToolTip(f"Remove “{word}” (click, or Delete)")
        self.setAccessibleName(f"Keyword {word}")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setStyleSheet(
            "QToolButton { border: 1px solid palette(highlight); border-radius: 9px; padding: 1px 7px; "
            "background: palette(base); }"
            "QToolButton:focus, QToolButton:hover { background: palette(highlight); "
            "color: palette(highlighted-text); }"
        )
        self.clicked.connect(lambda: self.removeRequested.emit(self.word))

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.removeRequested.emit(self.word)
            return
        super().keyPressEvent(event)


class KeywordEditor(QFrame):
    """The result's keywords as chips, with a box to type more (Enter, ``;`` or ``,`` makes a chip; Backspace
    in the empty box removes the last chip). ``changed`` follows every change a person makes."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Keywords")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self._layout = _FlowLayout(self)
        self._layout.setContentsMargins(4, 4, 4, 4)
        # Its height follows its width (chips wrap): layouts must give it that height, not squeeze it.
        policy = self.sizePolicy()
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)
        self.chips: list[KeywordChip] = []
        self.input = QLineEdit()
        self.input.setPlaceholderText("Add a keyword…")
        self.input.setAccessibleName("New keyword")
        self.input.setFrame(False)
        self.input.setMinimumWidth(140)
        self.input.installEventFilter(self)
        self._layout.addWidget(self.input)
        self.setFocusProxy(self.input)

    def set_keywords(self, words: list[str] | tuple[str, ...]) -> None:
        """Show these keywords as chips and empty the box (no ``changed``: nothing was edited)."""
        for chip in self.chips:
            self._layout.removeWidget(chip)
            chip.hide()  # deleteLater waits for the event loop; gone from sight now
            chip.deleteLater()
        self.chips = []
        self.input.clear()
        for word in words:
            self._add_chip(word)
        self.updateGeometry()

    def keywords(self) -> list[str]:
        """The chips' keywords, then what is typed in the box and not yet a chip."""
        typed = [" ".join(part.split()) for part in self.input.text().replace(",", ";").split(";")]
        return [chip.word for chip in self.chips] + [word for word in typed if word]

    def add_keywords(self, words: list[str]) -> None:
        """Make chips of these words (each once, whatever its case), as if typed."""
        have = {word.casefold() for word in self.keywords()[: len(self.chips)]}
        added = False
        for word in words:
            if word and word.casefold() not in have:
                have.add(word.casefold())
                self._add_chip(word)
                added = True
        if added:
            self.updateGeometry()
            self.changed.emit()

    def remove_keyword(self, word: str) -> None:
        for index, chip in enumerate(self.chips):
            if chip.word == word:
                self._layout.removeWidget(chip)
                chip.hide()
                chip.deleteLater()
                del self.chips[index]
                self.updateGeometry()
                self.changed.emit()
                (self.chips[min(index, len(self.chips) - 1)] if self.chips else self.input).setFocus()
                return

    def _add_chip(self, word: str) -> None:
        chip = KeywordChip(word)
        chip.removeRequested.connect(self.remove_keyword)
        # Chips go before the box, in order.
        self._layout.insert_widget(len(self.chips), chip)
        self.chips.append(chip)

    def eventFilter(self, watched: object, event: object) -> bool:  # noqa: N802 - Qt's name
        if (
            watched is self.input
            and isinstance(event, QKeyEvent)
            and event.type() == QKeyEvent.Type.KeyPress
            and event.key() == Qt.Key.Key_Backspace
            and not self.input.text()
            and self.chips
        ):
            self.remove_keyword(self.chips[-1].word)
            self.input.setFocus()
            return True
        return False


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
        self.keywords = KeywordEditor()
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
        # Adding or removing one keyword on every selected photo (shown when several are selected).
        self.bulk_label = QLabel()
        self.bulk_keyword = QLineEdit()
        self.bulk_keyword.setPlaceholderText("Keyword")
        self.bulk_keyword.setAccessibleName("Keyword for the selected photos")
        self.bulk_add = QPushButton("Add to All")
        self.bulk_remove = QPushButton("Remove from All")
        self.bulk = QWidget()
        bulk = QHBoxLayout(self.bulk)
        bulk.setContentsMargins(0, 0, 0, 0)
        bulk.addWidget(self.bulk_label)
        bulk.addWidget(self.bulk_keyword, 1)
        bulk.addWidget(self.bulk_add)
        bulk.addWidget(self.bulk_remove)
        self.bulk.hide()
        # Why there is nothing to approve (an unusable answer, a photo that failed) and what to do.
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.setTextFormat(Qt.TextFormat.PlainText)
        self.problem.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problem.setAccessibleName("Problem")
        set_themed_style(
            self.problem,
            lambda dark: f"QLabel {{ color: {'#ff7b6e' if dark else '#b03a2e'}; }}",
        )
        self.retag_button = QPushButton("Re-tag")
        self.retag_button.setToolTip("Tag this photo again (Tag Photos… with the selected photos)")
        self.edit_button = QPushButton("Edit")
        self.edit_button.setToolTip("Type the caption and keywords yourself (E)")
        self.problem_box = QWidget()
        problem = QHBoxLayout(self.problem_box)
        problem.setContentsMargins(0, 0, 0, 0)
        problem.addWidget(self.problem, 1)
        problem.addWidget(self.retag_button, 0, Qt.AlignmentFlag.AlignTop)
        problem.addWidget(self.edit_button, 0, Qt.AlignmentFlag.AlignTop)
        self.problem_box.hide()
        self.unsaved = QLabel("● Unsaved edits: Enter or Ctrl+S saves · Esc reverts")
        self.unsaved.setAccessibleName("Unsaved")
        set_themed_style(
            self.unsaved, lambda dark: f"QLabel {{ color: {UNSAVED_DARK if dark else UNSAVED_LIGHT}; }}"
        )
        self.unsaved.hide()
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
        layout.addWidget(self.problem_box)
        layout.addLayout(form)
        layout.addWidget(self.bulk)
        layout.addWidget(self.unsaved)
        layout.addLayout(buttons)
        layout.addWidget(self.results)
        layout.addWidget(self.will_write)
        layout.addWidget(self.info)
        self.editors: tuple[QWidget, ...] = (self.caption, self.title, self.alt_text, self.keywords)
        self._labels = {editor: form.labelForField(editor).text() for editor in self.editors}  # type: ignore[union-attr]
        set_themed_style(self, _unsaved_sheet)

    def event(self, event: QEvent) -> bool:
        # Wrapped labels need more lines the narrower the panel is, which its minimum size does not count: ask
        # for the height they need, so the scroll area around the panel scrolls instead of the fields being
        # squeezed over the preview.
        handled = super().event(event)
        if event.type() in (QEvent.Type.Resize, QEvent.Type.LayoutRequest):
            needed = _needed_height(self.layout(), self.width())
            if needed != self.minimumHeight():
                self.setMinimumHeight(needed)
        return handled

    def mark_unsaved(self, editors: set[QWidget]) -> None:
        """Mark the fields whose text differs from what is stored (a coloured frame and a dot on their
        label), and say so under the form; an empty set clears every mark."""
        for editor in self.editors:
            unsaved = editor in editors
            if bool(editor.property("unsaved")) != unsaved:
                editor.setProperty("unsaved", unsaved)
                editor.style().unpolish(editor)
                editor.style().polish(editor)
            label = self.form.labelForField(editor)
            if isinstance(label, QLabel):
                label.setText(self._labels[editor] + (" ●" if unsaved else ""))
        self.unsaved.setVisible(bool(editors))


UNSAVED_LIGHT = "#b86e00"
UNSAVED_DARK = "#ffb347"


def _unsaved_sheet(dark: bool) -> str:
    colour = UNSAVED_DARK if dark else UNSAVED_LIGHT
    return (
        f'QLineEdit[unsaved="true"], QPlainTextEdit[unsaved="true"], KeywordEditor[unsaved="true"] '
        f"{{ border: 2px solid {colour}; border-radius: 3px; }}"
    )


def _needed_height(layout: QLayout, width: int) -> int:
    """The height a vertical box ``layout`` needs at ``width``: each shown item's minimum, or the height its
    wrapped text needs at that width when that is more."""
    margins = layout.contentsMargins()
    inner = width - margins.left() - margins.right()
    heights = []
    for index in range(layout.count()):
        item = layout.itemAt(index)
        if item is None or item.isEmpty():
            continue
        height = item.minimumSize().height()
        if item.hasHeightForWidth():
            height = max(height, item.heightForWidth(inner))
        heights.append(height)
    spacing = max(layout.spacing(), 0) * max(len(heights) - 1, 0)
    return sum(heights) + spacing + margins.top() + margins.bottom()
