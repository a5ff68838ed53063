"""Executing a tagging run: the loop over its queue (one photo, a batch, or several in flight), each photo
answered through the answer pipeline, checked, and stored with its queue item; progress, pause and cancel."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass

from captioneer.backends.base import Backend
from captioneer.backends.errors import (
    Cancelled,
    CaptioneerError,
    ConfigurationError,
    EngineCrashedError,
    GenerationError,
    ImageError,
    ResourceExhaustedError,
    window_text,
)
from captioneer.backends.host import QuarantinedImageError
from captioneer.backends.request import GenerationRequest, PreparedClip
from captioneer.backends.structured import truncation_message
from captioneer.desktop.core.answering import RESOURCES, TRUNCATED, Answer, Media, answer_image, task_request
from captioneer.desktop.core.tasks import get_task, task_schema
from captioneer.desktop.library.catalog import Catalog, Photo
from captioneer.desktop.library.catalog.runs import (
    NewResult,
    count_attempt,
    get_run,
    last_captions,
    pending_photo_ids,
    record_failure,
    record_result,
    run_counts,
    set_run_state,
)
from captioneer.desktop.library.keyword_rules import control_keywords
from captioneer.desktop.library.photo_context import PhotoContexts
from captioneer.desktop.library.quality import (
    REPEAT_WINDOW,
    answer_problems,
    normalise_caption,
    repeated_caption,
)
from captioneer.desktop.library.run_media import UNUSABLE_KINDS, media_budget, prepare_media
from captioneer.desktop.library.run_spec import (
    EventCallback,
    ProgressCallback,
    Run,
    RunController,
    RunCounts,
    RunProgress,
    rate_and_eta,
)

FAILURE_LIMIT = 2
"""A photo whose generation failed this many times (not a crash: the engine host's quarantine rule decides
about those) is marked failed."""
SAME_CAPTION = "same caption as neighbouring photos"


# ---------------------------------------------------------------------------------------------------------


@dataclass
class _Outcome(NewResult):
    """A photo's result as it is being made; ``retried`` when its answer already used up the retries."""

    retried: bool = False


