"""Prompt presets (tasks) loaded from resources/tasks.toml and turned into generation requests."""

from __future__ import annotations

import copy
import hashlib
import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

from captioneer.backends.errors import ConfigurationError
from captioneer.backends.request import GenerationRequest, PreparedClip, PreparedImage, SamplingOptions
from captioneer.desktop.core.answer_text import clean_text
from captioneer.desktop.core.paths import resource_path
from captioneer.desktop.core.scenes import clean_scenes, scene_lines

DEFAULT_LANGUAGE = "English"
DEFAULT_MAX_KEYWORDS = 20
RESULT_FIELDS = ("caption", "keywords", "title", "alt_text", "ocr_text")
"""What a result holds, whatever the task: the names a task's ``fields`` map its answer onto."""
WHOLE_TEXT = "text"
"""The ``fields`` value that means the whole answer (a plain-text task's only part)."""


class Answered(Protocol):
    """An answer as :meth:`Task.fields` reads it: its text and, for a structured task, its parsed object."""

    @property
    def text(self) -> str: ...

    @property
    def data(self) -> Mapping[str, Any] | None: ...


@dataclass(frozen=True)
class ResultFields:
    """The result fields an answer fills, cleaned: control characters out, one-line fields on one line."""

    caption: str = ""
    keywords: tuple[str, ...] = ()
    title: str | None = None
    alt_text: str | None = None
    ocr_text: str | None = None
    """The text the task read in the image (OCR), for the search's ``ocr:``; None when it reads none."""


@dataclass(frozen=True)
class Task:
    """One preset: what to ask the model, and the JSON schema its answer must satisfy if structured."""

    id: str
    label: str
    summary: str
    prompt: str
    max_tokens: int
    system: str | None = None
    schema_name: str | None = None
    translate: bool = True
    needs_question: bool = False
    field_keys: tuple[tuple[str, str], ...] = (("caption", WHOLE_TEXT),)
    """(result field, answer key) pairs from the preset's ``fields``."""
    video_prompt: str | None = None
    """The user message for a video clip (the same slots as ``prompt``); None: the task takes no videos."""
    takes_photos: bool = True
    """False for a task only clips can answer (the scene list; tasks.toml ``photos = false``): its ``prompt``
    is empty and :func:`render_prompt` refuses photos."""

    @property
    def takes_videos(self) -> bool:
        return self.video_prompt is not None

    @property
    def media(self) -> str:
        """What the task takes, in words for task lists: ``photos only``, ``videos only`` or ``photos and
        videos``."""
        if not self.takes_videos:
            return "photos only"
        return "photos and videos" if self.takes_photos else "videos only"

    @property
    def choice_label(self) -> str:
        """The label in a list of tasks for a library (photos and clips): ``Scene list — videos only``; a task
        that takes both needs no remark."""
        return self.label if self.media == "photos and videos" else f"{self.label} — {self.media}"

    @property
    def structured(self) -> bool:
        return self.schema_name is not None

    @property
    def takes_context(self) -> bool:
        """The prompt has a ``{context}`` slot: the task describes photos, so facts about them can help."""
        return "{context}" in (self.prompt if self.takes_photos else self.video_prompt or "")

    def answer_key(self, field: str) -> str | None:
        """The part of the answer that fills result ``field`` (one of :data:`RESULT_FIELDS`), if any."""
        return dict(self.field_keys).get(field)

    @property
    def single_line_keys(self) -> frozenset[str]:
        """The answer keys that fill one-line result fields (title, alt text, keyword items)."""
        return frozenset(key for field, key in self.field_keys if field != "caption" and key != WHOLE_TEXT)

    def fields(self, answer: Answered, *, duration: float | None = None) -> ResultFields:
        """The result fields ``answer`` fills, as the preset's ``fields`` declare them.

        A caption that the answer gives as a list is a scene list (the scenes task): it becomes one
        ``m:ss description`` line per scene, its starts checked against the clip's ``duration`` in seconds
        when it is known (see :mod:`~captioneer.desktop.core.scenes`).
        """
        parts = {**(answer.data or {}), WHOLE_TEXT: answer.text}

        def text(field: str, *, multiline: bool) -> str:
            key = self.answer_key(field)
            value = parts.get(key) if key is not None else None
            if field == "caption" and isinstance(value, list):
                return scene_lines(clean_scenes(value, duration))
            return clean_text(value, multiline=multiline).strip() if isinstance(value, str) else ""

        key = self.answer_key("keywords")
        words = parts.get(key) if key is not None else None
        keywords = (
            tuple(word for word in (clean_text(str(item), multiline=False) for item in (words or [])) if word)
            if isinstance(words, list)
            else ()
        )
        return ResultFields(
            caption=text("caption", multiline=True),
            keywords=keywords,
            title=text("title", multiline=False) or None,
            alt_text=text("alt_text", multiline=False) or None,
            ocr_text=text("ocr_text", multiline=True) or None,
        )


@dataclass(frozen=True)
class TaskOptions:
    """How a person wants a task run."""

    language: str = DEFAULT_LANGUAGE
    question: str | None = None
    max_keywords: int = DEFAULT_MAX_KEYWORDS
    vocabulary: tuple[str, ...] = ()
    context: str = ""
    """The rendered context block for the prompt's ``{context}`` slot (see core/context.py); empty: none."""


@cache
def _catalog() -> dict[str, Any]:
    with resource_path("tasks.toml").open("rb") as fh:
        return tomllib.load(fh)


