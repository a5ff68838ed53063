"""Tagging runs from the library window: what to tag and how (the Tag Photos dialog), the run on its worker
thread through the engine opener, its panel (live photo, progress, photos/minute, ETA, pause and stop), and
the offer to resume an unfinished run, also after the window was closed and opened again."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot
from PySide6.QtGui import QPixmap

from captioneer.backends.base import EngineConfig
from captioneer.backends.errors import CaptioneerError, ConfigurationError
from captioneer.desktop.core.engine_setup import Overrides, engine_config
from captioneer.desktop.core.tasks import get_task
from captioneer.desktop.library.browse import photos_by_id, resumable_runs
from captioneer.desktop.library.runs import (
    RunController,
    RunProgress,
    RunSpec,
    format_duration,
    reviewed_in_selection,
)
from captioneer.desktop.ui.library_browse import BrowseController
from captioneer.desktop.ui.library_dialogs_view import ReviewedQuestionView
from captioneer.desktop.ui.library_privacy import PrivacyGuard
from captioneer.desktop.ui.library_run_dialog import RunChoices, RunDialog
from captioneer.desktop.ui.library_selection import GridSelection
from captioneer.desktop.ui.library_session import LibrarySession
from captioneer.desktop.ui.library_thumbs import ThumbnailCache
from captioneer.desktop.ui.library_view import LibraryView
from captioneer.desktop.ui.library_workers import RunOutcome, RunRequest, RunWorker
from captioneer.desktop.ui.workers import BackendOpener

NO_MODEL = (
    "No model is set up yet: choose one in Edit ▸ Settings…, or with Models ▸ Set Up a Model… in the main "
    "window."
)
FINISHED_TITLES = {
    "done": "Finished",
    "paused": "Stopped",
    "failed": "Could not tag",
    "nothing": "Nothing to tag",
}


class RunsController(QObject):
    """One run at a time for a library window; ``progressed`` and ``finished`` tell the window and tests.
    It drives the Tag Photos action, the resume banner and the run panel; it reads the selection and the
    filter, and asks the browser to show the catalog afresh when a run ends."""

    progressed = Signal(object)  # RunProgress
    finished = Signal(object)  # RunOutcome

    def __init__(
        self,
        session: LibrarySession,
        view: LibraryView,
        browse: BrowseController,
        selection: GridSelection,
        thumbs: ThumbnailCache,
        opener: BackendOpener,
        overrides: Overrides,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.view = view
        self.browse = browse
        self.selection = selection
        self.thumbs = thumbs
        self.opener = opener
        self.overrides = overrides
        self._thread: QThread | None = None
        self._worker: RunWorker | None = None
        self._controller: RunController | None = None
        self._live_photo = ""
        self._stopped_run: int | None = None  # the run the panel offers to resume after Stop
        self.privacy = PrivacyGuard(session, view, self.engine_config, self)
        self.dialog = RunDialog(session, view, browse, selection, overrides, self.engine_config, self.explain)
        view.tag_action.triggered.connect(lambda: self.open_run_dialog())  # not triggered(bool) as the scope
        view.pause_action.triggered.connect(self._pause_action)
        view.stop_action.triggered.connect(self.stop_run)
        view.banner.dismiss_button.clicked.connect(view.banner.hide)
        view.banner.accept_button.clicked.connect(self._accept_banner)
        panel = view.run_panel
        panel.pause_button.clicked.connect(self.toggle_pause)
        panel.resume_button.clicked.connect(self._resume_from_panel)
        panel.cancel_button.clicked.connect(self.stop_run)
        panel.close_button.clicked.connect(self._close_panel)
        thumbs.ready.connect(self._live_ready)

    def engine_config(self) -> EngineConfig:
        """The engine and model the settings (or the given engine options) choose.

        Raises:
            ConfigurationError: no model is set up yet.
        """
        return engine_config(self.session.settings, self.overrides)

    def run_spec(
        self, task: str, language: str, vocabulary: Path | None = None, vocabulary_only: bool = True
    ) -> RunSpec:
        """What every photo of a new run is asked, from the dialog's choices and the settings (see
        :meth:`RunDialog.run_spec`)."""
        return self.dialog.run_spec(RunChoices(task, language, vocabulary, vocabulary_only))

    def run_request(self, scope: str, spec: RunSpec, redo: bool = False) -> RunRequest:
        """Which photos a run takes: the selection, the folder being browsed, or all the filter shows."""
        if scope == "selection":
            rows = self.selection.selected_rows()
            return RunRequest(
                scope="selection "
                + ",".join(str(row.photo_id) for row in rows[:50])
                + ("…" if len(rows) > 50 else ""),
                spec=spec,
                photo_ids=tuple(row.photo_id for row in rows),
                redo=redo,
            )
        if scope == "folder":
            folder = self.browse.current_folder()
            if not folder:
                raise ConfigurationError("Choose a folder on the left first.")
            return RunRequest(scope=folder, spec=spec, folder=Path(folder), redo=redo)
        return RunRequest(
            scope=f"filter {self.browse.filter.describe()}",
            spec=spec,
            photo_ids=tuple(self.selection.model.ids()),
            redo=redo,
        )

    def open_run_dialog(self, scope: str = "", redo: bool = False) -> None:
        """Tag Photos…: choose photos, task, language and vocabulary, then start. ``scope`` and ``redo``
        preset the dialog (Re-tag in the review panel: the selection, tagged again)."""
        if self.running:
            self.session.notify("A run is already going; stop it first or wait for it to finish.")
            return
        chosen = self.dialog.ask(scope, redo)
        if chosen is None:
            return
        spec, scope, redo = chosen
        try:
            request = self.run_request(scope, spec, redo=redo)
            on_reviewed = self.ask_about_reviewed(request, get_task(spec.task).label)
            if on_reviewed is None:
                return
            self.start_run(replace(request, on_reviewed=on_reviewed, rules=self.dialog.rules))
        except CaptioneerError as exc:
            self.session.notify(self.explain(exc))

    def explain(self, exc: CaptioneerError) -> str:
        """What the window says about ``exc``: without a model, where in the window to choose one (the core's
        message names the command line's options)."""
        settings, overrides = self.session.settings, self.overrides
        engine = overrides.engine or settings.engine
        model = overrides.model or (settings.model if engine == settings.engine else "")
        return NO_MODEL if isinstance(exc, ConfigurationError) and not model else str(exc)

    def ask_about_reviewed(self, request: RunRequest, task_label: str) -> str | None:
        """When the run would tag photos whose current result was reviewed, ask once: ``skip``, ``replace`` or
        ``keep``; None when the person cancels. A folder counts the photos catalogued before its scan (a new
        photo has nothing reviewed)."""
        catalog = self.session.catalog
        if request.folder is not None:
            photos = catalog.photos_under(request.folder)
        else:
            photos = photos_by_id(catalog, request.photo_ids)
        count = reviewed_in_selection(catalog, photos, request.spec, self.engine_config(), redo=request.redo)
        if not count:
            return "skip"
        question = ReviewedQuestionView(count, task_label, self.view)
        question.exec()
        return {
            question.skip_button: "skip",
            question.replace_button: "replace",
            question.keep_button: "keep",
        }.get(question.clickedButton())

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start_run(self, request: RunRequest) -> bool:
        """Start tagging on a worker thread; ``progressed`` and then ``finished`` follow. False when the run
        did not start because the person would not send photos to another computer.

        Raises:
            ConfigurationError: no model is set up, or a run is already going.
        """
        if self.running:
            raise ConfigurationError("A run is already going; stop it first or wait for it to finish.")
        config = self.engine_config()
        if not self.privacy.allows(config):
            return False
        self.view.banner.hide()
        self._stopped_run = None
        self._controller = RunController()
        thread = QThread(self)
        worker = RunWorker(self.session.catalog, self.opener, config, request, self._controller)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.status.connect(self._run_status)
        worker.progress.connect(self._run_progress)
        worker.event.connect(self._run_event)
        worker.finished.connect(self._run_finished)
        worker.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        self._thread, self._worker = thread, worker
        panel = self.view.run_panel
        panel.title.setText("Resuming run" if request.resume else "Tagging")
        panel.current.setText("")
        panel.progress.setRange(0, 0)
        panel.stats.setText("Starting…")
        panel.event.setText("")
        self._set_panel("running")
        panel.live.setPixmap(QPixmap())
        panel.show()
        thread.start()
        return True

    def _set_panel(self, state: str) -> None:
        """The run panel's buttons and the Photos menu's run actions for ``state``: ``running``,
        ``pausing`` (waiting for the photo in flight), ``paused``, ``stopped`` (resumable) or ``ended``."""
        panel, view = self.view.run_panel, self.view
        live = state in ("running", "pausing", "paused")
        panel.pause_button.setVisible(state in ("running", "pausing"))
        panel.pause_button.setEnabled(state == "running")
        panel.pause_button.setText("Pausing…" if state == "pausing" else "Pause")
        panel.resume_button.setVisible(state in ("paused", "stopped"))
        panel.cancel_button.setVisible(live)
        panel.cancel_button.setEnabled(live)
        panel.close_button.setVisible(not live)
        view.pause_action.setEnabled(state in ("running", "paused", "stopped"))
        view.pause_action.setText("&Resume Run" if state in ("paused", "stopped") else "&Pause Run")
        view.stop_action.setEnabled(live)

    def toggle_pause(self) -> None:
        """Pause after the photo in flight (the panel says so until it has landed), or resume a paused run."""
        controller = self._controller
        if controller is None:
            return
        panel = self.view.run_panel
        if controller.paused:
            controller.resume()
            self._set_panel("running")
            panel.title.setText("Tagging")
            panel.stats.setText("Resuming…")
        else:
            controller.pause()
            self._set_panel("pausing")
            panel.title.setText("Pausing")
            panel.stats.setText("Pausing after this photo…")

    def stop_run(self) -> None:
        """Stop now: the photo being tagged is left for a resume (the engine stops at its next step)."""
        if self._controller is not None:
            self._controller.cancel()
            self.view.run_panel.title.setText("Stopping")
            self.view.run_panel.stats.setText("Stopping…")
            self.view.run_panel.cancel_button.setEnabled(False)
            self.view.pause_action.setEnabled(False)
            self.view.stop_action.setEnabled(False)

    @Slot(str)
    def _run_status(self, text: str) -> None:
        self.view.run_panel.stats.setText(text)

    @Slot(str)
    def _run_event(self, text: str) -> None:
        self.view.run_panel.event.setText(text)

    @Slot(object)
    def _run_progress(self, progress: RunProgress) -> None:
        if self.session.is_closed():
            return
        panel = self.view.run_panel
        panel.progress.setRange(0, max(1, progress.total))
        panel.progress.setValue(progress.finished)
        panel.progress.setFormat(f"{progress.finished:,} / {progress.total:,}")
        parts = [f"run {progress.run_id}"]
        if progress.failed:
            parts.append(f"{progress.failed} failed")
        if progress.needs_review:
            parts.append(f"{progress.needs_review} to check")
        pausing = self._controller is not None and self._controller.paused
        if progress.paused:
            self._set_panel("paused")
            panel.title.setText("Paused")
            panel.current.setText("")  # nothing is being tagged now
            parts.append("paused: Resume goes on with the next photo")
        elif pausing:
            parts.append("pausing after this photo…")
        elif progress.photos_per_minute is not None and progress.eta_seconds is not None:
            parts.append(f"{progress.photos_per_minute:.1f} photos/min")
            parts.append(f"about {format_duration(progress.eta_seconds)} left")
        elif progress.finished < progress.total:
            parts.append("time left: known after a few photos")
        panel.stats.setText(" · ".join(parts))
        if progress.current:
            panel.current.setText(Path(progress.current).name)
            panel.current.setToolTip(progress.current)
            self._live_photo = progress.current
            self._show_live()
        self.progressed.emit(progress)

    def _show_live(self) -> None:
        photo = self.session.catalog.photo_by_path(self._live_photo) if self._live_photo else None
        if photo is None:
            return
        pixmap = self.thumbs.get(photo.path, photo.size, photo.mtime_ns)
        if pixmap is not None:
            label = self.view.run_panel.live
            label.setPixmap(
                pixmap.scaled(
                    label.size(),
                    Qt.AspectRatioMode.KeepAspectRatio,
                    Qt.TransformationMode.SmoothTransformation,
                )
            )

    @Slot(str)
    def _live_ready(self, _key: str) -> None:
        if self.running and self._live_photo and not self.session.is_closed():
            self._show_live()

    @Slot(object)
    def _run_finished(self, outcome: RunOutcome) -> None:
        thread = self._thread
        if thread is not None:
            thread.wait()
            thread.deleteLater()
        if self._worker is not None:
            self._worker.deleteLater()
        self._thread = self._worker = None
        self._controller = None
        if not self.session.is_closed():
            self.selection.model.refresh()
        panel = self.view.run_panel
        resumable = outcome.state == "paused" and outcome.run_id is not None
        self._stopped_run = outcome.run_id if resumable else None
        self._set_panel("stopped" if resumable else "ended")
        panel.current.setText("")
        self._live_photo = ""
        panel.title.setText(FINISHED_TITLES[outcome.state])
        panel.progress.setRange(0, 1)
        panel.progress.setValue(1 if outcome.state == "done" else 0)
        if outcome.counts is not None and outcome.counts.total:
            panel.progress.setRange(0, outcome.counts.total)
            panel.progress.setValue(outcome.counts.done + outcome.counts.failed)
        panel.stats.setText(outcome.message)
        self.session.notify(outcome.message)
        if not self.session.is_closed():
            self.browse.refresh_overview()
            self.browse.refilter()
            if outcome.state == "paused" and not resumable:
                self.offer_resume()  # the panel offers its own run; an older one may be waiting
        self.finished.emit(outcome)

    def offer_resume(self) -> None:
        """Show the banner offering to resume the newest unfinished run, if there is one."""
        runs = resumable_runs(self.session.catalog)
        if not runs or self.running:
            return
        banner = self.view.banner
        banner.text.setText(runs[0].describe() + " Resume it?")
        banner.accept_button.setText("Resume")
        banner.setProperty("run_id", runs[0].run.id)
        banner.show()

    def resume_run(self, run_id: int) -> None:
        """Go on with an unfinished run (after a stop, a crash or closing the window).

        Raises:
            ConfigurationError: no model is set up, or the chosen model is not the run's.
        """
        run = next(
            (found.run for found in resumable_runs(self.session.catalog) if found.run.id == run_id), None
        )
        if run is None:
            raise ConfigurationError(f"Run {run_id} has nothing left to tag.")
        self.start_run(RunRequest(scope=run.scope, spec=run.spec, resume=run_id))

    def _accept_banner(self) -> None:
        self._resume(int(self.view.banner.property("run_id")))

    def _pause_action(self) -> None:
        """Photos ▸ Pause Run / Resume Run: pause the run going on, or resume a paused or stopped one."""
        if self._controller is not None:
            self.toggle_pause()
        else:
            self._resume_from_panel()

    def _resume_from_panel(self) -> None:
        """The panel's Resume: go on with the paused run, or start the stopped one again."""
        if self._controller is not None:
            if self._controller.paused:
                self.toggle_pause()
        elif self._stopped_run is not None:
            self._resume(self._stopped_run)

    def _resume(self, run_id: int) -> None:
        try:
            self.resume_run(run_id)
        except CaptioneerError as exc:
            message = self.explain(exc)
            self.session.notify(message)
            self.view.run_panel.show()
            self.view.run_panel.stats.setText(message)

    def _close_panel(self) -> None:
        """Hide the finished run's panel; a run it offered to resume is offered by the banner instead."""
        self.view.run_panel.hide()
        if self._stopped_run is not None:
            self._stopped_run = None
            self.offer_resume()

    def shutdown(self) -> None:
        """Stop the run after its current photo (it stays resumable) and wait for its thread."""
        if self._controller is not None:
            self._controller.cancel()
        if self._thread is not None:
            self._thread.wait()
