"""Run a task on one image through any backend: stream, validate structured answers, retry once."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from captioneer.backends.base import Backend, collect
from captioneer.backends.cancel import CancelToken, token_or_new
from captioneer.backends.errors import (
    Cancelled,
    ImageError,
    InvalidOutputError,
    ResourceExhaustedError,
    TruncatedOutputError,
)
from captioneer.backends.request import GenerationRequest, PreparedImage, SamplingOptions
from captioneer.backends.structured import parse_structured, truncation_message
from captioneer.desktop.core.answer_text import clean_answer_data, clean_text
from captioneer.desktop.core.images import PixelBudget, engine_budget, prepare_image
from captioneer.desktop.core.tasks import Task, TaskOptions, build_request

ChunkCallback = Callable[[str], None]
RetryCallback = Callable[[str], None]


@dataclass
class Answer:
    """A validated answer: the raw text, for structured tasks the parsed JSON object, how many generations
    it took, and where the engine cut it off at the answer-length limit (a plain-text answer is kept)."""

    text: str
    data: dict[str, Any] | None = None
    attempts: int = 1
    truncated_at: int | None = None


@dataclass
class CaptionResult:
    """The outcome for one image, as the CLI prints it and the window shows it."""

    path: str
    task: str
    ok: bool
    text: str = ""
    data: dict[str, Any] | None = None
    error: str | None = None
    error_kind: str | None = None
    seconds: float = 0.0
    image_tokens: int | None = None
    attempts: int = 0
    warning: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "task": self.task,
            "ok": self.ok,
            "text": self.text if self.ok else None,
        }
        if self.data is not None:
            out.update({key: value for key, value in self.data.items() if key not in out})
            out["data"] = self.data
        out.update(
            {
                "error": self.error,
                "error_kind": self.error_kind,
                "seconds": round(self.seconds, 3),
                "image_tokens": self.image_tokens,
                "attempts": self.attempts,
                "warning": self.warning,
            }
        )
        out.update(self.extra)
        return out


def _retry_options(options: SamplingOptions, attempt: int) -> SamplingOptions:
    """A retry must not repeat the same greedy mistake: vary the seed and allow a little temperature."""
    seed = (options.seed or 0) + attempt
    temperature = options.temperature if options.temperature > 0 else 0.3
    return options.model_copy(update={"seed": seed, "temperature": temperature})


def generate_answer(
    backend: Backend,
    request: GenerationRequest,
    *,
    on_chunk: ChunkCallback | None = None,
    on_retry: RetryCallback | None = None,
    cancel: CancelToken | None = None,
    retries: int = 1,
    attempts_before: int = 0,
) -> Answer:
    """Stream ``request`` through ``backend``; for structured requests validate, retrying ``retries`` times.

    A structured answer the engine cut off at the length limit counts as invalid (and is retried); a plain
    one is returned with ``truncated_at`` set. ``attempts_before`` is how many generations were already spent
    on this answer elsewhere (a batched answer that failed validation): the attempts reported include them.

    Raises:
        InvalidOutputError: the answer was still invalid after the retries (:class:`TruncatedOutputError`
            when the last one was cut off); its ``attempts`` counts every generation made.
        Cancelled: ``cancel`` was set; nothing partial is returned.
    """
    cancel = token_or_new(cancel)
    attempt = 0
    while True:
        completion = collect(backend.generate(request, cancel), on_chunk)
        cancel.raise_if_cancelled()
        attempts = attempts_before + attempt + 1
        truncated_at = request.options.max_new_tokens if completion.truncated else None
        if request.json_schema is None:
            return Answer(text=completion.strip(), attempts=attempts, truncated_at=truncated_at)
        try:
            data = parse_structured(completion, request.json_schema, truncated_at=truncated_at)
            return Answer(text=str(completion), data=data, attempts=attempts)
        except InvalidOutputError as exc:
            if attempt >= retries:
                summary = "Cut-off output" if isinstance(exc, TruncatedOutputError) else "Invalid output"
                raise type(exc)(
                    f"{summary} after {attempts} attempt{'s' if attempts > 1 else ''}: {exc}",
                    raw=exc.raw,
                    attempts=attempts,
                ) from None
            attempt += 1
            if on_retry is not None:
                on_retry(str(exc))
            request = GenerationRequest(
                prompt=request.prompt,
                images=request.images,
                system=request.system,
                json_schema=request.json_schema,
                options=_retry_options(request.options, attempt),
            )


def caption_file(
    backend: Backend,
    path: str | os.PathLike[str],
    task: Task,
    *,
    task_options: TaskOptions | None = None,
    sampling: SamplingOptions | None = None,
    image_tokens: int = 1024,
    on_chunk: ChunkCallback | None = None,
    on_retry: RetryCallback | None = None,
    cancel: CancelToken | None = None,
) -> CaptionResult:
    """Prepare one file and run ``task`` on it. Expected failures become a failed result, not an exception;
    cancellation and configuration errors propagate."""
    task_options = task_options or TaskOptions()
    started = time.perf_counter()
    name = os.fspath(path)
    result = CaptionResult(path=name, task=task.id, ok=False)
    try:
        image = prepare_image(path, engine_budget(image_tokens, backend.capabilities))
    except ImageError as exc:
        result.error, result.error_kind = str(exc), exc.kind
        result.seconds = time.perf_counter() - started
        return result
    return _caption_prepared(
        backend,
        image,
        task,
        result,
        started,
        task_options=task_options,
        sampling=sampling,
        image_tokens=image_tokens,
        on_chunk=on_chunk,
        on_retry=on_retry,
        cancel=cancel,
    )


def _caption_prepared(
    backend: Backend,
    image: PreparedImage,
    task: Task,
    result: CaptionResult,
    started: float,
    *,
    task_options: TaskOptions,
    sampling: SamplingOptions | None,
    image_tokens: int,
    on_chunk: ChunkCallback | None,
    on_retry: RetryCallback | None,
    cancel: CancelToken | None,
    attempts_before: int = 0,
) -> CaptionResult:
    result.image_tokens = image.tokens
    request = build_request(task, [image], task_options, sampling)
    try:
        answer = generate_answer(
            backend,
            request,
            on_chunk=on_chunk,
            on_retry=on_retry,
            cancel=cancel,
            attempts_before=attempts_before,
        )
    except ResourceExhaustedError as exc:
        # Out of memory or context at this budget: one retry at half the pixels, then give up on this photo.
        smaller = max(64, image_tokens // 2)
        if image.original_size is None or smaller >= image.tokens:
            result.error, result.error_kind = str(exc), "resources"
            result.attempts = attempts_before + 1
            result.seconds = time.perf_counter() - started
            return result
        if on_retry is not None:
            on_retry(f"{exc} Retrying with a {smaller}-token image budget.")
        resized = PreparedImage(
            image=image.image.resize(PixelBudget(max_tokens=smaller).fit(*image.image.size)),
            source=image.source,
            original_size=image.original_size,
        )
        return _caption_prepared(
            backend,
            resized,
            task,
            result,
            started,
            task_options=task_options,
            sampling=sampling,
            image_tokens=smaller,
            on_chunk=on_chunk,
            on_retry=on_retry,
            cancel=cancel,
            attempts_before=attempts_before + 1,  # the generation that ran out of memory
        )
    except InvalidOutputError as exc:
        result.error = str(exc)
        result.error_kind = "truncated" if isinstance(exc, TruncatedOutputError) else "invalid-output"
        result.text = clean_text(exc.raw)
        result.attempts = exc.attempts
        result.seconds = time.perf_counter() - started
        return result
    except Cancelled:
        raise
    result.ok = True
    result.text = clean_text(answer.text)
    result.data = clean_answer_data(answer.data) if answer.data is not None else None
    result.attempts = answer.attempts
    if answer.truncated_at is not None:
        result.warning = truncation_message(answer.truncated_at)
    result.seconds = time.perf_counter() - started
    return result
