"""The photo grid's current and selected photos: moving the current one, and the selection read afresh from
the catalog."""

from __future__ import annotations

from PySide6.QtWidgets import QAbstractItemView

from captioneer.desktop.library.browse import PhotoRow, fetch_rows
from captioneer.desktop.library.catalog import Catalog
from captioneer.desktop.ui.library_model import PhotoGridModel
from captioneer.desktop.ui.library_view import PhotoGrid


class GridSelection:
    """Which of the grid's photos is current and which are selected."""

    def __init__(self, grid: PhotoGrid, model: PhotoGridModel, catalog: Catalog) -> None:
        self.grid = grid
        self.model = model
        self._catalog = catalog

    def select_row(self, row: int) -> None:
        grid = self.grid
        if not 0 <= row < self.model.rowCount():
            return
        index = self.model.index(row)
        grid.selectionModel().setCurrentIndex(index, grid.selectionModel().SelectionFlag.ClearAndSelect)
        grid.scrollTo(index, QAbstractItemView.ScrollHint.EnsureVisible)

    def current_row(self) -> PhotoRow | None:
        index = self.grid.currentIndex()
        return self.model.photo_row(index.row()) if index.isValid() else None

    def selected_rows(self) -> list[PhotoRow]:
        """The selected photos in grid order (the current one when nothing else is selected), read afresh
        from the catalog: a running run may have tagged them since the grid last painted."""
        indexes = sorted(self.grid.selectionModel().selectedIndexes(), key=lambda index: index.row())
        if not indexes and self.grid.currentIndex().isValid():
            indexes = [self.grid.currentIndex()]
        ids = [self.model.ids()[index.row()] for index in indexes if index.row() < self.model.rowCount()]
        fresh = fetch_rows(self._catalog, ids)
        return [fresh[photo_id] for photo_id in ids if photo_id in fresh]

    def next_photo(self) -> None:
        index = self.grid.currentIndex()
        self.select_row(index.row() + 1 if index.isValid() else 0)

    def previous_photo(self) -> None:
        index = self.grid.currentIndex()
        if index.isValid() and index.row() > 0:
            self.select_row(index.row() - 1)
