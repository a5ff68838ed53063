"""The library grid's model and delegate: photo ids in filter order, rows fetched from SQLite a page at a
time, thumbnails from the cache, painted as uniform tiles with the review state on each and a play mark with
the length on each video clip."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, QPoint, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPalette, QPen, QPixmap, QPolygon
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem, QWidget

from captioneer.desktop.core.video import is_video_path
from captioneer.desktop.library.browse import ClipFacts, PhotoRow, clip_length, fetch_rows, match_snippet
from captioneer.desktop.library.catalog import Catalog
from captioneer.desktop.ui.library_thumbs import ThumbnailCache

PAGE = 200
ROW_CACHE_LIMIT = 6000
ROW_ROLE = Qt.ItemDataRole.UserRole + 1
"""The :class:`PhotoRow` of an index."""
FAILED_ROLE = Qt.ItemDataRole.UserRole + 2
"""Why the photo has no thumbnail, or None."""

# Review state → (badge text, light colour, dark colour). Each at least 4.5:1 against the badge's small text
# (white on light, near-black on dark).
BADGES = {
    "untagged": ("untagged", "#6b7280", "#8a9099"),
    "failed": ("failed", "#b03a2e", "#ff7b6e"),
    "new": ("new", "#2f6fd6", "#6ea1ff"),
    "needs_review": ("review", "#a35f00", "#ffb347"),
    "approved": ("approved", "#1c7a43", "#5fd38d"),
    "rejected": ("rejected", "#c0392b", "#ff7b6e"),
    "written": ("written", "#6b47c7", "#b49bff"),
}


class PhotoGridModel(QAbstractListModel):
    """Photo ids in display order; each row's data is fetched with its page when a view first asks for it."""

    def __init__(self, catalog: Catalog, thumbs: ThumbnailCache, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.catalog = catalog
        self.thumbs = thumbs
        self._ids: list[int] = []
        self._positions: dict[int, int] = {}
        self._rows: dict[int, PhotoRow] = {}
        self._by_key: dict[str, int] = {}
        self._keys: dict[int, str] = {}
        self.search = ""
        """The search the ids answer: tooltips quote the words it matched."""
        thumbs.ready.connect(self._thumbnail_changed)
        thumbs.failed.connect(self._thumbnail_changed)

    # ---- contents --------------------------------------------------------------------------------------

    def set_ids(self, ids: Sequence[int]) -> None:
        self.beginResetModel()
        self._ids = list(ids)
        self._positions = {photo_id: row for row, photo_id in enumerate(self._ids)}
        self._rows.clear()
        self._by_key.clear()
        self._keys.clear()
        self.endResetModel()

    def ids(self) -> list[int]:
        return self._ids

    def row_of(self, photo_id: int) -> int | None:
        return self._positions.get(photo_id)

    def photo_row(self, row: int) -> PhotoRow | None:
        if not 0 <= row < len(self._ids):
            return None
        photo_id = self._ids[row]
        found = self._rows.get(photo_id)
        if found is None:
            self._fetch_page(row)
            found = self._rows.get(photo_id)
        return found

    def refresh(self, photo_ids: Sequence[int] | None = None) -> None:
        """Forget cached rows (these, or all) and repaint them: the catalog changed under them."""
        if photo_ids is None:
            self._rows.clear()
            self._keys.clear()
            if self._ids:
                self.dataChanged.emit(self.index(0), self.index(len(self._ids) - 1))
            return
        for photo_id in photo_ids:
            self._rows.pop(photo_id, None)
            self._keys.pop(photo_id, None)
            row = self._positions.get(photo_id)
            if row is not None:
                self.dataChanged.emit(self.index(row), self.index(row))

    def _fetch_page(self, row: int) -> None:
        if len(self._rows) > ROW_CACHE_LIMIT:
            self._rows.clear()
        start = row - row % PAGE
        self._rows.update(fetch_rows(self.catalog, self._ids[start : start + PAGE]))

    # ---- Qt model --------------------------------------------------------------------------------------

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._ids)

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        if not index.isValid():
            return None
        row = self.photo_row(index.row())
        if row is None:
            return None
        if role == ROW_ROLE:
            return row
        if role == Qt.ItemDataRole.DisplayRole:
            return row.name
        if role == Qt.ItemDataRole.DecorationRole:
            return self.thumbnail(row)
        if role == FAILED_ROLE:
            return self.thumbs.error(row.path, row.size, row.mtime_ns)
        if role == Qt.ItemDataRole.ToolTipRole:
            lines = [row.path, f"Status: {BADGES[row.status][0]}"]
            facts = self.clip(row)
            if facts is not None:
                described = facts.describe()
                lines.insert(1, described[0].upper() + described[1:])
            if row.error:
                lines.append(f"Error: {row.error}")
            if row.caption:
                lines.append(row.caption)
            if row.keywords:
                lines.append("Keywords: " + "; ".join(row.keywords))
            snippet = match_snippet(self.catalog, self.search, row.photo_id)
            if snippet:
                lines.append(f"Matches: {snippet}")
            return "\n".join(lines)
        if role == Qt.ItemDataRole.AccessibleTextRole:
            if is_video_path(Path(row.path)):
                facts = self.clip(row)
                length = f" {clip_length(facts.duration)}" if facts is not None else ""
                return f"{row.name}, video{length}, {BADGES[row.status][0]}"
            return f"{row.name}, {BADGES[row.status][0]}"
        return None

    def thumbnail(self, row: PhotoRow) -> QPixmap | None:
        """The row's thumbnail if it is ready (it is on its way otherwise, and the row repaints then)."""
        key = self._keys.get(row.photo_id)
        if key is None:
            key = self._keys[row.photo_id] = self.thumbs.key(row.path, row.size, row.mtime_ns)
        self._by_key[key] = row.photo_id
        return self.thumbs.get_by_key(key, row.path)

    def clip(self, row: PhotoRow) -> ClipFacts | None:
        """A video clip's length, size and codec, known once its thumbnail has loaded (None before, and for
        a photo)."""
        key = self._keys.get(row.photo_id)
        return self.thumbs.clip(key) if key is not None else None

    def _thumbnail_changed(self, key: str) -> None:
        photo_id = self._by_key.pop(key, None)
        row = self._positions.get(photo_id) if photo_id is not None else None
        if row is not None:
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])


