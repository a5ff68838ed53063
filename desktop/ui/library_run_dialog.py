"""The Tag Photos dialog's logic: fill it from the window's state and the person's last choices, and turn
what they chose into the run's spec (what every photo is asked) and its scope."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QWidget

from captioneer.backends.base import EngineConfig
from captioneer.backends.errors import CaptioneerError, ConfigurationError
from captioneer.desktop.core.context import ContextSpec
from captioneer.desktop.core.engine_setup import Overrides, sampling_choices
from captioneer.desktop.core.tasks import all_tasks, get_task
from captioneer.desktop.library.photo_context import check_context
from captioneer.desktop.library.runs import RunSpec
from captioneer.desktop.ui.context_choices import chosen_context, fill_context
from captioneer.desktop.ui.library_browse import BrowseController
from captioneer.desktop.ui.library_run_dialog_view import SCOPES, RunDialogView
from captioneer.desktop.ui.library_selection import GridSelection
from captioneer.desktop.ui.library_session import LibrarySession


@dataclass(frozen=True)
class RunChoices:
    """What the person chose in the dialog, before it becomes a :class:`RunSpec`."""

    task: str
    language: str
    vocabulary: Path | None = None
    vocabulary_only: bool = True
    context: ContextSpec = ContextSpec()


class RunDialog:
    """Opens Tag Photos and builds the run's spec from it; the runs controller starts the run."""

    def __init__(
        self,
        session: LibrarySession,
        parent: QWidget,
        browse: BrowseController,
        selection: GridSelection,
        overrides: Overrides,
        engine_config: Callable[[], EngineConfig],
        explain: Callable[[CaptioneerError], str],
    ) -> None:
        self.session = session
        self.parent = parent
        self.browse = browse
        self.selection = selection
        self.overrides = overrides
        self.engine_config = engine_config
        self.explain = explain

    def run_spec(self, choices: RunChoices) -> RunSpec:
        """What every photo of a new run is asked, from the dialog's choices and the settings.

        Raises:
            ConfigurationError: no model is set up, the vocabulary file cannot be read, or the context
                cannot be sent (see :func:`check_context`).
        """
        config = self.engine_config()
        check_context(get_task(choices.task), choices.context)
        terms: tuple[str, ...] = ()
        synonyms: dict[str, str] = {}
        paths: dict[str, str] = {}
        if choices.vocabulary is not None:
            parsed = self.browse.load_vocabulary(choices.vocabulary)
            terms, synonyms, paths = parsed.terms, dict(parsed.synonyms), dict(parsed.paths)
        return RunSpec(
            task=choices.task,
            language=choices.language or self.session.settings.language,
            vocabulary=terms,
            synonyms=synonyms,
            vocabulary_only=choices.vocabulary_only and bool(terms),
            sampling=sampling_choices(self.session.settings, self.overrides),
            image_tokens=config.image_tokens,
            keyword_paths=paths,
            context=choices.context.variables,
            context_event=choices.context.event,
            context_people=choices.context.people,
            context_location=choices.context.location,
        )

    def ask(self, scope: str = "", redo: bool = False) -> tuple[RunSpec, str, bool] | None:
        """Show the dialog, preset with ``scope`` and ``redo``; the run's spec, its scope (``selection``,
        ``folder`` or ``filter``) and whether to tag again, or None when cancelled or the choices cannot make
        a run (said in the window)."""
        dialog = RunDialogView(self.parent)
        selected = len(self.selection.selected_rows())
        folder = self.browse.current_folder()
        dialog.scope_selection.setText(f"Selected photos ({selected:,})")
        dialog.scope_folder.setText(f"Folder {folder} (scanned for new photos first)" if folder else "Folder")
        dialog.scope_folder.setEnabled(bool(folder))
        dialog.scope_filter.setText(
            f"Photos shown now ({self.selection.model.rowCount():,}: {self.browse.filter.describe()})"
        )
        (
            dialog.scope_selection
            if selected > 1 or scope == "selection"
            else dialog.scope_folder
            if folder
            else dialog.scope_filter
        ).setChecked(True)
        dialog.redo.setChecked(redo)
        prefs = self.session.prefs
        for task in all_tasks().values():
            if not task.needs_question:
                dialog.task.addItem(task.label, task.id)
        dialog.task.setCurrentIndex(max(0, dialog.task.findData(prefs.task)))
        dialog.language.setText(prefs.language or self.session.settings.language)
        dialog.vocabulary.setText(prefs.vocabulary)
        dialog.vocabulary_only.setChecked(prefs.vocabulary_only)
        fill_context(dialog.context, prefs, dialog.task)
        try:
            config = self.engine_config()
            dialog.engine.setText(f"{Path(config.model).name or config.model} ({config.engine})")
        except ConfigurationError as exc:
            dialog.engine.setText(self.explain(exc))
            dialog.start_button.setEnabled(False)
        dialog.vocabulary_browse.clicked.connect(
            lambda: dialog.vocabulary.setText(
                QFileDialog.getOpenFileName(dialog, "Vocabulary", "", "Text files (*.txt);;All files (*)")[0]
                or dialog.vocabulary.text()
            )
        )
        if dialog.exec() != dialog.DialogCode.Accepted:
            return None
        vocabulary = dialog.vocabulary.text().strip()
        prefs.task = dialog.task.currentData()
        prefs.language = dialog.language.text().strip()
        prefs.vocabulary = vocabulary
        prefs.vocabulary_only = dialog.vocabulary_only.isChecked()
        choices = RunChoices(
            prefs.task,
            prefs.language,
            Path(vocabulary).expanduser() if vocabulary else None,
            prefs.vocabulary_only,
            chosen_context(dialog.context, prefs),
        )
        try:
            spec = self.run_spec(choices)
        except CaptioneerError as exc:
            self.session.notify(self.explain(exc))
            return None
        return spec, SCOPES[dialog.scope_buttons.checkedId()], dialog.redo.isChecked()
