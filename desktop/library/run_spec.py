"""What a tagging run is: the spec it asks of every photo, its stored record, its counts and its progress, and
the controller that pauses, resumes and cancels it."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from captioneer.backends.cancel import CancelToken
from captioneer.backends.request import SamplingOptions
from captioneer.desktop.core.context import ContextSpec, context_shape
from captioneer.desktop.core.images import DEFAULT_IMAGE_TOKENS
from captioneer.desktop.core.tasks import DEFAULT_LANGUAGE, DEFAULT_MAX_KEYWORDS, Task, TaskOptions, get_task
from captioneer.desktop.core.video_budget import DEFAULT_VIDEO_TOKENS
from captioneer.desktop.library.keyword_rules import KeywordRules, prompt_words
from captioneer.desktop.library.keywords import CleanupRules, Vocabulary

RESUMABLE_STATES = ("pending", "running", "paused")
"""Run states a new run with the same scope, task, model and prompt resumes instead of starting afresh."""
RATE_AFTER_PHOTOS = 3
RATE_MIN_SECONDS = 1.0
RATE_AFTER_SECONDS = 20.0
"""A run's speed (and so its time left) is first shown once this many photos are done with in at least
RATE_MIN_SECONDS of work (a few photos that fail at once, unreadable, are no speed), or once
RATE_AFTER_SECONDS of work passed with at least one done (slow photos). Work starts when the first photo is
handed to the engine, after the model load; time spent paused does not count."""


@dataclass(frozen=True)
class RunSpec:
    """What a run asks of every photo; stored with the run so a resumed run asks exactly the same."""

    task: str = "keywords"
    language: str = DEFAULT_LANGUAGE
    max_keywords: int = DEFAULT_MAX_KEYWORDS
    vocabulary: tuple[str, ...] = ()
    synonyms: dict[str, str] = field(default_factory=dict)
    vocabulary_only: bool = True
    sampling: dict[str, Any] = field(default_factory=dict)
    image_tokens: int = DEFAULT_IMAGE_TOKENS
    batch_size: int = 1
    keyword_paths: dict[str, str] = field(default_factory=dict)
    """The vocabulary's paths (keyword → ``[Places]|Europe|France|Paris``): where a write puts a keyword."""
    context: tuple[str, ...] = ()
    """Photo variables sent as context (see core/context.py); with the typed fields below."""
    context_event: str = ""
    context_people: str = ""
    context_location: str = ""
    # Keyword control (see keyword_rules); the defaults keep a run's keywords as they always were.
    min_keywords: int = 0
    required: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    number: str = "keep"
    split_and: bool = False
    script_only: bool = False
    drop_prompt_words: bool = False
    vocabulary_top: int = 0
    """The vocabulary is the library's N most-used keywords (already in ``vocabulary``); 0: a file or none."""
    rule: str = ""
    """The per-folder rule that chose this spec (see folder_rules); empty for the command line's choices."""
    video_tokens: int = DEFAULT_VIDEO_TOKENS
    """A video clip's whole visual budget, spread over its sampled frames (see core/video_budget)."""

    def context_spec(self) -> ContextSpec:
        return ContextSpec(self.context, self.context_event, self.context_people, self.context_location)

    def task_options(self) -> TaskOptions:
        """The run's options; its context is the shape every photo's context takes (each photo's own
        values replace it when asked), so the run's prompt hash tells context runs apart."""
        return TaskOptions(
            language=self.language,
            max_keywords=self.max_keywords,
            vocabulary=self.vocabulary,
            context=context_shape(self.context_spec()),
        )

    def cleanup_rules(self) -> CleanupRules:
        return CleanupRules(
            max_count=self.max_keywords,
            vocabulary=Vocabulary(terms=self.vocabulary, synonyms=dict(self.synonyms)),
            vocabulary_only=self.vocabulary_only,
        )

    def keyword_rules(self) -> KeywordRules:
        task = get_task(self.task)
        return KeywordRules(
            # A task that gives no keywords (a product description) is never short of them.
            min_count=self.min_keywords if task.answer_key("keywords") else 0,
            required=self.required,
            excluded=self.excluded,
            number=self.number,
            split_and=self.split_and,
            script_only=self.script_only,
            language=self.language,
            prompt_words=prompt_words(task) if self.drop_prompt_words else (),
        )

    def keyword_control(self) -> str:
        """The keyword control chosen, as stable text ("" when none): runs that differ only in it are
        different runs, never resumed as one another."""
        default = RunSpec()
        chosen = {
            name: getattr(self, name)
            for name in _KEYWORD_CONTROL
            if getattr(self, name) != getattr(default, name)
        }
        return json.dumps(chosen, ensure_ascii=False, sort_keys=True) if chosen else ""

    def sampling_options(self, task: Task) -> SamplingOptions:
        values = {"max_new_tokens": task.max_tokens, **self.sampling}
        return SamplingOptions.from_user(**values)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        data = json.loads(text)
        for name in ("vocabulary", "context", "required", "excluded"):
            data[name] = tuple(data.get(name, ()))
        return cls(**data)


_KEYWORD_CONTROL = frozenset(
    {"min_keywords", "required", "excluded", "number", "split_and", "script_only", "drop_prompt_words"}
)


def vocabulary_fields(vocabulary: Vocabulary | None) -> dict[str, Any]:
    """The :class:`RunSpec` fields that hold ``vocabulary`` (its terms, synonyms and hierarchy paths; none of
    them for None): every place that gives a run a vocabulary sets all three, so no run keeps another's."""
    vocabulary = vocabulary or Vocabulary()
    return {
        "vocabulary": vocabulary.terms,
        "synonyms": dict(vocabulary.synonyms),
        "keyword_paths": dict(vocabulary.paths),
    }


def context_fields(context: ContextSpec) -> dict[str, Any]:
    """The :class:`RunSpec` fields that hold ``context`` (``ContextSpec()``: no context)."""
    return {
        "context": context.variables,
        "context_event": context.event,
        "context_people": context.people,
        "context_location": context.location,
    }


@dataclass(frozen=True)
class Run:
    """A run as the catalog stores it."""

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
    paused: bool = False
    """The run is waiting for Resume (the photo that was in flight when Pause was asked has landed)."""

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


def rate_and_eta(landed: int, seconds: float, remaining: int) -> tuple[float | None, float | None]:
    """Photos per minute and seconds left, from ``landed`` photos done with in ``seconds`` of working time;
    (None, None) until the rate is real (see :data:`RATE_AFTER_PHOTOS`)."""
    enough = seconds >= RATE_AFTER_SECONDS or (landed >= RATE_AFTER_PHOTOS and seconds >= RATE_MIN_SECONDS)
    if landed <= 0 or not enough:
        return None, None
    per_minute = landed / seconds * 60
    return per_minute, remaining / per_minute * 60


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
