"""The detail panel's edits of one result: what is stored and what is typed, the unsaved marks, putting a
field back, and keywords typed as chips with autocomplete (the photo's file keywords first, then the
library's)."""

from __future__ import annotations

from PySide6.QtCore import QObject, QStringListModel, Qt, QTimer, Signal
from PySide6.QtWidgets import QApplication, QCompleter, QLineEdit, QWidget

from captioneer.desktop.library.browse import PhotoRow, keyword_suggestions, split_keywords
from captioneer.desktop.ui.library_detail_view import DetailPanel


class FieldEdits(QObject):
    """Compares the panel's fields with the stored result, marks what differs and puts fields back.

    ``saveRequested`` follows Enter in a one-line field or in the empty keyword box; ``edited`` follows every
    change of what is unsaved."""

    saveRequested = Signal()
    edited = Signal()

    def __init__(
        self, detail: DetailPanel, library_words: QStringListModel, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.detail = detail
        self.row: PhotoRow | None = None
        self._stored: dict[QWidget, object] = {}
        self._library_words = library_words
        self.suggestions = QStringListModel(self)
        detail.caption.textChanged.connect(self._changed)
        for line in (detail.title, detail.alt_text):
            line.textChanged.connect(self._changed)
            line.returnPressed.connect(self.saveRequested)
        keywords = detail.keywords
        keywords.changed.connect(self._keywords_changed)
        keywords.input.textChanged.connect(self._keyword_typed)
        keywords.input.returnPressed.connect(self._keyword_entered)
        self.completer = QCompleter(self.suggestions, keywords.input)
        self.completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.completer.setFilterMode(Qt.MatchFlag.MatchStartsWith)
        keywords.input.setCompleter(self.completer)
        self.completer.activated.connect(self._completion_chosen)
        library_words.modelReset.connect(self._update_suggestions)

    def load(self, row: PhotoRow | None) -> None:
        """Show the row's stored text in the fields; nothing is unsaved afterwards."""
        detail = self.detail
        self.row = row
        detail.caption.setPlainText(row.caption if row is not None else "")
        detail.title.setText(row.title if row is not None else "")
        detail.alt_text.setText(row.alt_text if row is not None else "")
        detail.keywords.set_keywords(row.keywords if row is not None else ())
        for line in (detail.title, detail.alt_text):
            line.setCursorPosition(0)  # show the start of a long text, not its end
        self._update_suggestions()
        self.mark_clean()

    def value(self, editor: QWidget) -> object:
        """What the field holds now, as it would be stored."""
        detail = self.detail
        if editor is detail.caption:
            return detail.caption.toPlainText().strip()
        if editor is detail.keywords:
            return tuple(detail.keywords.keywords())
        return editor.text().strip() if isinstance(editor, QLineEdit) else None

    def unsaved(self) -> set[QWidget]:
        """The fields whose text differs from what the catalog holds."""
        if self.row is None or self.row.result_id is None:
            return set()
        return {editor for editor in self.detail.editors if self.value(editor) != self._stored.get(editor)}

    def has_text(self) -> bool:
        """Whether any field holds something (an empty answer cannot be approved until it does)."""
        return any(self.value(editor) for editor in self.detail.editors)

    def mark_clean(self) -> None:
        """What the fields hold now is what is stored (just loaded, saved or discarded)."""
        self._stored = {editor: self.value(editor) for editor in self.detail.editors}
        self._changed()

    def revert_focused(self) -> bool:
        """Put the field that has the keyboard back to what is stored; False when it had nothing unsaved."""
        focused = QApplication.focusWidget()
        editor = next(
            (
                e
                for e in self.detail.editors
                if focused is not None and (focused is e or e.isAncestorOf(focused))
            ),
            None,
        )
        if editor is None or editor not in self.unsaved():
            return False
        self._revert(editor)
        return True

    def revert_all(self) -> None:
        for editor in self.unsaved():
            self._revert(editor)

    def _revert(self, editor: QWidget) -> None:
        row, detail = self.row, self.detail
        if row is None:
            return
        if editor is detail.caption:
            detail.caption.setPlainText(row.caption)
        elif editor is detail.keywords:
            detail.keywords.set_keywords(row.keywords)
            self._update_suggestions()
        elif isinstance(editor, QLineEdit):
            editor.setText(row.title if editor is detail.title else row.alt_text)
            editor.setCursorPosition(0)
        self._changed()

    def _changed(self, *_args: object) -> None:
        unsaved = self.unsaved()
        detail = self.detail
        detail.mark_unsaved(unsaved)
        detail.save_button.setEnabled(bool(unsaved))
        detail.revert_button.setEnabled(bool(unsaved))
        self.edited.emit()

    # ---- keywords as chips -------------------------------------------------------------------------------

    def _keywords_changed(self) -> None:
        self._update_suggestions()
        self._changed()

    def _keyword_typed(self, text: str) -> None:
        """A ``;`` or ``,`` ends a keyword: what is before it becomes a chip (spaces after it are dropped, so
        the next word completes)."""
        editor = self.detail.keywords
        if ";" in text or "," in text:
            *done, rest = text.replace(",", ";").split(";")
            editor.input.setText(rest.lstrip())
            editor.add_keywords(split_keywords(";".join(done)))
        elif text != text.lstrip():
            editor.input.setText(text.lstrip())
            return  # setText comes back here
        self._changed()

    def _keyword_entered(self) -> None:
        """Enter in the keyword box: the typed word becomes a chip; in an empty box, Enter saves."""
        popup = self.completer.popup()
        if popup.isVisible() and popup.currentIndex().isValid():
            return  # a suggestion is being chosen: it becomes the chip (the box gets Enter first)
        editor = self.detail.keywords
        word = " ".join(editor.input.text().split())
        if word:
            editor.input.clear()
            editor.add_keywords([word])
        else:
            self.saveRequested.emit()

    def _completion_chosen(self, word: str) -> None:
        """A suggestion was chosen: it becomes a chip once the completer has finished with the box (it puts
        text back into the box after this signal)."""

        def make_chip() -> None:
            editor = self.detail.keywords
            editor.input.clear()
            editor.add_keywords([word])

        QTimer.singleShot(0, make_chip)

    def _update_suggestions(self) -> None:
        row = self.row
        self.suggestions.setStringList(
            keyword_suggestions(
                row.existing_keywords if row is not None else (),
                self._library_words.stringList(),
                self.detail.keywords.keywords(),
            )
        )
