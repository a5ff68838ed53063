"""The quick-caption controller: wires the main view to the caption worker, the card list and the dialogs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot
from PySide6.QtGui import QImage, QKeySequence
from PySide6.QtWidgets import QMenu, QMessageBox

from captioneer.backends.base import BackendInfo, EngineConfig
from captioneer.backends.cancel import CancelToken
from captioneer.backends.errors import ConfigurationError
from captioneer.desktop import __version__
from captioneer.desktop.core.captioning import CaptionResult
from captioneer.desktop.core.engine_setup import (
    Overrides,
    engine_config,
    remote_destinations,
    sampling_options,
)
from captioneer.desktop.core.fixes import FIX_BUTTONS, window_error
from captioneer.desktop.core.settings import Settings, load_settings, save_settings
from captioneer.desktop.core.tasks import DEFAULT_LANGUAGE, TaskOptions, all_tasks, get_task
from captioneer.desktop.ui.card_history import discard_question, needs_caption
from captioneer.desktop.ui.card_list import Card, CardList
from captioneer.desktop.ui.engine_service import EngineService
from captioneer.desktop.ui.geometry import restore_window, save_window
from captioneer.desktop.ui.main_view import MainView
from captioneer.desktop.ui.quick_caption import (
    copy_values,
    follow_up_question,
    format_bytes,
    seconds_per_image,
)
from captioneer.desktop.ui.quick_inputs import PhotoInputs
from captioneer.desktop.ui.quick_prompts import approve_servers, ask, remote_banner
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
    releaseEngine = Signal()

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
        restore_window(self.view, "main")
        self.view.closing.connect(lambda: save_window(self.view, "main"))
        self._live: list[CancelToken] = []
        self._durations: list[float] = []
        self._shut_down = False
        self._banner_action: Callable[[], None] | None = self.open_wizard

        self.background = Background(self)
        self.card_list = CardList(self.view, self.background, self._status, self)
        self.card_list.resultReady.connect(self._count_speed)
        self.card_list.resultReady.connect(self.resultReady)
        self.card_list.cardCancelled.connect(self.cardCancelled)
        self.card_list.followUpRequested.connect(self.follow_up)
        self.card_list.rerunRequested.connect(self.rerun)
        self.inputs = PhotoInputs(self.view, self.background, self.card_list, self._status, self)
        self.inputs.cardsAdded.connect(self._on_cards_added)

        self.thread = QThread(self)
        self.thread.setObjectName("caption-worker")
        # One engine for this window and the library window it opens (the app passes the service's opener).
        self.opener = opener or EngineService().opener
        self.worker = CaptionWorker(self.opener)
        self.worker.moveToThread(self.thread)
        self.submit.connect(self.worker.run_batch)
        self.requestShutdown.connect(self.worker.shutdown)
        self.releaseEngine.connect(self.worker.release)
        # quit() is thread-safe; a queued call would wait for the GUI loop that is blocked in shutdown().
        self.worker.stopped.connect(self.thread.quit, Qt.ConnectionType.DirectConnection)
        self.worker.jobStarted.connect(self.card_list.on_started)
        self.worker.chunk.connect(self.card_list.on_chunk)
        self.worker.retrying.connect(self.card_list.on_retrying)
        self.worker.finished.connect(self.card_list.on_finished)
        self.worker.cancelled.connect(self.card_list.on_cancelled)
        self.worker.engineLoading.connect(self._on_engine_loading)
        self.worker.engineReady.connect(self._on_engine_ready)
        self.worker.engineError.connect(self.show_setup_error)
        self.worker.batchDone.connect(self._on_batch_done)
        self.thread.start()

        self._wire_view()
        self._fill_tasks()
        self._refresh_setup_state()

    # -- setup -------------------------------------------------------------------------------------------

    def _wire_view(self) -> None:
        v = self.view
        v.closing.connect(self.shutdown)
        v.close_guard = self.may_discard
        v.clear_action.triggered.connect(self.clear)
        v.quit_action.triggered.connect(v.close)
        v.copy_all_text_action.triggered.connect(lambda: self.card_list.copy_all(as_json=False))
        v.copy_all_json_action.triggered.connect(lambda: self.card_list.copy_all(as_json=True))
        v.run_button.clicked.connect(v.run_action.trigger)
        v.run_action.triggered.connect(self.run_all)
        v.question_edit.returnPressed.connect(self.run_all)
        v.rerun_all_button.clicked.connect(v.rerun_all_action.trigger)
        v.rerun_all_action.triggered.connect(self.rerun_all)
        v.cancel_button.clicked.connect(v.cancel_action.trigger)
        v.cancel_action.triggered.connect(self.cancel)
        v.settings_action.triggered.connect(self.open_settings)
        v.wizard_action.triggered.connect(self.open_wizard)
        v.models_action.triggered.connect(self.open_model_manager)
        v.compare_action.triggered.connect(self.open_compare_models)
        v.about_action.triggered.connect(self.about)
        v.banner_button.clicked.connect(lambda: self._banner_action and self._banner_action())
        v.task_combo.currentIndexChanged.connect(self._on_task_changed)
        # The album tagger's window (desktop/ui/library_window.py), in a menu before Help.
        library_menu = QMenu("&Library", v)
        library_menu.addAction("Open &Library…", QKeySequence("Ctrl+L"), self.open_library)
        v.menuBar().insertMenu(v.menuBar().actions()[-1], library_menu)

    def _fill_tasks(self) -> None:
        combo = self.view.task_combo
        for task in all_tasks().values():
            if not task.takes_photos:  # quick caption takes pictures: nothing for a video-only task here
                continue
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
        self.view.run_action.setText("&Ask" if task.needs_question else "&Caption")
        self.view.task_combo.setToolTip(task.summary)

    def current_task_id(self) -> str:
        return str(self.view.task_combo.currentData())

    def model_configured(self) -> bool:
        return bool(self.overrides.model or self.settings.model)

    def _refresh_setup_state(self) -> None:
        self._banner_action = self.open_wizard
        self.view.set_remote(None)
        if self.model_configured():
            self.view.set_banner(None)
            try:
                config = self.engine_config()
            except ConfigurationError as exc:
                self.show_setup_error(exc)
                return
            name = Path(config.model).name or config.model
            self.view.status_engine.setText(f"{config.engine} · {name} · not loaded yet")
            destinations = remote_destinations(config)
            self.view.set_remote(remote_banner(destinations) if destinations else None)
        else:
            self.view.set_banner(NO_MODEL_MESSAGE, FIX_BUTTONS["wizard"])
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

    def add_paths(self, paths: list[Path]) -> None:
        """Files and folders to caption; folders are expanded off the GUI thread."""
        self.inputs.add_paths(paths)

    def add_image(self, image: QImage) -> None:
        self.inputs.add_image(image)

    def paste(self) -> None:
        self.inputs.paste()

    def _on_cards_added(self, cards: list[Card]) -> None:
        self._run(cards, self.current_task_id(), self.view.question_edit.text())

    # -- running -----------------------------------------------------------------------------------------

    def run_all(self) -> None:
        """Caption: run the chosen task on the cards without an answer for it, or whose last run failed or
        was cancelled. Good answers are kept; re-running them is Re-run or Re-run All."""
        if not self.card_list.cards:
            self._status("Add photos first: drop them on the window, paste, or use Open.")
            return
        task_id, question = self.current_task_id(), self.view.question_edit.text()
        asked = question.strip() if get_task(task_id).needs_question else None
        idle = [card for card in self.card_list.cards.values() if card.ticket is None]
        todo = [card for card in idle if needs_caption(card.outcome, card.history, task_id, asked)]
        if not todo:
            waiting = len(self.card_list.cards) - len(idle)
            self._status(
                f"{waiting} photo(s) are being answered." if waiting else
                "Every photo has an answer for this task. Re-run All runs them again."
            )
            return
        self._run(todo, task_id, question)

    def rerun_all(self) -> None:
        """Re-run All: the chosen task again on every card not running now; earlier answers are kept."""
        idle = [card for card in self.card_list.cards.values() if card.ticket is None]
        if idle:
            self._run(idle, self.current_task_id(), self.view.question_edit.text())

    def rerun(self, card: Card) -> None:
        """Re-run one card with the chosen task; its earlier answers stay in its history."""
        if card.ticket is None:
            self._run([card], self.current_task_id(), self.view.question_edit.text())

    def follow_up(self, card: Card, question: str) -> None:
        """Ask more about one image; the answer on show goes along as context, the reply is kept under it."""
        current = card.history.current
        if current is None or card.ticket is not None:
            return
        previous = copy_values(current.result).text or current.result.text
        self._run([card], "question", follow_up_question(previous, question), follow_up=question)
        card.view.follow_up.clear()

    def _run(
        self,
        cards: list[Card],
        task_id: str,
        question: str | None,
        follow_up: str | None = None,
    ) -> None:
        task = get_task(task_id)
        if task.needs_question and not (question and question.strip()):
            self._status("Type your question first.")
            self.view.question_edit.setFocus()
            for card in cards:
                self.card_list.hold(card, "type a question")
            return
        try:
            config = self.engine_config()
            sampling = sampling_options(self.settings, task, self.overrides)
        except ConfigurationError as exc:
            # Once, over the list: the cards keep what they have.
            self.show_setup_error(exc) if self.model_configured() else self._refresh_setup_state()
            for card in cards:
                self.card_list.hold(card, "not run")
            return
        if not self._may_send(config):
            for card in cards:
                self.card_list.hold(card, "not sent")
            return
        language = self.view.language_combo.currentText().strip() or DEFAULT_LANGUAGE
        options = TaskOptions(language=language, question=question)
        if follow_up is None:
            self._remember(task_id, language)
        jobs = []
        for card in cards:
            asked = question.strip() if task.needs_question and question and follow_up is None else None
            ticket = self.card_list.start(card, task.structured, follow_up, asked)
            jobs.append(CaptionJob(ticket, card.path, task_id, options, sampling, config.image_tokens))
        token = CancelToken()
        self._live.append(token)
        self._status(f"Working on {len(cards)} photo{'s' if len(cards) != 1 else ''}…", 0)
        self.view.set_busy(True)
        self.submit.emit(config, jobs, token)

    def _may_send(self, config: EngineConfig) -> bool:
        """Before the first photo goes to a server off this computer, ask; the answer is kept per address."""
        settings = approve_servers(self.view, self.settings, remote_destinations(config))
        if settings is None:
            self._status("Nothing was sent.")
            return False
        if settings is not self.settings:
            self.settings = settings
            save_settings(settings)
        return True

    def show_setup_error(self, exc: BaseException) -> None:
        """A settings or engine error, shown once over the list with the button that fixes it."""
        shown = window_error(exc)
        text, fix = shown.text, shown.fix
        actions = {
            "settings": self.open_settings,
            "choose_mmproj": self.open_settings,
            "model_manager": self.open_model_manager,
            "wizard": self.open_wizard,
        }
        self._banner_action = actions.get(fix) if fix else None
        self.view.set_banner(text, FIX_BUTTONS.get(fix or "", ""))
        self.view.status_engine.setText("Engine not ready")

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
        if not self.busy and self.view.banner.isVisible():
            self._status("Not captioned: see the message above the photos.", 4000)
        elif not self.busy:
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
        """Clear List: asks first when answers not copied would be lost."""
        if not self.card_list.cards or not self.may_discard():
            return
        self.cancel()
        self.card_list.clear()

    def may_discard(self) -> bool:
        """Whether answers not copied may go (Clear List, closing, quitting): asks when there are any."""
        count = self.card_list.uncopied()
        if not count or self._shut_down:
            return True
        return ask(self.view, "Discard Answers?", discard_question(count), "Discard",
                   "Copy them first with Copy all if you want to keep them.")

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

    def open_compare_models(self) -> None:
        """Models ▸ Compare Models…: measure the installed models on a folder of the user's photos."""
        from captioneer.desktop.ui.compare_models import open_compare_models

        open_compare_models(self)

    def engine_in_use(self) -> str | None:
        """Why Compare Models must wait: this window or the library window is captioning (None: free).
        One model at a time fits a laptop, so a comparison never runs beside another window's engine."""
        from captioneer.desktop.ui.library_window import LibraryWindow  # loaded already when one is open

        if self.busy:
            return ("The main window is captioning. Wait for it to finish or cancel it, then run the "
                    "comparison: one model is loaded at a time.")
        if any(window.runs.running for window in self.findChildren(LibraryWindow) if not window.closed):
            return ("The library window is tagging. Let the run finish or stop it, then run the comparison: "
                    "one model is loaded at a time.")
        return None

    def release_engine(self) -> None:
        """Unload the idle captioning engine (Compare Models loads its own); the next caption reloads it."""
        self.releaseEngine.emit()
        self._refresh_setup_state()

    def about(self) -> None:
        QMessageBox.about(
            self.view,
            "About Captioneer",
            f"<b>Captioneer {__version__}</b><p>Captions, alt text and keywords for your photos with the "
            "Qwen3-VL models, on your own computer, or on a server you choose in Settings.</p>"
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
