"""A horizontal bar chart of one score per profile, with seconds per photo beside each bar, painted with
QPainter (PySide6-Essentials has no QtCharts) in the palette's colours so it reads in light and dark."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QSizePolicy, QWidget

from captioneer.desktop.ui.theme import ERROR_TEXT, is_dark


@dataclass(frozen=True)
class Bar:
    """One profile's bar: ``value`` on a scale of 0 to the chart's top (None: no score, ``note`` says why)."""

    label: str
    value: float | None
    value_text: str
    speed_text: str
    note: str = ""


BAR_HEIGHT = 22
GAP = 8
MARGIN = 10


class ScoreChart(QWidget):
    """Bars of ``metric`` for each profile, longest = best; empty until :meth:`set_bars`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.metric_name = ""
        self.top = 1.0
        self.bars: list[Bar] = []
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setMinimumHeight(80)

    def set_bars(self, metric: str, bars: list[Bar], top: float) -> None:
        """Show ``bars`` of ``metric`` scaled so ``top`` fills the width (a top of 0 or less scales to 1)."""
        self.metric_name, self.bars, self.top = metric, list(bars), top if top > 0 else 1.0
        self.setMinimumHeight(max(80, self.sizeHint().height()))  # every bar shows; the table gives way
        self.updateGeometry()
        self.update()

    def sizeHint(self) -> QSize:
        rows = max(len(self.bars), 1)
        return QSize(420, 2 * MARGIN + BAR_HEIGHT + rows * (BAR_HEIGHT + GAP))

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        try:
            self._paint(painter)
        finally:
            painter.end()  # here, not whenever Python frees the wrapper

    def _paint(self, painter: QPainter) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        text = palette.color(QPalette.ColorRole.WindowText)
        painter.fillRect(self.rect(), palette.color(QPalette.ColorRole.Base))
        metrics = QFontMetrics(self.font())
        if not self.bars:
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "Run a comparison to see the chart.")
            return
        widest = max(metrics.horizontalAdvance(bar.label) for bar in self.bars)
        label_width = min(widest + 2 * GAP, self.width() // 3)  # room to spare: no needless elision
        speed_width = max(metrics.horizontalAdvance(bar.speed_text) for bar in self.bars) + GAP
        value_width = max(metrics.horizontalAdvance(bar.value_text) for bar in self.bars) + GAP
        left = MARGIN + label_width
        span = max(self.width() - left - value_width - speed_width - MARGIN, 20)
        painter.setPen(text)
        title = f"{self.metric_name} (longer is better) · seconds per photo on the right"
        painter.drawText(QRectF(MARGIN, MARGIN, self.width() - 2 * MARGIN, BAR_HEIGHT),
                         Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, title)
        fill = palette.color(QPalette.ColorRole.Highlight)
        track = QColor(palette.color(QPalette.ColorRole.Mid))
        track.setAlpha(70)
        error = QColor(ERROR_TEXT[is_dark(self)])
        for row, bar in enumerate(self.bars):
            y = MARGIN + BAR_HEIGHT + GAP + row * (BAR_HEIGHT + GAP)
            middle = Qt.AlignmentFlag.AlignVCenter
            painter.setPen(text)
            name = metrics.elidedText(bar.label, Qt.TextElideMode.ElideMiddle, label_width - GAP)
            painter.drawText(QRectF(MARGIN, y, label_width - GAP, BAR_HEIGHT),
                             middle | Qt.AlignmentFlag.AlignRight, name)
            painter.fillRect(QRectF(left, y + 3, span, BAR_HEIGHT - 6), track)
            if bar.value is None:
                painter.setPen(error)
                note = metrics.elidedText(bar.note, Qt.TextElideMode.ElideRight, span - GAP)
                painter.drawText(QRectF(left + GAP / 2, y, span, BAR_HEIGHT), middle, note)
            else:
                width = span * min(max(bar.value / self.top, 0.0), 1.0)
                painter.fillRect(QRectF(left, y + 3, max(width, 2.0), BAR_HEIGHT - 6), fill)
                painter.setPen(text)
                painter.drawText(QRectF(left + span + GAP / 2, y, value_width, BAR_HEIGHT), middle,
                                 bar.value_text)
            painter.setPen(text)
            painter.drawText(QRectF(left + span + value_width, y, speed_width, BAR_HEIGHT),
                             middle | Qt.AlignmentFlag.AlignRight, bar.speed_text)
