"""Workers of the library window, each with its own catalog connection off the GUI thread: filter queries and
the folder/keyword overview, tagging runs through the engine host process, and one-off catalog jobs
(scan, write, undo, export, import) on top of :class:`captioneer.desktop.ui.workers.Call`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from captioneer.backends.base import EngineConfig, ProgressCallback
from captioneer.backends.cancel import CancelToken
from captioneer.backends.errors import Cancelled, CaptioneerError, ConfigurationError
from captioneer.desktop.library.browse import (
    BrowseFilter,
    keyword_counts,
    library_trees,
    photo_ids,
    photos_by_id,
    status_counts,
)
from captioneer.desktop.library.catalog import Catalog
from captioneer.desktop.library.folder_rules import FolderRule, describe_groups
from captioneer.desktop.library.rule_runs import rule_runs
from captioneer.desktop.library.run_media import clip_context
from captioneer.desktop.library.runs import (
    RunController,
    RunCounts,
    RunSpec,
    execute_run,
    get_run,
    model_identity,
    plan_run,
    queued_media,
    run_counts,
    set_run_state,
)
from captioneer.desktop.library.scanner import scan_library
from captioneer.desktop.ui.workers import BackendOpener, Call


class QueryWorker(QObject):
    """Answers filter queries and the folder/keyword overview on its own thread, newest question only."""

    queried = Signal(int, object)  # generation, [photo id]
    queryFailed = Signal(int, str)
    countsReady = Signal(int, object)  # generation, {status: photos}
    overviewReady = Signal(object, object)  # [FolderNode], [(keyword, count)]

    def __init__(self, catalog: Catalog) -> None:
        super().__init__()
        self._source = catalog
        self._catalog: Catalog | None = None
        self.latest = 0

    def _db(self) -> Catalog:
        if self._catalog is None:
            self._catalog = self._source.open_sibling()
        return self._catalog

    @Slot(int, object)
    def query(self, generation: int, browse: BrowseFilter) -> None:
        if generation != self.latest:
            return  # a newer filter is already queued behind this one
        try:
            ids = photo_ids(self._db(), browse)
        except CaptioneerError as exc:
            self.queryFailed.emit(generation, str(exc))
            return
        self.queried.emit(generation, ids)

    @Slot(int, object)
    def counts(self, generation: int, browse: BrowseFilter) -> None:
        """How many photos each status would show (an unreadable search was already reported by query)."""
        if generation != self.latest:
            return
        try:
            self.countsReady.emit(generation, status_counts(self._db(), browse))
        except CaptioneerError:
            return

    @Slot()
    def overview(self) -> None:
        catalog = self._db()
        self.overviewReady.emit(library_trees(catalog), keyword_counts(catalog))

    @Slot()
    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None


@dataclass(frozen=True)
class RunRequest:
    """A run the window starts: which photos (ids, or a folder scanned first), and what to ask of each.

    ``resume`` names an unfinished run to go on with instead of planning a new one; ``on_reviewed`` says what
    happens to photos whose current result was reviewed (see
    :func:`~captioneer.desktop.library.runs.plan_run`).
    """

    scope: str
    spec: RunSpec
    photo_ids: tuple[int, ...] = ()
    folder: Path | None = None
    redo: bool = False
    resume: int | None = None
    on_reviewed: str = "skip"
    rules: tuple[FolderRule, ...] = ()
    """Folder rules: the photos a rule takes are tagged as a run of their own, with the rule's choices."""


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended: ``done``, ``paused`` (stopped or cancelled; resumable), ``failed`` or ``nothing``."""

    state: str
    message: str
    run_id: int | None = None
    counts: RunCounts | None = None


class RunWorker(QObject):
    """Plans and executes one tagging run on its thread: scan (for a folder), plan, load the engine through
    the opener (the engine host process in the app), tag with progress, and always unload."""

    status = Signal(str)
    progress = Signal(object)  # RunProgress
    event = Signal(str)
    finished = Signal(object)  # RunOutcome

    def __init__(
        self,
        catalog: Catalog,
        opener: BackendOpener,
        config: EngineConfig,
        request: RunRequest,
        controller: RunController,
    ) -> None:
        super().__init__()
        self._source = catalog
        self._opener = opener
        self._config = config
        self._request = request
        self.controller = controller

    @Slot()
    def run(self) -> None:
        catalog = self._source.open_sibling()
        try:
            outcome = self._run(catalog)
        except Cancelled:
            outcome = RunOutcome("paused", "Stopped before tagging began.")
        except CaptioneerError as exc:
            outcome = RunOutcome("failed", str(exc))
        except BaseException:
            self.finished.emit(RunOutcome("failed", "Unexpected error — see the crash report."))
            raise
        finally:
            catalog.close()
        self.finished.emit(outcome)

    def _run(self, catalog: Catalog) -> RunOutcome:
        request, token = self._request, self.controller.cancel_token
        if request.resume is not None:
            run_id = request.resume
            run_ids = [run_id]
            run = get_run(catalog, run_id)
            engine, model, _quant = model_identity(self._config)
            if (run.engine, run.model) != (engine, model):
                raise ConfigurationError(
                    f"Run {run_id} was made with {run.model} ({run.engine}), but the model chosen now is "
                    f"{model} ({engine}). Choose that model in Settings to resume the run, or tag the photos "
                    "again as a new run."
                )
        else:
            photos: Sequence[Any]
            if request.folder is not None:
                self.status.emit(f"Scanning {request.folder}…")
                report = scan_library(catalog, request.folder, cancel=token)
                self.event.emit(f"Scanned {request.folder}: {report.summary()}")
                photos = catalog.photos_under(request.folder)
            else:
                photos = photos_by_id(catalog, request.photo_ids)
            run_ids = self._plan(catalog, photos)
            if not isinstance(run_ids, list):
                return run_ids
        # Several runs (folder rules) are tagged in turn with the one model load below.
        pending = [run_id for run_id in run_ids if run_counts(catalog, run_id).pending]
        for run_id in set(run_ids) - set(pending):
            set_run_state(catalog, run_id, "done")
        if not pending:
            run_id = run_ids[-1]
            counts = run_counts(catalog, run_id)
            return RunOutcome("done", f"Run {run_id}: every photo is already tagged.", run_id, counts)
        if any(queued_media(catalog, run_id, "pending")[1] for run_id in pending):
            # Clips among the photos: an engine sized for one photo gets a context that holds a clip too.
            self._config = clip_context(self._config, request.spec.video_tokens)
        self.status.emit(f"Loading {Path(self._config.model).name or self._config.model}…")
        backend = self._opener(self._config)
        try:
            backend.load(
                progress=lambda fraction, message: self.status.emit(f"{message} ({fraction:.0%})"),
                cancel=token,
            )
            for run_id in pending:
                counts = run_counts(catalog, run_id)
                self.status.emit(f"Tagging {counts.pending} photos")
                counts = execute_run(
                    catalog,
                    run_id,
                    backend,
                    controller=self.controller,
                    on_progress=self.progress.emit,
                    on_event=self.event.emit,
                )
        except Cancelled:
            return RunOutcome(
                "paused",
                f"Run {run_id} stopped; resume it to tag the rest.",
                run_id,
                run_counts(catalog, run_id),
            )
        finally:
            backend.unload()
        note = f", {counts.failed} could not be tagged" if counts.failed else ""
        review = f", {counts.needs_review} need a closer look" if counts.needs_review else ""
        runs = f"{len(pending)} runs (folder rules) finished; " if len(pending) > 1 else ""
        return RunOutcome(
            "done", f"{runs}Run {run_id} finished: {counts.done} tagged{note}{review}.", run_id, counts
        )

    def _plan(self, catalog: Catalog, photos: Sequence[Any]) -> list[int] | RunOutcome:
        """Plan the request's run, one per folder rule that takes some of ``photos``: their ids (in order),
        or the outcome when there is nothing to tag."""
        request = self._request
        runs = rule_runs(catalog, photos, request.spec, request.rules)
        ruled = describe_groups([(group.rule, group.photos) for group in runs])
        if ruled:
            self.event.emit(f"Folder rules: {ruled}")
        plans = [
            plan_run(
                catalog,
                group.scope(request.scope),
                group.photos,
                group.spec,
                self._config,
                redo=request.redo,
                on_reviewed=request.on_reviewed,
            )
            for group in runs
        ]
        run_ids = [plan.run_id for plan in plans if plan.run_id is not None]
        if run_ids:
            return run_ids
        done = sum(plan.already_done for plan in plans)
        reviewed = sum(plan.skipped_reviewed for plan in plans)
        skipped = f" {reviewed} reviewed photos were skipped." if reviewed else ""
        return RunOutcome(
            "nothing",
            f"Nothing to tag: {done} photos already have a result from this model "
            f"(tick “Tag again” to redo them).{skipped}",
        )


CatalogWork = Callable[[Catalog, ProgressCallback, CancelToken], object]


def catalog_call(catalog: Catalog, work: CatalogWork, parent: QObject | None = None) -> Call:
    """A :class:`Call` whose work gets its own connection to ``catalog`` (closed when the work ends)."""

    def run(progress: ProgressCallback, cancel: CancelToken) -> object:
        sibling = catalog.open_sibling()
        try:
            return work(sibling, progress, cancel)
        finally:
            sibling.close()

    return Call(run, parent)