class TileDelegate(QStyledItemDelegate):
    """A square thumbnail, the file name under it, and the review state as a coloured badge.

    It reads rows and thumbnails from the model directly (no QVariant round trips) and keeps its fonts:
    a screen of tiles is painted on every scroll step.
    """

    def __init__(self, edge: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.edge = edge
        self._font_key = ""
        self._badge_font = QFont()
        self._badge_metrics = QFontMetrics(self._badge_font)

    def tile_size(self) -> QSize:
        return QSize(self.edge + 16, self.edge + 40)

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        return self.tile_size()

    def _fonts(self, font: QFont) -> None:
        key = font.key()
        if key != self._font_key:
            self._font_key = key
            self._badge_font = QFont(font)
            self._badge_font.setPointSizeF(max(6.5, font.pointSizeF() * 0.78))
            self._badge_font.setBold(True)
            self._badge_metrics = QFontMetrics(self._badge_font)

    def paint(
        self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> None:
        model = index.model()
        if not isinstance(model, PhotoGridModel):
            return
        row = model.photo_row(index.row())
        if row is None:
            return
        palette = option.palette  # type: ignore[attr-defined]
        rect: QRect = option.rect  # type: ignore[attr-defined]
        font: QFont = option.font  # type: ignore[attr-defined]
        self._fonts(font)
        dark = palette.color(QPalette.ColorRole.Base).lightness() < 128
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        tile = rect.adjusted(3, 3, -3, -3)
        if option.state & QStyle.StateFlag.State_Selected:  # type: ignore[attr-defined]
            painter.setPen(QPen(palette.color(QPalette.ColorRole.Highlight), 2))
            highlight = QColor(palette.color(QPalette.ColorRole.Highlight))
            highlight.setAlpha(60)
            painter.setBrush(highlight)
        else:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(palette.color(QPalette.ColorRole.AlternateBase))
        painter.drawRoundedRect(tile, 8, 8)

        square = QRect(tile.left() + 5, tile.top() + 5, tile.width() - 10, tile.width() - 10)
        pixmap = model.thumbnail(row)
        target = square
        if pixmap is not None and not pixmap.isNull():
            scaled = pixmap.size().scaled(square.size(), Qt.AspectRatioMode.KeepAspectRatio)
            target = QRect(0, 0, scaled.width(), scaled.height())
            target.moveCenter(square.center())
            painter.drawPixmap(target, pixmap)
        else:
            failed = model.thumbs.error(row.path, row.size, row.mtime_ns)
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(square, Qt.AlignmentFlag.AlignCenter, "cannot read" if failed else "…")
        if is_video_path(Path(row.path)):
            self._paint_clip_mark(painter, target, model.clip(row))

        text, light, darker = BADGES[row.status]
        painter.setFont(self._badge_font)
        badge = QRect(
            0, 0, self._badge_metrics.horizontalAdvance(text) + 12, self._badge_metrics.height() + 4
        )
        badge.moveTopRight(QPoint(square.right() - 4, square.top() + 4))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(darker if dark else light))
        painter.drawRoundedRect(badge, badge.height() / 2, badge.height() / 2)
        painter.setPen(QColor("#101114" if dark else "#ffffff"))
        painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, text)

        painter.setFont(font)
        name_rect = QRect(
            tile.left() + 6, square.bottom() + 4, tile.width() - 12, tile.bottom() - square.bottom() - 6
        )
        painter.setPen(palette.color(QPalette.ColorRole.Text))
        name = option.fontMetrics.elidedText(  # type: ignore[attr-defined]
            row.name, Qt.TextElideMode.ElideMiddle, name_rect.width()
        )
        painter.drawText(name_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter, name)
        painter.restore()

    def _paint_clip_mark(self, painter: QPainter, picture: QRect, facts: ClipFacts | None) -> None:
        """A play triangle and the clip's length (once known) on a dark pill at the picture's bottom left:
        white on near-black reads on any frame, light or dark."""
        metrics = self._badge_metrics
        text = clip_length(facts.duration) if facts is not None else ""
        height = metrics.height() + 4
        side = height - 8  # the triangle's height
        width = 8 + side + (4 + metrics.horizontalAdvance(text) if text else 0) + 8
        pill = QRect(picture.left() + 4, picture.bottom() - 4 - height, width, height)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 180))
        painter.drawRoundedRect(pill, height / 2, height / 2)
        painter.setBrush(QColor("#ffffff"))
        left, top = pill.left() + 8, pill.top() + 4
        tip = QPoint(left + side * 7 // 8, top + side // 2)
        painter.drawPolygon(QPolygon([QPoint(left, top), QPoint(left, top + side), tip]))
        if text:
            painter.setFont(self._badge_font)
            painter.setPen(QColor("#ffffff"))
            label = pill.adjusted(8 + side + 4, 0, 0, 0)
            painter.drawText(label, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, text)
