"""The library window's file work, each on a worker thread with its own catalog connection: scanning a
folder in, the metadata write (per-file diff first, then write: one journaled write operation) and undoing
one write operation, and export/import of results as CSV or JSON."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QFileDialog, QListWidgetItem

from captioneer.backends.base import ProgressCallback
from captioneer.backends.cancel import CancelToken
from captioneer.backends.errors import ConfigurationError
from captioneer.desktop.library.browse import filtered_results
from captioneer.desktop.library.catalog import Catalog
from captioneer.desktop.library.exchange import export_csv, export_json, import_file
from captioneer.desktop.library.publishing import (
    WriteOperation,
    undo_write,
    writable_results,
    write_operations,
    write_results,
)
from captioneer.desktop.library.scanner import scan_library
from captioneer.desktop.library.sidecars import WriteMode
from captioneer.desktop.ui.library_browse import BrowseController
from captioneer.desktop.ui.library_dialogs_view import UndoWriteDialogView, WriteDialogView
from captioneer.desktop.ui.library_session import LibrarySession
from captioneer.desktop.ui.library_view import LibraryView
from captioneer.desktop.ui.library_workers import CatalogWork, catalog_call
from captioneer.desktop.ui.workers import Call

PREVIEW_LINES = 4000
"""The write preview shows the diff of this many files at most (and says how many more)."""


class FilesController(QObject):
    """Scan, write, undo, export and import for a library window: it drives their menu actions and dialogs,
    answers through the session's ``notify``, then asks the browser to show the catalog afresh."""

    def __init__(
        self,
        session: LibrarySession,
        view: LibraryView,
        browse: BrowseController,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.view = view
        self.browse = browse
        self._calls: list[Call] = []
        self._write_dialog: WriteDialogView | None = None
        self._undo_dialog: UndoWriteDialogView | None = None
        view.add_folder_action.triggered.connect(self._choose_folder)
        view.rescan_action.triggered.connect(self.rescan)
        view.write_action.triggered.connect(self.open_write_dialog)
        view.undo_write_action.triggered.connect(self.open_undo_dialog)
        view.export_action.triggered.connect(self._choose_export)
        view.import_action.triggered.connect(self._choose_import)

    def _call(self, work: CatalogWork, on_success: Callable[[Any], None], label: str) -> Call:
        call = catalog_call(self.session.catalog, work, self)
        self._calls.append(call)
        call.succeeded.connect(on_success)
        call.failed.connect(lambda message: self.session.notify(f"{label} failed: {message}"))
        call.progress.connect(lambda _fraction, text: self.view.statusBar().showMessage(text))
        call.finished.connect(lambda: self._calls.remove(call) if call in self._calls else None)
        call.start()
        return call

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.view, "Add a Photo Folder")
        if folder:
            self.add_folder(Path(folder))

    def add_folder(self, folder: Path) -> Call:
        """Scan a folder into the catalog (off the GUI thread), then show it."""
        folder = folder.expanduser().absolute()
        self.session.notify(f"Scanning {folder}…")

        def work(catalog: Catalog, progress: ProgressCallback, cancel: CancelToken) -> str:
            def found(count: int, name: str) -> None:
                progress(0.0, f"Scanning {folder}: {count:,} files so far ({name})")

            return scan_library(catalog, folder, cancel=cancel, progress=found).summary()

        def done(summary: str) -> None:
            self.session.notify(f"Scanned {folder}: {summary}")
            self.browse.refresh_overview()
            self.browse.apply_filter(folder=str(folder))

        return self._call(work, done, "Scanning")

    def rescan(self) -> Call:
        """Rescan every library for new, changed and moved photos."""
        roots = [Path(root) for _id, root in self.session.catalog.libraries()]

        def work(catalog: Catalog, progress: ProgressCallback, cancel: CancelToken) -> str:
            return "; ".join(
                f"{root.name}: {scan_library(catalog, root, cancel=cancel).summary()}" for root in roots
            )

        def done(summary: str) -> None:
            self.session.notify(f"Rescanned: {summary}" if summary else "No library yet: add a folder first.")
            self.browse.refresh_overview()
            self.browse.refilter()

        return self._call(work, done, "Scanning")

    def write_mode(self) -> WriteMode:
        return WriteMode(self.session.prefs.write_mode or self.session.settings.metadata_mode)

    def preview_write(self, mode: WriteMode, unreviewed: bool = False) -> Call:
        """The per-file metadata diff of writing the approved results; succeeded carries (summary, text)."""

        def work(catalog: Catalog, progress: ProgressCallback, cancel: CancelToken) -> tuple[str, str, int]:
            results = writable_results(catalog, unreviewed=unreviewed)
            lines: list[str] = []
            summary = write_results(catalog, results, mode=mode, dry_run=True, report=lines.append)
            text = "\n\n".join(lines[:PREVIEW_LINES])
            if len(lines) > PREVIEW_LINES:
                text += f"\n\n… and {len(lines) - PREVIEW_LINES:,} more files"
            if not results:
                return (
                    "Nothing to write: approve photos first (A), or tick the box to write unreviewed ones.",
                    "",
                    0,
                )
            return f"{len(results):,} results: {summary.describe(True)}.", text, summary.would_change

        return self._call(work, self._preview_ready_for_dialog, "The preview")

    def write_metadata(self, mode: WriteMode, unreviewed: bool = False) -> Call:
        """Write the approved results into the photos (one write operation, so it can be undone)."""

        def work(catalog: Catalog, progress: ProgressCallback, cancel: CancelToken) -> tuple[str, list[str]]:
            results = writable_results(catalog, unreviewed=unreviewed)
            total = max(1, len(results))
            done = [0]

            def report(text: str) -> None:
                done[0] += 1
                progress(min(1.0, done[0] / total), text)

            summary = write_results(catalog, results, mode=mode, report=report)
            problems = [f"{path}: {reason}" for path, reason in summary.failed + summary.skipped]
            return summary.describe(False), problems + summary.notes

        def finished(value: tuple[str, list[str]]) -> None:
            summary, details = value
            self.session.notify(f"Metadata written: {summary}.")
            if self._write_dialog is not None:
                self._write_dialog.summary.setText(f"Done: {summary}. Undo a Write… puts the files back.")
                self._write_dialog.preview.setPlainText(
                    "\n".join(details[:PREVIEW_LINES]) or "Every file was written; nothing was skipped."
                )
                self._write_dialog.write_button.setText("Written")  # not "Write 2 Files" once they are
                self._write_dialog.write_button.setEnabled(False)
            self.browse.refilter()

        return self._call(work, finished, "Writing")

    def open_write_dialog(self) -> WriteDialogView:
        """Write Metadata…: the diff per file first, then Write (non-modal, so the grid stays usable)."""
        if self._write_dialog is not None:
            self._write_dialog.raise_()
            return self._write_dialog
        dialog = WriteDialogView(self.view)
        dialog.mode.setCurrentIndex(max(0, dialog.mode.findData(self.write_mode().value)))
        self._write_dialog = dialog

        def refresh_preview() -> None:
            dialog.write_button.setEnabled(False)
            dialog.summary.setText("Preparing the preview…")
            dialog.preview.setPlainText("")
            self.session.prefs.write_mode = dialog.mode.currentData()
            self.preview_write(WriteMode(dialog.mode.currentData()), dialog.unreviewed.isChecked())

        def write() -> None:
            dialog.write_button.setEnabled(False)
            dialog.summary.setText("Writing…")
            self.write_metadata(WriteMode(dialog.mode.currentData()), dialog.unreviewed.isChecked())

        def closed() -> None:
            self._write_dialog = None

        dialog.mode.currentIndexChanged.connect(lambda _index: refresh_preview())
        dialog.unreviewed.toggled.connect(lambda _checked: refresh_preview())
        dialog.write_button.clicked.connect(write)
        dialog.finished.connect(lambda _code: closed())
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        refresh_preview()
        return dialog

    def _preview_ready_for_dialog(self, value: tuple[str, str, int]) -> None:
        summary, text, changes = value
        dialog = self._write_dialog
        if dialog is None:
            return
        dialog.summary.setText(summary)
        dialog.preview.setPlainText(text)
        dialog.write_button.setText(
            f"Write {changes:,} File{'s' if changes != 1 else ''}" if changes else "Write"
        )
        dialog.write_button.setEnabled(changes > 0)

    def open_undo_dialog(self) -> UndoWriteDialogView:
        """Undo a Write…: the write operations, newest first; undo the chosen one (non-modal)."""
        if self._undo_dialog is not None:
            self._undo_dialog.raise_()
            return self._undo_dialog
        dialog = UndoWriteDialogView(self.view)
        self._undo_dialog = dialog

        def undo_chosen() -> None:
            item = dialog.operations.currentItem()
            if item is not None:
                dialog.undo_button.setEnabled(False)
                self.undo_write(item.data(Qt.ItemDataRole.UserRole))

        def closed() -> None:
            self._undo_dialog = None

        dialog.operations.currentItemChanged.connect(
            lambda current, _previous: dialog.undo_button.setEnabled(current is not None)
        )
        dialog.undo_button.clicked.connect(undo_chosen)
        dialog.finished.connect(lambda _code: closed())
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        self._show_operations(write_operations(self.session.catalog))
        return dialog

    def _show_operations(self, operations: list[WriteOperation]) -> None:
        dialog = self._undo_dialog
        if dialog is None:
            return
        dialog.operations.clear()
        for operation in operations:
            item = QListWidgetItem(operation.describe())
            item.setData(Qt.ItemDataRole.UserRole, operation.id)
            dialog.operations.addItem(item)
        if not operations:
            dialog.summary.setText("Nothing has been written yet, so there is nothing to undo.")

    def undo_write(self, op_id: int) -> Call:
        """Restore every file write operation ``op_id`` changed, byte for byte; its results go back to
        approved. A write that a newer write of the same photos followed is refused, with what to do."""

        def work(catalog: Catalog, progress: ProgressCallback, cancel: CancelToken) -> str:
            report = undo_write(catalog, op_id)
            problems = [f"{path}: {reason}" for path, reason in report.conflicts + report.errors]
            return f"Undo write {op_id}: {report.summary()}" + (
                "\n" + "\n".join(problems[:20]) if problems else ""
            )

        def done(summary: str) -> None:
            self.session.notify(summary)
            if self._undo_dialog is not None:
                self._undo_dialog.summary.setText(summary)
                self._show_operations(write_operations(self.session.catalog))
            self.browse.refilter()

        call = self._call(work, done, "Undo")
        call.failed.connect(self._undo_failed)
        return call

    def _undo_failed(self, message: str) -> None:
        if self._undo_dialog is not None:
            self._undo_dialog.summary.setText(f"Not undone: {message}")
            self._undo_dialog.undo_button.setEnabled(self._undo_dialog.operations.currentItem() is not None)

    def _choose_export(self) -> None:
        path, _filter = QFileDialog.getSaveFileName(
            self.view, "Export Results", "captioneer-results.csv", "CSV (*.csv);;JSON (*.json)"
        )
        if path:
            self.export_results(Path(path))

    def export_results(self, path: Path) -> Call:
        """Export the newest result of every photo the filter shows, as CSV or JSON (by the file's suffix)."""
        browse = self.browse.filter

        def work(catalog: Catalog, progress: ProgressCallback, cancel: CancelToken) -> str:
            results = filtered_results(catalog, browse)
            text = export_json(results) if path.suffix.lower() == ".json" else export_csv(results)
            try:
                path.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise ConfigurationError(f"Cannot write {path}: {exc.strerror}") from None
            return f"Exported {len(results):,} results to {path}."

        return self._call(work, self.session.notify, "Export")

    def _choose_import(self) -> None:
        path, _filter = QFileDialog.getOpenFileName(
            self.view, "Import Edited Results", "", "Exports (*.csv *.json);;All files (*)"
        )
        if path:
            self.import_results(Path(path))

    def import_results(self, path: Path) -> Call:
        """Apply an edited export (every row checked first; nothing changes if one is wrong)."""

        def work(catalog: Catalog, progress: ProgressCallback, cancel: CancelToken) -> str:
            report = import_file(catalog, path)
            return f"Imported {path.name}: {report.updated} results updated, {report.unchanged} unchanged."

        def done(summary: str) -> None:
            self.session.notify(summary)
            self.browse.model.refresh()
            self.browse.refresh_overview()
            self.browse.refilter()

        return self._call(work, done, "Import")

    def shutdown(self) -> None:
        """Cancel what is still running and wait for it."""
        for call in list(self._calls):
            call.wait()
