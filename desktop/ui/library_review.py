"""The library window's review: the photo's detail panel (text, keywords with autocomplete, preview, what the
next write puts in the file) and reviewing at keyboard speed (approve, reject, edit, undo)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QModelIndex, QObject, QStringListModel, Qt, Slot
from PySide6.QtWidgets import QCompleter

from captioneer.desktop.library.browse import (
    PhotoRow,
    ReviewHistory,
    ReviewStep,
    complete_keyword,
    join_keywords,
    keyword_being_typed,
    photo_review,
    restore,
    snapshot,
    split_keywords,
)
from captioneer.desktop.ui.library_detail_view import DetailPanel
from captioneer.desktop.ui.library_selection import GridSelection
from captioneer.desktop.ui.library_session import LibrarySession
from captioneer.desktop.ui.library_thumbs import ThumbnailCache
from captioneer.desktop.ui.library_view import add_shortcut


class KeywordCompleter(QCompleter):
    """Completes the keyword being typed in a ``beach; sunset; …`` field, keeping the ones before it."""

    def __init__(self, model: QStringListModel, parent: QObject | None = None) -> None:
        super().__init__(model, parent)
        self._typed = ""

    def splitPath(self, path: str) -> list[str]:
        # Remember what was typed: a highlighted completion replaces the field's text before it is chosen.
        self._typed = path
        return [keyword_being_typed(path)[1]]

    def pathFromIndex(self, index: QModelIndex) -> str:
        return complete_keyword(self._typed, str(index.data()))


class ReviewController(QObject):
    """The detail panel of the current photo and the review keys on the grid; edits are never lost."""

    def __init__(
        self,
        session: LibrarySession,
        selection: GridSelection,
        detail: DetailPanel,
        previews: ThumbnailCache,
        completions: QStringListModel,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.catalog = session.catalog
        self.selection = selection
        self.model = selection.model
        self.detail = detail
        self.previews = previews
        self.history = ReviewHistory()
        self._shown: PhotoRow | None = None
        self._dirty = False
        self._loading_detail = False
        self._wire(completions)

    def _wire(self, completions: QStringListModel) -> None:
        grid, detail, selection = self.selection.grid, self.detail, self.selection
        grid.selectionModel().currentChanged.connect(self._current_changed)
        grid.activated.connect(lambda _index: self.edit())
        self.previews.ready.connect(self._preview_ready)
        self.previews.failed.connect(self._preview_ready)
        for key, slot in (
            ("A", self.approve),
            ("R", self.reject),
            ("E", self.edit),
            ("J", selection.next_photo),
            ("K", selection.previous_photo),
            ("U", self.undo_review),
        ):
            add_shortcut(key, grid, slot, Qt.ShortcutContext.WidgetShortcut)
        for key, slot in (("Ctrl+S", self.save_edits), ("Ctrl+Return", self.save_and_approve)):
            add_shortcut(key, detail, slot, Qt.ShortcutContext.WidgetWithChildrenShortcut)
        add_shortcut("Escape", detail, self.leave_editor, Qt.ShortcutContext.WidgetWithChildrenShortcut)
        add_shortcut("Ctrl+Z", grid, self.undo_review, Qt.ShortcutContext.WidgetShortcut)

        detail.approve_button.clicked.connect(self.approve)
        detail.reject_button.clicked.connect(self.reject)
        detail.save_button.clicked.connect(self.save_edits)
        detail.revert_button.clicked.connect(self.revert_edits)
        detail.caption.textChanged.connect(self._edited)
        for line in (detail.title, detail.alt_text, detail.keywords):
            line.textEdited.connect(self._edited)
        completer = KeywordCompleter(completions, detail.keywords)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchStartsWith)
        detail.keywords.setCompleter(completer)

    @property
    def shown(self) -> PhotoRow | None:
        """The photo the panel shows."""
        return self._shown

    # ---- the detail panel --------------------------------------------------------------------------------

    @Slot(QModelIndex, QModelIndex)
    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self.leave_current()
        self.show_detail(self.model.photo_row(current.row()) if current.isValid() else None)

    def leave_current(self) -> None:
        """Edits are kept when the user moves on (nothing typed is ever lost); U takes them back."""
        if self._dirty and self._shown is not None:
            self.save_edits()

    def show_detail(self, row: PhotoRow | None) -> None:
        detail = self.detail
        self._shown = row
        self._loading_detail = True
        try:
            tagged = row is not None and row.result_id is not None
            for widget in detail.editors:
                widget.setEnabled(tagged)
            for button in (detail.approve_button, detail.reject_button):
                button.setEnabled(tagged)
            self._show_existing_keywords(row)
            if row is None:
                detail.name.setText("")
                detail.status.setText("")
                detail.results.setText("")
                detail.will_write.setText("")
                detail.caption.setPlainText("")
                for line in (detail.title, detail.alt_text, detail.keywords):
                    line.setText("")
                detail.info.setText("")
                detail.preview.show_photo(None, "No photo selected")
                return
            detail.name.setText(row.name)
            detail.name.setToolTip(row.path)
            detail.status.setText(status_line(row))
            detail.caption.setPlainText(row.caption)
            detail.title.setText(row.title)
            detail.alt_text.setText(row.alt_text)
            detail.keywords.setText(join_keywords(row.keywords))
            for line in (detail.title, detail.alt_text, detail.keywords):
                line.setCursorPosition(0)  # show the start of a long text, not its end
            detail.info.setText(
                f"{Path(row.path).parent}\n"
                + (f"editing the {row.task} result · {row.model} · run {row.run_id}" if tagged else "")
            )
            self._show_review(row.photo_id)
            self._show_preview(row)
        finally:
            self._loading_detail = False
            self._set_dirty(False)

    def refresh_shown(self) -> None:
        """Show the photo on show afresh when the catalog changed it (a run just tagged it), unless edited."""
        shown = self._shown
        if shown is not None and not self._dirty:
            row = self.model.row_of(shown.photo_id)
            fresh = self.model.photo_row(row) if row is not None else None
            if fresh is not None and fresh != shown:
                self.show_detail(fresh)

    def _show_existing_keywords(self, row: PhotoRow | None) -> None:
        """The keywords already in the photo's files, as read-only chips (rows hidden when there are none)."""
        detail = self.detail
        keywords = row.existing_keywords if row is not None else ()
        note = row.existing_keywords_note if row is not None else None
        detail.existing.set_keywords(keywords, note)
        detail.existing_note.setText(f"⚠ {note}" if note else "")
        detail.form.setRowVisible(detail.existing, bool(keywords))
        detail.form.setRowVisible(detail.existing_note, bool(note))

    def _show_review(self, photo_id: int) -> None:
        """List the photo's current result of each task and what the next write puts into its file."""
        review = photo_review(self.catalog, photo_id)
        detail = self.detail
        detail.results.setText(review.describe_results() if len(review.results) > 1 else "")
        detail.results.setVisible(len(review.results) > 1)
        detail.will_write.setText(review.describe_write() if review.results else "")

    def _show_preview(self, row: PhotoRow) -> None:
        pixmap = self.previews.get(row.path, row.size, row.mtime_ns)
        failed = self.previews.error(row.path, row.size, row.mtime_ns) if pixmap is None else None
        self.detail.preview.show_photo(pixmap, f"Cannot show this photo:\n{failed}" if failed else "Loading…")

    @Slot(str)
    def _preview_ready(self, key: str) -> None:
        row = self._shown
        if row is not None and key == self.previews.key(row.path, row.size, row.mtime_ns):
            self._show_preview(row)

    def _edited(self, *_args: object) -> None:
        if not self._loading_detail:
            self._set_dirty(True)

    def _set_dirty(self, dirty: bool) -> None:
        self._dirty = dirty
        self.detail.save_button.setEnabled(dirty)
        self.detail.revert_button.setEnabled(dirty)

    # ---- review ------------------------------------------------------------------------------------------

    def approve(self) -> int:
        """Approve the selected photos' results (saving any edit first) and move on; returns how many."""
        return self._review("approved", "Approve")

    def reject(self) -> int:
        """Reject the selected photos' results (never written) and move on; returns how many."""
        return self._review("rejected", "Reject")

    def _review(self, state: str, label: str) -> int:
        self.leave_current()
        rows = [row for row in self.selection.selected_rows() if row.result_id is not None]
        if not rows:
            self.session.notify("Nothing to review here: this photo has not been tagged yet.")
            return 0
        # A photo's current result of every task: what the panel lists and the write combines.
        ids = [result.id for row in rows for result in self.catalog.current_results(row.photo_id)]
        self.history.push(ReviewStep(f"{label} {len(ids)}", snapshot(self.catalog, ids)))
        changed = self.catalog.set_review(ids, state, "by review")
        self.model.refresh([row.photo_id for row in rows])
        last = self.model.row_of(rows[-1].photo_id)
        if last is not None:
            self.selection.select_row(last + 1 if last + 1 < self.model.rowCount() else last)
        current = self.selection.current_row()
        if len(rows) == 1 and current is not None and current.photo_id == rows[0].photo_id:
            self.show_detail(self.model.photo_row(last if last is not None else 0))
        self.session.notify(
            f"{state.replace('_', ' ').capitalize()}: {len(rows)} photo{'s' if len(rows) != 1 else ''}."
        )
        return changed

    def edit(self) -> None:
        """Put the cursor in the caption, ready to type (E or Enter)."""
        if self._shown is None or self._shown.result_id is None:
            return
        self.detail.caption.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.detail.caption.selectAll()

    def leave_editor(self) -> None:
        """Escape: back to the grid, keeping what was typed (it is saved when moving on)."""
        self.selection.grid.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def save_edits(self, approve: bool = False) -> bool:
        """Store the detail panel's text on the shown photo's result; returns whether anything changed."""
        row, detail = self._shown, self.detail
        if row is None or row.result_id is None:
            return False
        before = snapshot(self.catalog, [row.result_id])
        changed = self.catalog.edit_result(
            row.result_id,
            caption=detail.caption.toPlainText().strip(),
            title=detail.title.text().strip(),
            alt_text=detail.alt_text.text().strip(),
            keywords=split_keywords(detail.keywords.text()),
            review="approved" if approve else None,
        )
        self._set_dirty(False)
        if changed:
            self.history.push(ReviewStep("Edit", before))
            self.model.refresh([row.photo_id])
            self._shown = self.model.photo_row(self.model.row_of(row.photo_id) or 0) or row
            self.detail.status.setText(status_line(self._shown))
            self._show_review(row.photo_id)
            self.session.notify(f"Saved {row.name}.")
        return changed

    def save_and_approve(self) -> None:
        """Ctrl+Return: keep the edits, approve, and go to the next photo."""
        if self.save_edits(approve=True):
            self.selection.next_photo()
            self.selection.grid.setFocus()
        else:
            self.selection.grid.setFocus()
            self.approve()

    def revert_edits(self) -> None:
        self.show_detail(self._shown)

    def undo_review(self) -> bool:
        """U: take back the last approve, reject or edit of this session."""
        self._set_dirty(False)
        step = self.history.pop()
        if step is None:
            self.session.notify("Nothing to undo.")
            return False
        restore(self.catalog, step.before)
        photo_ids = self.catalog.photos_of_results([state.result_id for state in step.before])
        self.model.refresh(photo_ids)
        rows = [r for r in (self.model.row_of(photo_id) for photo_id in photo_ids) if r is not None]
        if rows:
            self.selection.select_row(min(rows))
        self.show_detail(self.selection.current_row())
        self.session.notify(f"Undone: {step.label}.")
        return True


def status_line(row: PhotoRow) -> str:
    """The review state of a photo's result in words, with why and whether it was edited."""
    if row.result_id is None:
        return "Not tagged yet: choose Tag Photos… (Ctrl+T)."
    text = row.status.replace("_", " ").capitalize()
    if row.review_reason and row.review in ("needs_review", "approved", "rejected"):
        text += f" — {row.review_reason}"
    if row.edited:
        text += " · edited"
    return text
