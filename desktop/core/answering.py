"""The answer pipeline: one prepared image or video clip, one task, any backend → a validated :class:`Answer`.

Quick caption, the command line and tagging runs all answer through :func:`answer_image`: it streams the
request, validates structured answers (asking again when invalid or cut off), retries once at a smaller image
(or clip) budget when the engine runs out of memory, and counts every generation it made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from captioneer.backends.base import FINISH_LENGTH, Backend, Capabilities, collect, finish_reason_of
from captioneer.backends.cancel import CancelToken, token_or_new
from captioneer.backends.errors import (
    InvalidOutputError,
    ResourceExhaustedError,
    TruncatedOutputError,
    marked_text,
)
from captioneer.backends.request import GenerationRequest, PreparedClip, PreparedImage, SamplingOptions
from captioneer.backends.structured import parse_structured
from captioneer.desktop.core.answer_text import clean_answer_data, clean_text
from captioneer.desktop.core.clips import smaller_clip
from captioneer.desktop.core.images import engine_budget
from captioneer.desktop.core.tasks import Task, TaskOptions, build_request

Media = PreparedImage | PreparedClip
"""What one answer is about: a photo's prepared image or a video's prepared clip."""

ChunkCallback = Callable[[str], None]
RetryCallback = Callable[[str], None]

MIN_RETRY_TOKENS = 64
"""The smallest image (or clip) budget the out-of-memory retry goes down to: below it a photo says too
little."""
INVALID = "invalid-output"
TRUNCATED = "truncated"
RESOURCES = "resources"


@dataclass
class Answer:
    """The outcome of asking about one image.

    ``text`` is the answer as given (control characters removed); ``data`` the parsed and cleaned object of
    a structured task. ``attempts`` counts every generation made for it, ``image_tokens`` the image (or clip)
    it was finally asked with, ``truncated_at`` where the engine cut a plain answer off at the length limit.
    ``error`` (with ``error_kind`` :data:`INVALID`, :data:`TRUNCATED` or :data:`RESOURCES`) says why there is
    no usable answer: still invalid or cut off after the retries, or out of memory at every budget tried.
    """

    text: str
    data: dict[str, Any] | None = None
    attempts: int = 1
    truncated_at: int | None = None
    image_tokens: int | None = None
    error: str | None = None
    error_kind: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def retry_options(options: SamplingOptions, attempt: int) -> SamplingOptions:
    """A retry must not repeat the same greedy mistake: vary the seed and allow a little temperature."""
    if attempt == 0:
        return options
    seed = (options.seed or 0) + attempt
    temperature = options.temperature if options.temperature > 0 else 0.3
    return options.model_copy(update={"seed": seed, "temperature": temperature})


def task_request(
    task: Task,
    image: Media,
    options: TaskOptions,
    sampling: SamplingOptions | None = None,
    attempt: int = 0,
) -> GenerationRequest:
    """The request for ``task`` on ``image`` (a photo or a clip); ``attempt`` > 0 asks again with a varied
    seed."""
    request = build_request(task, image if isinstance(image, PreparedClip) else [image], options, sampling)
    return replace(request, options=retry_options(request.options, attempt))


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
                    f"{summary} after {attempts} attempt{'s' if attempts > 1 else ''}: {marked_text(exc)}",
                    raw=exc.raw,
                    attempts=attempts,
                ) from None
            attempt += 1
            if on_retry is not None:
                on_retry(marked_text(exc))  # each front end renders the setting it names
            request = replace(request, options=retry_options(request.options, attempt))


def smaller_media(image: Media, max_tokens: int, capabilities: Capabilities) -> Media | None:
    """``image`` within ``max_tokens`` made from its own pixels (a clip: fewer or smaller frames), or None
    when that would not make it cost less."""
    if isinstance(image, PreparedClip):
        return smaller_clip(image, max_tokens, capabilities)
    smaller = engine_budget(max_tokens, capabilities)
    if smaller.max_tokens >= image.tokens:
        return None
    return image.downscaled(smaller.fit(image.width, image.height))


def answer_image(
    backend: Backend,
    image: Media,
    task: Task,
    options: TaskOptions,
    retries: int = 1,
    *,
    sampling: SamplingOptions | None = None,
    image_tokens: int | None = None,
    given: str | None = None,
    attempt: int = 0,
    on_chunk: ChunkCallback | None = None,
    on_retry: RetryCallback | None = None,
    cancel: CancelToken | None = None,
) -> Answer:
    """Ask ``backend`` to do ``task`` on ``image`` (a photo, or a video clip): the one way every caller gets
    an answer.

    ``given`` is an answer already generated for this image (a batch's): used when valid, else the image is
    asked again. ``attempt`` > 0 asks with a varied seed (a caller asking again for its own reasons). When the
    engine runs out of memory or context, the image is asked once more at half of ``image_tokens`` (the
    budget it was prepared at; default its size), downscaled from the prepared pixels; a clip likewise at
    half its budget, with fewer or smaller frames (see :func:`smaller_media`). ``on_retry`` hears each retry
    as a sentence for people.

    Raises:
        Cancelled: ``cancel`` was set.
        CaptioneerError: anything that is not about this answer (the engine crashed, a server is gone).
    """
    notify = on_retry or (lambda reason: None)
    request = task_request(task, image, options, sampling, attempt)
    spent = 0
    if given is not None:
        answer = _given_answer(given, request)
        if answer.ok:
            return _cleaned(answer, task, image)
        notify(f"a batched answer was unusable ({answer.error or ''}); asking again for that photo")
        spent = 1
    budget = image_tokens or image.tokens
    try:
        return _asked(backend, image, request, task, retries, spent, on_chunk, notify, cancel)
    except ResourceExhaustedError as exc:
        spent += 1  # the generation that ran out
        half = max(MIN_RETRY_TOKENS, budget // 2)
        smaller = smaller_media(image, half, backend.capabilities)
        if smaller is None:
            return Answer(
                text="", attempts=spent, image_tokens=image.tokens, error=marked_text(exc),
                error_kind=RESOURCES,
            )
        what = "clip" if isinstance(image, PreparedClip) else "image"
        notify(f"{marked_text(exc)} Retrying with a {half}-token {what} budget.")
        image = smaller
    request = task_request(task, image, options, sampling, attempt)
    try:
        return _asked(backend, image, request, task, retries, spent, on_chunk, notify, cancel)
    except ResourceExhaustedError as exc:
        return Answer(
            text="", attempts=spent + 1, image_tokens=image.tokens, error=marked_text(exc),
            error_kind=RESOURCES,
        )


def _asked(
    backend: Backend,
    image: Media,
    request: GenerationRequest,
    task: Task,
    retries: int,
    spent: int,
    on_chunk: ChunkCallback | None,
    notify: RetryCallback,
    cancel: CancelToken | None,
) -> Answer:
    """One answer generated (with its validation retries), as an :class:`Answer` even when it stayed
    invalid."""
    try:
        answer = generate_answer(
            backend,
            request,
            on_chunk=on_chunk,
            on_retry=lambda reason: notify(f"{reason} Asking again."),
            cancel=cancel,
            retries=retries,
            attempts_before=spent,
        )
    except InvalidOutputError as exc:
        kind = TRUNCATED if isinstance(exc, TruncatedOutputError) else INVALID
        answer = Answer(text=exc.raw, attempts=exc.attempts, error=marked_text(exc), error_kind=kind)
    return _cleaned(answer, task, image)


def _given_answer(given: str, request: GenerationRequest) -> Answer:
    """A batch's answer for the request, validated like a generated one."""
    truncated_at = request.options.max_new_tokens if finish_reason_of(given) == FINISH_LENGTH else None
    if request.json_schema is None:
        return Answer(text=given.strip(), truncated_at=truncated_at)
    try:
        data = parse_structured(given, request.json_schema, truncated_at=truncated_at)
    except InvalidOutputError as exc:
        return Answer(text=str(given), error=marked_text(exc), error_kind=INVALID)
    return Answer(text=str(given), data=data)


def _cleaned(answer: Answer, task: Task, image: Media) -> Answer:
    """``answer`` safe to show and store: no control characters; the image size it was asked at."""
    answer.text = clean_text(answer.text)
    if answer.data is not None:
        answer.data = clean_answer_data(answer.data, task.single_line_keys)
    answer.image_tokens = image.tokens
    return answer
