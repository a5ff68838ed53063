"""The Tag Photos dialog's "Keywords" group, layout only: how many keywords, required and banned ones,
singular/plural, the "and" split, prompt echoes, the script, the library's top keywords as the vocabulary,
and which folder rules apply."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

NUMBER_LABELS = (
    ("keep", "As the model says"),
    ("singular", "Singular (English)"),
    ("plural", "Plural (English)"),
)


class KeywordOptionsView(QGroupBox):
    """Keyword control for a run and the folder rules line (see the README's Keyword control section)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Keywords", parent)
        self.min_count = QSpinBox()
        self.min_count.setRange(0, 100)
        self.min_count.setSpecialValueText("no minimum")
        self.min_count.setToolTip("A result with fewer keywords is flagged for review; nothing is invented.")
        self.max_count = QSpinBox()
        self.max_count.setRange(1, 100)
        counts = QHBoxLayout()
        counts.addWidget(QLabel("at least"))
        counts.addWidget(self.min_count)
        counts.addWidget(QLabel("at most"))
        counts.addWidget(self.max_count)
        counts.addStretch(1)
        self.required = QLineEdit()
        self.required.setPlaceholderText("always added, first: Client X, Summer Party")
        self.excluded = QLineEdit()
        self.excluded.setPlaceholderText('never kept, also inside phrases ("dog" drops "hot dogs")')
        self.number = QComboBox()
        for value, label in NUMBER_LABELS:
            self.number.addItem(label, value)
        self.split_and = QCheckBox('Split "sun and sea" into two keywords')
        self.script_only = QCheckBox("Only keywords in the language's script")
        self.drop_prompt_words = QCheckBox("Drop keywords that only repeat the prompt")
        self.top = QSpinBox()
        self.top.setRange(0, 5000)
        self.top.setSpecialValueText("off (the vocabulary file above, if any)")
        self.top.setPrefix("the library's ")
        self.top.setSuffix(" most-used keywords")
        self.top.setToolTip("Use the library's N most-used keywords as the vocabulary instead of a file.")
        self.rules = QLabel()
        self.rules.setWordWrap(True)
        self.open_rules = QPushButton("Open rules file")
        rules_row = QHBoxLayout()
        rules_row.addWidget(self.open_rules)
        rules_row.addStretch(1)
        form = QFormLayout(self)
        form.addRow("Number", counts)
        form.addRow("Required", self.required)
        form.addRow("Banned", self.excluded)
        form.addRow("Singular/plural", self.number)
        form.addRow("", self.split_and)
        form.addRow("", self.script_only)
        form.addRow("", self.drop_prompt_words)
        form.addRow("Vocabulary", self.top)
        form.addRow("Folder rules", self.rules)
        form.addRow("", rules_row)
