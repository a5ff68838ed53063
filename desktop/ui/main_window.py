"""The quick-caption controller: wires the main view to the caption worker, the card list and the dialogs."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot
from PySide6.QtGui import QGuiApplication, QImage, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox

from captioneer.backends.base import BackendInfo, EngineConfig
from captioneer.backends.cancel import CancelToken
from captioneer.backends.errors import ConfigurationError
from captioneer.desktop import __version__
from captioneer.desktop.core.captioning import CaptionResult
from captioneer.desktop.core.engine_setup import Overrides, engine_config, sampling_options
from captioneer.desktop.core.images import IMAGE_SUFFIXES
from captioneer.desktop.core.settings import Settings, load_settings, save_settings
from captioneer.desktop.core.tasks import DEFAULT_LANGUAGE, TaskOptions, all_tasks, get_task
from captioneer.desktop.ui.card_list import Card, CardList
from captioneer.desktop.ui.card_view import CardState
from captioneer.desktop.ui.engine_service import EngineService
from captioneer.desktop.ui.main_view import MainView, paths_from_mime
from captioneer.desktop.ui.quick_caption import (
    Collected,
    copy_values,
    follow_up_question,
    format_bytes,
    seconds_per_image,
)
from captioneer.desktop.ui.workers import BackendOpener, Background, CaptionJob, CaptionWorker

NO_MODEL_MESSAGE = (
    "No model is set up yet. Choose Models ▸ Set Up a Model… to pick one that fits this computer, "
    "or choose a model file in Settings."
)


class MainWindow(QObject):
    """Quick caption: images in, streamed answers out, never blocking the event loop."""

    submit = Signal(object, object, object)  # EngineConfig, [CaptionJob], CancelToken
    requestShutdown = Signal()
    resultReady = Signal(object)  # CaptionResult, for every finished card (ok or failed)
    cardCancelled = Signal(int)
    settingsChanged = Signal(object)  # Settings

    def __init__(
        self,
        overrides: Overrides | None = None,
        opener: BackendOpener | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.overrides = overrides or Overrides()
        self.settings = load_settings()
        self.view = MainView()
        self._live: list[CancelToken] = []
        self._durations: list[float] = []
        self._shut_down = False
        self._banner_action = self.open_wizard

        self.background = Background(self)
        self.card_list = CardList(self.view, self.background, self._status, self)
        self.card_list.resultReady.connect(self._count_speed)
        self.card_list.resultReady.connect(self.resultReady)
        self.card_list.cardCancelled.connect(self.cardCancelled)
        self.card_list.followUpRequested.connect(self.follow_up)
        self.background.relay.collected.connect(self._on_collected)
        self.background.relay.pasteSaved.connect(lambda path: self.add_paths([path]))
        self.background.relay.pasteFailed.connect(self._status)

        self.thread = QThread(self)
        self.thread.setObjectName("caption-worker")
        # One engine for this window and the library window it opens (the app passes the service's opener).
        self.opener = opener or EngineService().opener
        self.worker = CaptionWorker(self.opener)
        self.worker.moveToThread(self.thread)
        self.submit.connect(self.worker.run_batch)
        self.requestShutdown.connect(self.worker.shutdown)
        # quit() is thread-safe; a queued call would wait for the GUI loop that is blocked in shutdown().
        self.worker.stopped.connect(self.thread.quit, Qt.ConnectionType.DirectConnection)
        self.worker.jobStarted.connect(self.card_list.on_started)
        self.worker.chunk.connect(self.card_list.on_chunk)
        self.worker.retrying.connect(self.card_list.on_retrying)
        self.worker.finished.connect(self.card_list.on_finished)
        self.worker.cancelled.connect(self.card_list.on_cancelled)
        self.worker.engineLoading.connect(self._on_engine_loading)
        self.worker.engineReady.connect(self._on_engine_ready)
        self.worker.engineFailed.connect(self._on_engine_failed)
        self.worker.batchDone.connect(self._on_batch_done)
        self.thread.start()

        self._wire_view()
        self._fill_tasks()
        self._refresh_setup_state()

    # -- setup -------------------------------------------------------------------------------------------

    def _wire_view(self) -> None:
        v = self.view
        v.pathsDropped.connect(self.add_paths)
        v.imageDropped.connect(self.add_image)
        v.closing.connect(self.shutdown)
        for trigger in (v.open_action.triggered, v.open_button.clicked, v.empty_open_button.clicked):
            trigger.connect(self.open_files)
        v.open_folder_action.triggered.connect(self.open_folder)
        for trigger in (v.paste_action.triggered, v.paste_button.clicked, v.empty_paste_button.clicked):
            trigger.connect(self.paste)
        v.clear_action.triggered.connect(self.clear)
        v.quit_action.triggered.connect(v.close)
        v.copy_all_text_action.triggered.connect(lambda: self.card_list.copy_all(as_json=False))
        v.copy_all_json_action.triggered.connect(lambda: self.card_list.copy_all(as_json=True))
        v.run_button.clicked.connect(self.run_all)
        v.question_edit.returnPressed.connect(self.run_all)
        v.cancel_button.clicked.connect(self.cancel)
        v.settings_action.triggered.connect(self.open_settings)
        v.wizard_action.triggered.connect(self.open_wizard)
        v.models_action.triggered.connect(self.open_model_manager)
        v.about_action.triggered.connect(self.about)
        v.banner_button.clicked.connect(lambda: self._banner_action())
        v.task_combo.currentIndexChanged.connect(self._on_task_changed)
        # The album tagger's window (desktop/ui/library_window.py), in a menu before Help.
        library_menu = QMenu("&Library", v)
        library_menu.addAction("Open &Library…", QKeySequence("Ctrl+L"), self.open_library)
        v.menuBar().insertMenu(v.menuBar().actions()[-1], library_menu)

    def _fill_tasks(self) -> None:
        combo = self.view.task_combo
        for task in all_tasks().values():
            combo.addItem(task.label, task.id)
            combo.setItemData(combo.count() - 1, task.summary, Qt.ItemDataRole.ToolTipRole)
        index = combo.findData(self.settings.task)
        combo.setCurrentIndex(max(index, 0))
        language = self.view.language_combo
        if language.findText(self.settings.language) < 0:
            language.addItem(self.settings.language)
        language.setCurrentText(self.settings.language)
        self._on_task_changed()

    def _on_task_changed(self) -> None:
        task = get_task(self.current_task_id())
        self.view.show_question(task.needs_question)
        self.view.run_button.setText("Ask" if task.needs_question else "Caption")
        self.view.task_combo.setToolTip(task.summary)

    def current_task_id(self) -> str:
        return str(self.view.task_combo.currentData())

    def model_configured(self) -> bool:
        return bool(self.overrides.model or self.settings.model)

    def _refresh_setup_state(self) -> None:
        self._banner_action = self.open_wizard
        if self.model_configured():
            self.view.set_banner(None)
            config = self.engine_config()
            name = Path(config.model).name or config.model
            self.view.status_engine.setText(f"{config.engine} · {name} · not loaded yet")
        else:
            self.view.set_banner(NO_MODEL_MESSAGE)
            self.view.status_engine.setText("No model set up")
        self.view.status_memory.setText("")
        self._show_speed()

    def engine_config(self) -> EngineConfig:
        """Command-line engine options over saved settings.

        Raises:
            ConfigurationError: no model is chosen, or an option is invalid.
        """
        if not self.model_configured():
            raise ConfigurationError(NO_MODEL_MESSAGE)
        return engine_config(self.settings, self.overrides)

    # -- adding images -----------------------------------------------------------------------------------

    @Slot(list)
    def add_paths(self, paths: list[Path]) -> None:
        """Files and folders to caption; folders are expanded off the GUI thread."""
        if paths:
            self.background.collect([Path(p) for p in paths])

    @Slot(QImage)
    def add_image(self, image: QImage) -> None:
        """Raw pixels (dropped or pasted) are saved as a PNG, then captioned like a file."""
        if image.isNull():
            self._status("That image could not be read.")
            return
        self.background.save_pasted(image)

    def open_files(self) -> None:
        patterns = " ".join(f"*{suffix}" for suffix in sorted(IMAGE_SUFFIXES))
        files, _ = QFileDialog.getOpenFileNames(
            self.view, "Open Photos", str(Path.home()), f"Photos ({patterns});;All files (*)"
        )
        self.add_paths([Path(f) for f in files])

    def open_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.view, "Open a Folder of Photos", str(Path.home()))
        if folder:
            self.add_paths([Path(folder)])

    def paste(self) -> None:
        mime = QGuiApplication.clipboard().mimeData()
        paths = paths_from_mime(mime) if mime is not None else []
        if paths:
            self.add_paths(paths)
        elif mime is not None and mime.hasImage():
            self.add_image(QGuiApplication.clipboard().image())
        else:
            self._status("The clipboard holds no image. Copy a photo or a screenshot first.")

    @Slot(object)
    def _on_collected(self, collected: Collected) -> None:
        notes = []
        if collected.not_images:
            notes.append(f"{collected.not_images} file(s) skipped: not photos")
        if collected.over_limit:
            notes.append(
                f"{collected.over_limit} more photo(s) left out: quick caption takes up to "
                f"{len(collected.files)} at a time"
            )
        if notes:
            self._status("; ".join(notes) + ".")
        if not collected.files:
            if not notes:
                self._status("No photos found there.")
            return
        new_cards = [self.card_list.add(path) for path in collected.files]
        self.view.show_cards(True)
        self.view.scroll.ensureWidgetVisible(new_cards[0].view)
        self._run(new_cards, self.current_task_id(), self.view.question_edit.text())

    # -- running -----------------------------------------------------------------------------------------

    def run_all(self) -> None:
        """Run the chosen task on every card (earlier runs still going are cancelled first)."""
        if not self.card_list.cards:
            self._status("Add photos first: drop them on the window, paste, or use Open.")
            return
        self.cancel()
        self._run(list(self.card_list.cards.values()), self.current_task_id(), self.view.question_edit.text())

    def follow_up(self, card: Card, question: str) -> None:
        """Ask more about one image; its latest answer goes along as context."""
        previous = ""
        if card.result is not None and card.result.ok:
            previous = copy_values(card.result).text or card.result.text
        prefix = card.view.text.text().rstrip()
        self._run([card], "question", follow_up_question(previous, question), shown_question=question,
                  prefix=f"{prefix}\n\nQ: {question}\nA: " if prefix else "")
        card.view.follow_up.clear()

    def _run(
        self,
        cards: list[Card],
        task_id: str,
        question: str | None,
        shown_question: str | None = None,
        prefix: str = "",
    ) -> None:
        task = get_task(task_id)
        if task.needs_question and not (question and question.strip()):
            self._status("Type your question first.")
            self.view.question_edit.setFocus()
            for card in cards:
                if card.result is None and card.ticket is None:
                    card.view.set_state(CardState.WAITING, "type a question")
            return
        try:
            config = self.engine_config()
            sampling = sampling_options(self.settings, task, self.overrides)
        except ConfigurationError as exc:
            for card in cards:
                failed = CaptionResult(
                    str(card.path), task_id, ok=False, error=str(exc), error_kind="configuration"
                )
                self.card_list.show_failure(card, failed)
            self._refresh_setup_state()
            return
        language = self.view.language_combo.currentText().strip() or DEFAULT_LANGUAGE
        options = TaskOptions(language=language, question=question)
        if not prefix:
            self._remember(task_id, language)
        jobs = []
        for card in cards:
            ticket = self.card_list.start(card, prefix, task.structured)
            jobs.append(CaptionJob(ticket, card.path, task_id, options, sampling, config.image_tokens))
        token = CancelToken()
        self._live.append(token)
        self._status(f"Working on {len(cards)} photo{'s' if len(cards) != 1 else ''}…", 0)
        self.view.set_busy(True)
        self.submit.emit(config, jobs, token)

    def _remember(self, task_id: str, language: str) -> None:
        """The next start opens with the task and language used last."""
        if (self.settings.task, self.settings.language) != (task_id, language):
            self.settings = self.settings.model_copy(update={"task": task_id, "language": language})
            save_settings(self.settings)

    def cancel(self) -> None:
        """Stop generating now: the current image stops between tokens, queued ones are skipped."""
        for token in self._live:
            token.cancel()

    @property
    def busy(self) -> bool:
        return bool(self._live)

    @Slot()
    def _on_batch_done(self) -> None:
        finished = self._live.pop(0) if self._live else None
        self.view.set_busy(self.busy)
        if not self.busy:
            self._status("Cancelled." if finished is not None and finished.cancelled else "Done.", 4000)

    @Slot(str)
    def _on_engine_loading(self, message: str) -> None:
        self.view.status_engine.setText(message)

    @Slot(object)
    def _on_engine_ready(self, info: BackendInfo) -> None:
        name = Path(info.model).name or info.model
        parts = [info.engine, name, info.quant, info.device]
        self.view.status_engine.setText(" · ".join(part for part in parts if part))
        memory = info.memory_bytes
        self.view.status_memory.setText(f"Memory {format_bytes(memory)}" if memory else "")
        self.view.set_banner(None)

    @Slot(str)
    def _on_engine_failed(self, message: str) -> None:
        self.view.status_engine.setText("Engine not ready")
        self.view.set_banner(f"The engine could not start: {message}", "Open settings…")
        self._banner_action = self.open_settings

    @Slot(object)
    def _count_speed(self, result: CaptionResult) -> None:
        if result.ok:
            self._durations.append(result.seconds)
            self._show_speed()

    def _show_speed(self) -> None:
        speed = seconds_per_image(self._durations)
        self.view.status_speed.setText(f"{speed:.1f} s per image" if speed is not None else "")

    def _status(self, message: str, msecs: int = 8000) -> None:
        self.view.statusBar().showMessage(message, msecs)

    def clear(self) -> None:
        self.cancel()
        self.card_list.clear()

    # -- dialogs -----------------------------------------------------------------------------------------

    def open_settings(self) -> None:
        from captioneer.desktop.ui.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.settings, self.view)
        if dialog.exec():
            self.apply_settings(dialog.result_settings())

    def apply_settings(self, settings: Settings) -> None:
        """Save and use new settings; the engine reloads with them before the next image."""
        save_settings(settings)
        self.settings = settings
        self.settingsChanged.emit(settings)
        self._refresh_setup_state()

    def open_wizard(self) -> None:
        from captioneer.desktop.ui.wizard import SetupWizard

        wizard = SetupWizard(self.settings, self.view)
        if wizard.exec():
            self.apply_settings(wizard.chosen_settings())

    def open_model_manager(self) -> None:
        from captioneer.desktop.ui.model_manager import ModelManagerDialog

        dialog = ModelManagerDialog(self.settings, self.view)
        dialog.modelChosen.connect(self.apply_settings)
        dialog.exec()

    def about(self) -> None:
        QMessageBox.about(
            self.view,
            "About Captioneer",
            f"<b>Captioneer {__version__}</b><p>Captions, alt text and keywords for your photos with the "
            "Qwen3-VL models, on your own computer. Photos never leave this machine.</p>"
            "<p>Free software under the GNU GPL, version 3 or later.</p>",
        )

    def open_library(self) -> None:
        """Library ▸ Open Library…: browse, review, tag and write a photo library (one window at a time)."""
        from captioneer.desktop.ui.library_window import (
            open_library,  # loaded when asked: quick caption starts faster
        )

        open_library(self, self.overrides, self.opener)

    # -- shutdown ----------------------------------------------------------------------------------------

    @Slot()
    def shutdown(self) -> None:
        """Stop generating, close the engine host process and wait for the worker threads."""
        if self._shut_down:
            return
        self._shut_down = True
        self.cancel()
        self.requestShutdown.emit()
        if not self.thread.wait(30_000):
            self.thread.quit()
            self.thread.wait(5_000)
        self.background.wait()
