"""The settings dialog's behaviour: show the saved settings, enable what the chosen engine uses, validate,
and hand back a new :class:`~captioneer.desktop.core.settings.Settings`."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QLabel, QLineEdit, QPlainTextEdit, QWidget

from captioneer.backends.errors import ModelFileError
from captioneer.backends.registry import ENGINES, engine_entry, engine_installed
from captioneer.desktop.core.images import PixelBudget
from captioneer.desktop.core.model_files import own_model
from captioneer.desktop.core.settings import Settings
from captioneer.desktop.core.settings_check import settings_problems
from captioneer.desktop.core.tasks import DEFAULT_LANGUAGE
from captioneer.desktop.core.video_budget import DEFAULT_MAX_FRAME_TOKENS
from captioneer.desktop.ui.settings_view import SettingsView


def budget_hint(tokens: int) -> str:
    """What an image-token budget means in pixels (one token is 32×32 pixels)."""
    megapixels = tokens * 32 * 32 / 1_000_000
    return f"≈ {megapixels:.1f} megapixels per photo"


def clip_budget_hint(tokens: int) -> str:
    """What a clip budget means: how many full-size frames of a 16:9 clip it pays for."""
    width, height = PixelBudget(max_tokens=DEFAULT_MAX_FRAME_TOKENS).fit(1920, 1080)
    frames = tokens / (width // 32 * (height // 32))
    return f"≈ {frames:.1f} full-size frames ({width}×{height}) per clip, or more smaller ones"


class SettingsDialog(SettingsView):
    """Edit a copy of the settings; :meth:`result_settings` returns the validated result."""

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._original = settings
        self._result = settings
        for name, entry in ENGINES.items():
            installed = engine_installed(name)
            self.engine.addItem(name if installed else f"{name} (not installed)", name)
            self.engine.setItemData(self.engine.count() - 1, entry.summary, Qt.ItemDataRole.ToolTipRole)
        self.engine.currentIndexChanged.connect(self._engine_changed)
        self.image_tokens.valueChanged.connect(lambda v: self.image_tokens_hint.setText(budget_hint(v)))
        self.video_tokens.valueChanged.connect(lambda v: self.video_tokens_hint.setText(clip_budget_hint(v)))
        self.model_browse.clicked.connect(self._browse_model)
        self.mmproj_browse.clicked.connect(self._browse_mmproj)
        self.buttons.accepted.connect(self._save)
        for label, field in self.field_errors().values():  # an edit answers the message under it
            edited = field.textChanged if isinstance(field, QPlainTextEdit) else field.textEdited
            edited.connect(label.hide)
        self.load(settings)

    def load(self, settings: Settings) -> None:
        self.engine.setCurrentIndex(max(0, self.engine.findData(settings.engine)))
        self.model.setText(settings.model)
        self.mmproj.setText(settings.mmproj or "")
        index = self.quant.findData(settings.quant or "")
        if index < 0:
            self.quant.addItem(settings.quant or "", settings.quant)
            index = self.quant.count() - 1
        self.quant.setCurrentIndex(index)
        self.device.setCurrentText(settings.device)
        self.image_tokens.setValue(settings.image_tokens)
        self.image_tokens_hint.setText(budget_hint(settings.image_tokens))
        self.video_tokens.setValue(settings.video_tokens)
        self.video_tokens_hint.setText(clip_budget_hint(settings.video_tokens))
        self.max_tokens.setValue(settings.max_tokens or 0)
        self.temperature.setValue(settings.temperature)
        self.language.setCurrentText(settings.language)
        self.ollama_host.setText(settings.ollama_host or "")
        self.openai_urls.setPlainText("\n".join(settings.openai_base_urls))
        self.openai_key.setText(settings.openai_api_key or "")
        self.server_parallel.setValue(settings.server_parallel)
        self.server_connect_timeout.setValue(settings.server_connect_timeout)
        self.server_read_timeout.setValue(settings.server_read_timeout)
        self.server_request_timeout.setValue(settings.server_request_timeout)
        self.server_retry_down_after.setValue(settings.server_retry_down_after)
        self.server_max_answer_kb.setValue(settings.server_max_answer_kb)
        mode = self.metadata_mode.findData(settings.metadata_mode)
        if mode < 0:
            self.metadata_mode.addItem(settings.metadata_mode, settings.metadata_mode)
            mode = self.metadata_mode.count() - 1
        self.metadata_mode.setCurrentIndex(mode)
        self.theme.setCurrentIndex(max(0, self.theme.findData(settings.theme)))
        self._engine_changed()

    def _engine_changed(self) -> None:
        entry = engine_entry(self.engine.currentData())
        self.mmproj.setEnabled(entry.needs_mmproj)
        self.mmproj_browse.setEnabled(entry.needs_mmproj)
        self.model_browse.setEnabled(entry.local_files)
        self.quant.setEnabled(entry.quant_choice)
        self.device.setEnabled(entry.local_files)
        for field in (
            self.server_parallel, self.server_connect_timeout, self.server_read_timeout,
            self.server_request_timeout, self.server_retry_down_after, self.server_max_answer_kb,
        ):
            field.setEnabled(entry.server)

    def _browse_model(self) -> None:
        start = str(Path(self.model.text()).parent) if self.model.text() else str(Path.home())
        if engine_entry(self.engine.currentData()).model_folder:
            folder = QFileDialog.getExistingDirectory(self, "Choose the model folder", start)
            if folder:
                self.model.setText(folder)
            return
        path, _ = QFileDialog.getOpenFileName(self, "Choose the GGUF model", start, "GGUF models (*.gguf)")
        if path:
            self.model_picked(path)

    def model_picked(self, path: str) -> None:
        """Take a picked GGUF file: the model and its projector when they pair up, else the file as given
        (Save says what is wrong with it)."""
        try:
            own = own_model(path)
        except ModelFileError:
            self.model.setText(path)
            return
        self.model.setText(str(own.model))
        if own.mmproj is not None:
            self.mmproj.setText(str(own.mmproj))

    def _browse_mmproj(self) -> None:
        start = str(Path(self.model.text()).parent) if self.model.text() else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(
            self, "Choose the vision projector", start, "GGUF projectors (mmproj*.gguf *.gguf)"
        )
        if path:
            self.mmproj.setText(path)

    def collect(self) -> Settings:
        """The settings as the form shows them.

        Raises:
            ValidationError: a value is out of range.
        """
        urls = [line.strip() for line in self.openai_urls.toPlainText().splitlines() if line.strip()]
        values = self._original.model_dump()
        values.update(
            engine=self.engine.currentData(),
            model=self.model.text().strip(),
            mmproj=self.mmproj.text().strip() or None,
            quant=self.quant.currentData() or None,
            device=self.device.currentText(),
            image_tokens=self.image_tokens.value(),
            video_tokens=self.video_tokens.value(),
            max_tokens=self.max_tokens.value() or None,
            temperature=round(self.temperature.value(), 2),
            language=self.language.currentText().strip() or DEFAULT_LANGUAGE,
            ollama_host=self.ollama_host.text().strip() or None,
            openai_base_urls=urls,
            openai_api_key=self.openai_key.text() or None,
            server_parallel=self.server_parallel.value(),
            server_connect_timeout=round(self.server_connect_timeout.value(), 1),
            server_read_timeout=round(self.server_read_timeout.value(), 1),
            server_request_timeout=round(self.server_request_timeout.value(), 1),
            server_retry_down_after=round(self.server_retry_down_after.value(), 1),
            server_max_answer_kb=self.server_max_answer_kb.value(),
            metadata_mode=self.metadata_mode.currentData(),
            theme=self.theme.currentData(),
        )
        return Settings.model_validate(values)

    def field_errors(self) -> dict[str, tuple[QLabel, QLineEdit | QPlainTextEdit]]:
        """Each checked setting's error line and the field it belongs to."""
        return {
            "model": (self.model_error, self.model),
            "mmproj": (self.mmproj_error, self.mmproj),
            "ollama_host": (self.ollama_host_error, self.ollama_host),
            "openai_base_urls": (self.openai_urls_error, self.openai_urls),
        }

    def _save(self) -> None:
        for label, _field in self.field_errors().values():
            label.hide()
        self.error.hide()
        try:
            chosen = self.collect()
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            self.error.setText(f"Some values are not valid — {problems}")
            self.error.show()
            return
        problems = settings_problems(chosen)
        if problems:
            self._show_problems(problems)
            return
        self._result = chosen
        self.accept()

    def _show_problems(self, problems: dict[str, str]) -> None:
        """Say what is wrong next to each field, and go to the first one; nothing typed is lost."""
        fields = self.field_errors()
        first: QWidget | None = None
        for name, problem in problems.items():
            label, field = fields[name]
            label.setText(problem)
            label.show()
            # A tab page does not pass on a wrapped label's height for its width: ask for it explicitly, so
            # the message pushes the fields below it down instead of being drawn over them.
            label.setMinimumHeight(label.heightForWidth(max(field.width(), 240)))
            first = first or field
        assert first is not None
        tab = next(i for i in range(self.tabs.count()) if self.tabs.widget(i).isAncestorOf(first))
        self.tabs.setCurrentIndex(tab)
        first.setFocus()
        which = "the setting" if len(problems) == 1 else f"the {len(problems)} settings"
        self.error.setText(f"Not saved yet: fix {which} marked in red, then Save again.")
        self.error.show()
        self.adjustSize()

    def result_settings(self) -> Settings:
        return self._result
