"""The library window's controller: browse and filter the catalog, review at keyboard speed (approve,
reject, edit, undo), tag photos through the engine host process with pause/stop/resume, preview and write
metadata, undo a run's write, and export/import CSV or JSON, never blocking on a model or a scan."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QModelIndex, QObject, QStringListModel, Qt, QThread, QTimer, Signal, Slot
from PySide6.QtGui import QKeySequence, QPixmap, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCompleter,
    QFileDialog,
    QInputDialog,
    QMessageBox,
    QTreeWidgetItem,
)

from backends.base import EngineConfig, ProgressCallback
from backends.cancel import CancelToken
from backends.errors import CaptioneerError, ConfigurationError
from desktop.commands.engine_args import add_engine_arguments, engine_config_from_args
from desktop.core.settings import Settings, load_settings
from desktop.core.tasks import all_tasks
from desktop.library.browse import (
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
    filtered_results,
    join_keywords,
    keyword_being_typed,
    restore,
    resumable_runs,
    snapshot,
    split_keywords,
    written_runs,
)
from desktop.library.catalog import Catalog, open_catalog
from desktop.library.exchange import export_csv, export_json, import_file
from desktop.library.keywords import Vocabulary, parse_vocabulary
from desktop.library.publishing import undo_run, writable_results, write_results
from desktop.library.runs import RunController, RunProgress, RunSpec, format_duration
from desktop.library.scanner import scan_library
from desktop.library.sidecars import WriteMode
from desktop.ui.library_dialogs_view import SCOPES, RunDialogView, WriteDialogView
from desktop.ui.library_model import PhotoGridModel, TileDelegate
from desktop.ui.library_thumbs import ThumbnailCache
from desktop.ui.library_view import PREVIEW_EDGE, LibraryView
from desktop.ui.library_workers import QueryWorker, RunOutcome, RunRequest, RunWorker, catalog_call
from desktop.ui.workers import BackendOpener, Call, host_opener

FILTER_DELAY_MS = 250
PREVIEW_LINES = 4000
GRID_REFRESH_MS = 700


def default_engine_args() -> argparse.Namespace:
    """Engine options with nothing given on a command line: the settings decide."""
    parser = argparse.ArgumentParser(add_help=False)
    add_engine_arguments(parser)
    return parser.parse_args([])


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
        engine_args: argparse.Namespace | None = None,
        opener: BackendOpener | None = None,
        catalog: Catalog | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings: Settings = load_settings()
        self.prefs = LibraryPrefs.load()
        self.engine_args = engine_args or default_engine_args()
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
        self._calls: list[Call] = []
        self._run_thread: QThread | None = None
        self._run_worker: RunWorker | None = None
        self._controller: RunController | None = None
        self._write_dialog: WriteDialogView | None = None
        self._live_photo = ""

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
        if self.prefs.vocabulary and Path(self.prefs.vocabulary).is_file():
            try:
                self.load_vocabulary(Path(self.prefs.vocabulary))
            except CaptioneerError as exc:
                self.notify(str(exc))
        self.apply_filter()  # first, so the grid fills before the folder tree and keyword counts
        self.refresh_overview()
        self._offer_resume()

    # ---- wiring ------------------------------------------------------------------------------------------

    def _wire(self) -> None:
        view, grid, detail = self.view, self.view.grid, self.view.detail
        view.closing.connect(self.shutdown)
        grid.selectionModel().currentChanged.connect(self._current_changed)
        grid.activated.connect(lambda _index: self.edit())
        grid.verticalScrollBar().valueChanged.connect(self._scrolled)
        self.previews.ready.connect(self._preview_ready)
        self.previews.failed.connect(self._preview_ready)
        self.thumbs.ready.connect(self._live_ready)

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

        view.add_folder_action.triggered.connect(self._choose_folder)
        view.rescan_action.triggered.connect(self.rescan)
        view.tag_action.triggered.connect(self.open_run_dialog)
        view.write_action.triggered.connect(self.open_write_dialog)
        view.undo_write_action.triggered.connect(self._choose_undo)
        view.export_action.triggered.connect(self._choose_export)
        view.import_action.triggered.connect(self._choose_import)
        view.banner.dismiss_button.clicked.connect(view.banner.hide)
        view.banner.accept_button.clicked.connect(self._accept_banner)
        view.run_panel.pause_button.clicked.connect(self.toggle_pause)
        view.run_panel.cancel_button.clicked.connect(self.stop_run)
        view.run_panel.close_button.clicked.connect(view.run_panel.hide)

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
            if row is None:
                detail.name.setText("")
                detail.status.setText("")
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
                f"{Path(row.path).parent}\n" + (f"{row.model} · run {row.run_id}" if tagged else "")
            )
            self._show_preview(row)
        finally:
            self._loading_detail = False
            self._set_dirty(False)

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
        ids = [row.result_id for row in rows if row.result_id is not None]
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
            f"{state.replace('_', ' ').capitalize()}: {len(ids)} photo{'s' if len(ids) != 1 else ''}."
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

    # ---- runs --------------------------------------------------------------------------------------------

    def engine_config(self) -> EngineConfig:
        """The engine and model the settings (or the given engine options) choose.

        Raises:
            ConfigurationError: no model is set up yet.
        """
        return engine_config_from_args(self.engine_args, self.settings)

    def run_spec(
        self, task: str, language: str, vocabulary: Path | None = None, vocabulary_only: bool = True
    ) -> RunSpec:
        """What every photo of a new run is asked, from the dialog's choices and the settings.

        Raises:
            ConfigurationError: no model is set up, or the vocabulary file cannot be read.
        """
        config = self.engine_config()
        terms: tuple[str, ...] = ()
        synonyms: dict[str, str] = {}
        if vocabulary is not None:
            parsed = self.load_vocabulary(vocabulary)
            terms, synonyms = parsed.terms, dict(parsed.synonyms)
        sampling: dict[str, Any] = {"temperature": self.settings.temperature}
        if self.settings.max_tokens:
            sampling["max_new_tokens"] = self.settings.max_tokens
        return RunSpec(
            task=task,
            language=language or self.settings.language,
            vocabulary=terms,
            synonyms=synonyms,
            vocabulary_only=vocabulary_only and bool(terms),
            sampling=sampling,
            image_tokens=config.image_tokens,
        )

    def run_request(self, scope: str, spec: RunSpec, redo: bool = False) -> RunRequest:
        """Which photos a run takes: the selection, the folder being browsed, or all the filter shows."""
        if scope == "selection":
            rows = self.selected_rows()
            return RunRequest(
                scope="selection "
                + ",".join(str(row.photo_id) for row in rows[:50])
                + ("…" if len(rows) > 50 else ""),
                spec=spec,
                photo_ids=tuple(row.photo_id for row in rows),
                redo=redo,
            )
        if scope == "folder":
            folder = self.filter.folder or (self.trees[0].path if len(self.trees) == 1 else "")
            if not folder:
                raise ConfigurationError("Choose a folder on the left first.")
            return RunRequest(scope=folder, spec=spec, folder=Path(folder), redo=redo)
        return RunRequest(
            scope=f"filter {self.filter.describe()}", spec=spec, photo_ids=tuple(self.model.ids()), redo=redo
        )

    def open_run_dialog(self) -> None:
        """Tag Photos…: choose photos, task, language and vocabulary, then start."""
        if self.running:
            self.notify("A run is already going; stop it first or wait for it to finish.")
            return
        dialog = RunDialogView(self.view)
        selected = len(self.selected_rows())
        folder = self.filter.folder or (self.trees[0].path if len(self.trees) == 1 else "")
        dialog.scope_selection.setText(f"Selected photos ({selected:,})")
        dialog.scope_folder.setText(f"Folder {folder} (scanned for new photos first)" if folder else "Folder")
        dialog.scope_folder.setEnabled(bool(folder))
        dialog.scope_filter.setText(f"Photos shown now ({self.model.rowCount():,}: {self.filter.describe()})")
        (
            dialog.scope_selection if selected > 1 else dialog.scope_folder if folder else dialog.scope_filter
        ).setChecked(True)
        for task in all_tasks().values():
            if not task.needs_question:
                dialog.task.addItem(task.label, task.id)
        dialog.task.setCurrentIndex(max(0, dialog.task.findData(self.prefs.task)))
        dialog.language.setText(self.prefs.language or self.settings.language)
        dialog.vocabulary.setText(self.prefs.vocabulary)
        dialog.vocabulary_only.setChecked(self.prefs.vocabulary_only)
        try:
            config = self.engine_config()
            dialog.engine.setText(f"{Path(config.model).name or config.model} ({config.engine})")
        except ConfigurationError as exc:
            dialog.engine.setText(str(exc))
            dialog.start_button.setEnabled(False)
        dialog.vocabulary_browse.clicked.connect(
            lambda: dialog.vocabulary.setText(
                QFileDialog.getOpenFileName(dialog, "Vocabulary", "", "Text files (*.txt);;All files (*)")[0]
                or dialog.vocabulary.text()
            )
        )
        if dialog.exec() != dialog.DialogCode.Accepted:
            return
        scope = SCOPES[dialog.scope_buttons.checkedId()]
        vocabulary = dialog.vocabulary.text().strip()
        self.prefs.task = dialog.task.currentData()
        self.prefs.language = dialog.language.text().strip()
        self.prefs.vocabulary = vocabulary
        self.prefs.vocabulary_only = dialog.vocabulary_only.isChecked()
        try:
            spec = self.run_spec(
                self.prefs.task,
                self.prefs.language,
                Path(vocabulary).expanduser() if vocabulary else None,
                self.prefs.vocabulary_only,
            )
            self.start_run(self.run_request(scope, spec, redo=dialog.redo.isChecked()))
        except CaptioneerError as exc:
            self.notify(str(exc))

    @property
    def closed(self) -> bool:
        """Whether the window was closed (its catalog is released)."""
        return self._closed

    @property
    def running(self) -> bool:
        return self._run_thread is not None

    def start_run(self, request: RunRequest) -> None:
        """Start tagging on a worker thread; ``runProgress`` and then ``runFinished`` follow.

        Raises:
            ConfigurationError: no model is set up, or a run is already going.
        """
        if self.running:
            raise ConfigurationError("A run is already going; stop it first or wait for it to finish.")
        config = self.engine_config()
        self.view.banner.hide()
        self._controller = RunController()
        thread = QThread(self)
        worker = RunWorker(self.catalog, self.opener, config, request, self._controller)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.status.connect(self._run_status)
        worker.progress.connect(self._run_progress)
        worker.event.connect(self._run_event)
        worker.finished.connect(self._run_finished)
        worker.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        self._run_thread, self._run_worker = thread, worker
        panel = self.view.run_panel
        panel.title.setText("Resuming run" if request.resume else "Tagging")
        panel.current.setText("")
        panel.progress.setRange(0, 0)
        panel.stats.setText("Starting…")
        panel.event.setText("")
        panel.pause_button.setText("Pause")
        for button in (panel.pause_button, panel.cancel_button):
            button.setEnabled(True)
            button.show()
        panel.close_button.hide()
        panel.live.setPixmap(QPixmap())
        panel.show()
        thread.start()

    def toggle_pause(self) -> None:
        controller = self._controller
        if controller is None:
            return
        panel = self.view.run_panel
        if controller.paused:
            controller.resume()
            panel.pause_button.setText("Pause")
            panel.stats.setText("Resuming…")
        else:
            controller.pause()
            panel.pause_button.setText("Resume")
            panel.stats.setText(panel.stats.text() + " · paused after the current photo")

    def stop_run(self) -> None:
        """Stop after the current photo; the run stays resumable."""
        if self._controller is not None:
            self._controller.cancel()
            self.view.run_panel.stats.setText("Stopping after the current photo…")
            self.view.run_panel.cancel_button.setEnabled(False)

    @Slot(str)
    def _run_status(self, text: str) -> None:
        self.view.run_panel.stats.setText(text)

    @Slot(str)
    def _run_event(self, text: str) -> None:
        self.view.run_panel.event.setText(text)

    @Slot(object)
    def _run_progress(self, progress: RunProgress) -> None:
        if self._closed:
            return
        panel = self.view.run_panel
        panel.progress.setRange(0, max(1, progress.total))
        panel.progress.setValue(progress.finished)
        panel.progress.setFormat(f"{progress.finished:,} / {progress.total:,}")
        parts = [f"run {progress.run_id}"]
        if progress.failed:
            parts.append(f"{progress.failed} failed")
        if progress.needs_review:
            parts.append(f"{progress.needs_review} to check")
        if progress.photos_per_minute is not None:
            parts.append(f"{progress.photos_per_minute:.1f} photos/min")
        if progress.eta_seconds is not None:
            parts.append(f"about {format_duration(progress.eta_seconds)} left")
        if self._controller is not None and self._controller.paused:
            parts.append("paused")
        panel.stats.setText(" · ".join(parts))
        if progress.current:
            panel.current.setText(Path(progress.current).name)
            panel.current.setToolTip(progress.current)
            self._live_photo = progress.current
            self._show_live()
        if not self._grid_timer.isActive():
            self._grid_timer.start()
        self.runProgress.emit(progress)

    def _show_live(self) -> None:
        photo = self.catalog.photo_by_path(self._live_photo) if self._live_photo else None
        if photo is None:
            return
        pixmap = self.thumbs.get(photo.path, photo.size, photo.mtime_ns)
        if pixmap is not None:
            label = self.view.run_panel.live
            label.setPixmap(
                pixmap.scaled(
                    label.size(),
                    Qt.AspectRatioMode.KeepAspectRatio,
                    Qt.TransformationMode.SmoothTransformation,
                )
            )

    @Slot(str)
    def _live_ready(self, _key: str) -> None:
        if self.running and self._live_photo and not self._closed:
            self._show_live()

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

    @Slot(object)
    def _run_finished(self, outcome: RunOutcome) -> None:
        thread = self._run_thread
        if thread is not None:
            thread.wait()
            thread.deleteLater()
        if self._run_worker is not None:
            self._run_worker.deleteLater()
        self._run_thread = self._run_worker = None
        self._controller = None
        if not self._closed:
            self.model.refresh()
        panel = self.view.run_panel
        panel.pause_button.hide()
        panel.cancel_button.hide()
        panel.close_button.show()
        panel.current.setText("")
        self._live_photo = ""
        panel.title.setText(
            {"done": "Finished", "paused": "Stopped", "failed": "Could not tag", "nothing": "Nothing to tag"}[
                outcome.state
            ]
        )
        panel.progress.setRange(0, 1)
        panel.progress.setValue(1 if outcome.state == "done" else 0)
        if outcome.counts is not None and outcome.counts.total:
            panel.progress.setRange(0, outcome.counts.total)
            panel.progress.setValue(outcome.counts.done + outcome.counts.failed)
        panel.stats.setText(outcome.message)
        self.notify(outcome.message)
        if not self._closed:
            self.refresh_overview()
            self.refilter()
            if outcome.state == "paused":
                self._offer_resume()
        self.runFinished.emit(outcome)

    def _offer_resume(self) -> None:
        runs = resumable_runs(self.catalog)
        if not runs or self.running:
            return
        banner = self.view.banner
        banner.text.setText(runs[0].describe() + " Resume it?")
        banner.accept_button.setText("Resume")
        banner.setProperty("run_id", runs[0].run.id)
        banner.show()

    def resume_run(self, run_id: int) -> None:
        """Go on with an unfinished run (after a stop, a crash or closing the window).

        Raises:
            ConfigurationError: no model is set up, or the chosen model is not the run's.
        """
        run = next((found.run for found in resumable_runs(self.catalog) if found.run.id == run_id), None)
        if run is None:
            raise ConfigurationError(f"Run {run_id} has nothing left to tag.")
        self.start_run(RunRequest(scope=run.scope, spec=run.spec, resume=run_id))

    def _accept_banner(self) -> None:
        try:
            self.resume_run(int(self.view.banner.property("run_id")))
        except CaptioneerError as exc:
            self.notify(str(exc))
            self.view.run_panel.show()
            self.view.run_panel.stats.setText(str(exc))

    # ---- scanning, writing, undo, export and import ------------------------------------------------------

    def _call(self, work: Any, on_success: Any, label: str) -> Call:
        call = catalog_call(self.catalog, work, self)
        self._calls.append(call)
        call.succeeded.connect(on_success)
        call.failed.connect(lambda message: self.notify(f"{label} failed: {message}"))
        call.progress.connect(lambda _fraction, text: self.view.statusBar().showMessage(text))
        call.finished.connect(lambda: self._calls.remove(call) if call in self._calls else None)
        call.start()
        return call

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.view, "Add a Photo Folder")
        if folder:
            self.add_folder(Path(folder))

    def add_folder(self, folder: Path) -> Call:
        """Scan a folder into the catalog (off the GUI thread), then show it."""
        folder = folder.expanduser().absolute()
        self.notify(f"Scanning {folder}…")

        def work(catalog: Catalog, progress: ProgressCallback, cancel: CancelToken) -> str:
            def found(count: int, name: str) -> None:
                progress(0.0, f"Scanning {folder}: {count:,} photos so far ({name})")

            return scan_library(catalog, folder, cancel=cancel, progress=found).summary()

        def done(summary: str) -> None:
            self.notify(f"Scanned {folder}: {summary}")
            self.filter = replace(self.filter, folder=str(folder))
            self.refresh_overview()
            self.refilter()

        return self._call(work, done, "Scanning")

    def rescan(self) -> Call:
        """Rescan every library for new, changed and moved photos."""
        roots = [Path(root) for _id, root in self.catalog.libraries()]

        def work(catalog: Catalog, progress: ProgressCallback, cancel: CancelToken) -> str:
            return "; ".join(
                f"{root.name}: {scan_library(catalog, root, cancel=cancel).summary()}" for root in roots
            )

        def done(summary: str) -> None:
            self.notify(f"Rescanned: {summary}" if summary else "No library yet: add a folder first.")
            self.refresh_overview()
            self.refilter()

        return self._call(work, done, "Scanning")

    def write_mode(self) -> WriteMode:
        return WriteMode(self.prefs.write_mode or self.settings.metadata_mode)

    def preview_write(self, mode: WriteMode, unreviewed: bool = False) -> Call:
        """The per-file metadata diff of writing the approved results; succeeded carries (summary, text)."""

        def work(catalog: Catalog, progress: ProgressCallback, cancel: CancelToken) -> tuple[str, str, int]:
            results = writable_results(catalog, unreviewed=unreviewed)
            lines: list[str] = []
            summary = write_results(catalog, results, mode=mode, dry_run=True, report=lines.append)
            text = "\n\n".join(lines[:PREVIEW_LINES])
            if len(lines) > PREVIEW_LINES:
                text += f"\n\n… and {len(lines) - PREVIEW_LINES:,} more files"
            if not results:
                return (
                    "Nothing to write: approve photos first (A), or tick the box to write unreviewed ones.",
                    "",
                    0,
                )
            return f"{len(results):,} results: {summary.describe(True)}.", text, summary.would_change

        return self._call(work, self._preview_ready_for_dialog, "The preview")

    def write_metadata(self, mode: WriteMode, unreviewed: bool = False) -> Call:
        """Write the approved results into the photos (journaled per run, so it can be undone)."""

        def work(catalog: Catalog, progress: ProgressCallback, cancel: CancelToken) -> str:
            results = writable_results(catalog, unreviewed=unreviewed)
            total = max(1, len(results))
            done = [0]

            def report(text: str) -> None:
                done[0] += 1
                progress(min(1.0, done[0] / total), text)

            return write_results(catalog, results, mode=mode, report=report).describe(False)

        def finished(summary: str) -> None:
            self.notify(f"Metadata written: {summary}.")
            if self._write_dialog is not None:
                self._write_dialog.summary.setText(f"Done: {summary}. Undo a Write… puts the files back.")
                self._write_dialog.write_button.setEnabled(False)
            self.refilter()

        return self._call(work, finished, "Writing")

    def open_write_dialog(self) -> WriteDialogView:
        """Write Metadata…: the diff per file first, then Write (non-modal, so the grid stays usable)."""
        if self._write_dialog is not None:
            self._write_dialog.raise_()
            return self._write_dialog
        dialog = WriteDialogView(self.view)
        dialog.mode.setCurrentIndex(max(0, dialog.mode.findData(self.write_mode().value)))
        self._write_dialog = dialog

        def refresh_preview() -> None:
            dialog.write_button.setEnabled(False)
            dialog.summary.setText("Preparing the preview…")
            dialog.preview.setPlainText("")
            self.prefs.write_mode = dialog.mode.currentData()
            self.preview_write(WriteMode(dialog.mode.currentData()), dialog.unreviewed.isChecked())

        def write() -> None:
            dialog.write_button.setEnabled(False)
            dialog.summary.setText("Writing…")
            self.write_metadata(WriteMode(dialog.mode.currentData()), dialog.unreviewed.isChecked())

        def closed() -> None:
            self._write_dialog = None

        dialog.mode.currentIndexChanged.connect(lambda _index: refresh_preview())
        dialog.unreviewed.toggled.connect(lambda _checked: refresh_preview())
        dialog.write_button.clicked.connect(write)
        dialog.finished.connect(lambda _code: closed())
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        refresh_preview()
        return dialog

    def _preview_ready_for_dialog(self, value: tuple[str, str, int]) -> None:
        summary, text, changes = value
        dialog = self._write_dialog
        if dialog is None:
            return
        dialog.summary.setText(summary)
        dialog.preview.setPlainText(text)
        dialog.write_button.setText(
            f"Write {changes:,} File{'s' if changes != 1 else ''}" if changes else "Write"
        )
        dialog.write_button.setEnabled(changes > 0)

    def _choose_undo(self) -> None:
        runs = written_runs(self.catalog)
        if not runs:
            self.notify("Nothing has been written yet, so there is nothing to undo.")
            return
        labels = [f"Run {run.id}: {run.task}, {count:,} photos written ({run.scope})" for run, count in runs]
        choice, ok = QInputDialog.getItem(
            self.view, "Undo a Write", "Put back the files this run's write changed:", labels, 0, False
        )
        if ok:
            self.undo_write(runs[labels.index(choice)][0].id)

    def undo_write(self, run_id: int, force: bool = False) -> Call:
        """Restore every file a run's write changed, byte for byte; its results go back to approved."""

        def work(catalog: Catalog, progress: ProgressCallback, cancel: CancelToken) -> str:
            report = undo_run(catalog, run_id, force=force)
            problems = [f"{path}: {reason}" for path, reason in report.conflicts + report.errors]
            return f"Undo run {run_id}: {report.summary()}" + (
                "\n" + "\n".join(problems[:20]) if problems else ""
            )

        def done(summary: str) -> None:
            self.notify(summary)
            self.refilter()

        return self._call(work, done, "Undo")

    def _choose_export(self) -> None:
        path, _filter = QFileDialog.getSaveFileName(
            self.view, "Export Results", "captioneer-results.csv", "CSV (*.csv);;JSON (*.json)"
        )
        if path:
            self.export_results(Path(path))

    def export_results(self, path: Path) -> Call:
        """Export the newest result of every photo the filter shows, as CSV or JSON (by the file's suffix)."""
        browse = self.filter

        def work(catalog: Catalog, progress: ProgressCallback, cancel: CancelToken) -> str:
            results = filtered_results(catalog, browse)
            text = export_json(results) if path.suffix.lower() == ".json" else export_csv(results)
            try:
                path.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise ConfigurationError(f"Cannot write {path}: {exc.strerror}") from None
            return f"Exported {len(results):,} results to {path}."

        return self._call(work, self.notify, "Export")

    def _choose_import(self) -> None:
        path, _filter = QFileDialog.getOpenFileName(
            self.view, "Import Edited Results", "", "Exports (*.csv *.json);;All files (*)"
        )
        if path:
            self.import_results(Path(path))

    def import_results(self, path: Path) -> Call:
        """Apply an edited export (every row checked first; nothing changes if one is wrong)."""

        def work(catalog: Catalog, progress: ProgressCallback, cancel: CancelToken) -> str:
            report = import_file(catalog, path)
            return f"Imported {path.name}: {report.updated} results updated, {report.unchanged} unchanged."

        def done(summary: str) -> None:
            self.notify(summary)
            self.model.refresh()
            self.refresh_overview()
            self.refilter()

        return self._call(work, done, "Import")

    # ---- closing -----------------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop a run (it stays resumable), finish background jobs, release the catalog; safe twice."""
        if self._closed:
            return
        self._leave_current()
        self._closed = True
        for timer in (self._filter_timer, self._grid_timer, self._scroll_timer):
            timer.stop()
        if self._controller is not None:
            self._controller.cancel()
        if self._run_thread is not None:
            self._run_thread.wait()
        for call in list(self._calls):
            call.wait()
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


def open_library(owner: QObject, engine_args: argparse.Namespace | None = None) -> LibraryWindow | None:
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
        window = LibraryWindow(engine_args=engine_args, parent=owner)
    except CaptioneerError as exc:
        QMessageBox.warning(parent, "Captioneer Library", str(exc))
        return None
    if parent is not None and hasattr(parent, "closing"):
        parent.closing.connect(window.view.close)
    window.view.show()
    return window
