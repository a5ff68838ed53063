"""The behaviour of the "use model files I already have" panel: ask for a file, pair a GGUF model with its
vision projector (or ask for the projector when none or several fit), and work out the image detail the
recommendation gives that model on this computer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QWidget

from captioneer.backends.errors import ModelFileError
from captioneer.backends.recommend import Profile
from captioneer.desktop.core.fixes import window_error
from captioneer.desktop.core.model_files import (
    OwnModel,
    own_model,
    own_model_settings,
    recommended_image_tokens,
    with_projector,
)
from captioneer.desktop.core.settings import Settings
from captioneer.desktop.ui.own_files_view import OwnFilesView

MODEL_FILTER = (
    "Qwen3-VL models (*.gguf config.json);;GGUF files (*.gguf);;Transformers model folder (config.json)"
)


class OwnFiles(QObject):
    """Drives an :class:`OwnFilesView`. ``changed`` fires with the :class:`OwnModel` (or None) whenever the
    choice changes; ``ready()`` says when it can be used (a GGUF model has its projector)."""

    changed = Signal(object)

    def __init__(self, view: OwnFilesView, parent: QWidget, profiles: Callable[[], list[Profile]]) -> None:
        super().__init__(parent)
        self.view = view
        self.parent_widget = parent
        self.profiles = profiles
        self.own: OwnModel | None = None
        # Whether the recommendation for this computer is still being worked out (the model manager probes).
        self.recommending: Callable[[], bool] = lambda: False
        # The system file dialogs; tests put a path here instead of clicking through one.
        self.ask_model_path: Callable[[], str] = self._ask_model_path
        self.ask_mmproj_path: Callable[[], str] = self._ask_mmproj_path
        view.use_button.clicked.connect(self.choose_model)
        view.choose_mmproj_button.clicked.connect(self.choose_mmproj)

    def ready(self) -> bool:
        return self.own is not None and not self.own.needs_projector

    def image_tokens(self) -> int | None:
        return recommended_image_tokens(self.profiles(), self.own) if self.own is not None else None

    def settings(self, settings: Settings) -> Settings:
        """``settings`` using the picked files and their recommended image detail."""
        assert self.own is not None
        return own_model_settings(settings, self.own, self.image_tokens())

    # -- asking ------------------------------------------------------------------------------------------

    def _start_folder(self) -> str:
        return str(self.own.model.parent) if self.own is not None else str(Path.home())

    def _ask_model_path(self) -> str:
        path, _ = QFileDialog.getOpenFileName(
            self.parent_widget, "Choose the model file", self._start_folder(), MODEL_FILTER
        )
        return path

    def _ask_mmproj_path(self) -> str:
        path, _ = QFileDialog.getOpenFileName(self.parent_widget, "Choose the vision projector",
                                              self._start_folder(), "GGUF projectors (*mmproj*.gguf *.gguf)")
        return path

    def choose_model(self) -> None:
        path = self.ask_model_path()
        if path:
            self.pick(path)

    def choose_mmproj(self) -> None:
        path = self.ask_mmproj_path()
        if path and self.own is not None:
            try:
                self.own = with_projector(self.own, path)
            except ModelFileError as exc:
                self._show_error(window_error(exc).text)
                return
            self.show_choice()

    def pick(self, path: str | Path) -> None:
        """Take a picked file or folder: pair it, or say what is wrong with it."""
        try:
            self.own = own_model(path)
        except ModelFileError as exc:
            self.own = None
            self._show_error(window_error(exc).text)
            self.changed.emit(None)
            return
        self.show_choice()

    def clear(self) -> None:
        """Forget the picked files (another choice was made)."""
        if self.own is None and not self.view.error.isVisible():
            return
        self.own = None
        self.view.details.hide()
        self.view.error.hide()
        self.view.choose_mmproj_button.hide()
        self.changed.emit(None)

    # -- showing -----------------------------------------------------------------------------------------

    def _show_error(self, text: str) -> None:
        view = self.view
        view.error.setText(text)
        view.error.show()
        view.details.setVisible(self.own is not None)
        view.choose_mmproj_button.setVisible(self.own is not None and self.own.needs_projector)

    def show_choice(self) -> None:
        """Show the picked files, their projector and image detail, and announce them (``changed``)."""
        own, view = self.own, self.view
        assert own is not None
        kind = f"{own.quant}, " if own.quant else ""
        view.model.setText(f"{own.model.name} ({kind}{own.engine} engine)\n{own.model.parent}")
        view.mmproj.setText(own.projector_note if own.mmproj is not None or own.needs_projector
                            else "not needed (part of the model folder)")
        tokens = self.image_tokens()
        if tokens:
            view.image_detail.setText(f"{tokens} tokens, recommended for this model on this computer")
        elif self.recommending():
            view.image_detail.setText("checking this computer for the recommended detail…")
        else:
            view.image_detail.setText("kept as it is (no recommendation for this model here)")
        view.details.show()
        view.choose_mmproj_button.setVisible(own.needs_projector)
        view.error.setVisible(own.needs_projector)
        if own.needs_projector:
            view.error.setText(
                "The model cannot see images without its vision projector: choose its mmproj .gguf file."
            )
        self.changed.emit(own)