class _Runner:
    """One execution of a run: see :func:`execute_run`."""

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
        self.contexts = PhotoContexts(catalog, self.task, self.spec.context_spec())
        self.sampling = self.spec.sampling_options(self.task)
        self.rules = self.spec.cleanup_rules()
        self.keyword_rules = self.spec.keyword_rules()
        schema = task_schema(self.task, self.task_options) or {}
        properties = schema.get("properties", {})
        caption_key = self.task.answer_key("caption") or ""
        keywords_key = self.task.answer_key("keywords") or ""
        self.caption_limit: int | None = properties.get(caption_key, {}).get("maxLength")
        # Keywords are missed only where the task's schema demands some.
        self.needs_keywords = keywords_key in schema.get("required", ()) and bool(
            properties.get(keywords_key, {}).get("minItems")
        )
        self.recent: deque[tuple[int, str]] = deque(maxlen=REPEAT_WINDOW)
        self.started = time.monotonic()
        # The speed is every photo done with since the first was handed to the engine (the model is loaded by
        # then), in working time: what Pause waited is taken off. Counting from the start, not from the first
        # answer, keeps photos that land together (a batch, requests in flight) from looking instantaneous.
        self.work_started: float | None = None
        self.landed = 0
        self.paused_seconds = 0.0

    # -- the loop ----------------------------------------------------------------------------------------

    def work(self) -> RunCounts:
        """Process the run's queue until it is empty, paused or cancelled; the counts at the end."""
        self._load_recent()
        set_run_state(self.catalog, self.run.id, "running")
        self._report("")
        try:
            width = self.backend.concurrency()
            if width > 1:
                self._process_in_flight(width)
            while True:
                self._wait_while_paused()
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

    def _wait_while_paused(self) -> None:
        """Wait for Resume when paused, saying so first: the photo in flight has landed by now."""
        if not self.controller.paused:
            return
        waiting = time.monotonic()
        self._report("", paused=True)
        try:
            self.controller.wait_while_paused()
        finally:
            self.paused_seconds += time.monotonic() - waiting
        self._report("")

    def _next_items(self) -> list[int]:
        """The next pending photos in queue order: a batch where the engine batches, else one."""
        size = self.spec.batch_size if self.backend.capabilities.batching else 1
        return self._pending(max(1, size))

    def _pending(self, limit: int) -> list[int]:
        return pending_photo_ids(self.catalog, self.run.id, limit)

    def _load_recent(self) -> None:
        self.recent.extend(last_captions(self.catalog, self.run.id, REPEAT_WINDOW))

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
        flying: dict[Future[str | CaptioneerError], tuple[Photo, Media, float]] = {}
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
                        self._wait_while_paused()
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

    def _ask(self, image: Media) -> str | CaptioneerError:
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

    def _prepare(self, photo_id: int) -> tuple[Photo, Media, float] | None:
        """The photo and its prepared image (a video: its sampled clip), or None when it cannot be used
        (recorded as failed)."""
        self.cancel.raise_if_cancelled()
        photo = self.catalog.photo(photo_id)
        started = time.perf_counter()
        if self.work_started is None:
            self.work_started, self.paused_seconds = time.monotonic(), 0.0
        if photo is None or photo.status != "present":
            self._fail(photo_id, "the photo is no longer in the library", "missing")
            return None
        self._report(photo.path)
        try:
            image = prepare_media(photo.path, self.spec, self.backend.capabilities, self.cancel)
        except ImageError as exc:
            self._fail(photo_id, str(exc), exc.kind)
            return None
        self.contexts.gather(photo)
        return photo, image, started

    def _process_one(self, photo: Photo, image: Media, started: float, first: str | None) -> None:
        try:
            outcome = self._answer(image, first)
        except QuarantinedImageError as exc:
            self._fail(photo.id, str(exc), "quarantined")
            return
        except EngineCrashedError as exc:
            # The engine host restarts itself on the next request and counts the crash against the photo;
            # the photo stays queued until the host's quarantine rule refuses it (QuarantinedImageError).
            count_attempt(self.catalog, self.run.id, photo.id)
            self._event(f"{photo.path}: {exc}")
            return
        except ResourceExhaustedError as exc:
            self._fail(photo.id, exc.window_text, "resources")  # stored for the window: settings, not flags
            return
        except GenerationError as exc:
            if count_attempt(self.catalog, self.run.id, photo.id) >= FAILURE_LIMIT:
                self._fail(photo.id, exc.window_text, "generation")
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
                outcome.problems.append(SAME_CAPTION)
        self._commit(photo, outcome, time.perf_counter() - started)

    def _request(self, image: Media) -> GenerationRequest:
        options = self.contexts.options(self.task_options, image.source)
        return task_request(self.task, image, options, self.sampling)

    def _answer(self, image: Media, first: str | None, attempt: int = 0) -> _Outcome:
        """The photo's answer (the batch's ``first`` where usable) as a checked result; asked once more when
        it looks degenerate."""
        outcome = self._evaluate(image, first, attempt)
        if outcome.problems and not outcome.retried and attempt == 0 and self.retries > 0:
            retry = self._evaluate(image, None, attempt=outcome.attempts)
            retry.attempts += outcome.attempts
            return retry
        return outcome

    def _evaluate(self, image: Media, first: str | None, attempt: int) -> _Outcome:
        answer = answer_image(
            self.backend,
            image,
            self.task,
            self.contexts.options(self.task_options, image.source),
            self.retries,
            sampling=self.sampling,
            image_tokens=media_budget(image, self.spec),
            given=first,
            attempt=attempt,
            on_retry=lambda reason: self._event(window_text(reason)),
            cancel=self.cancel,
        )
        if answer.error_kind == RESOURCES:
            raise ResourceExhaustedError(answer.error or "Out of memory.")
        if answer.error is not None:
            # Still invalid (or cut off) after its retries: kept for review with what the model said.
            said = window_text(answer.error)  # stored for the window: setting names, not flags
            problem = said if answer.error_kind == TRUNCATED else f"invalid output: {said}"
            return _Outcome(
                keywords=list(self.keyword_rules.required),  # required keywords are always there
                raw=answer.text,
                attempts=answer.attempts,
                image_tokens=answer.image_tokens,
                problems=[problem],
                retried=True,
            )
        return self._outcome(answer, image.duration if isinstance(image, PreparedClip) else None)

    def _outcome(self, answer: Answer, duration: float | None = None) -> _Outcome:
        """The answer as a result: the task's fields (a scene list's times checked against the clip's
        ``duration``), keywords cleaned, problems found."""
        fields = self.task.fields(answer, duration=duration)
        keywords, too_few = control_keywords(fields.keywords, self.rules, self.keyword_rules)
        problems = too_few + answer_problems(
            fields.caption,
            keywords,
            language=self.spec.language if self.task.translate else "",
            max_caption_chars=self.caption_limit,
            needs_keywords=self.needs_keywords,
        )
        if answer.truncated_at is not None:
            problems.append(window_text(truncation_message(answer.truncated_at)))  # the window shows it
        return _Outcome(
            caption=fields.caption,
            keywords=keywords,
            title=fields.title,
            alt_text=fields.alt_text,
            ocr_text=fields.ocr_text,
            raw=answer.text,
            attempts=answer.attempts,
            image_tokens=answer.image_tokens,
            problems=problems,
        )

    # -- catalog writes: each result lands with its item marked done, in one transaction -----------------

    def _commit(self, photo: Photo, outcome: _Outcome, seconds: float) -> None:
        suspects: list[int] = []
        if SAME_CAPTION in outcome.problems:
            # The neighbours that share it are just as suspect.
            norm = normalise_caption(outcome.caption)
            suspects = [rid for rid, caption in self.recent if normalise_caption(caption) == norm]
        outcome.seconds = seconds
        outcome.context = self.contexts.pop(photo.path)
        result_id = record_result(
            self.catalog, self.run, photo.id, outcome, suspects=suspects, suspect_reason=SAME_CAPTION
        )
        self.recent.append((result_id, outcome.caption))
        self._landed()

    def _fail(self, photo_id: int, error: str, kind: str) -> None:
        record_failure(
            self.catalog, self.run.id, photo_id, error, kind, unreadable=kind in UNUSABLE_KINDS
        )
        photo = self.catalog.photo(photo_id)
        self.contexts.pop(photo.path if photo else "")
        self._event(f"{photo.path if photo else photo_id}: {error}")
        self._landed()

    def _event(self, message: str) -> None:
        if self.on_event is not None:
            self.on_event(message)

    def _landed(self) -> None:
        """A photo is done with (tagged or failed): count it towards the speed, then report."""
        self.landed += 1
        self._report("")

    def _report(self, current: str, paused: bool = False) -> None:
        if self.on_progress is None:
            return
        counts = run_counts(self.catalog, self.run.id)
        now = time.monotonic()
        elapsed = now - self.started
        working = now - self.work_started - self.paused_seconds if self.work_started is not None else 0.0
        rate, eta = rate_and_eta(self.landed, working, counts.pending)
        self.on_progress(
            RunProgress(
                run_id=self.run.id,
                total=counts.total,
                done=counts.done,
                failed=counts.failed,
                needs_review=counts.needs_review,
                elapsed=elapsed,
                photos_per_minute=rate,
                eta_seconds=None if paused else eta,
                current=current,
                paused=paused,
            )
        )


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
        return runner.work()


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
