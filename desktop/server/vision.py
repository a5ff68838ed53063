"""``POST /v1/vision/completion``: one uploaded image, one task preset, through the app's own answer pipeline
(the same image preparation, prompts, validation and retries as ``captioneer caption``)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from captioneer.backends.cancel import CancelToken
from captioneer.backends.errors import ConfigurationError, cli_text
from captioneer.backends.request import SamplingOptions
from captioneer.backends.structured import truncation_message
from captioneer.desktop.core.answering import answer_image
from captioneer.desktop.core.engine_setup import sampling_options
from captioneer.desktop.core.images import engine_budget, prepare_image
from captioneer.desktop.core.tasks import Task, TaskOptions, all_tasks, get_task, render_prompt
from captioneer.desktop.server.schemas import TaskInfo, VisionResult
from captioneer.desktop.server.service import AnswerFailed, BadRequest, Service


@dataclass(frozen=True)
class VisionAsk:
    """What one request asks, resolved and checked before it waits for the engine."""

    task: Task
    options: TaskOptions
    sampling: SamplingOptions


def task_list() -> list[TaskInfo]:
    """The task presets, as ``GET /v1/tasks`` lists them."""
    return [
        TaskInfo(id=task.id, label=task.label, summary=task.summary, structured=task.structured,
                 needs_question=task.needs_question)
        for task in all_tasks().values()
    ]


def vision_ask(
    service: Service,
    *,
    task_id: str | None,
    prompt: str | None,
    language: str | None,
    max_tokens: int | None,
    temperature: float | None,
    seed: int | None,
) -> VisionAsk:
    """The task, its options and sampling for a request (the request's values over the server's flags over
    the settings), as ``captioneer caption`` resolves them.

    Raises:
        BadRequest: an unknown task, a task that needs a question without one, or a bad sampling value.
    """
    settings = service.settings
    chosen = task_id or ("question" if prompt else settings.task)
    if chosen not in all_tasks():
        raise BadRequest(f"Unknown task '{chosen}': GET /v1/tasks lists the tasks this server knows.")
    task = get_task(chosen)
    options = TaskOptions(language=language or settings.language, question=prompt)
    overrides = dataclasses.replace(
        service.overrides,
        max_tokens=max_tokens or service.overrides.max_tokens,
        temperature=service.overrides.temperature if temperature is None else temperature,
        seed=service.overrides.seed if seed is None else seed,
    )
    try:
        render_prompt(task, options)
        sampling = sampling_options(settings, task, overrides)
    except ConfigurationError as exc:
        raise BadRequest(str(exc).replace('pass --prompt "…"', "send the question as `prompt`")) from None
    return VisionAsk(task=task, options=options, sampling=sampling)


def answer_vision(service: Service, ask: VisionAsk, image: bytes, cancel: CancelToken) -> VisionResult:
    """Prepare ``image`` and answer ``ask`` about it (on a worker thread).

    Raises:
        ImageError: the bytes are not a usable image.
        AnswerFailed: no valid answer came of the engine's output.
        Cancelled: ``cancel`` was set.
        CaptioneerError: the engine failed (crashed, a server is gone).
    """
    started = time.perf_counter()
    backend, config = service.backend, service.config
    prepared = prepare_image(image, engine_budget(config.image_tokens, backend.capabilities))
    answer = answer_image(
        backend, prepared, ask.task, ask.options, sampling=ask.sampling, image_tokens=config.image_tokens,
        cancel=cancel,
    )
    cancel.raise_if_cancelled()
    if not answer.ok:
        raise AnswerFailed(cli_text(answer.error or ""), answer.error_kind)
    warning = None
    if answer.truncated_at is not None:
        warning = cli_text(truncation_message(answer.truncated_at)).replace("--max-tokens", "max_tokens")
    return VisionResult(
        result=answer.data if answer.data is not None else answer.text,
        text=answer.text,
        task=ask.task.id,
        model=service.model_id,
        engine=config.engine,
        seconds=round(time.perf_counter() - started, 3),
        image_tokens=answer.image_tokens,
        attempts=answer.attempts,
        warning=warning,
    )
