"""The model manager: the model in use wherever it lives and the downloaded models with their sizes; verify,
use or delete a download, or use model files the user already has."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QMessageBox, QTableWidgetItem, QWidget

from captioneer.backends.base import ProgressCallback
from captioneer.backends.cancel import CancelToken
from captioneer.backends.catalog import Variant, load_catalog
from captioneer.backends.download import (
    FileCheck,
    InstalledModel,
    Manifest,
    downloaded,
    installed_model,
    remove,
    verify,
)
from captioneer.backends.errors import Cancelled, CaptioneerError
from captioneer.backends.recommend import Profile, recommend
from captioneer.backends.registry import engine_entry
from captioneer.desktop.core.fixes import WindowError, window_error
from captioneer.desktop.core.paths import models_dir
from captioneer.desktop.core.settings import Settings
from captioneer.desktop.ui.model_manager_view import ModelManagerView
from captioneer.desktop.ui.own_files import OwnFiles
from captioneer.desktop.ui.quick_caption import format_bytes
from captioneer.desktop.ui.wizard import Prober, probe_this_computer
from captioneer.desktop.ui.workers import Call


@dataclass(frozen=True)
class ModelEntry:
    """One folder of downloaded model files and what it holds."""

    folder: Path
    manifest: Manifest
    variant: Variant
    installed: InstalledModel | None

    @property
    def label(self) -> str:
        if self.variant.entry.quant_choice:  # the precision is picked at load: one download serves them all
            return f"{self.variant.model.name} (all precisions)"
        return f"{self.variant.model.name} {self.variant.quant}"

    @property
    def state(self) -> str:
        return "Complete" if self.installed is not None else "Incomplete — resume it in the set-up wizard"

    def in_use(self, settings: Settings) -> bool:
        return bool(settings.model) and Path(settings.model).resolve().is_relative_to(self.folder.resolve())


@dataclass(frozen=True)
class ModelInUse:
    """The model the settings use when it is not one of Captioneer's downloads: the user's own files."""

    engine: str
    model: Path
    mmproj: Path | None

    @property
    def label(self) -> str:
        return self.model.name

    @property
    def size(self) -> int:
        files = [self.model, self.mmproj] if self.model.is_file() else list(self.model.glob("*"))
        return sum(path.stat().st_size for path in files if path is not None and path.is_file())

    @property
    def state(self) -> str:
        missing = [path.name for path in (self.model, self.mmproj) if path is not None and not path.exists()]
        if missing:
            return f"Missing: {', '.join(missing)} — choose the files again"
        return "In use (your own files)"


def model_in_use(settings: Settings, entries: list[ModelEntry], downloads: Path) -> ModelInUse | None:
    """The settings' model when it lives outside the downloads folder (None for a download, even a deleted
    one, a server engine's model name, or no model)."""
    if not settings.model or not engine_entry(settings.engine).local_files:
        return None
    model = Path(settings.model).expanduser()
    if model.resolve().is_relative_to(downloads.resolve()) or any(e.in_use(settings) for e in entries):
        return None
    return ModelInUse(settings.engine, model, Path(settings.mmproj) if settings.mmproj else None)


def list_models(folder: Path) -> list[ModelEntry]:
    """Every model folder with a manifest under ``folder``, complete or not."""
    catalog = load_catalog()
    entries = []
    for path, manifest in downloaded(folder, catalog):
        variant = catalog.by_store(path.name)[0]
        entries.append(ModelEntry(path, manifest, variant, installed_model(variant, folder)))
    return entries


def describe_checks(checks: list[FileCheck]) -> str:
    """A verify result in one or a few lines."""
    bad = [check for check in checks if not check.ok]
    if not bad:
        return f"All {len(checks)} files are intact ✓"
    lines = [f"{c.name}: {c.status}" + (f" ({c.detail})" if c.detail else "") for c in bad]
    return "Problems found — download the model again in the set-up wizard to repair it:\n" + "\n".join(lines)


def settings_for(settings: Settings, entry: ModelEntry) -> Settings:
    """Settings that use ``entry``'s files."""
    installed = entry.installed
    if installed is None:
        raise ValueError("only a complete download can be used")
    keep_quant = settings.engine == entry.variant.engine and entry.variant.entry.quant_choice
    return settings.model_copy(
        update={
            "engine": entry.variant.engine,
            "model": str(installed.model_path),
            "mmproj": str(installed.mmproj_path) if installed.mmproj_path else None,
            "quant": settings.quant if keep_quant else None,
        }
    )


