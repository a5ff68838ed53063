"""The model manager: list downloaded models with their sizes, verify their checksums, use or delete one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
from captioneer.desktop.core.paths import models_dir
from captioneer.desktop.core.settings import Settings
from captioneer.desktop.ui.model_manager_view import ModelManagerView
from captioneer.desktop.ui.quick_caption import format_bytes
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

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.entries: list[ModelEntry] = []
        self._verify: Call | None = None
        self.intro.setText(f"Models downloaded by Captioneer, in {models_dir()}. "
                           "Ollama keeps its own models (see `ollama list`).")
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
        self.table.setRowCount(len(self.entries))
        for row, entry in enumerate(self.entries):
            name = entry.label + (" — in use" if entry.in_use(self.settings) else "")
            size = format_bytes(entry.manifest.size)
            cells = (name, entry.variant.engine, size, entry.state, str(entry.folder))
            for column, text in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(text))
        self.table.setVisible(bool(self.entries))
        self.empty.setVisible(not self.entries)
        self.buttons.setVisible(bool(self.entries))
        if self.entries:
            self.table.selectRow(0)
        self._update_buttons()

    def selected(self) -> ModelEntry | None:
        rows = self.table.selectionModel().selectedRows()
        return self.entries[rows[0].row()] if rows else None

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

        def work(progress: ProgressCallback, cancel: CancelToken) -> list[FileCheck]:
            return verify(variant, models_dir(), progress=progress, cancel=cancel)

        self.status.setText(f"Checking {entry.label}…")
        self.progress.setValue(0)
        self.progress.show()
        self.cancel_button.show()
        call = Call(work, self)
        call.progress.connect(lambda fraction, _m: self.progress.setValue(round(fraction * 1000)))
        call.succeeded.connect(lambda checks: self.status.setText(describe_checks(checks)))
        call.failed.connect(lambda message: self.status.setText(f"Could not verify: {message}"))
        call.cancelled.connect(lambda: self.status.setText("Verification stopped."))
        call.finished.connect(self._verify_finished)
        self._verify = call.start()
        self._update_buttons()

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

    def done(self, result: int) -> None:  # Qt override: stop a running verify before closing
        if self._verify is not None and self._verify.running:
            self._verify.wait()
        super().done(result)