@cache
def all_tasks() -> dict[str, Task]:
    data = _catalog()
    tasks = {}
    for task_id, spec in data["tasks"].items():
        schema_name = spec.get("schema")
        if schema_name and schema_name not in data["schemas"]:
            raise RuntimeError(f"task {task_id} names unknown schema {schema_name}")
        properties = data["schemas"][schema_name].get("properties", {}) if schema_name else {}
        fields = spec.get("fields", {"caption": WHOLE_TEXT})
        for field, key in fields.items():
            if field not in RESULT_FIELDS or (key != WHOLE_TEXT and key not in properties):
                raise RuntimeError(
                    f"task {task_id}: fields.{field} = {key!r} names nothing a result or its answer has"
                )
        if "caption" not in fields:
            raise RuntimeError(f"task {task_id}: fields must say which part of the answer is the caption")
        takes_photos = bool(spec.get("photos", True))
        if not takes_photos and "video_prompt" not in spec:
            raise RuntimeError(f"task {task_id}: photos = false needs a video_prompt")
        tasks[task_id] = Task(
            id=task_id,
            label=spec["label"],
            summary=spec["summary"],
            prompt=spec["prompt"] if takes_photos else "",
            max_tokens=int(spec["max_tokens"]),
            system=spec.get("system"),
            schema_name=schema_name,
            translate=bool(spec.get("translate", True)),
            needs_question=bool(spec.get("needs_question", False)),
            field_keys=tuple(fields.items()),
            video_prompt=spec.get("video_prompt"),
            takes_photos=takes_photos,
        )
    return tasks


def get_task(task_id: str) -> Task:
    try:
        return all_tasks()[task_id]
    except KeyError:
        known = ", ".join(all_tasks())
        raise ConfigurationError(f"Unknown task '{task_id}'. Choose one of: {known}.") from None


def task_schema(task: Task, options: TaskOptions = TaskOptions()) -> dict[str, Any] | None:
    """The task's JSON schema, with the keyword cap and vocabulary of ``options`` applied."""
    if task.schema_name is None:
        return None
    schema = copy.deepcopy(_catalog()["schemas"][task.schema_name])
    keywords = schema.get("properties", {}).get(task.answer_key("keywords") or "")
    if keywords is not None:
        keywords["maxItems"] = max(
            1, min(options.max_keywords, keywords.get("maxItems", options.max_keywords))
        )
        if options.vocabulary:
            keywords["items"] = {"type": "string", "enum": sorted(set(options.vocabulary))}
    return schema


def check_takes_context(task: Task) -> None:
    """Raises ConfigurationError when ``task`` has no ``{context}`` slot (context would be lost silently)."""
    if not task.takes_context:
        raise ConfigurationError(
            f"The '{task.id}' task does not use context (it has no place for it): choose a task that "
            "describes photos, or turn the context off."
        )


def render_prompt(task: Task, options: TaskOptions = TaskOptions(), *, video: bool = False) -> str:
    """The task's user message for a photo, or with ``video`` for a video clip (its ``video_prompt``)."""
    if video and task.video_prompt is None:
        raise ConfigurationError(f"The '{task.id}' task does not take videos: choose a task that does.")
    if not video and not task.takes_photos:
        raise ConfigurationError(
            f"The '{task.id}' task takes only videos: choose another task for photos (captioneer tasks)."
        )
    if task.needs_question and not (options.question and options.question.strip()):
        raise ConfigurationError(f"The '{task.id}' task needs a question: pass --prompt \"…\".")
    if options.context:
        check_takes_context(task)
    vocabulary = ""
    if options.vocabulary:
        vocabulary = (
            " Choose keywords only from this list: " + ", ".join(sorted(set(options.vocabulary))) + "."
        )
    return (task.video_prompt if video else task.prompt).format(
        language=options.language,
        question=(options.question or "").strip(),
        max_keywords=options.max_keywords,
        vocabulary=vocabulary,
        context=options.context,
    )


def frames_preamble(clip: PreparedClip) -> str:
    """What an engine that takes a clip as separate images is told first: how many frames, from how long a
    clip, at which times, and that they are one video (true video input carries its times itself)."""
    times = ", ".join(f"{time:.1f} s" for time in clip.times)
    count = len(clip.frames)
    if count == 1:
        return f"This is 1 frame from a {clip.duration:.1f}-second video clip, at {times}."
    return (
        f"These are {count} frames from a {clip.duration:.1f}-second video clip, in order, at {times}. "
        "Treat them as one video."
    )


def build_request(
    task: Task,
    images: Sequence[PreparedImage] | PreparedClip,
    options: TaskOptions = TaskOptions(),
    sampling: SamplingOptions | None = None,
) -> GenerationRequest:
    """The request every engine gets for ``task`` on ``images``, or on a clip with the task's video prompt:
    as true video input when the clip was prepared in video mode, else as its frames (images) after
    :func:`frames_preamble`.

    Raises:
        ConfigurationError: a clip for a task that takes no videos (and the checks of :func:`render_prompt`).
    """
    if sampling is None:
        sampling = SamplingOptions(max_new_tokens=task.max_tokens)
    video: PreparedClip | None = None
    if isinstance(images, PreparedClip):
        clip, prompt = images, render_prompt(task, options, video=True)
        if clip.as_video:
            images, video = (), clip
        else:
            images, prompt = clip.frames, f"{frames_preamble(clip)}\n\n{prompt}"
    else:
        prompt = render_prompt(task, options)
    return GenerationRequest(
        prompt=prompt,
        images=tuple(images),
        system=task.system,
        json_schema=task_schema(task, options),
        options=sampling,
        video=video,
    )


def prompt_hash(request: GenerationRequest) -> str:
    """A short stable hash of what was asked (prompt, system, schema), for result provenance."""
    payload = json.dumps(
        {"prompt": request.prompt, "system": request.system, "schema": request.json_schema}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
