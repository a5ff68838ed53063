"""The Tag Photos dialog's logic: fill it from the window's state and the person's last choices, and turn
what they chose into the run's spec (what every photo is asked) and its scope."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QFileDialog, QWidget

from captioneer.backends.base import EngineConfig
from captioneer.backends.errors import CaptioneerError, ConfigurationError
from captioneer.desktop.core.context import ContextSpec
from captioneer.desktop.core.engine_setup import Overrides, sampling_choices
from captioneer.desktop.core.settings import clip_budget, save_settings
from captioneer.desktop.core.tasks import all_tasks, get_task
from captioneer.desktop.library.browse import photos_by_id
from captioneer.desktop.library.catalog import Photo
from captioneer.desktop.library.folder_rules import FolderRule
from captioneer.desktop.library.keyword_rules import check_rules
from captioneer.desktop.library.photo_context import check_context
from captioneer.desktop.library.rule_runs import library_vocabulary
from captioneer.desktop.library.run_spec import context_fields, vocabulary_fields
from captioneer.desktop.library.runs import RunSpec
from captioneer.desktop.ui.context_choices import chosen_context, fill_context
from captioneer.desktop.ui.keyword_options import KeywordOptions
from captioneer.desktop.ui.library_browse import BrowseController
from captioneer.desktop.ui.library_run_dialog_view import SCOPES, RunDialogView
from captioneer.desktop.ui.library_selection import GridSelection
from captioneer.desktop.ui.library_session import LibrarySession
from captioneer.desktop.ui.video_options import ClipEngine, VideoOptions


@dataclass(frozen=True)
class RunChoices:
    """What the person chose in the dialog, before it becomes a :class:`RunSpec`."""

    task: str
    language: str
    vocabulary: Path | None = None
    vocabulary_only: bool = True
    context: ContextSpec = ContextSpec()
    keyword_fields: dict[str, Any] = field(default_factory=dict)
    """The Keywords group's run spec fields (keyword control, the library's top-N keywords)."""
    video_tokens: int | None = None
    """The clip budget chosen (None: the settings' default)."""


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
        self.rules: tuple[FolderRule, ...] = ()
        """The folder rules the last accepted dialog showed (the run groups its photos by them)."""

    def run_spec(self, choices: RunChoices) -> RunSpec:
        """What every photo of a new run is asked, from the dialog's choices and the settings.

        Raises:
            ConfigurationError: no model is set up, the vocabulary file cannot be read, both it and the
                library's top keywords are chosen (or the library has none yet), or the context cannot be sent
                (see :func:`check_context`).
        """
        config = self.engine_config()
        check_context(get_task(choices.task), choices.context)
        top = choices.keyword_fields.get("vocabulary_top", 0)
        vocabulary = None
        if choices.vocabulary is not None:
            if top:
                raise ConfigurationError("Choose a vocabulary file or the library's top keywords, not both.")
            vocabulary = self.browse.load_vocabulary(choices.vocabulary)
        spec = RunSpec(
            task=choices.task,
            language=choices.language or self.session.settings.language,
            vocabulary_only=choices.vocabulary_only and bool(vocabulary or top),
            sampling=sampling_choices(self.session.settings, self.overrides),
            image_tokens=config.image_tokens,
            video_tokens=clip_budget(self.session.settings, choices.video_tokens),
            **vocabulary_fields(vocabulary),
            **context_fields(choices.context),
            **choices.keyword_fields,
        )
        check_rules(spec.keyword_rules(), spec.max_keywords)
        return library_vocabulary(self.session.catalog, spec)

    def remember_clip_budget(self, tokens: int) -> None:
        """A clip budget changed in the dialog becomes the settings' default, as if changed in Settings."""
        if tokens != self.session.settings.video_tokens:
            self.session.settings = self.session.settings.model_copy(update={"video_tokens": tokens})
            save_settings(self.session.settings)

    def scope_photos(self, scope: str) -> list[Photo]:
        """The photos catalogued now that ``scope`` (one of :data:`SCOPES`) would tag."""
        if scope == "folder":
            folder = self.browse.current_folder()
            return self.session.catalog.photos_under(Path(folder)) if folder else []
        if scope == "selection":
            ids = [row.photo_id for row in self.selection.selected_rows()]
        else:
            ids = list(self.selection.model.ids())
        return photos_by_id(self.session.catalog, ids)

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
                dialog.task.addItem(task.choice_label, task.id)
        dialog.task.setCurrentIndex(max(0, dialog.task.findData(prefs.task)))
        dialog.language.setText(prefs.language or self.session.settings.language)
        dialog.vocabulary.setText(prefs.vocabulary)
        dialog.vocabulary_only.setChecked(prefs.vocabulary_only)
        fill_context(dialog.context, prefs, dialog.task)
        engine = ClipEngine(self.session.settings.engine)
        try:
            config = self.engine_config()
            dialog.engine.setText(f"{Path(config.model).name or config.model} ({config.engine})")
            engine = ClipEngine.of(config)
        except ConfigurationError as exc:
            dialog.engine.setText(self.explain(exc))
            dialog.start_button.setEnabled(False)
        videos = VideoOptions(
            dialog.videos, dialog.clip_warning, self.session.settings.video_tokens, engine
        )
        keywords = KeywordOptions(dialog.keywords, prefs)
        dialog.keywords.top.valueChanged.connect(
            lambda top: dialog.vocabulary_only.setEnabled(bool(top or dialog.vocabulary.text().strip()))
        )

        def show_scope() -> None:
            photos = self.scope_photos(SCOPES[dialog.scope_buttons.checkedId()])
            keywords.show_rules(self.session.catalog, photos)
            videos.show_photos(photos)
            title = f"Videos ({videos.count:,})" if videos.count else "Videos"
            dialog.options.setTabText(dialog.videos_tab, title)

        dialog.scope_buttons.idToggled.connect(lambda _id, on: show_scope() if on else None)
        show_scope()
        if keywords.rules_error:
            dialog.start_button.setEnabled(False)
        dialog.vocabulary_browse.clicked.connect(
            lambda: dialog.vocabulary.setText(
                QFileDialog.getOpenFileName(dialog, "Vocabulary", "", "Text files (*.txt);;All files (*)")[0]
                or dialog.vocabulary.text()
            )
        )
        accepted = dialog.exec() == dialog.DialogCode.Accepted
        videos.close()
        if not accepted:
            return None
        self.remember_clip_budget(videos.tokens())
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
            keywords.fields(),
            videos.tokens(),
        )
        self.rules = keywords.rules
        try:
            spec = self.run_spec(choices)
        except CaptioneerError as exc:
            self.session.notify(self.explain(exc))
            return None
        return spec, SCOPES[dialog.scope_buttons.checkedId()], dialog.redo.isChecked()
