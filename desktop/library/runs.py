"""Tagging runs: a queue of photos in the catalog, processed exactly once, resumable after a crash, with
progress, pause, cancel, batching, keyword clean-up and degenerate-output detection."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from captioneer.backends.base import FINISH_LENGTH, Backend, EngineConfig, finish_reason_of
from captioneer.backends.cancel import CancelToken
from captioneer.backends.errors import (
    Cancelled,
    CaptioneerError,
    ConfigurationError,
    EngineCrashedError,
    GenerationError,
    ImageError,
    InvalidOutputError,
    ResourceExhaustedError,
    TruncatedOutputError,
)
from captioneer.backends.host import QuarantinedImageError
from captioneer.backends.registry import engine_entry
from captioneer.backends.request import GenerationRequest, PreparedImage, SamplingOptions
from captioneer.backends.structured import parse_structured, truncation_message
from captioneer.desktop.core.answer_text import clean_answer_data, clean_text
from captioneer.desktop.core.captioning import Answer, generate_answer
from captioneer.desktop.core.images import PixelBudget, engine_budget, prepare_image
from captioneer.desktop.core.tasks import Task, TaskOptions, build_request, get_task, prompt_hash, task_schema
from captioneer.desktop.library.catalog import REVIEWED_STATES, Catalog, CatalogError, Photo
from captioneer.desktop.library.keywords import CleanupRules, Vocabulary, clean_keywords
from captioneer.desktop.library.quality import (
    REPEAT_WINDOW,
    answer_problems,
    normalise_caption,
    repeated_caption,
)

CRASH_LIMIT = 3
"""A photo during which the engine crashed this many times is quarantined (marked failed)."""
FAILURE_LIMIT = 2
"""A photo whose generation failed this many times (not a crash) is marked failed."""
RESUMABLE_STATES = ("pending", "running", "paused")
UNUSABLE_IMAGE_KINDS = frozenset(
    {"empty", "not-an-image", "unsupported", "needs-plugin", "corrupt", "too-large"}
)
"""Image failures that will not go away by trying again: the photo is marked unreadable until it changes."""


@dataclass(frozen=True)
class RunSpec:
    """What a run asks of every photo; stored with the run so a resumed run asks exactly the same."""

    task: str = "keywords"
    language: str = "English"
    max_keywords: int = 20
    vocabulary: tuple[str, ...] = ()
    synonyms: dict[str, str] = field(default_factory=dict)
    vocabulary_only: bool = True
    sampling: dict[str, Any] = field(default_factory=dict)
    image_tokens: int = 1024
    batch_size: int = 1

    def task_options(self) -> TaskOptions:
        return TaskOptions(language=self.language, max_keywords=self.max_keywords, vocabulary=self.vocabulary)

    def cleanup_rules(self) -> CleanupRules:
        return CleanupRules(
            max_count=self.max_keywords,
            vocabulary=Vocabulary(terms=self.vocabulary, synonyms=dict(self.synonyms)),
            vocabulary_only=self.vocabulary_only,
        )

    def sampling_options(self, task: Task) -> SamplingOptions:
        values = {"max_new_tokens": task.max_tokens, **self.sampling}
        return SamplingOptions.from_user(**values)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        data = json.loads(text)
        data["vocabulary"] = tuple(data.get("vocabulary", ()))
        return cls(**data)


@dataclass(frozen=True)
class Run:
    id: int
    scope: str
    task: str
    language: str
    engine: str
    model: str
    quant: str | None
    prompt_hash: str
    spec: RunSpec
    state: str
    message: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None


@dataclass(frozen=True)
class RunCounts:
    total: int = 0
    pending: int = 0
    done: int = 0
    failed: int = 0
    needs_review: int = 0
    versions: int = 0
    """Results of the run that are not (or no longer) current: kept as versions, never written."""


REVIEWED_CHOICES = ("ask", "skip", "replace", "keep")
"""What to do with photos whose current result for the task was already reviewed:
ask the person; skip them; replace (the new result becomes current, the old one a superseded version);
keep both (the reviewed result stays current and is what is written; the new one is kept as a version that
``captioneer review use ID`` makes current)."""


@dataclass(frozen=True)
class RunPlan:
    """The outcome of :func:`plan_run`: which run (None when there is nothing to tag), and how the selection
    was split."""

    run_id: int | None
    resumed: bool
    added: int
    already_done: int
    skipped_reviewed: int = 0


@dataclass(frozen=True)
class RunProgress:
    """A snapshot for progress displays."""

    run_id: int
    total: int
    done: int
    failed: int
    needs_review: int
    elapsed: float
    photos_per_minute: float | None
    eta_seconds: float | None
    current: str = ""

    @property
    def finished(self) -> int:
        return self.done + self.failed

    def describe(self) -> str:
        """One line: ``run 3: 120/400 (2 failed, 5 to review) · 41.2 photos/min · ETA 6m 49s``."""
        parts = [f"run {self.run_id}: {self.finished}/{self.total}"]
        extras = [f"{self.failed} failed"] if self.failed else []
        if self.needs_review:
            extras.append(f"{self.needs_review} to review")
        if extras:
            parts[0] += f" ({', '.join(extras)})"
        if self.photos_per_minute is not None:
            parts.append(f"{self.photos_per_minute:.1f} photos/min")
        if self.eta_seconds is not None:
            parts.append(f"ETA {format_duration(self.eta_seconds)}")
        return " · ".join(parts)


ProgressCallback = Callable[[RunProgress], None]
EventCallback = Callable[[str], None]


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


class RunController:
    """Pause, resume and cancel a run from another thread (the window, a signal handler)."""

    def __init__(self) -> None:
        self.cancel_token = CancelToken()
        self._running = threading.Event()
        self._running.set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def cancel(self) -> None:
        self.cancel_token.cancel()
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait_while_paused(self) -> None:
        """Block while paused; raise Cancelled if cancelled meanwhile."""
        while not self._running.wait(0.2):
            self.cancel_token.raise_if_cancelled()
        self.cancel_token.raise_if_cancelled()


# ---------------------------------------------------------------------------------------------------------
# Planning


def model_identity(config: EngineConfig) -> tuple[str, str, str | None]:
    """(engine, model, quant) as recorded on runs and results; model files are named by file name."""
    model = config.model
    if engine_entry(config.engine).local_files and ("/" in model or "\\" in model) and Path(model).exists():
        model = Path(model).name
    return config.engine, model, config.options.get("quant")


def spec_prompt_hash(spec: RunSpec) -> str:
    task = get_task(spec.task)
    return prompt_hash(build_request(task, [], spec.task_options(), spec.sampling_options(task)))


def photo_decision(*, tagged_by_model: bool, current_reviewed: bool, redo: bool, on_reviewed: str) -> str:
    """What a new run does with one photo: ``tag`` it, leave it out as ``done`` (this model already tagged it
    for the task; ``redo`` tags it again), leave it out as ``reviewed`` (its current result for the task was
    reviewed and the choice is ``skip``), or ``ask`` (the caller must ask the person first)."""
    if tagged_by_model and not redo:
        return "done"
    if current_reviewed and on_reviewed in ("ask", "skip"):
        return "ask" if on_reviewed == "ask" else "reviewed"
    return "tag"


def _reviewed_photo_ids(db: sqlite3.Connection, task: str) -> set[int]:
    """Photos whose current result for ``task`` a person approved, rejected, edited or wrote."""
    states = ",".join("?" * len(REVIEWED_STATES))
    return {
        int(r[0])
        for r in db.execute(
            "SELECT photo_id FROM results WHERE task = ? AND current = 1 "
            f"AND (edited = 1 OR review IN ({states}))",
            (task, *REVIEWED_STATES),
        )
    }


def _tagged_photo_ids(db: sqlite3.Connection, task: str, model: str, run_id: int | None) -> set[int]:
    """Photos that already have a result for ``task`` from ``model`` (from another run than ``run_id``)."""
    return {
        int(r[0])
        for r in db.execute(
            "SELECT DISTINCT photo_id FROM results WHERE task = ? AND model = ? AND run_id != ?",
            (task, model, run_id or 0),
        )
    }


def reviewed_in_selection(
    catalog: Catalog, photos: Sequence[Photo], spec: RunSpec, config: EngineConfig, *, redo: bool = False
) -> int:
    """How many of ``photos`` a run would tag again although their current result for the task was reviewed:
    the number to ask the person about before :func:`plan_run` (with ``on_reviewed`` chosen)."""
    _engine, model, _quant = model_identity(config)
    tagged = _tagged_photo_ids(catalog.db, spec.task, model, None)
    reviewed = _reviewed_photo_ids(catalog.db, spec.task)
    return sum(
        photo_decision(
            tagged_by_model=photo.id in tagged,
            current_reviewed=photo.id in reviewed,
            redo=redo,
            on_reviewed="ask",
        )
        == "ask"
        for photo in photos
        if photo.status == "present"
    )


def plan_run(
    catalog: Catalog,
    scope: str,
    photos: Sequence[Photo],
    spec: RunSpec,
    config: EngineConfig,
    *,
    redo: bool = False,
    on_reviewed: str = "skip",
) -> RunPlan:
    """Queue ``photos`` for tagging, resuming an unfinished run with the same scope, task, model and prompt.

    Photos that already have a result for the same task and model are left out unless ``redo``; a photo is
    never queued twice in one run. ``on_reviewed`` (one of :data:`REVIEWED_CHOICES` but ``ask``) says what
    happens to photos whose current result for the task was reviewed: ``skip`` leaves them out; ``replace``
    makes the new result current; ``keep`` stores it as a version and keeps the reviewed one current. A result
    that meets a reviewed current one at commit time (reviewed while the run went on) never replaces it
    unless the run was told ``replace``.

    Raises:
        ConfigurationError: the task needs a question, or ``on_reviewed`` is ``ask`` or unknown.
    """
    task = get_task(spec.task)
    if task.needs_question:
        raise ConfigurationError(f"The '{task.id}' task needs a question and cannot tag a library.")
    if on_reviewed not in REVIEWED_CHOICES[1:]:
        raise ConfigurationError(
            f"Choose what to do with reviewed photos ({', '.join(REVIEWED_CHOICES[1:])}), "
            f"not '{on_reviewed}'."
        )
    engine, model, quant = model_identity(config)
    phash = spec_prompt_hash(spec)
    photo_ids = [photo.id for photo in photos if photo.status == "present"]
    # What a result does when it meets a reviewed current one: only an explicit replace displaces it.
    at_commit = "replace" if on_reviewed == "replace" else "keep"
    with catalog.transaction() as db:
        row = db.execute(
            "SELECT id FROM runs WHERE scope = ? AND task = ? AND engine = ? AND model = ? "
            "AND prompt_hash = ? "
            f"AND state IN ({','.join('?' * len(RESUMABLE_STATES))}) ORDER BY id DESC LIMIT 1",
            (scope, spec.task, engine, model, phash, *RESUMABLE_STATES),
        ).fetchone()
        run_id = int(row[0]) if row is not None else None
        tagged = _tagged_photo_ids(db, spec.task, model, run_id)
        reviewed = _reviewed_photo_ids(db, spec.task)
        decisions = {
            photo_id: photo_decision(
                tagged_by_model=photo_id in tagged,
                current_reviewed=photo_id in reviewed,
                redo=redo,
                on_reviewed=on_reviewed,
            )
            for photo_id in photo_ids
        }
        wanted = [photo_id for photo_id in photo_ids if decisions[photo_id] == "tag"]
        already_done = sum(decision == "done" for decision in decisions.values())
        skipped_reviewed = sum(decision == "reviewed" for decision in decisions.values())
        if run_id is None and not wanted:
            return RunPlan(
                run_id=None,
                resumed=False,
                added=0,
                already_done=already_done,
                skipped_reviewed=skipped_reviewed,
            )
        if run_id is not None:
            db.execute(
                "UPDATE runs SET state = 'pending', message = NULL, on_reviewed = ? WHERE id = ?",
                (at_commit, run_id),
            )
        else:
            cursor = db.execute(
                "INSERT INTO runs (scope, task, language, engine, model, quant, prompt_hash, options, state, "
                "created_at, on_reviewed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                (
                    scope,
                    spec.task,
                    spec.language,
                    engine,
                    model,
                    quant,
                    phash,
                    spec.to_json(),
                    time.time(),
                    at_commit,
                ),
            )
            run_id = int(cursor.lastrowid)
        position = int(
            db.execute(
                "SELECT COALESCE(MAX(position), -1) FROM run_items WHERE run_id = ?", (run_id,)
            ).fetchone()[0]
        )
        added = 0
        for photo_id in wanted:
            cursor = db.execute(
                "INSERT OR IGNORE INTO run_items (run_id, photo_id, position) VALUES (?, ?, ?)",
                (run_id, photo_id, position + 1),
            )
            if cursor.rowcount:
                position += 1
                added += 1
    return RunPlan(
        run_id=run_id,
        resumed=row is not None,
        added=added,
        already_done=already_done,
        skipped_reviewed=skipped_reviewed,
    )


# ---------------------------------------------------------------------------------------------------------
# Queries


_RUN_COLUMNS = (
    "id, scope, task, language, engine, model, quant, prompt_hash, options, state, message, created_at, "
    "started_at, finished_at"
)


def get_run(catalog: Catalog, run_id: int) -> Run:
    row = catalog.db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise CatalogError(f"There is no run {run_id}. List runs with: captioneer runs")
    return _run_from_row(row)


def list_runs(catalog: Catalog) -> list[Run]:
    return [_run_from_row(row) for row in catalog.db.execute(f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY id")]


def run_counts(catalog: Catalog, run_id: int) -> RunCounts:
    counts = dict(
        catalog.db.execute("SELECT state, COUNT(*) FROM run_items WHERE run_id = ? GROUP BY state", (run_id,))
    )
    review, versions = catalog.db.execute(
        "SELECT COALESCE(SUM(current = 1 AND review = 'needs_review'), 0), COALESCE(SUM(current = 0), 0) "
        "FROM results WHERE run_id = ?",
        (run_id,),
    ).fetchone()
    return RunCounts(
        total=sum(counts.values()),
        pending=counts.get("pending", 0),
        done=counts.get("done", 0),
        failed=counts.get("failed", 0),
        needs_review=int(review),
        versions=int(versions),
    )


def failed_items(catalog: Catalog, run_id: int) -> list[tuple[str, str | None, str | None]]:
    """(path, error, kind) of the photos a run could not tag."""
    return [
        (row[0], row[1], row[2])
        for row in catalog.db.execute(
            "SELECT p.path, i.error, i.error_kind FROM run_items i JOIN photos p ON p.id = i.photo_id "
            "WHERE i.run_id = ? AND i.state = 'failed' ORDER BY i.position",
            (run_id,),
        )
    ]


def _run_from_row(row: Sequence[Any]) -> Run:
    values = list(row)
    values[8] = RunSpec.from_json(values[8])
    return Run(*values)


def abandon_run(catalog: Catalog, run_id: int, message: str) -> None:
    """The engine could not start: forget the run if nothing was tagged yet, else leave it paused."""
    with catalog.transaction() as db:
        has_results = db.execute("SELECT 1 FROM results WHERE run_id = ? LIMIT 1", (run_id,)).fetchone()
        if has_results is None:
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        else:
            db.execute("UPDATE runs SET state = 'paused', message = ? WHERE id = ?", (message, run_id))


def set_run_state(catalog: Catalog, run_id: int, state: str, message: str | None = None) -> None:
    now = time.time()
    with catalog.transaction() as db:
        db.execute(
            "UPDATE runs SET state = ?, message = ?, "
            "started_at = CASE WHEN ? = 'running' AND started_at IS NULL THEN ? ELSE started_at END, "
            "finished_at = CASE WHEN ? IN ('done', 'cancelled', 'failed') THEN ? ELSE finished_at END "
            "WHERE id = ?",
            (state, message, state, now, state, now, run_id),
        )


# ---------------------------------------------------------------------------------------------------------
# Execution


@dataclass
class _Outcome:
    caption: str = ""
    keywords: list[str] = field(default_factory=list)
    title: str | None = None
    alt_text: str | None = None
    raw: str = ""
    attempts: int = 1
    problems: list[str] = field(default_factory=list)
    retried: bool = False


class _Runner:
    def __init__(
        self,
        catalog: Catalog,
        run: Run,
        backend: Backend,
        controller: RunController,
        on_progress: ProgressCallback | None,
        on_event: EventCallback | None,
        retries: int,
    ) -> None:
        self.catalog = catalog
        self.run = run
        self.spec = run.spec
        self.backend = backend
        self.controller = controller
        self.cancel = controller.cancel_token
        self.on_progress = on_progress
        self.on_event = on_event
        self.retries = retries
        self.task = get_task(run.task)
        self.task_options = self.spec.task_options()
        self.sampling = self.spec.sampling_options(self.task)
        self.schema = task_schema(self.task, self.task_options)
        self.rules = self.spec.cleanup_rules()
        self.recent: deque[tuple[int, str]] = deque(maxlen=REPEAT_WINDOW)
        self.started = time.monotonic()
        self.processed_here = 0

    # -- the loop ----------------------------------------------------------------------------------------

    def execute(self) -> RunCounts:
        self._load_recent()
        set_run_state(self.catalog, self.run.id, "running")
        self._report("")
        try:
            width = self.backend.concurrency()
            if width > 1:
                self._process_in_flight(width)
            while True:
                self.controller.wait_while_paused()
                batch = self._next_items()
                if not batch:
                    break
                self._process(batch)
        except Cancelled:
            set_run_state(
                self.catalog, self.run.id, "paused", "Paused: run the same command again to resume."
            )
            raise
        except BaseException as exc:
            set_run_state(self.catalog, self.run.id, "paused", f"Stopped: {exc}")
            raise
        counts = run_counts(self.catalog, self.run.id)
        set_run_state(self.catalog, self.run.id, "done")
        return counts

    def _next_items(self) -> list[int]:
        """The next pending photos in queue order: a batch where the engine batches, else one."""
        size = self.spec.batch_size if self.backend.capabilities.batching else 1
        return self._pending(max(1, size))

    def _pending(self, limit: int) -> list[int]:
        """The first ``limit`` pending photos of the run, in queue order."""
        rows = self.catalog.db.execute(
            "SELECT photo_id FROM run_items WHERE run_id = ? AND state = 'pending' ORDER BY position LIMIT ?",
            (self.run.id, limit),
        ).fetchall()
        return [int(r[0]) for r in rows]

    def _load_recent(self) -> None:
        rows = self.catalog.db.execute(
            "SELECT r.id, r.caption FROM results r "
            "JOIN run_items i ON i.run_id = r.run_id AND i.photo_id = r.photo_id "
            "WHERE r.run_id = ? ORDER BY i.position DESC LIMIT ?",
            (self.run.id, REPEAT_WINDOW),
        ).fetchall()
        for result_id, caption in reversed(rows):
            self.recent.append((int(result_id), caption))

    def _process(self, items: list[int]) -> None:
        prepared = [item for item in map(self._prepare, items) if item is not None]
        if not prepared:
            return
        answers: list[str | CaptioneerError | None] = [None] * len(prepared)
        # Server engines answer through generate_batch even one photo at a time: an answer that breaks off
        # starts again from scratch on another server there, which a stream already shown cannot.
        capabilities = self.backend.capabilities
        if len(prepared) > 1 or (capabilities.batching and not capabilities.in_process):
            requests = [self._request(image) for _, image, _ in prepared]
            try:
                answers = list(self.backend.generate_batch(requests, self.cancel))
            except (EngineCrashedError, ResourceExhaustedError, GenerationError) as exc:
                self._event(f"batch failed ({exc}); going one photo at a time")
        # Finished answers are stored first: a failure that ends the run must not cost them.
        order = sorted(range(len(prepared)), key=lambda index: isinstance(answers[index], Exception))
        for index in order:
            self.cancel.raise_if_cancelled()
            answer = answers[index]
            if isinstance(answer, ConfigurationError):  # e.g. no server left: nothing more can be tagged
                raise answer
            # A photo whose request failed is asked again on its own.
            self._process_one(*prepared[index], answer if isinstance(answer, str) else None)

    def _process_in_flight(self, width: int) -> None:
        """Tag every pending photo with ``width`` requests in flight (an engine that answers several at once:
        server engines with ``parallel`` × servers), storing each answer the moment it lands, in whatever
        order they land. Pause stops sending; cancel stops at once; when the engine reports that it cannot
        go on (no server left), the answers still in flight land first and then the error ends the run."""
        flying: dict[Future[str | CaptioneerError], tuple[Photo, PreparedImage, float]] = {}
        fatal: CaptioneerError | None = None
        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="captioneer-run") as executor:
            try:
                while True:
                    while fatal is None and len(flying) < width and not self.controller.paused:
                        photo_id = self._next_pending({photo.id for photo, _, _ in flying.values()})
                        if photo_id is None:
                            break
                        prepared = self._prepare(photo_id)
                        if prepared is not None:
                            flying[executor.submit(self._ask, prepared[1])] = prepared
                    if not flying:
                        if fatal is not None:
                            raise fatal
                        if not self.controller.paused:
                            return
                        self.controller.wait_while_paused()
                        continue
                    landed, _ = wait(flying, timeout=0.2, return_when=FIRST_COMPLETED)
                    self.cancel.raise_if_cancelled()
                    for future in landed:
                        photo, image, started = flying.pop(future)
                        answer = future.result()
                        if isinstance(answer, ConfigurationError):
                            fatal = fatal or answer
                            continue
                        first = answer if isinstance(answer, str) else None
                        try:
                            self._process_one(photo, image, started, first)
                        except ConfigurationError as exc:
                            fatal = fatal or exc
            except BaseException:
                # Whatever stops the run (cancel, Ctrl-C, an error) stops the requests still in flight too.
                self.cancel.cancel()
                raise

    def _ask(self, image: PreparedImage) -> str | CaptioneerError:
        """One photo's answer, or the error that stopped it (runs in a worker thread)."""
        try:
            return self.backend.generate_batch([self._request(image)], self.cancel)[0]
        except Cancelled:
            raise
        except CaptioneerError as exc:
            return exc

    def _next_pending(self, skip: set[int]) -> int | None:
        """The first pending photo in queue order that is not already in flight."""
        return next((photo_id for photo_id in self._pending(len(skip) + 1) if photo_id not in skip), None)

    def _prepare(self, photo_id: int) -> tuple[Photo, PreparedImage, float] | None:
        """The photo and its prepared image, or None when it cannot be used (recorded as failed)."""
        self.cancel.raise_if_cancelled()
        photo = self.catalog.photo(photo_id)
        started = time.perf_counter()
        if photo is None or photo.status != "present":
            self._fail(photo_id, "the photo is no longer in the library", "missing")
            return None
        self._report(photo.path)
        try:
            budget = engine_budget(self.spec.image_tokens, self.backend.capabilities)
            image = prepare_image(photo.path, budget, refuse_links=True)
        except ImageError as exc:
            self._fail(photo_id, str(exc), exc.kind)
            return None
        return photo, image, started

    def _process_one(self, photo: Photo, image: PreparedImage, started: float, first: str | None) -> None:
        try:
            outcome = self._answer(image, first)
        except QuarantinedImageError as exc:
            self._fail(photo.id, str(exc), "quarantined")
            return
        except EngineCrashedError as exc:
            # The engine host restarts itself on the next request; the photo stays queued until it has
            # crashed the engine too often.
            attempts = self._bump_attempts(photo.id)
            if attempts >= CRASH_LIMIT:
                self._fail(
                    photo.id,
                    f"quarantined: the engine crashed {attempts} times on this photo ({exc})",
                    "quarantined",
                )
            else:
                self._event(f"{photo.path}: {exc}")
            return
        except ResourceExhaustedError as exc:
            self._fail(photo.id, str(exc), "resources")
            return
        except GenerationError as exc:
            attempts = self._bump_attempts(photo.id)
            if attempts >= FAILURE_LIMIT:
                self._fail(photo.id, str(exc), "generation")
            return
        neighbours = [caption for _, caption in self.recent]
        if outcome.caption and repeated_caption(outcome.caption, neighbours):
            if outcome.attempts <= self.retries and not outcome.retried:
                try:
                    retry = self._answer(image, None, attempt=outcome.attempts)
                except (GenerationError, ResourceExhaustedError) as exc:
                    # The first answer is still an answer: keep it (flagged below) rather than lose the photo.
                    self._event(f"{photo.path}: asking again failed ({exc}); keeping the first answer")
                else:
                    retry.attempts += outcome.attempts
                    outcome = retry
            if repeated_caption(outcome.caption, neighbours):
                outcome.problems.append("same caption as neighbouring photos")
        self._commit(photo, image, outcome, time.perf_counter() - started)

    def _request(self, image: PreparedImage, attempt: int = 0) -> GenerationRequest:
        sampling = self.sampling
        if attempt:
            # A retry must not repeat a greedy mistake: vary the seed and allow a little temperature.
            sampling = sampling.model_copy(
                update={"seed": (sampling.seed or 0) + attempt, "temperature": sampling.temperature or 0.3}
            )
        return build_request(self.task, [image], self.task_options, sampling)

    def _answer(self, image: PreparedImage, first: str | None, attempt: int = 0) -> _Outcome:
        """Generate (or use the batch's answer), validate, clean and check; retry once when degenerate."""
        outcome = self._evaluate(image, first, attempt)
        if outcome.problems and not outcome.retried and attempt == 0 and self.retries > 0:
            retry = self._evaluate(image, None, attempt=outcome.attempts)
            retry.attempts += outcome.attempts
            return retry
        return outcome

    def _evaluate(self, image: PreparedImage, first: str | None, attempt: int) -> _Outcome:
        # Generations already spent when the engine ran out of memory: the batch's answer, if it was asked
        # again, and the generation that failed.
        spent = (0 if first is None else 1) + 1
        try:
            answer = self._generate(image, first, attempt)
        except ResourceExhaustedError:
            smaller = max(16, self.spec.image_tokens // 2)
            if smaller >= image.tokens:
                raise
            self._event(f"out of memory; retrying at {smaller} image tokens")
            resized = PreparedImage(
                image=image.image.resize(PixelBudget(max_tokens=smaller).fit(*image.image.size)),
                source=image.source,
                original_size=image.original_size,
            )
            try:
                answer = self._generate(resized, None, attempt, attempts_before=spent)
            except InvalidOutputError as exc:
                return self._invalid(exc)
        except InvalidOutputError as exc:
            return self._invalid(exc)
        return self._outcome(answer)

    def _invalid(self, exc: InvalidOutputError) -> _Outcome:
        """An answer still invalid (or cut off) after its retries: kept for review with what the model
        said."""
        problem = str(exc) if isinstance(exc, TruncatedOutputError) else f"invalid output: {exc}"
        return _Outcome(raw=clean_text(exc.raw), attempts=exc.attempts, problems=[problem], retried=True)

    def _generate(
        self, image: PreparedImage, first: str | None, attempt: int, attempts_before: int = 0
    ) -> Answer:
        """The batch's answer ``first`` where it is usable, else a generation (with retries) for the photo."""
        if first is not None:
            truncated_at = self.sampling.max_new_tokens if finish_reason_of(first) == FINISH_LENGTH else None
            if self.schema is None:
                return Answer(text=first.strip(), truncated_at=truncated_at)
            try:
                return Answer(
                    text=str(first), data=parse_structured(first, self.schema, truncated_at=truncated_at)
                )
            except InvalidOutputError as exc:
                self._event(f"a batched answer was unusable ({exc}); asking again for that photo")
                attempts_before += 1
        return generate_answer(
            self.backend,
            self._request(image, attempt),
            cancel=self.cancel,
            retries=self.retries,
            on_retry=lambda reason: self._event(f"{reason} Retrying once."),
            attempts_before=attempts_before,
        )

    def _outcome(self, answer: Answer) -> _Outcome:
        """The answer as a result: fields picked for the task, control characters removed, keywords cleaned,
        problems found."""
        data = clean_answer_data(answer.data or {})
        if self.task.structured:
            caption = str(data.get("caption") or data.get("alt_text") or "").strip()
            raw_keywords = data.get("keywords") or data.get("hashtags") or []
        else:
            caption, raw_keywords = clean_text(answer.text).strip(), []
        keywords = clean_keywords(raw_keywords if isinstance(raw_keywords, list) else [], self.rules)
        title = str(data["title"]).strip() if data.get("title") else None
        alt_text = str(data["alt_text"]).strip() if data.get("alt_text") else None
        if self.task.id == "alt_text":
            alt_text = clean_text(caption, multiline=False)
        caption_limit = None
        if self.schema is not None:
            caption_limit = self.schema.get("properties", {}).get("caption", {}).get("maxLength")
        problems = answer_problems(
            caption,
            keywords,
            language=self.spec.language if self.task.translate else "",
            max_caption_chars=caption_limit,
            needs_keywords="keywords" in (self.schema or {}).get("properties", {}),
        )
        if answer.truncated_at is not None:
            problems.append(truncation_message(answer.truncated_at))
        return _Outcome(
            caption=caption,
            keywords=keywords,
            title=title,
            alt_text=alt_text,
            raw=clean_text(answer.text),
            attempts=answer.attempts,
            problems=problems,
        )

    # -- catalog writes: each result lands with its item marked done, in one transaction -----------------

    def _commit(self, photo: Photo, image: PreparedImage, outcome: _Outcome, seconds: float) -> None:
        review = "needs_review" if outcome.problems else "new"
        reason = "; ".join(outcome.problems) or None
        now = time.time()
        with self.catalog.transaction() as db:
            current = _current_of(db, self.run.id, photo.id, self.run.task)
            if current:
                db.execute("UPDATE results SET current = 0, updated_at = ? WHERE id = ?", (now, current))
            cursor = db.execute(
                "INSERT INTO results (photo_id, run_id, task, language, caption, keywords, title, alt_text, "
                "raw, "
                "engine, model, quant, prompt_hash, seconds, image_tokens, attempts, review, review_reason, "
                "created_at, updated_at, current) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    photo.id,
                    self.run.id,
                    self.run.task,
                    self.spec.language,
                    outcome.caption,
                    json.dumps(outcome.keywords, ensure_ascii=False),
                    outcome.title,
                    outcome.alt_text,
                    outcome.raw,
                    self.run.engine,
                    self.run.model,
                    self.run.quant,
                    self.run.prompt_hash,
                    seconds,
                    image.tokens,
                    outcome.attempts,
                    review,
                    reason,
                    now,
                    now,
                    int(current is not None),
                ),
            )
            result_id = int(cursor.lastrowid)
            db.execute(
                "UPDATE run_items SET state = 'done', attempts = attempts + 1, error = NULL, "
                "error_kind = NULL "
                "WHERE run_id = ? AND photo_id = ?",
                (self.run.id, photo.id),
            )
            if "same caption as neighbouring photos" in outcome.problems:
                # The neighbours that share it are just as suspect.
                norm = normalise_caption(outcome.caption)
                twins = [rid for rid, caption in self.recent if normalise_caption(caption) == norm]
                if twins:
                    db.execute(
                        f"UPDATE results SET review = 'needs_review', review_reason = "
                        f"'same caption as neighbouring photos', updated_at = ? "
                        f"WHERE review = 'new' AND id IN ({','.join('?' * len(twins))})",
                        (now, *twins),
                    )
        self.recent.append((result_id, outcome.caption))
        self.processed_here += 1
        self._report("")

    def _fail(self, photo_id: int, error: str, kind: str) -> None:
        with self.catalog.transaction() as db:
            db.execute(
                "UPDATE run_items SET state = 'failed', attempts = attempts + 1, error = ?, error_kind = ? "
                "WHERE run_id = ? AND photo_id = ?",
                (error, kind, self.run.id, photo_id),
            )
            if kind in UNUSABLE_IMAGE_KINDS:
                # Like the scanner's verdict: not queued again until the file changes on disk.
                db.execute(
                    "UPDATE photos SET status = 'unreadable', error = ?, error_kind = ? "
                    "WHERE id = ? AND status = 'present'",
                    (error, kind, photo_id),
                )
        self.processed_here += 1
        photo = self.catalog.photo(photo_id)
        self._event(f"{photo.path if photo else photo_id}: {error}")
        self._report("")

    def _bump_attempts(self, photo_id: int) -> int:
        with self.catalog.transaction() as db:
            db.execute(
                "UPDATE run_items SET attempts = attempts + 1 WHERE run_id = ? AND photo_id = ?",
                (self.run.id, photo_id),
            )
            row = db.execute(
                "SELECT attempts FROM run_items WHERE run_id = ? AND photo_id = ?", (self.run.id, photo_id)
            ).fetchone()
        return int(row[0])

    def _event(self, message: str) -> None:
        if self.on_event is not None:
            self.on_event(message)

    def _report(self, current: str) -> None:
        if self.on_progress is None:
            return
        counts = run_counts(self.catalog, self.run.id)
        elapsed = time.monotonic() - self.started
        rate = self.processed_here / (elapsed / 60) if self.processed_here and elapsed > 0 else None
        remaining = counts.pending
        eta = remaining / rate * 60 if rate else None
        self.on_progress(
            RunProgress(
                run_id=self.run.id,
                total=counts.total,
                done=counts.done,
                failed=counts.failed,
                needs_review=counts.needs_review,
                elapsed=elapsed,
                photos_per_minute=rate,
                eta_seconds=eta,
                current=current,
            )
        )


