"""Prompt presets (tasks) loaded from resources/tasks.toml and turned into generation requests."""

from __future__ import annotations

import copy
import hashlib
import json
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from captioneer.backends.errors import ConfigurationError
from captioneer.backends.request import GenerationRequest, PreparedImage, SamplingOptions
from captioneer.desktop.core.paths import resource_path


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

    @property
    def structured(self) -> bool:
        return self.schema_name is not None


@dataclass(frozen=True)
class TaskOptions:
    """How a person wants a task run."""

    language: str = "English"
    question: str | None = None
    max_keywords: int = 20
    vocabulary: tuple[str, ...] = ()


@cache
def _catalog() -> dict[str, Any]:
    with resource_path("tasks.toml").open("rb") as fh:
        return tomllib.load(fh)


@cache
def all_tasks() -> dict[str, Task]:
    data = _catalog()
    tasks = {}
    for task_id, spec in data["tasks"].items():
        tasks[task_id] = Task(
            id=task_id,
            label=spec["label"],
            summary=spec["summary"],
            prompt=spec["prompt"],
            max_tokens=int(spec["max_tokens"]),
            system=spec.get("system"),
            schema_name=spec.get("schema"),
            translate=bool(spec.get("translate", True)),
            needs_question=bool(spec.get("needs_question", False)),
        )
        if tasks[task_id].schema_name and tasks[task_id].schema_name not in data["schemas"]:
            raise RuntimeError(f"task {task_id} names unknown schema {tasks[task_id].schema_name}")
    return tasks


def default_language() -> str:
    return _catalog()["defaults"]["language"]


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
    keywords = schema.get("properties", {}).get("keywords")
    if keywords is not None:
        keywords["maxItems"] = max(
            1, min(options.max_keywords, keywords.get("maxItems", options.max_keywords))
        )
        if options.vocabulary:
            keywords["items"] = {"type": "string", "enum": sorted(set(options.vocabulary))}
    return schema


def render_prompt(task: Task, options: TaskOptions = TaskOptions()) -> str:
    if task.needs_question and not (options.question and options.question.strip()):
        raise ConfigurationError(f"The '{task.id}' task needs a question: pass --prompt \"…\".")
    vocabulary = ""
    if options.vocabulary:
        vocabulary = (
            " Choose keywords only from this list: " + ", ".join(sorted(set(options.vocabulary))) + "."
        )
    return task.prompt.format(
        language=options.language,
        question=(options.question or "").strip(),
        max_keywords=options.max_keywords,
        vocabulary=vocabulary,
    )


def build_request(
    task: Task,
    images: Sequence[PreparedImage],
    options: TaskOptions = TaskOptions(),
    sampling: SamplingOptions | None = None,
) -> GenerationRequest:
    """The request every engine gets for ``task`` on ``images``."""
    if sampling is None:
        sampling = SamplingOptions(max_new_tokens=task.max_tokens)
    return GenerationRequest(
        prompt=render_prompt(task, options),
        images=tuple(images),
        system=task.system,
        json_schema=task_schema(task, options),
        options=sampling,
    )


def prompt_hash(request: GenerationRequest) -> str:
    """A short stable hash of what was asked (prompt, system, schema), for result provenance."""
    payload = json.dumps(
        {"prompt": request.prompt, "system": request.system, "schema": request.json_schema}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
