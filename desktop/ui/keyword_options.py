"""The Tag Photos dialog's Keywords group: filled from the last choices, read back as the run spec's keyword
fields, and the line saying which folder rules apply to the chosen photos."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices

from captioneer.backends.errors import ConfigurationError
from captioneer.desktop.core.tasks import DEFAULT_MAX_KEYWORDS
from captioneer.desktop.library.browse import LibraryPrefs
from captioneer.desktop.library.catalog import Catalog, Photo
from captioneer.desktop.library.folder_rules import (
    FolderRule,
    describe_groups,
    ensure_rules_file,
    read_rules,
    rules_path,
)
from captioneer.desktop.library.keyword_rules import NUMBER_CHOICES, parse_keyword_list
from captioneer.desktop.library.rule_runs import rule_groups
from captioneer.desktop.ui.keyword_options_view import KeywordOptionsView


class KeywordOptions:
    """Wires a :class:`KeywordOptionsView`: the person's last choices in, the run spec's fields out."""

    def __init__(self, view: KeywordOptionsView, prefs: LibraryPrefs) -> None:
        self.view = view
        self.prefs = prefs
        self.rules: tuple[FolderRule, ...] = ()
        self.rules_error = ""
        chosen = prefs.keyword_choices
        view.min_count.setValue(int(chosen.get("min_keywords", 0)))
        view.max_count.setValue(int(chosen.get("max_keywords", DEFAULT_MAX_KEYWORDS)))
        view.required.setText(", ".join(chosen.get("required", ())))
        view.excluded.setText(", ".join(chosen.get("excluded", ())))
        view.number.setCurrentIndex(max(0, view.number.findData(chosen.get("number", "keep"))))
        view.split_and.setChecked(bool(chosen.get("split_and", False)))
        view.script_only.setChecked(bool(chosen.get("script_only", False)))
        view.drop_prompt_words.setChecked(bool(chosen.get("drop_prompt_words", False)))
        view.top.setValue(int(chosen.get("vocabulary_top", 0)))
        view.open_rules.clicked.connect(self.open_rules_file)
        self.load_rules()

    def fields(self) -> dict[str, Any]:
        """The :class:`~captioneer.desktop.library.runs.RunSpec` fields chosen (remembered for next time)."""
        view = self.view
        number = view.number.currentData()
        chosen = {
            "max_keywords": view.max_count.value(),
            "min_keywords": view.min_count.value(),
            "required": parse_keyword_list(view.required.text()),
            "excluded": parse_keyword_list(view.excluded.text()),
            "number": number if number in NUMBER_CHOICES else "keep",
            "split_and": view.split_and.isChecked(),
            "script_only": view.script_only.isChecked(),
            "drop_prompt_words": view.drop_prompt_words.isChecked(),
            "vocabulary_top": view.top.value(),
        }
        self.prefs.keyword_choices = {
            key: list(value) if isinstance(value, tuple) else value for key, value in chosen.items()
        }
        return chosen

    def load_rules(self) -> None:
        """Read the folder rules file; a broken one is said in the group (and no run starts with it)."""
        try:
            self.rules, self.rules_error = read_rules(rules_path()), ""
        except ConfigurationError as exc:
            self.rules, self.rules_error = (), str(exc)

    def show_rules(self, catalog: Catalog, photos: Sequence[Photo]) -> None:
        """Say which rules take which of ``photos`` (the scope chosen now)."""
        if self.rules_error:
            text = self.rules_error
        elif not self.rules:
            text = "None (a rule picks a task and vocabulary by folder)"
        else:
            text = describe_groups(rule_groups(catalog, photos, self.rules)) or (
                f"{len(self.rules)} rules; none applies to these photos"
            )
        self.view.rules.setText(text)

    def open_rules_file(self) -> None:
        """Open the rules file in the system's editor (first written with a commented example)."""
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(ensure_rules_file(rules_path()))))
