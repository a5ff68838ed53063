"""The library window's controller: browse and filter the catalog (queries on a worker thread), show a
photo's details with keyword autocomplete, and review at keyboard speed (approve, reject, edit, undo).
Runs live in library_runs.py, scanning/writing/export in library_files.py; this composes them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QModelIndex, QObject, QStringListModel, Qt, QThread, QTimer, Signal, Slot
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QAbstractItemView, QCompleter, QMessageBox, QTreeWidgetItem

from captioneer.backends.errors import CaptioneerError, ConfigurationError
from captioneer.desktop.core.engine_setup import Overrides
from captioneer.desktop.core.settings import Settings, load_settings
from captioneer.desktop.library.browse import (
    STATUS_FILTERS,
    BrowseFilter,
    FolderNode,
    LibraryPrefs,
    PhotoRow,
    ReviewHistory,
    ReviewStep,
    compile_filter,
    complete_keyword,
    completion_words,
    fetch_rows,
    join_keywords,
    keyword_being_typed,
    photo_review,
    restore,
    snapshot,
    split_keywords,
)
from captioneer.desktop.library.catalog import Catalog, open_catalog
from captioneer.desktop.library.keywords import Vocabulary, parse_vocabulary
from captioneer.desktop.ui.library_files import FilesController
from captioneer.desktop.ui.library_model import PhotoGridModel, TileDelegate
from captioneer.desktop.ui.library_runs import RunsController
from captioneer.desktop.ui.library_thumbs import ThumbnailCache
from captioneer.desktop.ui.library_view import PREVIEW_EDGE, LibraryView
from captioneer.desktop.ui.library_workers import QueryWorker
from captioneer.desktop.ui.workers import BackendOpener, host_opener

FILTER_DELAY_MS = 250
GRID_REFRESH_MS = 700


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


class LibraryWindow(QObject):
    """The album tagger's home: one catalog, one grid, one run at a time."""

    filtered = Signal(int)  # rows shown after a filter answered
    overviewChanged = Signal()
    runProgress = Signal(object)  # RunProgress
    runFinished = Signal(object)  # RunOutcome
    message = Signal(str)
    _query = Signal(int, object)
    _overview = Signal()
    _closeQuery = Signal()

    def __init__(
        self,
        overrides: Overrides | None = None,
        opener: BackendOpener | None = None,
        catalog: Catalog | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings: Settings = load_settings()
        self.prefs = LibraryPrefs.load()
        self.overrides = overrides or Overrides()
        self.opener = opener or host_opener(self.settings)
        self.catalog = catalog or open_catalog()
        self.view = LibraryView()
        self.filter = BrowseFilter()
        self.history = ReviewHistory()
        self.trees: list[FolderNode] = []
        self.keywords: list[tuple[str, int]] = []
        self.vocabulary_terms: tuple[str, ...] = ()
        self._generation = 0
        self._shown: PhotoRow | None = None
        self._dirty = False
        self._loading_detail = False
        self._closed = False

        self.thumbs = ThumbnailCache(self.prefs.thumb_edge, parent=self)
        self.previews = ThumbnailCache(PREVIEW_EDGE * 2, threads=1, parent=self)
        self.model = PhotoGridModel(self.catalog, self.thumbs, self)
        self.delegate = TileDelegate(self.prefs.thumb_edge, self.view.grid)
        grid = self.view.grid
        grid.setModel(self.model)
        grid.setItemDelegate(self.delegate)
        grid.setGridSize(self.delegate.tile_size())

        self._query_thread = QThread(self)
        self._query_worker = QueryWorker(self.catalog)
        self._query_worker.moveToThread(self._query_thread)
        self._query.connect(self._query_worker.query)
        self._overview.connect(self._query_worker.overview)
        self._closeQuery.connect(self._query_worker.close, Qt.ConnectionType.BlockingQueuedConnection)
        self._query_worker.queried.connect(self._show_ids)
        self._query_worker.queryFailed.connect(self._query_failed)
        self._query_worker.overviewReady.connect(self._show_overview)
        self._query_thread.start()

        self._filter_timer = QTimer(self)
        self._filter_timer.setSingleShot(True)
        self._filter_timer.setInterval(FILTER_DELAY_MS)
        self._filter_timer.timeout.connect(self._apply_typed_filters)
        self._grid_timer = QTimer(self)
        self._grid_timer.setSingleShot(True)
        self._grid_timer.setInterval(GRID_REFRESH_MS)
        self._grid_timer.timeout.connect(self._refresh_grid_rows)
        self._scroll_timer = QTimer(self)
        self._scroll_timer.setSingleShot(True)
        self._scroll_timer.setInterval(120)
        self._scroll_timer.timeout.connect(self._scroll_settled)

        self._completion_model = QStringListModel(self)
        self._wire()
        self.runs = RunsController(self)
        self.files = FilesController(self)
        self.runs.progressed.connect(self._run_progressed)
        if self.prefs.vocabulary and Path(self.prefs.vocabulary).is_file():
            try:
                self.load_vocabulary(Path(self.prefs.vocabulary))
            except CaptioneerError as exc:
                self.notify(str(exc))
        self.apply_filter()  # first, so the grid fills before the folder tree and keyword counts
        self.refresh_overview()
        self.runs.offer_resume()

    # ---- wiring ------------------------------------------------------------------------------------------

    def _wire(self) -> None:
        view, grid, detail = self.view, self.view.grid, self.view.detail
        view.closing.connect(self.shutdown)
        grid.selectionModel().currentChanged.connect(self._current_changed)
        grid.activated.connect(lambda _index: self.edit())
        grid.verticalScrollBar().valueChanged.connect(self._scrolled)
        self.previews.ready.connect(self._preview_ready)
        self.previews.failed.connect(self._preview_ready)

        for key, slot in (
            ("A", self.approve),
            ("R", self.reject),
            ("E", self.edit),
            ("J", self.next_photo),
            ("K", self.previous_photo),
            ("U", self.undo_review),
        ):
            QShortcut(QKeySequence(key), grid, slot, context=Qt.ShortcutContext.WidgetShortcut)
        for key, slot in (("Ctrl+S", self.save_edits), ("Ctrl+Return", self.save_and_approve)):
            QShortcut(QKeySequence(key), detail, slot, context=Qt.ShortcutContext.WidgetWithChildrenShortcut)
        QShortcut(
            QKeySequence("Escape"),
            detail,
            self.leave_editor,
            context=Qt.ShortcutContext.WidgetWithChildrenShortcut,
        )
        QShortcut(QKeySequence("Ctrl+Z"), grid, self.undo_review, context=Qt.ShortcutContext.WidgetShortcut)
        view.search_action.triggered.connect(self.focus_search)

        detail.approve_button.clicked.connect(self.approve)
        detail.reject_button.clicked.connect(self.reject)
        detail.save_button.clicked.connect(self.save_edits)
        detail.revert_button.clicked.connect(self.revert_edits)
        detail.caption.textChanged.connect(self._edited)
        for line in (detail.title, detail.alt_text, detail.keywords):
            line.textEdited.connect(self._edited)
        completer = KeywordCompleter(self._completion_model, detail.keywords)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchStartsWith)
        detail.keywords.setCompleter(completer)
        filter_completer = QCompleter(self._completion_model, view.keyword_filter)
        filter_completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        view.keyword_filter.setCompleter(filter_completer)

        view.search.textChanged.connect(lambda _text: self._filter_timer.start())
        view.keyword_filter.textChanged.connect(lambda _text: self._filter_timer.start())
        view.text_filter.textChanged.connect(lambda _text: self._filter_timer.start())
        view.search.returnPressed.connect(self._apply_typed_filters)
        view.statuses.currentRowChanged.connect(self._status_chosen)
        view.folders.currentItemChanged.connect(self._folder_chosen)

    def notify(self, text: str) -> None:
        """Tell the user something in the status bar (and anyone listening)."""
        self.view.statusBar().showMessage(text, 15_000)
        self.message.emit(text)

    # ---- filters -----------------------------------------------------------------------------------------

    def apply_filter(self, **changes: Any) -> bool:
        """Change the filter (fields of :class:`BrowseFilter`) and ask for its photos off the GUI thread;
        ``filtered`` follows. Returns False (with the reason shown) when the search cannot be understood."""
        browse = replace(self.filter, **changes)
        try:
            compile_filter(browse)
        except CaptioneerError as exc:
            self.view.search_error.setText(str(exc))
            self.view.search_error.show()
            return False
        self.view.search_error.hide()
        self.filter = browse
        self._show_filter(browse)
        self._generation += 1
        self._query_worker.latest = self._generation
        self._query.emit(self._generation, browse)
        return True

    def _show_filter(self, browse: BrowseFilter) -> None:
        """Make the filter widgets say what the filter is, when it was set by code (a scan, a test)."""
        view = self.view
        for line, value in (
            (view.search, browse.query),
            (view.keyword_filter, browse.keyword),
            (view.text_filter, browse.text),
        ):
            if line.text().strip() != value:
                line.blockSignals(True)
                line.setText(value)
                line.blockSignals(False)
        row = STATUS_FILTERS.index(browse.status)
        if view.statuses.currentRow() != row:
            view.statuses.blockSignals(True)
            view.statuses.setCurrentRow(row)
            view.statuses.blockSignals(False)

    def refilter(self) -> None:
        """Ask again with the same filter (after a run, a write or an import changed the catalog)."""
        self.apply_filter()

    @Slot()
    def _apply_typed_filters(self) -> None:
        view = self.view
        self._filter_timer.stop()
        wanted = {
            "query": view.search.text().strip(),
            "keyword": view.keyword_filter.text().strip(),
            "text": view.text_filter.text().strip(),
        }
        if any(getattr(self.filter, key) != value for key, value in wanted.items()):
            self.apply_filter(**wanted)

    @Slot(int)
    def _status_chosen(self, row: int) -> None:
        if 0 <= row < len(STATUS_FILTERS):
            self.apply_filter(status=STATUS_FILTERS[row])

    @Slot(object, object)
    def _folder_chosen(self, item: QTreeWidgetItem | None, _previous: object) -> None:
        if item is not None:
            self.apply_filter(folder=item.data(0, Qt.ItemDataRole.UserRole) or "")

    @Slot(int, object)
    def _show_ids(self, generation: int, ids: list[int]) -> None:
        if generation != self._generation or self._closed:
            return
        self._leave_current()
        keep = self._shown.photo_id if self._shown is not None else None
        self.thumbs.forget_queued()
        self.model.set_ids(ids)
        total = len(ids)
        self.view.count.setText(f"{total:,} photo{'s' if total != 1 else ''} · {self.filter.describe()}")
        row = self.model.row_of(keep) if keep is not None else None
        self.select_row(row if row is not None else 0)
        current = self.current_row()
        if current is not None and current.photo_id == keep:
            # Still the same photo (no currentChanged): a run, a review or a write may have changed what its
            # panel lists and what will be written.
            self._show_detail(current)
        if not ids:
            self._show_detail(None)
        self.filtered.emit(total)

    @Slot(int, str)
    def _query_failed(self, generation: int, message: str) -> None:
        if generation == self._generation:
            self.view.search_error.setText(message)
            self.view.search_error.show()

    def focus_search(self) -> None:
        self.view.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.view.search.selectAll()

    # ---- folders and keywords ----------------------------------------------------------------------------

    def refresh_overview(self) -> None:
        """Rebuild the folder tree and the keyword list (off the GUI thread); ``overviewChanged`` follows."""
        self._overview.emit()

    @Slot(object, object)
    def _show_overview(self, trees: list[FolderNode], keywords: list[tuple[str, int]]) -> None:
        if self._closed:
            return
        self.trees, self.keywords = trees, keywords
        tree = self.view.folders
        tree.blockSignals(True)
        tree.clear()
        total = sum(node.count for node in trees)
        everything = QTreeWidgetItem(["All photos", f"{total:,}"])
        everything.setData(0, Qt.ItemDataRole.UserRole, "")
        tree.addTopLevelItem(everything)
        current = everything
        for node in trees:
            item = self._tree_item(node)
            item.setToolTip(0, node.path)
            tree.addTopLevelItem(item)
            item.setExpanded(True)
            found = self._find_item(item, self.filter.folder)
            if found is not None:
                current = found
        tree.setCurrentItem(current)
        tree.resizeColumnToContents(1)
        tree.blockSignals(False)
        self._update_completions()
        self.overviewChanged.emit()

    def _tree_item(self, node: FolderNode) -> QTreeWidgetItem:
        item = QTreeWidgetItem([node.name, f"{node.count:,}"])
        item.setData(0, Qt.ItemDataRole.UserRole, node.path)
        item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight)
        for child in node.sorted_children():
            item.addChild(self._tree_item(child))
        return item

    def _find_item(self, item: QTreeWidgetItem, path: str) -> QTreeWidgetItem | None:
        if not path:
            return None
        if item.data(0, Qt.ItemDataRole.UserRole) == path:
            return item
        for index in range(item.childCount()):
            found = self._find_item(item.child(index), path)
            if found is not None:
                return found
        return None

    def _update_completions(self) -> None:
        self._completion_model.setStringList(completion_words(self.keywords, self.vocabulary_terms))

    def completion_words(self) -> list[str]:
        return self._completion_model.stringList()

    def load_vocabulary(self, path: Path) -> Vocabulary:
        """Read a vocabulary file for a run; its words join keyword autocomplete.

        Raises:
            ConfigurationError: the file cannot be read or understood.
        """
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"Cannot read the vocabulary file {path}: {exc.strerror}") from None
        vocabulary = parse_vocabulary(text, str(path))
        self.vocabulary_terms = vocabulary.terms
        self._update_completions()
        return vocabulary

    # ---- selection and the detail panel ------------------------------------------------------------------

    def select_row(self, row: int) -> None:
        grid = self.view.grid
        if not 0 <= row < self.model.rowCount():
            return
        index = self.model.index(row)
        grid.selectionModel().setCurrentIndex(index, grid.selectionModel().SelectionFlag.ClearAndSelect)
        grid.scrollTo(index, QAbstractItemView.ScrollHint.EnsureVisible)

    def current_row(self) -> PhotoRow | None:
        index = self.view.grid.currentIndex()
        return self.model.photo_row(index.row()) if index.isValid() else None

    def selected_rows(self) -> list[PhotoRow]:
        """The selected photos in grid order (the current one when nothing else is selected), read afresh
        from the catalog: a running run may have tagged them since the grid last painted."""
        indexes = sorted(self.view.grid.selectionModel().selectedIndexes(), key=lambda index: index.row())
        if not indexes and self.view.grid.currentIndex().isValid():
            indexes = [self.view.grid.currentIndex()]
        ids = [self.model.ids()[index.row()] for index in indexes if index.row() < self.model.rowCount()]
        fresh = fetch_rows(self.catalog, ids)
        return [fresh[photo_id] for photo_id in ids if photo_id in fresh]

    @Slot(QModelIndex, QModelIndex)
    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self._leave_current()
        self._show_detail(self.model.photo_row(current.row()) if current.isValid() else None)

    def _leave_current(self) -> None:
        """Edits are kept when the user moves on (nothing typed is ever lost); U takes them back."""
        if self._dirty and self._shown is not None:
            self.save_edits()

    def _show_detail(self, row: PhotoRow | None) -> None:
        detail = self.view.detail
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
            detail.status.setText(_status_line(row))
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

    def _show_existing_keywords(self, row: PhotoRow | None) -> None:
        """The keywords already in the photo's files, as read-only chips (rows hidden when there are none)."""
        detail = self.view.detail
        keywords = row.existing_keywords if row is not None else ()
        note = row.existing_keywords_note if row is not None else None
        detail.existing.set_keywords(keywords, note)
        detail.existing_note.setText(f"⚠ {note}" if note else "")
        detail.form.setRowVisible(detail.existing, bool(keywords))
        detail.form.setRowVisible(detail.existing_note, bool(note))

    def _show_review(self, photo_id: int) -> None:
        """List the photo's current result of each task and what the next write puts into its file."""
        review = photo_review(self.catalog, photo_id)
        detail = self.view.detail
        detail.results.setText(review.describe_results() if len(review.results) > 1 else "")
        detail.results.setVisible(len(review.results) > 1)
        detail.will_write.setText(review.describe_write() if review.results else "")

    def _show_preview(self, row: PhotoRow) -> None:
        pixmap = self.previews.get(row.path, row.size, row.mtime_ns)
        failed = self.previews.error(row.path, row.size, row.mtime_ns) if pixmap is None else None
        self.view.detail.preview.show_photo(
            pixmap, f"Cannot show this photo:\n{failed}" if failed else "Loading…"
        )

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
        self.view.detail.save_button.setEnabled(dirty)
        self.view.detail.revert_button.setEnabled(dirty)

    # ---- review ------------------------------------------------------------------------------------------

    def approve(self) -> int:
        """Approve the selected photos' results (saving any edit first) and move on; returns how many."""
        return self._review("approved", "Approve")

    def reject(self) -> int:
        """Reject the selected photos' results (never written) and move on; returns how many."""
        return self._review("rejected", "Reject")

    def _review(self, state: str, label: str) -> int:
        self._leave_current()
        rows = [row for row in self.selected_rows() if row.result_id is not None]
        if not rows:
            self.notify("Nothing to review here: this photo has not been tagged yet.")
            return 0
        # A photo's current result of every task: what the panel lists and the write combines.
        ids = [result.id for row in rows for result in self.catalog.current_results(row.photo_id)]
        self.history.push(ReviewStep(f"{label} {len(ids)}", snapshot(self.catalog, ids)))
        changed = self.catalog.set_review(ids, state, "by review")
        self.model.refresh([row.photo_id for row in rows])
        last = self.model.row_of(rows[-1].photo_id)
        if last is not None:
            self.select_row(last + 1 if last + 1 < self.model.rowCount() else last)
        if (
            len(rows) == 1
            and self.current_row() is not None
            and self.current_row().photo_id == rows[0].photo_id
        ):
            self._show_detail(self.model.photo_row(last if last is not None else 0))
        self.notify(
            f"{state.replace('_', ' ').capitalize()}: {len(rows)} photo{'s' if len(rows) != 1 else ''}."
        )
        return changed

    def edit(self) -> None:
        """Put the cursor in the caption, ready to type (E or Enter)."""
        if self._shown is None or self._shown.result_id is None:
            return
        self.view.detail.caption.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.view.detail.caption.selectAll()

    def leave_editor(self) -> None:
        """Escape: back to the grid, keeping what was typed (it is saved when moving on)."""
        self.view.grid.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def save_edits(self, approve: bool = False) -> bool:
        """Store the detail panel's text on the shown photo's result; returns whether anything changed."""
        row, detail = self._shown, self.view.detail
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
            self.view.detail.status.setText(_status_line(self._shown))
            self._show_review(row.photo_id)
            self.notify(f"Saved {row.name}.")
        return changed

    def save_and_approve(self) -> None:
        """Ctrl+Return: keep the edits, approve, and go to the next photo."""
        if self.save_edits(approve=True):
            self.next_photo()
            self.view.grid.setFocus()
        else:
            self.view.grid.setFocus()
            self.approve()

    def revert_edits(self) -> None:
        self._show_detail(self._shown)

    def undo_review(self) -> bool:
        """U: take back the last approve, reject or edit of this session."""
        self._set_dirty(False)
        step = self.history.pop()
        if step is None:
            self.notify("Nothing to undo.")
            return False
        restore(self.catalog, step.before)
        result_ids = [state.result_id for state in step.before]
        marks = ",".join("?" * len(result_ids))
        photo_ids = [
            row[0]
            for row in self.catalog.db.execute(
                f"SELECT photo_id FROM results WHERE id IN ({marks})", result_ids
            )
        ]
        self.model.refresh(photo_ids)
        rows = [r for r in (self.model.row_of(photo_id) for photo_id in photo_ids) if r is not None]
        if rows:
            self.select_row(min(rows))
        self._show_detail(self.current_row())
        self.notify(f"Undone: {step.label}.")
        return True

    def next_photo(self) -> None:
        index = self.view.grid.currentIndex()
        self.select_row(index.row() + 1 if index.isValid() else 0)

    def previous_photo(self) -> None:
        index = self.view.grid.currentIndex()
        if index.isValid() and index.row() > 0:
            self.select_row(index.row() - 1)

    @Slot(int)
    def _scrolled(self, _value: int) -> None:
        self._scroll_timer.start()

    @Slot()
    def _scroll_settled(self) -> None:
        """Scrolling stopped: drop thumbnails queued for tiles that flew past; the visible ones ask again."""
        self.thumbs.forget_queued()
        self.view.grid.viewport().update()

    @Slot(object)
    def _run_progressed(self, _progress: object) -> None:
        """A run moved on: repaint the grid's rows soon (once per interval, however fast photos land)."""
        if not self._grid_timer.isActive():
            self._grid_timer.start()

    @Slot()
    def _refresh_grid_rows(self) -> None:
        if self._closed:
            return
        self.model.refresh()
        shown = self._shown
        if shown is not None and not self._dirty:
            row = self.model.row_of(shown.photo_id)
            fresh = self.model.photo_row(row) if row is not None else None
            if fresh is not None and fresh != shown:
                self._show_detail(fresh)  # the run just tagged the photo on show

    # ---- closing -----------------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the window was closed (its catalog is released)."""
        return self._closed

    def shutdown(self) -> None:
        """Stop a run (it stays resumable), finish background jobs, release the catalog; safe twice."""
        if self._closed:
            return
        self._leave_current()
        self._closed = True
        for timer in (self._filter_timer, self._grid_timer, self._scroll_timer):
            timer.stop()
        self.runs.shutdown()
        self.files.shutdown()
        for cache in (self.thumbs, self.previews):
            cache.blockSignals(True)  # what is still queued must not reach a closed catalog
            cache.wait()
        self.view.grid.setModel(None)  # nothing may page rows from the catalog once it is closed
        self._closeQuery.emit()
        self._query_thread.quit()
        self._query_thread.wait()
        self.catalog.close()
        self.prefs.save()


def _status_line(row: PhotoRow) -> str:
    if row.result_id is None:
        return "Not tagged yet: choose Tag Photos… (Ctrl+T)."
    text = row.status.replace("_", " ").capitalize()
    if row.review_reason and row.review in ("needs_review", "approved", "rejected"):
        text += f" — {row.review_reason}"
    if row.edited:
        text += " · edited"
    return text


def open_library(owner: QObject, overrides: Overrides | None = None) -> LibraryWindow | None:
    """Show the library window for ``owner`` (the main window's controller, whose ``view`` is its window):
    the open one brought to the front, or a new one that closes with the owner's window. A catalog that
    cannot be opened is explained in a message box, and None is returned."""
    for window in owner.findChildren(LibraryWindow):
        if not window.closed:
            window.view.showNormal()
            window.view.raise_()
            window.view.activateWindow()
            return window
    parent = getattr(owner, "view", None)
    try:
        window = LibraryWindow(overrides=overrides, parent=owner)
    except CaptioneerError as exc:
        QMessageBox.warning(parent, "Captioneer Library", str(exc))
        return None
    if parent is not None and hasattr(parent, "closing"):
        parent.closing.connect(window.view.close)
    window.view.show()
    return window
