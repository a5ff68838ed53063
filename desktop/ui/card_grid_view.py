"""The quick-caption cards laid out in a grid: as many columns as the width allows, re-flowed on resize."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QGridLayout, QWidget

MARGIN = 14
SPACING = 12


def column_count(width: int, card_min_width: int, spacing: int = SPACING, margin: int = MARGIN) -> int:
    """How many columns of cards at least ``card_min_width`` wide fit in ``width`` pixels (at least one)."""
    usable = width - 2 * margin + spacing
    return max(1, usable // (card_min_width + spacing))


class CardGrid(QWidget):
    """Cards in reading order, left to right then down; each row as tall as its tallest card."""

    def __init__(self, card_min_width: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.card_min_width = card_min_width
        self.cards: list[QWidget] = []
        self.columns = 1
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(MARGIN, MARGIN, MARGIN, MARGIN)
        self.grid.setSpacing(SPACING)
        self.grid.setAlignment(Qt.AlignmentFlag.AlignTop)
        self._size_columns()

    def add(self, card: QWidget) -> None:
        self.cards.append(card)
        self._place(len(self.cards) - 1)

    def remove(self, card: QWidget) -> None:
        if card in self.cards:
            self.cards.remove(card)
            self.grid.removeWidget(card)
            self._reflow()

    def _place(self, index: int) -> None:
        row, column = divmod(index, self.columns)
        self.grid.addWidget(self.cards[index], row, column, Qt.AlignmentFlag.AlignTop)

    def _size_columns(self) -> None:
        """Equal columns, empty ones too: one photo takes one column's width, not the whole row."""
        for column in range(max(self.columns, self.grid.columnCount())):
            used = column < self.columns
            self.grid.setColumnStretch(column, 1 if used else 0)
            self.grid.setColumnMinimumWidth(column, self.card_min_width if used else 0)

    def _reflow(self) -> None:
        for card in self.cards:
            self.grid.removeWidget(card)
        self._size_columns()
        for index in range(len(self.cards)):
            self._place(index)

    def minimumSizeHint(self) -> QSize:
        """One column's width whatever the columns now: the scroll area may narrow the grid to re-flow it."""
        return QSize(self.card_min_width + 2 * MARGIN, super().minimumSizeHint().height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        columns = column_count(event.size().width(), self.card_min_width)
        if columns != self.columns:
            self.columns = columns
            self._reflow()
        super().resizeEvent(event)
