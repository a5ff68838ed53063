"""Models ▸ Compare Models…, the dialog's controller: it offers the installed models × image details, reads
the chosen folder's photos and their own keywords, runs the comparison on :mod:`compare_worker`'s thread with
progress and Cancel, and shows a sortable table and a chart; the chosen row can become the settings, and the
table can be saved as CSV."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from PySide6.QtCore import Qt, QThread, QTimer, Signal
from PySide6.QtWidgets import QCheckBox, QFileDialog, QLabel, QListWidgetItem, QPushButton, QWidget

from captioneer.backends.cancel import CancelToken
from captioneer.backends.errors import CaptioneerError, window_text
from captioneer.desktop.core.engine_setup import Overrides, engine_config, remote_destinations
from captioneer.desktop.core.fixes import FIX_BUTTONS, WindowError, window_error
from captioneer.desktop.core.settings import Settings
from captioneer.desktop.evaluation.keyword_scores import load_keyword_map
from captioneer.desktop.evaluation.profiles import installed_profiles
from captioneer.desktop.evaluation.references import References, load_references
from captioneer.desktop.evaluation.scores import EvaluationProgress, Profile, ProfileScore
from captioneer.desktop.library.keywords import Vocabulary
from captioneer.desktop.ui.compare_models_view import (
    NO_REFERENCES,
    NO_VOCABULARY,
    CompareModelsView,
    SortedCell,
)
from captioneer.desktop.ui.compare_table import (
    PhotoSet,
    chart_bars,
    chart_metrics,
    in_use,
    metrics_note,
    profile_grid,
    progress_steps,
    progress_text,
    read_photo_set,
    settings_for_profile,
    table_columns,
    table_row,
)
from captioneer.desktop.ui.compare_worker import CompareJob, CompareWorker
from captioneer.desktop.ui.quick_prompts import approve_servers, ask
from captioneer.desktop.ui.workers import Call


class CompareModelsDialog(CompareModelsView):
    """The controller: fills the view, runs :class:`CompareWorker`, and keeps the scores it reported."""

    modelChosen = Signal(object)  # Settings
    fixRequested = Signal(str)  # a fix id of core.fixes, for the main window to open
    settingsChanged = Signal(object)  # Settings: a server the person agreed to send photos to
    start = Signal(object, object)  # CompareJob, CancelToken

    def __init__(
        self,
        settings: Settings,
        parent: QWidget | None = None,
        *,
        engine_busy: Callable[[], str | None] = lambda: None,
        release_engine: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        self.engine_busy = engine_busy
        self.release_engine = release_engine
        self.photo_set: PhotoSet | None = None
        self.references: References | None = None
        self.vocabulary: Vocabulary | None = None
        self.scores: list[ProfileScore] = []
        self.columns: list[str] = table_columns([])
        self._token: CancelToken | None = None
        self._scans: list[Call] = []  # the latest folder's last; earlier ones may still be stopping
        self._fix: str | None = None
        self.thread = QThread(self)
        self.thread.setObjectName("compare-worker")
        self.worker = CompareWorker()
        self.worker.moveToThread(self.thread)
        self.start.connect(self.worker.run)
        self.worker.progressed.connect(self._on_progress)
        self.worker.scored.connect(self._on_scored)
        self.worker.failed.connect(self._on_failed)
        self.worker.finished.connect(self._on_finished)
        self.thread.start()
        self.folder_button.clicked.connect(self.choose_folder)
        self.references_button.clicked.connect(self.choose_references)
        self.references_clear.clicked.connect(lambda: self.set_references(None))
        self.vocabulary_button.clicked.connect(self.choose_vocabulary)
        self.vocabulary_clear.clicked.connect(lambda: self.set_vocabulary(None))
        self.limit.valueChanged.connect(self._describe_photos)
        self.models.itemChanged.connect(self._count_profiles)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.use_button.clicked.connect(self.use_selected)
        self.csv_button.clicked.connect(self.save_csv)
        self.metric_combo.currentTextChanged.connect(self._draw_chart)
        self.table.itemSelectionChanged.connect(self._update_actions)
        # After the sort itself, whichever of the header's connections runs first.
        self.table.horizontalHeader().sortIndicatorChanged.connect(
            lambda *_: QTimer.singleShot(0, self._span_failed_rows))
        self.banner_button.clicked.connect(self._open_fix)
        self._fill_profiles()
        self._show_table()

    # -- choices -----------------------------------------------------------------------------------------

    def _fill_profiles(self) -> None:
        for box in self.details.values():
            box.toggled.connect(self._count_profiles)
        if self.settings.image_tokens not in self.details:
            self.add_detail(self.settings.image_tokens)
        self.details[self.settings.image_tokens].setChecked(True)
        try:
            models = installed_profiles(self.settings)
        except CaptioneerError as exc:
            self.show_error(exc)
            models = []
        for model in models:
            self.add_model(model, checked=in_use(model, self.settings))
        self.models.setVisible(bool(models))
        self.models_empty.setVisible(not models)
        self._count_profiles()

    def add_detail(self, tokens: int) -> QCheckBox:
        """Offer one more image detail; checking it counts the profiles again."""
        box = super().add_detail(tokens)
        box.toggled.connect(self._count_profiles)
        return box

    def add_model(self, model: Profile, *, checked: bool = False) -> None:
        """Offer ``model`` (any image detail: the checked details replace it) as a check box."""
        item = QListWidgetItem(model.label.rsplit("@", 1)[0])
        item.setData(Qt.ItemDataRole.UserRole, model)
        item.setToolTip(f"{model.engine} · {model.model}")
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
        self.models.addItem(item)
        self.models.show()
        self.models_empty.hide()
        self._count_profiles()

    def chosen_profiles(self) -> list[Profile]:
        """The checked models × the checked image details."""
        models = [
            cast(Profile, self.models.item(row).data(Qt.ItemDataRole.UserRole))
            for row in range(self.models.count())
            if self.models.item(row).checkState() == Qt.CheckState.Checked
        ]
        details = [tokens for tokens, box in self.details.items() if box.isChecked()]
        return profile_grid(models, details)

    def _count_profiles(self) -> None:
        profiles = self.chosen_profiles()
        names = ", ".join(profile.label for profile in profiles[:4]) + (" …" if len(profiles) > 4 else "")
        self.profile_count.setText(
            f"{len(profiles)} profile{'s' if len(profiles) != 1 else ''} to compare: {names}" if profiles
            else "Check at least one model and one image detail."
        )

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Photos to Compare the Models On")
        if folder:
            self.open_folder(Path(folder))

    def open_folder(self, folder: Path) -> Call:
        """Find the folder's photos and their keywords off the GUI thread."""
        for earlier in self._scans:
            earlier.cancel()
        self._scans = [scan for scan in self._scans if scan.running]
        self.photo_set = None
        self.folder_label.setText(str(folder))
        self.photo_info.setText("Looking for photos and the keywords they carry…")
        call = Call(lambda progress, cancel: read_photo_set(folder, progress, cancel), self)

        def latest(show: Callable[..., None]) -> Callable[..., None]:
            """Only the folder chosen last may speak: an earlier scan may finish after it started."""
            return lambda *args: show(*args) if self._scans[-1] is call else None

        call.progress.connect(latest(lambda _fraction, message: self.photo_info.setText(message)))
        call.succeeded.connect(latest(self._on_photos))
        call.failed.connect(latest(lambda message: self.photo_info.setText(window_text(message))))
        self._scans.append(call.start())
        return call

    def _on_photos(self, photo_set: object) -> None:
        self.photo_set = cast(PhotoSet, photo_set)
        self._describe_photos()

    def _describe_photos(self) -> None:
        if self.photo_set is not None:
            self.photo_info.setText(self.photo_set.describe(self.limit.value(), self.references))

    def choose_references(self) -> None:
        path, _filter = QFileDialog.getOpenFileName(self, "Reference Captions", "",
                                                    "COCO captions (*.json);;All files (*)")
        if path:
            self.set_references(Path(path))

    def set_references(self, path: Path | None) -> bool:
        """Read reference captions for BLEU-4, METEOR, ROUGE-L and CIDEr (None: no caption metrics); a file
        that is not a COCO caption file is explained in the banner and changes nothing."""
        return self._read_file(path, load_references, "references", self.references_label,
                               self.references_clear, NO_REFERENCES)

    def choose_vocabulary(self) -> None:
        path, _filter = QFileDialog.getOpenFileName(self, "Keyword Vocabulary", "",
                                                    "Text files (*.txt);;All files (*)")
        if path:
            self.set_vocabulary(Path(path))

    def set_vocabulary(self, path: Path | None) -> bool:
        """Map synonyms to one keyword on both sides before comparing (None: compare as written); a file
        that cannot be read is explained in the banner and changes nothing."""
        return self._read_file(path, load_keyword_map, "vocabulary", self.vocabulary_label,
                               self.vocabulary_clear, NO_VOCABULARY)

    def _read_file(self, path: Path | None, read: Callable[[Path], object], attribute: str, label: QLabel,
                   clear: QPushButton, none_text: str) -> bool:
        value = None
        if path is not None:
            try:
                value = read(path)
            except CaptioneerError as exc:
                self.show_error(exc)
                return False
        self.set_banner(None)
        setattr(self, attribute, value)
        label.setText(str(path) if path else none_text)
        clear.setVisible(path is not None)
        self._describe_photos()
        return True

    # -- running -----------------------------------------------------------------------------------------

    def run(self) -> bool:
        """Start the comparison; False (with the reason on show) when it cannot start."""
        profiles = self.chosen_profiles()
        reason = None
        if self.photo_set is None or not self.photo_set.photos:
            reason = "Choose a folder of photos first (Choose Folder…)."
        elif not profiles:
            reason = "Check at least one model and one image detail to compare."
        else:
            reason = self.engine_busy()
        if not reason and not self._may_send(profiles):
            reason = "Nothing was sent: the comparison did not run."
        if reason:
            self.set_banner(reason)
            return False
        assert self.photo_set is not None
        photos = self.photo_set.compared(self.limit.value())
        self.release_engine()  # one model in memory at a time: the captioning engine reloads when next used
        self.set_banner(None)
        self.scores = []
        self._show_table()
        self._token = CancelToken()
        self.set_running(True)
        self.progress.setRange(0, len(profiles) * len(photos))
        self.progress.setValue(0)
        self.progress_label.setText(f"Starting {profiles[0].label}…")
        job = CompareJob(photos, profiles, self.settings, self.photo_set.truth, self.references,
                         self.vocabulary)
        self.start.emit(job, self._token)
        return True

    def _may_send(self, profiles: list[Profile]) -> bool:
        """Before photos go to a server off this computer, ask as the windows do; a yes is kept."""
        destinations: list[str] = []
        for profile in profiles:
            overrides = Overrides(engine=profile.engine, model=profile.model,
                                  image_tokens=profile.image_tokens, options=dict(profile.options))
            try:
                config = engine_config(self.settings, overrides)
            except CaptioneerError:
                continue  # the profile's row will say why it cannot run
            destinations += [url for url in remote_destinations(config) if url not in destinations]
        settings = approve_servers(self, self.settings, destinations)
        if settings is None:
            return False
        if settings is not self.settings:
            self.settings = settings
            self.settingsChanged.emit(settings)
        return True

    @property
    def running(self) -> bool:
        return self._token is not None

    def cancel(self) -> None:
        """Stop within the current photo; the profiles already finished stay in the table."""
        if self._token is not None:
            self._token.cancel()
            self.progress_label.setText("Cancelling…")

    def _on_progress(self, event: object) -> None:
        progress = cast(EvaluationProgress, event)
        done, total = progress_steps(progress)
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress_label.setText(progress_text(progress))

    def _on_scored(self, score: object) -> None:
        self.scores.append(cast(ProfileScore, score))
        self._show_table()

    def _on_failed(self, error: object) -> None:
        shown = cast(WindowError, error)
        self._fix = shown.fix
        self.set_banner(shown.text, FIX_BUTTONS.get(shown.fix or "", ""))

    def _on_finished(self, cancelled: bool) -> None:
        self._token = None
        self.set_running(False)
        self.progress.setValue(self.progress.maximum() if not cancelled else self.progress.value())
        count = len(self.scores)
        self.progress_label.setText(
            f"Cancelled: {count} profile{'s' if count != 1 else ''} finished." if cancelled
            else f"Done: {count} profile{'s' if count != 1 else ''} compared."
        )
        self._update_actions()

    # -- results -----------------------------------------------------------------------------------------

    def _show_table(self) -> None:
        self.columns = table_columns(self.scores)
        table = self.table
        table.setSortingEnabled(False)  # rows fill in place; sorting resumes afterwards
        table.clearSpans()
        table.clear()
        table.setColumnCount(len(self.columns))
        table.setHorizontalHeaderLabels(self.columns)
        table.setRowCount(len(self.scores))
        for row, score in enumerate(self.scores):
            for column, (text, key) in enumerate(table_row(score, self.columns)):
                item = SortedCell(text, key)
                item.setData(Qt.ItemDataRole.UserRole + 1, row)
                table.setItem(row, column, item)
        table.setSortingEnabled(True)
        self._span_failed_rows()
        metric = self.metric_combo.currentText()
        choices = chart_metrics(self.scores)
        self.metric_combo.blockSignals(True)
        self.metric_combo.clear()
        self.metric_combo.addItems(choices)
        self.metric_combo.setCurrentIndex(max(self.metric_combo.findText(metric), 0))
        self.metric_combo.setEnabled(bool(choices))
        self.metric_combo.blockSignals(False)
        self._draw_chart()
        self.footer.setText(metrics_note(self.scores))
        self._update_actions()

    def _span_failed_rows(self) -> None:
        """A profile that could not run shows its reason across the score columns (again after a sort: spans
        belong to row positions, not to the rows sorted)."""
        self.table.clearSpans()
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            score = self.scores[int(item.data(Qt.ItemDataRole.UserRole + 1))] if item is not None else None
            if score is not None and score.error is not None and self.table.columnCount() > 2:
                self.table.setSpan(row, 1, 1, self.table.columnCount() - 1)

    def _draw_chart(self) -> None:
        metric = self.metric_combo.currentText()
        bars, top = chart_bars(self.scores, metric) if metric else ([], 1.0)
        self.chart.set_bars(metric, bars, top)

    def selected_score(self) -> ProfileScore | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 0)
        return self.scores[int(item.data(Qt.ItemDataRole.UserRole + 1))] if item is not None else None

    def _update_actions(self) -> None:
        score = self.selected_score()
        idle = not self.running
        self.use_button.setEnabled(idle and score is not None and score.error is None)
        self.csv_button.setEnabled(idle and bool(self.scores))

    def confirm(self, question: str, detail: str) -> bool:
        return ask(self, "Use This Model?", question, "Use It", detail)

    def use_selected(self) -> None:
        """Caption with the selected profile from now on, after a confirmation."""
        score = self.selected_score()
        if score is None or score.error is not None:
            return
        profile = score.profile
        chosen = settings_for_profile(self.settings, profile)
        detail = (f"Engine {profile.engine}, model {Path(profile.model).name or profile.model}, image detail "
                  f"{profile.image_tokens} tokens. You can change it again in Settings.")
        if not self.confirm(f"Caption with {profile.label} from now on?", detail):
            return
        self.settings = chosen
        self.modelChosen.emit(chosen)
        self.progress_label.setText(f"Captioneer now captions with {profile.label}.")

    def table_text(self) -> list[list[str]]:
        """The header and every row as the table shows them now (in its sort order)."""
        rows = [[self.table.horizontalHeaderItem(c).text() for c in range(self.table.columnCount())]]
        for row in range(self.table.rowCount()):
            items = [self.table.item(row, c) for c in range(self.table.columnCount())]
            rows.append([item.text() if item is not None else "" for item in items])
        return rows

    def save_csv(self, path: Path | None = None) -> bool:
        """Write the table as it shows (asking where when no ``path``); an error shows in the banner."""
        if path is None:
            name, _filter = QFileDialog.getSaveFileName(self, "Save the Comparison", "comparison.csv",
                                                        "CSV files (*.csv)")
            if not name:
                return False
            path = Path(name)
        try:
            with path.open("w", newline="", encoding="utf-8") as fh:
                csv.writer(fh).writerows(self.table_text())
        except OSError as exc:
            self.set_banner(f"Cannot save {path.name}: {exc.strerror}. Choose another folder or name.")
            return False
        self.progress_label.setText(f"Saved {path.name}.")
        return True

    # -- errors and closing ------------------------------------------------------------------------------

    def show_error(self, exc: BaseException) -> None:
        shown = window_error(exc)
        self._on_failed(shown)

    def _open_fix(self) -> None:
        """The banner's button: the fix happens in the main window, so the dialog hands it over."""
        self.fixRequested.emit(self._fix or "")

    def done(self, result: int) -> None:  # Qt override: a comparison stops before the dialog goes
        if self._token is not None:
            self._token.cancel()
        for scan in self._scans:
            scan.wait()
        self.thread.quit()
        self.thread.wait(60_000)
        super().done(result)


def open_compare_models(owner: Any) -> CompareModelsDialog:
    """Show Compare Models over ``owner`` (the main window's controller): it blocks the other windows while
    open, unloads their idle engine before it runs, and hands a chosen model and any fix back to them."""
    dialog = CompareModelsDialog(
        owner.settings, owner.view,
        engine_busy=owner.engine_in_use, release_engine=owner.release_engine,
    )
    dialog.engine_note.setText("While the comparison runs, the model loaded for captioning is unloaded so "
                               "only one model is in memory; your next caption loads it again.")
    dialog.engine_note.show()
    dialog.modelChosen.connect(owner.apply_settings)
    dialog.settingsChanged.connect(owner.apply_settings)
    owner.view.closing.connect(dialog.close)  # quitting stops a comparison before the windows go
    fixes = {"settings": owner.open_settings, "choose_mmproj": owner.open_settings,
             "model_manager": owner.open_model_manager, "wizard": owner.open_wizard}
    dialog.fixRequested.connect(lambda fix: fixes[fix]() if fix in fixes else None)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.setWindowModality(Qt.WindowModality.ApplicationModal)
    dialog.show()
    return dialog
