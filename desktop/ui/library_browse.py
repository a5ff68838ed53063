"""The library window's browsing: the search box and filters (queries on a worker thread), the folder tree
and keyword counts, and the words keyword autocomplete offers."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QStringListModel, Qt, QThread, QTimer, Signal, Slot
from PySide6.QtWidgets import QCompleter, QTreeWidgetItem

from captioneer.backends.errors import CaptioneerError
from captioneer.desktop.library.browse import (
    KIND_FILTERS,
    STATUS_FILTERS,
    STATUS_LABELS,
    BrowseFilter,
    FolderNode,
    compile_filter,
    completion_words,
)
from captioneer.desktop.library.keywords import Vocabulary, read_vocabulary
from captioneer.desktop.ui.library_review import ReviewController
from captioneer.desktop.ui.library_selection import GridSelection
from captioneer.desktop.ui.library_session import LibrarySession
from captioneer.desktop.ui.library_thumbs import ThumbnailCache
from captioneer.desktop.ui.library_view import LibraryView
from captioneer.desktop.ui.library_workers import QueryWorker

FILTER_DELAY_MS = 250


class BrowseController(QObject):
    """Which photos the grid shows: one filter at a time, asked off the GUI thread, the newest answer wins."""

    filtered = Signal(int)  # rows shown after a filter answered
    countsShown = Signal()  # the status list's counts were updated
    overviewChanged = Signal()
    _query = Signal(int, object)
    _counts = Signal(int, object)
    _overview = Signal()
    _closeQuery = Signal()

    def __init__(
        self,
        session: LibrarySession,
        view: LibraryView,
        selection: GridSelection,
        review: ReviewController,
        thumbs: ThumbnailCache,
        completions: QStringListModel,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.view = view
        self.selection = selection
        self.model = selection.model
        self.review = review
        self.thumbs = thumbs
        self.filter = BrowseFilter()
        self.trees: list[FolderNode] = []
        self.keywords: list[tuple[str, int]] = []
        self.vocabulary_terms: tuple[str, ...] = ()
        self._completion_model = completions
        self._generation = 0
        self.status_counts: dict[str, int] = {}

        self._query_thread = QThread(self)
        self._query_worker = QueryWorker(session.catalog)
        self._query_worker.moveToThread(self._query_thread)
        self._query.connect(self._query_worker.query)
        self._counts.connect(self._query_worker.counts)
        self._query_worker.countsReady.connect(self._show_counts)
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
        self._wire()

    def _wire(self) -> None:
        view = self.view
        view.search_action.triggered.connect(self.focus_search)
        filter_completer = QCompleter(self._completion_model, view.keyword_filter)
        filter_completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        view.keyword_filter.setCompleter(filter_completer)
        view.search.textChanged.connect(lambda _text: self._filter_timer.start())
        view.keyword_filter.textChanged.connect(lambda _text: self._filter_timer.start())
        view.text_filter.textChanged.connect(lambda _text: self._filter_timer.start())
        view.search.returnPressed.connect(self._apply_typed_filters)
        view.statuses.currentRowChanged.connect(self._status_chosen)
        view.kinds.currentIndexChanged.connect(lambda index: self.apply_filter(kind=KIND_FILTERS[index]))
        view.folders.currentItemChanged.connect(self._folder_chosen)
        self.review.changed.connect(self.recount)

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
        self._counts.emit(self._generation, browse)
        return True

    def recount(self) -> None:
        """Count the photos of each status again (a review action changed them; the grid stays as it is)."""
        self._counts.emit(self._generation, self.filter)

    @Slot(int, object)
    def _show_counts(self, generation: int, counts: dict[str, int]) -> None:
        """Each status with how many photos it would show: ``Needs review (12)``."""
        if generation != self._generation or self.session.is_closed():
            return
        self.status_counts = counts
        for row, status in enumerate(STATUS_FILTERS):
            item = self.view.statuses.item(row)
            if item is not None:
                item.setText(f"{STATUS_LABELS[status]} ({counts.get(status, 0):,})")
        self.countsShown.emit()

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
        if view.kinds.currentIndex() != KIND_FILTERS.index(browse.kind):
            view.kinds.blockSignals(True)
            view.kinds.setCurrentIndex(KIND_FILTERS.index(browse.kind))
            view.kinds.blockSignals(False)
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

    def _show_count(self) -> None:
        """``12 photos · folder /a``: how many the grid shows (``photos and videos`` where the libraries hold
        clips, ``videos`` when only they are shown) and what the filter is."""
        total, kind = self.model.rowCount(), self.filter.kind
        if kind == "all" and any(tree.videos for tree in self.trees):
            items = f"{total:,} photos and videos"
        else:
            items = f"{total:,} {'video' if kind == 'video' else 'photo'}{'s' if total != 1 else ''}"
        plain = self.filter.query and not self.session.catalog.text_index  # said once, where it matters
        note = " · words matched as plain text (this Python's SQLite has no FTS5)" if plain else ""
        self.view.count.setText(f"{items} · {self.filter.describe()}{note}")

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
        if generation != self._generation or self.session.is_closed():
            return
        shown = self.review.shown
        keep = shown.photo_id if shown is not None else None
        if keep is not None and keep not in ids:
            self.review.leave_current()  # unsaved edits of a photo the filter hides: save or discard them
        self.thumbs.forget_queued()
        self.model.search = self.filter.query
        self.model.set_ids(ids)
        self._show_count()
        row = self.model.row_of(keep) if keep is not None else None
        self.selection.select_row(row if row is not None else 0)
        current = self.selection.current_row()
        if current is not None and current.photo_id == keep and not self.review.edits.unsaved():
            # Still the same photo (no currentChanged): a run, a review or a write may have changed what its
            # panel lists and what will be written. (Unsaved edits stay as they are.)
            self.review.show_detail(current)
        if not ids:
            self.review.show_detail(None)
        self.filtered.emit(len(ids))

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

    def current_folder(self) -> str:
        """The folder being browsed, or the only library's folder when there is one; "" when neither."""
        return self.filter.folder or (self.trees[0].path if len(self.trees) == 1 else "")

    @Slot(object, object)
    def _show_overview(self, trees: list[FolderNode], keywords: list[tuple[str, int]]) -> None:
        if self.session.is_closed():
            return
        self.trees, self.keywords = trees, keywords
        tree = self.view.folders
        tree.blockSignals(True)
        tree.clear()
        total = sum(node.count for node in trees)
        videos = any(node.videos for node in trees)
        everything = QTreeWidgetItem(["All photos and videos" if videos else "All photos", f"{total:,}"])
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
        self._show_count()  # the libraries may hold clips: say "photos and videos"
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
        vocabulary = read_vocabulary(path)
        self.vocabulary_terms = vocabulary.terms
        self._update_completions()
        return vocabulary

    def stop_typing(self) -> None:
        """Forget a filter still being typed (the window is closing)."""
        self._filter_timer.stop()

    def shutdown(self) -> None:
        """Close the query worker's catalog connection and end its thread."""
        self._closeQuery.emit()
        self._query_thread.quit()
        self._query_thread.wait()
