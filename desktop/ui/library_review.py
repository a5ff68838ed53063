"""The library window's review: the photo's detail panel (text, keyword chips with autocomplete, preview, what
the next write puts in the file) and reviewing at keyboard speed (approve, reject, edit, undo).

Edits are explicit: Enter (in a one-line field or the empty keyword box), Ctrl+S, Ctrl+Return (save and
approve), Save Edits or Approve store them; Escape puts the field being edited back (a second Escape returns
to the grid) and Revert puts them all back. Moving to another photo with unsaved edits asks Save / Discard /
Cancel, unless the person ticked "always save" once (then moving on saves).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QModelIndex, QObject, QStringListModel, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import QCheckBox, QCompleter, QMessageBox

from captioneer.backends.errors import CaptioneerError
from captioneer.desktop.core.context import describe_context
from captioneer.desktop.core.video import is_video_path
from captioneer.desktop.library.browse import (
    PhotoRow,
    ReviewHistory,
    ReviewStep,
    change_keyword,
    photo_review,
    restore,
    snapshot,
)
from captioneer.desktop.ui.library_detail_view import DetailPanel
from captioneer.desktop.ui.library_edits import FieldEdits
from captioneer.desktop.ui.library_selection import GridSelection
from captioneer.desktop.ui.library_session import LibrarySession
from captioneer.desktop.ui.library_thumbs import ThumbnailCache
from captioneer.desktop.ui.library_view import add_shortcut


class ReviewController(QObject):
    """The detail panel of the current photo and the review keys on the grid; nothing typed is stored or lost
    without the person saying so."""

    retagRequested = Signal()  # Re-tag: tag the selected photos again
    changed = Signal()  # a review action, an edit or an undo changed the catalog (status counts follow)

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
        self.edits = FieldEdits(detail, completions, self)
        self._wire(completions)

    def _wire(self, completions: QStringListModel) -> None:
        grid, detail, selection = self.selection.grid, self.detail, self.selection
        grid.selectionModel().currentChanged.connect(self._current_changed)
        grid.selectionModel().selectionChanged.connect(lambda *_args: self._show_bulk())
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
        for key, slot in (
            ("Ctrl+S", self.save_edits),
            ("Ctrl+Return", self.save_and_approve),
            ("Escape", self.cancel_edit),
        ):
            add_shortcut(key, detail, slot, Qt.ShortcutContext.WidgetWithChildrenShortcut)
        add_shortcut("Ctrl+Z", grid, self.undo_review, Qt.ShortcutContext.WidgetShortcut)

        detail.approve_button.clicked.connect(self.approve)
        detail.reject_button.clicked.connect(self.reject)
        detail.save_button.clicked.connect(self.save_edits)
        detail.revert_button.clicked.connect(self.revert_edits)
        detail.retag_button.clicked.connect(self.retagRequested)
        detail.edit_button.clicked.connect(self.edit)
        self.edits.saveRequested.connect(self.save_edits)
        self.edits.edited.connect(self._edited)
        bulk_completer = QCompleter(completions, detail.bulk_keyword)
        bulk_completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        detail.bulk_keyword.setCompleter(bulk_completer)
        detail.bulk_add.clicked.connect(lambda: self.apply_keyword(detail.bulk_keyword.text(), add=True))
        detail.bulk_keyword.returnPressed.connect(detail.bulk_add.click)
        detail.bulk_remove.clicked.connect(lambda: self.apply_keyword(detail.bulk_keyword.text(), add=False))

    @property
    def shown(self) -> PhotoRow | None:
        """The photo the panel shows."""
        return self._shown

    # ---- the detail panel --------------------------------------------------------------------------------

    @Slot(QModelIndex, QModelIndex)
    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        row = self.model.photo_row(current.row()) if current.isValid() else None
        shown = self._shown
        if shown is not None and row is not None and row.photo_id == shown.photo_id:
            return  # back on the photo on show (after Cancel): keep its edits
        if not self.leave_current(can_cancel=True):
            back = self.model.row_of(shown.photo_id) if shown is not None else None
            if back is not None:  # the grid goes back to the photo whose edits the person kept
                QTimer.singleShot(0, lambda: self.selection.select_row(back))
            return
        self.show_detail(row)

    def leave_current(self, can_cancel: bool = False) -> bool:
        """Settle the unsaved edits of the photo on show before it goes: saved when the person chose to
        always save them, else asked (Save, Discard and, where the move can be undone, Cancel). Returns
        False when the person cancelled (stay on the photo)."""
        if self._shown is None or not self.edits.unsaved():
            return True
        if self.session.prefs.save_edits_on_leave:
            self.save_edits()
            return True
        answer = self.ask_unsaved(can_cancel)
        if answer == "save":
            self.save_edits()
        elif answer == "discard":
            self.edits.mark_clean()
        return answer != "cancel"

    def ask_unsaved(self, can_cancel: bool) -> str:
        """Ask what to do with the unsaved edits: ``save``, ``discard`` or ``cancel``."""
        name = self._shown.name if self._shown is not None else "This photo"
        box = QMessageBox(self.detail.window())
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Unsaved Edits")
        box.setText(f"{name} has edits you have not saved.")
        box.setInformativeText("Save them before moving on?")
        save = box.addButton("Save Edits", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
        cancel = box.addButton(QMessageBox.StandardButton.Cancel) if can_cancel else None
        box.setDefaultButton(save)
        always = QCheckBox("Always save my edits when I move on")
        box.setCheckBox(always)
        box.exec()
        clicked = box.clickedButton()
        if cancel is not None and clicked in (cancel, None):
            return "cancel"
        if clicked is save or clicked is None:  # closed without an answer: keep what was typed
            self.session.prefs.save_edits_on_leave = always.isChecked()
            return "save"
        return "discard"

    def show_detail(self, row: PhotoRow | None) -> None:
        """Show a photo (or nothing) in the panel, its stored text in the fields."""
        detail = self.detail
        self._shown = row
        tagged = row is not None and row.result_id is not None
        for widget in detail.editors:
            widget.setEnabled(tagged)
        detail.reject_button.setEnabled(tagged)
        self._show_existing_keywords(row)
        self._show_problem(row)
        self._show_bulk()
        self.edits.load(row)
        if row is None:
            for label in (detail.name, detail.status, detail.results, detail.will_write, detail.info):
                label.setText("")
            detail.preview.show_photo(None, "No photo selected")
            return
        detail.name.setText(row.name)
        detail.name.setToolTip(row.path)
        detail.status.setText(status_line(row))
        self._show_info(row)
        self._show_review(row.photo_id)
        self._show_preview(row)

    def _show_info(self, row: PhotoRow) -> None:
        """The file's folder, a video clip's length, size and codec (once its preview has loaded), and what
        the result being edited came from."""
        tagged = row.result_id is not None
        clip = self.previews.clip(self.previews.key(row.path, row.size, row.mtime_ns))
        self.detail.info.setText(
            f"{Path(row.path).parent}\n"
            + (f"{clip.describe()}\n" if clip is not None else "")
            + (f"editing the {row.task} result · {row.model} · run {row.run_id}" if tagged else "")
            + self._context_line(row.result_id)
        )

    def _context_line(self, result_id: int | None) -> str:
        """What the result was asked with (its context), as a line of the details; empty without one."""
        result = self.catalog.result(result_id) if result_id is not None else None
        return f"\ncontext: {describe_context(dict(result.context))}" if result and result.context else ""

    def refresh_shown(self) -> None:
        """Show the photo on show afresh when the catalog changed it (a run just tagged it), unless edited."""
        shown = self._shown
        if shown is not None and not self.edits.unsaved():
            row = self.model.row_of(shown.photo_id)
            fresh = self.model.photo_row(row) if row is not None else None
            if fresh is not None and fresh != shown:
                self.show_detail(fresh)

    def _show_problem(self, row: PhotoRow | None) -> None:
        """Say plainly why there is nothing to approve, with the buttons that fix it."""
        detail = self.detail
        text = ""
        if row is not None and row.status == "failed" and row.unreadable:
            text = f"This file cannot be read: {row.error}. Fix or replace it, then Rescan."
        elif row is not None and row.status == "failed":
            text = f"Could not tag this photo: {row.error}"
        elif row is not None and row.empty:
            # The status line above says why (invalid output, cut off); this says what to do.
            text = (
                "Nothing to approve: the model's answer could not be used. Re-tag the photo, or type a "
                "caption and keywords (Edit), then approve."
            )
        detail.problem.setText(text)
        detail.problem_box.setVisible(bool(text))
        detail.retag_button.setVisible(bool(text) and row is not None and not row.unreadable)
        detail.edit_button.setVisible(row is not None and row.empty)

    def _show_bulk(self) -> None:
        """Offer to add or remove a keyword on every selected photo when several are selected."""
        count = len(self.selection.grid.selectionModel().selectedIndexes())
        self.detail.bulk.setVisible(count > 1)
        self.detail.bulk_label.setText(f"{count} selected:")
        self._edited()

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
        item = "video" if is_video_path(Path(row.path)) else "photo"
        text = f"Cannot show this {item}:\n{failed}" if failed else "Loading…"
        self.detail.preview.show_photo(pixmap, text)

    @Slot(str)
    def _preview_ready(self, key: str) -> None:
        row = self._shown
        if row is not None and key == self.previews.key(row.path, row.size, row.mtime_ns):
            self._show_preview(row)
            self._show_info(row)

    # ---- editing -----------------------------------------------------------------------------------------

    def edit(self) -> None:
        """Put the cursor in the caption, ready to type (E or Enter)."""
        if self._shown is None or self._shown.result_id is None:
            return
        self.detail.caption.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.detail.caption.selectAll()

    def _edited(self) -> None:
        """Approve needs something to approve: an empty answer stays unapprovable until someone types."""
        row, detail = self._shown, self.detail
        tagged = row is not None and row.result_id is not None
        # With several photos selected the others may well be approvable (the empty ones are skipped).
        has_text = self.edits.has_text() or detail.bulk.isVisibleTo(detail)
        detail.approve_button.setEnabled(tagged and has_text)
        detail.approve_button.setToolTip(
            "Nothing to approve: re-tag the photo, or type a caption and keywords"
            if tagged and not has_text
            else "Approve the selected photos (saves your edits first)"
        )

    def cancel_edit(self) -> None:
        """Escape: the field being edited goes back to what is stored; in an unchanged field, back to the
        grid. An open completion list closes first, and only that."""
        popups = (self.edits.completer.popup(), self.detail.bulk_keyword.completer().popup())
        open_popup = next((popup for popup in popups if popup.isVisible()), None)
        if open_popup is not None:
            open_popup.hide()  # the Escape shortcut sees the key before the completion list does
            return
        if not self.edits.revert_focused():
            self.selection.grid.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def revert_edits(self) -> None:
        """Revert: every field back to what is stored."""
        self.edits.revert_all()

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
            keywords=detail.keywords.keywords(),
            review="approved" if approve else None,
        )
        if changed:
            self.history.push(ReviewStep("Edit", before))
            self.model.refresh([row.photo_id])
            fresh = self.model.row_of(row.photo_id)
            self._shown = (self.model.photo_row(fresh) if fresh is not None else None) or row
            self.edits.load(self._shown)
            detail.status.setText(status_line(self._shown))
            self._show_problem(self._shown)
            self._show_review(row.photo_id)
            self.session.notify(f"Saved {row.name}.")
            self.changed.emit()
        self.edits.mark_clean()
        return changed

    def save_and_approve(self) -> None:
        """Ctrl+Return: keep the edits, approve, and go to the next photo."""
        if self.edits.unsaved() and self.save_edits(approve=True):
            self.selection.next_photo()
            self.selection.grid.setFocus()
        else:
            self.selection.grid.setFocus()
            self.approve()

    def apply_keyword(self, keyword: str, *, add: bool) -> int:
        """Add a keyword to (or remove it from) every selected photo, as one step U takes back; returns how
        many photos changed."""
        if not self.leave_current():
            return 0
        rows = self.selection.selected_rows()
        try:
            change = change_keyword(self.catalog, rows, keyword, add=add)
        except CaptioneerError as exc:
            self.session.notify(str(exc))
            return 0
        self.history.push(change.step)
        self.model.refresh(list(change.changed))
        word = " ".join(keyword.split())
        done = f"{'Added' if add else 'Removed'} “{word}” {'to' if add else 'from'}"
        text = f"{done} {len(change.changed)} photos"
        if change.untagged:
            text += f"; {change.untagged} not tagged yet were left alone"
        self.session.notify(text + ".")
        current = self.selection.current_row()
        if current is not None:
            self.show_detail(current)
        self.changed.emit()
        return len(change.changed)

    # ---- review ------------------------------------------------------------------------------------------

    def approve(self) -> int:
        """Approve the selected photos' results (saving the shown photo's edits first) and move on; results
        with nothing in them are skipped and counted. Returns how many results changed."""
        return self._review("approved", "Approve")

    def reject(self) -> int:
        """Reject the selected photos' results (never written) and move on; returns how many."""
        return self._review("rejected", "Reject")

    def _review(self, state: str, label: str) -> int:
        if self.edits.unsaved():
            self.save_edits()  # Approve and Reject are explicit: they take the edits on show with them
        rows = [row for row in self.selection.selected_rows() if row.result_id is not None]
        if not rows:
            self.session.notify("Nothing to review here: this photo has not been tagged yet.")
            return 0
        # A photo's current result of every task: what the panel lists and the write combines. An answer with
        # nothing in it is never approved (nothing would be written).
        results = [result for row in rows for result in self.catalog.current_results(row.photo_id)]
        if state == "approved":
            usable = [r for r in results if r.caption.strip() or r.keywords or r.title or r.alt_text]
            kept = {result.photo_id for result in usable}
            skipped = [row for row in rows if row.photo_id not in kept]
            results, rows = usable, [row for row in rows if row.photo_id in kept]
        else:
            skipped = []
        if not rows:
            them = "it" if len(skipped) == 1 else "them"
            self.session.notify(f"Nothing approved: {skipped_text(skipped)}. Re-tag or edit {them} first.")
            return 0
        ids = [result.id for result in results]
        self.history.push(ReviewStep(f"{label} {len(ids)}", snapshot(self.catalog, ids)))
        changed = self.catalog.set_review(ids, state, "by review")
        self.model.refresh([row.photo_id for row in [*rows, *skipped]])
        last = self.model.row_of(rows[-1].photo_id)
        if last is not None:
            self.selection.select_row(last + 1 if last + 1 < self.model.rowCount() else last)
        current = self.selection.current_row()
        if len(rows) == 1 and current is not None and current.photo_id == rows[0].photo_id:
            self.show_detail(self.model.photo_row(last if last is not None else 0))
        text = f"{state.capitalize()}: {len(rows)} photo{'s' if len(rows) != 1 else ''}"
        if skipped:
            text += f"; skipped {skipped_text(skipped)}"
        self.session.notify(text + ".")
        self.changed.emit()
        return changed

    def undo_review(self) -> bool:
        """U: take back the last approve, reject, edit or keyword change of this session."""
        if not self.leave_current(can_cancel=True):
            return False
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
        self.changed.emit()
        return True


def skipped_text(rows: list[PhotoRow]) -> str:
    """``1 photo with no usable answer (IMG_1.jpg)``: the photos an approve left alone."""
    names = ", ".join(row.name for row in rows[:3]) + (" …" if len(rows) > 3 else "")
    return f"{len(rows)} photo{'s' if len(rows) != 1 else ''} with no usable answer ({names})"


def status_line(row: PhotoRow) -> str:
    """The review state of a photo's result in words, with why and whether it was edited."""
    if row.status == "failed":
        return "Failed: " + ("cannot be read" if row.unreadable else "could not be tagged")
    if row.result_id is None:
        return "Not tagged yet: choose Tag Photos… (Ctrl+T)."
    text = row.status.replace("_", " ").capitalize()
    if row.review_reason and row.review in ("needs_review", "approved", "rejected"):
        text += f" — {row.review_reason}"
    if row.edited:
        text += " · edited"
    return text