def _current_of(db: sqlite3.Connection, run_id: int, photo_id: int, task: str) -> int | None:
    """Whether a new result of this run becomes current for (photo, task): None when it must stay a version
    (a reviewed current result, and the run was not told to replace it); else the id of the result it
    supersedes (0 when there is none)."""
    row = db.execute(
        "SELECT r.id, r.edited, r.review, u.on_reviewed FROM runs u "
        "LEFT JOIN results r ON r.photo_id = ? AND r.task = ? AND r.current = 1 WHERE u.id = ?",
        (photo_id, task, run_id),
    ).fetchone()
    current_id, edited, review, on_reviewed = row
    if current_id is None:
        return 0
    if (edited or review in REVIEWED_STATES) and on_reviewed != "replace":
        return None
    return int(current_id)


def execute_run(
    catalog: Catalog,
    run_id: int,
    backend: Backend,
    *,
    controller: RunController | None = None,
    on_progress: ProgressCallback | None = None,
    on_event: EventCallback | None = None,
    retries: int = 1,
) -> RunCounts:
    """Process the run's pending photos in order with a loaded ``backend``.

    Each result is committed together with its queue item, so a process killed at any moment resumes
    (``plan_run`` + ``execute_run`` again) with every photo processed exactly once. Degenerate answers are
    retried once, then kept as ``needs_review``. Bad photos fail with their reason; the run goes on.

    Raises:
        Cancelled: the controller cancelled; the run is left ``paused`` and resumes later.
        CaptioneerError: the engine cannot go on (server down, model missing); the run is ``paused``.
    """
    run = get_run(catalog, run_id)
    runner = _Runner(catalog, run, backend, controller or RunController(), on_progress, on_event, retries)
    with server_notices(on_event):
        return runner.execute()


class _EventHandler(logging.Handler):
    def __init__(self, on_event: EventCallback) -> None:
        super().__init__(logging.WARNING)
        self._on_event = on_event

    def emit(self, record: logging.LogRecord) -> None:
        self._on_event(record.getMessage())


@contextmanager
def server_notices(on_event: EventCallback | None) -> Iterator[None]:
    """While a run goes on, what the server engines say about their servers (one skipped until when, and
    why) is a run event, so the window's log and the command line show it like every other event."""
    if on_event is None:
        yield
        return
    logger = logging.getLogger("captioneer.backends.server_pool")
    handler = _EventHandler(on_event)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