class ModelManagerDialog(ModelManagerView):
    """Verify runs off the GUI thread with progress and a Stop button; delete asks first."""

    modelChosen = Signal(object)  # Settings

    def __init__(self, settings: Settings, parent: QWidget | None = None, *,
                 prober: Prober = probe_this_computer) -> None:
        super().__init__(parent)
        self.settings = settings
        self.prober = prober
        self.entries: list[ModelEntry] = []
        self.outside: ModelInUse | None = None
        self.profiles: list[Profile] = []
        self._verify: Call | None = None
        self._probe: Call | None = None
        self.own_files = OwnFiles(self.own_files_view, self, lambda: self.profiles)
        self._recommending = False  # the probe for the recommended image detail is running
        self.own_files.recommending = lambda: self._recommending
        self.own_files.changed.connect(self._own_files_changed)
        self.intro.setText(f"The model Captioneer uses, wherever it is, and the models it downloaded (into "
                           f"{models_dir()}). Ollama keeps its own models (see `ollama list`).")
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.verify_button.clicked.connect(self.verify_selected)
        self.cancel_button.clicked.connect(self._stop_verify)
        self.use_button.clicked.connect(self.use_selected)
        self.delete_button.clicked.connect(self.delete_selected)
        self.refresh()

    def confirm(self, question: str) -> bool:
        answer = QMessageBox.question(self, "Delete model", question)
        return answer == QMessageBox.StandardButton.Yes

    def refresh(self) -> None:
        self.entries = list_models(models_dir())
        self.outside = model_in_use(self.settings, self.entries, models_dir())
        rows: list[tuple[str, ...]] = []
        if self.outside is not None:  # the model in use comes first, wherever it lives
            outside = self.outside
            rows.append((f"{outside.label} — in use", outside.engine, format_bytes(outside.size),
                         outside.state, str(outside.model)))
        for entry in self.entries:
            name = entry.label + (" — in use" if entry.in_use(self.settings) else "")
            rows.append((name, entry.variant.engine, format_bytes(entry.manifest.size), entry.state,
                         str(entry.folder)))
        self.table.setRowCount(len(rows))
        for row, cells in enumerate(rows):
            for column, text in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(text))
        self.table.setVisible(bool(rows))
        self.empty.setVisible(not rows)
        self.buttons.setVisible(bool(rows))
        if rows:
            self.table.selectRow(0)
        self._update_buttons()

    def selected(self) -> ModelEntry | None:
        """The selected download (None for the user's own files, which are not Captioneer's to manage)."""
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        index = rows[0].row() - (1 if self.outside is not None else 0)
        return self.entries[index] if index >= 0 else None

    def _update_buttons(self) -> None:
        entry = self.selected()
        busy = self._verify is not None and self._verify.running
        self.verify_button.setEnabled(entry is not None and not busy)
        self.delete_button.setEnabled(entry is not None and not busy)
        self.use_button.setEnabled(entry is not None and entry.installed is not None and not busy)

    def verify_selected(self) -> None:
        entry = self.selected()
        if entry is None:
            return
        variant = entry.variant

        def work(progress: ProgressCallback, cancel: CancelToken) -> list[FileCheck] | WindowError:
            try:
                return verify(variant, models_dir(), progress=progress, cancel=cancel)
            except Cancelled:
                raise
            except CaptioneerError as exc:
                return window_error(exc)  # in the window's words

        self.status.setText(f"Checking {entry.label}…")
        self.progress.setValue(0)
        self.progress.show()
        self.cancel_button.show()
        call = Call(work, self)
        call.progress.connect(lambda fraction, _m: self.progress.setValue(round(fraction * 1000)))
        call.succeeded.connect(self._verified)
        call.cancelled.connect(lambda: self.status.setText("Verification stopped."))
        call.finished.connect(self._verify_finished)
        self._verify = call.start()
        self._update_buttons()

    def _verified(self, checks: object) -> None:
        if isinstance(checks, WindowError):
            self.status.setText(f"Could not verify: {checks.text}")
        else:
            self.status.setText(describe_checks(cast(list[FileCheck], checks)))

    def _stop_verify(self) -> None:
        if self._verify is not None:
            self._verify.cancel()

    def _verify_finished(self) -> None:
        self.progress.hide()
        self.cancel_button.hide()
        self._update_buttons()

    def use_selected(self) -> None:
        entry = self.selected()
        if entry is not None and entry.installed is not None:
            self.settings = settings_for(self.settings, entry)
            self.modelChosen.emit(self.settings)
            self.status.setText(f"Captioneer now uses {entry.label}.")
            self.refresh()

    def delete_selected(self) -> None:
        entry = self.selected()
        if entry is None:
            return
        warning = ""
        if entry.in_use(self.settings):
            warning = " It is the model Captioneer uses now; you will need to pick another."
        size = format_bytes(entry.manifest.size)
        question = (f"Delete {entry.label} ({size}) from this computer?{warning} "
                    "You can download it again later.")
        if not self.confirm(question):
            return
        remove(entry.variant, models_dir())
        self.status.setText(f"Deleted {entry.label}.")
        self.refresh()

    # -- the user's own files ----------------------------------------------------------------------------

    def _own_files_changed(self, own: object) -> None:
        """Once the picked files are complete, the recommendation for this computer is worked out (off the
        GUI thread: probing takes a moment) and the files are used with its image detail."""
        if own is None:
            return
        if not self.profiles and self._probe is None:
            settings, prober = self.settings, self.prober
            call = Call(lambda _progress, _cancel: recommend(prober(settings)), self)
            call.succeeded.connect(self._recommended)
            call.failed.connect(self._not_recommended)
            self._recommending = True
            self._probe = call.start()
            self.own_files.show_choice()  # says the recommendation is being worked out
            return
        if self.own_files.ready() and not self._recommending:
            self._use_own_files()

    def _not_recommended(self, message: str) -> None:
        self._recommending = False
        self.status.setText(f"This computer could not be checked ({message}): the image detail is kept.")
        if self.own_files.ready():
            self._use_own_files()

    def _recommended(self, profiles: object) -> None:
        assert isinstance(profiles, list)
        self.profiles = profiles
        self._recommending = False
        if self.own_files.own is not None:
            self.own_files.show_choice()  # with the recommendation now known; complete files are used

    def _use_own_files(self, note: str = "") -> None:
        own = self.own_files.own
        assert own is not None
        self.settings = self.own_files.settings(self.settings)
        self.modelChosen.emit(self.settings)
        self.status.setText(f"Captioneer now uses {own.model.name}, where it is, with an image detail of "
                            f"{self.settings.image_tokens} tokens{note}.")
        self.refresh()

    def done(self, result: int) -> None:  # Qt override: stop a running verify before closing
        for call in (self._verify, self._probe):
            if call is not None and call.running:
                call.wait()
        super().done(result)
