"""Compare Models' layout: the photos, the optional reference captions and the profiles to compare on top;
Run, Cancel and the progress in the middle; the results table with its chart and the actions below."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from captioneer.desktop.ui.score_chart_view import ScoreChart
from captioneer.desktop.ui.theme import heading, set_error_style

NO_REFERENCES = "None: caption metrics (BLEU-4, METEOR, ROUGE-L, CIDEr) need reference captions (COCO JSON)"
NO_VOCABULARY = "None: keywords are compared as written (after the usual clean-up of case and plurals)"
DETAIL_TOKENS = (256, 512, 1024)
"""The image details offered, in visual tokens (one token covers 32×32 pixels)."""


class CompareModelsView(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Compare Models")
        self.resize(1040, 780)
        intro = QLabel(
            "Run several models, precisions and image details on your own photos and compare quality and "
            "speed. Photos that already carry keywords are the answer key; nothing is written to any photo."
        )
        intro.setWordWrap(True)

        self.folder_label = QLabel("No folder chosen")
        self.folder_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.folder_button = QPushButton("Choose Folder…")
        self.photo_info = QLabel("Choose a folder of photos to compare the models on.")
        self.photo_info.setWordWrap(True)
        self.references_label = QLabel(NO_REFERENCES)
        self.references_label.setWordWrap(True)
        self.references_button = QPushButton("Choose File…")
        self.references_clear = QPushButton("Clear")
        self.references_clear.hide()
        self.vocabulary_label = QLabel(NO_VOCABULARY)
        self.vocabulary_label.setWordWrap(True)
        self.vocabulary_label.setToolTip("A vocabulary file (keyword = synonym, synonym) maps synonyms to "
                                         "one keyword on both sides before they are compared")
        self.vocabulary_button = QPushButton("Choose File…")
        self.vocabulary_clear = QPushButton("Clear")
        self.vocabulary_clear.hide()
        self.limit = QSpinBox()
        self.limit.setRange(0, 100_000)
        self.limit.setValue(20)
        self.limit.setSpecialValueText("all")
        self.limit.setPrefix("first ")
        self.limit.setSuffix(" photos")
        self.limit.setToolTip("A first try on 20 photos is quick; set it to 0 for every photo in the folder")

        self.models = QListWidget()
        self.models.setMaximumHeight(96)
        self.models_empty = QLabel("No models are installed here yet: use Models ▸ Set Up a Model… first.")
        self.models_empty.setWordWrap(True)
        self.models_empty.hide()
        self.details = {tokens: QCheckBox(f"{tokens} tokens") for tokens in DETAIL_TOKENS}
        self.detail_box = detail_box = QVBoxLayout()
        detail_box.addWidget(heading("Image detail"))
        for box in self.details.values():
            detail_box.addWidget(box)
        detail_box.addStretch(1)
        self.profile_count = QLabel()
        self.profile_count.setWordWrap(True)

        grid = QGridLayout()
        grid.setColumnStretch(1, 1)
        grid.addWidget(heading("Photos"), 0, 0)
        grid.addWidget(self.folder_label, 0, 1)
        grid.addWidget(self.folder_button, 0, 2)
        grid.addWidget(self.photo_info, 1, 1, 1, 2)
        optional_files = (
            ("References", self.references_label, self.references_button, self.references_clear),
            ("Vocabulary", self.vocabulary_label, self.vocabulary_button, self.vocabulary_clear),
        )
        for row, (title, label, choose, clear) in enumerate(optional_files, start=2):
            grid.addWidget(heading(title), row, 0)
            grid.addWidget(label, row, 1)
            buttons = QHBoxLayout()
            buttons.addWidget(choose)
            buttons.addWidget(clear)
            grid.addLayout(buttons, row, 2)
        grid.addWidget(heading("Limit"), 4, 0)
        limit_row = QHBoxLayout()
        limit_row.addWidget(self.limit)
        limit_row.addStretch(1)
        grid.addLayout(limit_row, 4, 1)
        grid.addWidget(heading("Models"), 5, 0, Qt.AlignmentFlag.AlignTop)
        models_column = QVBoxLayout()
        models_column.addWidget(self.models)
        models_column.addWidget(self.models_empty)
        models_column.addWidget(self.profile_count)
        grid.addLayout(models_column, 5, 1)
        grid.addLayout(detail_box, 5, 2)

        self.banner = QFrame()
        self.banner.setObjectName("banner")
        self.banner.setStyleSheet(
            "#banner { background: palette(alternate-base); border: 1px solid palette(mid); }"
        )
        self.banner_text = QLabel()
        self.banner_text.setWordWrap(True)
        set_error_style(self.banner_text)
        self.banner_button = QPushButton()
        banner_layout = QHBoxLayout(self.banner)
        banner_layout.setContentsMargins(10, 6, 10, 6)
        banner_layout.addWidget(self.banner_text, 1)
        banner_layout.addWidget(self.banner_button)
        self.banner.hide()
        self.engine_note = QLabel()
        self.engine_note.setWordWrap(True)
        self.engine_note.hide()

        self.run_button = QPushButton("Run Comparison")
        self.run_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        self.progress.hide()  # until the first run
        self.progress_label = QLabel()
        run_row = QHBoxLayout()
        run_row.addWidget(self.run_button)
        run_row.addWidget(self.cancel_button)
        run_row.addWidget(self.progress, 1)
        run_row.addWidget(self.progress_label, 1)

        self.table = QTableWidget(0, 0)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSortingEnabled(True)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(True)  # a failed profile's reason wraps in its Note instead of being cut
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.metric_combo = QComboBox()
        self.chart = ScoreChart()
        chart_panel = QWidget()
        chart_layout = QVBoxLayout(chart_panel)
        chart_layout.setContentsMargins(0, 0, 0, 0)
        chart_row = QHBoxLayout()
        chart_row.addWidget(QLabel("Chart:"))
        chart_row.addWidget(self.metric_combo)
        chart_row.addStretch(1)
        chart_layout.addLayout(chart_row)
        chart_layout.addWidget(self.chart, 1)
        self.results = QSplitter(Qt.Orientation.Vertical)
        self.results.addWidget(self.table)
        self.results.addWidget(chart_panel)
        self.results.setStretchFactor(0, 1)
        self.results.setStretchFactor(1, 1)
        self.footer = QLabel()
        self.footer.setWordWrap(True)

        self.use_button = QPushButton("Use This Model…")
        self.use_button.setToolTip("Caption with the selected profile's model, precision and image detail")
        self.use_button.setEnabled(False)
        self.csv_button = QPushButton("Save CSV…")
        self.csv_button.setEnabled(False)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.reject)
        actions = QHBoxLayout()
        actions.addWidget(self.use_button)
        actions.addWidget(self.csv_button)
        actions.addStretch(1)
        actions.addWidget(self.close_button)

        layout = QVBoxLayout(self)
        layout.setSpacing(8)
        layout.addWidget(intro)
        layout.addLayout(grid)
        layout.addWidget(self.engine_note)
        layout.addWidget(self.banner)
        layout.addLayout(run_row)
        layout.addWidget(self.results, 1)
        layout.addWidget(self.footer)
        layout.addLayout(actions)

    def add_detail(self, tokens: int) -> QCheckBox:
        """One more image detail to offer (the one in the settings when it is not a usual one), in order."""
        box = QCheckBox(f"{tokens} tokens")
        self.details[tokens] = box
        self.detail_box.insertWidget(1 + sorted(self.details).index(tokens), box)  # after the heading
        return box

    def set_banner(self, text: str | None, button: str = "") -> None:
        """An error over the results, with the button that fixes it (none when nothing here does)."""
        self.banner.setVisible(bool(text))
        self.banner_text.setText(text or "")
        self.banner_button.setText(button)
        self.banner_button.setVisible(bool(button))

    def set_running(self, running: bool) -> None:
        """While a comparison runs only Cancel and Close answer; the choices stay as they were run."""
        for widget in (self.folder_button, self.references_button, self.references_clear,
                       self.vocabulary_button, self.vocabulary_clear, self.limit,
                       self.models, *self.details.values(), self.run_button, self.use_button,
                       self.csv_button):
            widget.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.progress.show()


class SortedCell(QTableWidgetItem):
    """A table cell that sorts by its value (numbers as numbers; a missing value sorts last)."""

    def __init__(self, text: str, key: float | str | None) -> None:
        super().__init__(text)
        self.key = key

    def __lt__(self, other: Any) -> bool:
        mine, theirs = self.key, getattr(other, "key", None)
        if mine is None or theirs is None:
            return mine is not None and theirs is None
        if isinstance(mine, str) or isinstance(theirs, str):
            return str(mine) < str(theirs)
        return mine < theirs
