"""Caption one image file with any backend (quick caption, the command line, the setup wizard's test): prepare
it, answer it through the answer pipeline, and report the outcome as a :class:`CaptionResult`."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from captioneer.backends.base import DEFAULT_IMAGE_TOKENS, Backend
from captioneer.backends.cancel import CancelToken
from captioneer.backends.errors import ImageError, cli_text
from captioneer.backends.request import PreparedClip, PreparedImage, SamplingOptions
from captioneer.backends.structured import truncation_message
from captioneer.desktop.core.answering import (
    Answer,
    ChunkCallback,
    RetryCallback,
    answer_image,
    generate_answer,
)
from captioneer.desktop.core.clips import prepare_clip
from captioneer.desktop.core.images import engine_budget, prepare_image
from captioneer.desktop.core.tasks import Task, TaskOptions
from captioneer.desktop.core.video import is_video_path
from captioneer.desktop.core.video_budget import DEFAULT_VIDEO_TOKENS

__all__ = ["Answer", "CaptionResult", "caption_file", "generate_answer"]
# Answer and generate_answer live in the answer pipeline (answering.py); the engines' tests import them here.


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
    error_detail: str | None = None  # the technical text behind ``error`` (e.g. the image decoder's)
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
                "error": cli_text(self.error) if self.error else self.error,
                "error_kind": self.error_kind,
                "error_detail": self.error_detail,
                "seconds": round(self.seconds, 3),
                "image_tokens": self.image_tokens,
                "attempts": self.attempts,
                "warning": self.warning,
            }
        )
        out.update(self.extra)
        return out


def caption_file(
    backend: Backend,
    path: str | os.PathLike[str],
    task: Task,
    *,
    task_options: TaskOptions | None = None,
    sampling: SamplingOptions | None = None,
    image_tokens: int = DEFAULT_IMAGE_TOKENS,
    video_tokens: int = DEFAULT_VIDEO_TOKENS,
    on_chunk: ChunkCallback | None = None,
    on_retry: RetryCallback | None = None,
    on_clip: Callable[[PreparedClip], None] | None = None,
    cancel: CancelToken | None = None,
) -> CaptionResult:
    """Prepare one file (a video: its clip, sampled within ``video_tokens``, shown to ``on_clip`` before it
    is asked) and run ``task`` on it. Expected failures become a failed result, not an exception;
    cancellation and configuration errors (a task that takes no videos) propagate."""
    task_options = task_options or TaskOptions()
    started = time.perf_counter()
    name = os.fspath(path)
    result = CaptionResult(path=name, task=task.id, ok=False)
    clip = is_video_path(Path(path))
    try:
        if clip:
            image: PreparedImage | PreparedClip = prepare_clip(
                path, video_tokens, backend.capabilities, cancel=cancel
            )
        else:
            image = prepare_image(path, engine_budget(image_tokens, backend.capabilities))
    except ImageError as exc:
        result.error, result.error_kind = str(exc), exc.kind
        result.error_detail = exc.detail or None
        result.seconds = time.perf_counter() - started
        return result
    if isinstance(image, PreparedClip) and on_clip is not None:
        on_clip(image)
    answer = answer_image(
        backend,
        image,
        task,
        task_options,
        sampling=sampling,
        image_tokens=video_tokens if clip else image_tokens,
        on_chunk=on_chunk,
        on_retry=on_retry,
        cancel=cancel,
    )
    result.ok = answer.ok
    result.text, result.data = answer.text, answer.data
    result.error, result.error_kind = answer.error, answer.error_kind
    result.attempts, result.image_tokens = answer.attempts, answer.image_tokens
    if answer.truncated_at is not None:
        result.warning = cli_text(truncation_message(answer.truncated_at))  # the command line prints it
    result.seconds = time.perf_counter() - started
    return result
