"""Tagging runs: a queue of photos in the catalog, processed exactly once, resumable after a crash, with
progress, pause, cancel, batching, keyword clean-up and degenerate-output detection.

This module plans runs and is their public face; runner.py executes them, catalog/runs.py holds the catalog's
queries about them, run_spec.py what a run is."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from captioneer.backends.base import EngineConfig
from captioneer.backends.errors import ConfigurationError
from captioneer.backends.registry import engine_entry
from captioneer.backends.request import GenerationRequest
from captioneer.desktop.core.tasks import build_request, get_task, prompt_hash, render_prompt, task_schema
from captioneer.desktop.core.video import is_video_path
from captioneer.desktop.library.catalog import Catalog, Photo
from captioneer.desktop.library.catalog.runs import (
    abandon_run,
    failed_items,
    get_run,
    insert_run,
    item_paths,
    list_runs,
    queue_photos,
    reopen_run,
    resumable_run_id,
    reviewed_photo_ids,
    run_counts,
    set_run_state,
    tagged_photo_ids,
)
from captioneer.desktop.library.run_spec import (
    RESUMABLE_STATES,
    EventCallback,
    ProgressCallback,
    Run,
    RunController,
    RunCounts,
    RunProgress,
    RunSpec,
    format_duration,
)
from captioneer.desktop.library.runner import execute_run, server_notices

__all__ = [
    "RESUMABLE_STATES",
    "REVIEWED_CHOICES",
    "EventCallback",
    "ProgressCallback",
    "Run",
    "RunController",
    "RunCounts",
    "RunPlan",
    "RunProgress",
    "RunSpec",
    "abandon_run",
    "execute_run",
    "failed_items",
    "format_duration",
    "get_run",
    "list_runs",
    "model_identity",
    "photo_decision",
    "plan_run",
    "reviewed_in_selection",
    "run_counts",
    "server_notices",
    "set_run_state",
    "spec_prompt_hash",
]

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
    skipped_videos: int = 0
    """Videos in the selection left out because the task takes no videos (it has no video prompt)."""
    skipped_photos: int = 0
    """Photos in the selection left out because the task takes only videos (the scene list)."""


def model_identity(config: EngineConfig) -> tuple[str, str, str | None]:
    """(engine, model, quant) as recorded on runs and results; model files are named by file name."""
    model = config.model
    if engine_entry(config.engine).local_files and ("/" in model or "\\" in model) and Path(model).exists():
        model = Path(model).name
    return config.engine, model, config.options.get("quant")


def spec_prompt_hash(spec: RunSpec) -> str:
    task = get_task(spec.task)
    options, sampling = spec.task_options(), spec.sampling_options(task)
    if task.takes_photos:
        request = build_request(task, [], options, sampling)
    else:  # a video-only task: what every clip is asked (its frames' times are each clip's own)
        prompt = render_prompt(task, options, video=True)
        request = GenerationRequest(prompt, system=task.system, json_schema=task_schema(task, options))
    asked = prompt_hash(request)
    control = spec.keyword_control()
    # Keyword control changes what is kept, not what is asked; a run with other choices is still another run
    # (never resumed in place of this one). Without it the hash is exactly what was asked, as before.
    return hashlib.sha256(f"{asked} {control}".encode()).hexdigest()[:16] if control else asked


def queued_media(catalog: Catalog, run_id: int, state: str) -> tuple[int, int]:
    """(photos, videos) among the run's items in ``state`` (``pending``, ``done``, ``failed``)."""
    paths = item_paths(catalog, run_id, state)
    videos = sum(is_video_path(Path(path)) for path in paths)
    return len(paths) - videos, videos


def photo_decision(*, tagged_by_model: bool, current_reviewed: bool, redo: bool, on_reviewed: str) -> str:
    """What a new run does with one photo: ``tag`` it, leave it out as ``done`` (this model already tagged it
    for the task; ``redo`` tags it again), leave it out as ``reviewed`` (its current result for the task was
    reviewed and the choice is ``skip``), or ``ask`` (the caller must ask the person first)."""
    if tagged_by_model and not redo:
        return "done"
    if current_reviewed and on_reviewed in ("ask", "skip"):
        return "ask" if on_reviewed == "ask" else "reviewed"
    return "tag"


def reviewed_in_selection(
    catalog: Catalog, photos: Sequence[Photo], spec: RunSpec, config: EngineConfig, *, redo: bool = False
) -> int:
    """How many of ``photos`` a run would tag again although their current result for the task was reviewed:
    the number to ask the person about before :func:`plan_run` (with ``on_reviewed`` chosen)."""
    _engine, model, _quant = model_identity(config)
    tagged = tagged_photo_ids(catalog.db, spec.task, model, None)
    reviewed = reviewed_photo_ids(catalog.db, spec.task)
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
    never queued twice in one run; videos are left out when the task takes none (``skipped_videos``), photos
    when it takes only videos (``skipped_photos``).
    ``on_reviewed`` (one of :data:`REVIEWED_CHOICES` but ``ask``) says what happens to photos whose current
    result for the task was reviewed: ``skip`` leaves them out; ``replace`` makes the new result current;
    ``keep`` stores it as a version and keeps the reviewed one current. A result
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
    present = [photo for photo in photos if photo.status == "present"]
    # A task without a video prompt cannot be asked about a clip, nor a video-only task about a photo: what
    # the task cannot take is never queued.
    kinds = [(photo, is_video_path(Path(photo.path))) for photo in present]
    taken = [photo for photo, video in kinds if (task.takes_videos if video else task.takes_photos)]
    skipped_videos = 0 if task.takes_videos else sum(video for _, video in kinds)
    skipped_photos = 0 if task.takes_photos else sum(not video for _, video in kinds)
    photo_ids = [photo.id for photo in taken]
    # What a result does when it meets a reviewed current one: only an explicit replace displaces it.
    at_commit = "replace" if on_reviewed == "replace" else "keep"
    with catalog.transaction() as db:
        resumed_id = resumable_run_id(db, scope, spec.task, engine, model, phash)
        run_id = resumed_id
        tagged = tagged_photo_ids(db, spec.task, model, run_id)
        reviewed = reviewed_photo_ids(db, spec.task)
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
                skipped_videos=skipped_videos,
                skipped_photos=skipped_photos,
            )
        if run_id is not None:
            reopen_run(db, run_id, at_commit)
        else:
            run_id = insert_run(db, scope, spec, (engine, model, quant), phash, at_commit)
        added = queue_photos(db, run_id, wanted)
    return RunPlan(
        run_id=run_id,
        resumed=resumed_id is not None,
        added=added,
        already_done=already_done,
        skipped_reviewed=skipped_reviewed,
        skipped_videos=skipped_videos,
        skipped_photos=skipped_photos,
    )
