"""Clips through a tagging run on the real engines: the tiny gguf model tags a folder of a photo and clips
(MP4, rotated MOV, MKV) with each clip's frames as images and their times in the prompt; broken and
copy-protected clips fail with one line and are never retried; cancel while a clip is sampled pauses the
run; a task without a video prompt leaves the videos out; the tiny transformers model tags the same folder
in one batch, each clip as true video input (see test_video_engines for its timestamps and the servers)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from captioneer.backends.base import EngineConfig
from captioneer.backends.cancel import CancelToken
from captioneer.backends.errors import Cancelled
from captioneer.backends.gguf import GGUFBackend
from captioneer.backends.request import GenerationRequest
from captioneer.backends.transformers_engine import TransformersBackend
from captioneer.desktop.core import tasks
from captioneer.desktop.core.video import PROTECTED, probe
from captioneer.desktop.core.video_budget import SamplingMode, plan_sampling
from captioneer.desktop.library.catalog import open_catalog
from captioneer.desktop.library.runs import (
    RunController,
    RunSpec,
    execute_run,
    failed_items,
    plan_run,
    queued_media,
    run_counts,
)
from captioneer.desktop.library.scanner import scan_library
from tests.video_clips import make_clip, make_encrypted

VIDEO_PROMPT = "Describe this video clip. Reply with JSON only: a caption and up to {max_keywords} keywords."
SPEC = RunSpec(
    task="keywords", image_tokens=16, video_tokens=64, sampling={"max_new_tokens": 16, "temperature": 0.0}
)


@pytest.fixture(autouse=True)
def videos_in_the_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """A keywords task with a video prompt of the test's own (tasks.toml's are tested in test_video_tasks)."""
    presets = tasks.all_tasks()
    monkeypatch.setitem(presets, "keywords", replace(presets["keywords"], video_prompt=VIDEO_PROMPT))


class RecordingGGUF(GGUFBackend):
    """The real gguf engine, keeping each request it is asked (a recorder around it, not a stand-in)."""

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        self.asked: list[GenerationRequest] = []

    def generate(self, request: GenerationRequest, cancel: CancelToken | None = None) -> Iterator[str]:
        self.asked.append(request)
        yield from super().generate(request, cancel)


def gguf(tiny_gguf: tuple[Path, Path]) -> RecordingGGUF:
    model, mmproj = tiny_gguf
    return RecordingGGUF(
        EngineConfig(engine="gguf", model=str(model), image_tokens=16, options={"mmproj": str(mmproj)})
    )


def make_library(root: Path) -> dict[str, Path]:
    root.mkdir(parents=True)
    photo = root / "photo.png"
    Image.new("RGB", (96, 64), (200, 40, 40)).save(photo)
    return {
        "photo.png": photo,
        "walk.mp4": make_clip(root / "walk.mp4", "mp4", seconds=2.0),
        "phone.mov": make_clip(root / "phone.mov", "mov", seconds=1.5, rotation=90),
        "beach.mkv": make_clip(root / "beach.mkv", "mkv", seconds=1.0),
    }


def test_gguf_tags_photos_and_clips_each_clip_as_frames_with_their_times(
    tmp_path: Path, tiny_gguf: tuple[Path, Path]
) -> None:
    root = tmp_path / "Library"
    files = make_library(root)
    engine = gguf(tiny_gguf)
    with open_catalog() as catalog:
        scan_library(catalog, root)
        plan = plan_run(catalog, str(root), catalog.photos_under(root), SPEC, engine.config)
        assert plan.skipped_videos == 0
        assert queued_media(catalog, plan.run_id, "pending") == (1, 3)
        engine.load()
        try:
            counts = execute_run(catalog, plan.run_id, engine, retries=0)
        finally:
            engine.unload()
        results = {Path(result.path).name: result for result in catalog.results(run_id=plan.run_id)}
        done = queued_media(catalog, plan.run_id, "done")
    assert (counts.done, counts.failed) == (4, 0) and done == (1, 3)
    assert set(results) == set(files)
    asked = {Path(request.images[0].source).name: request for request in engine.asked}
    photo = asked.pop("photo.png")
    assert len(photo.images) == 1 and photo.prompt.startswith("Look at this image")
    for name, request in asked.items():
        info = probe(files[name])
        plan_ = plan_sampling(info, SPEC.video_tokens, mode=SamplingMode.IMAGES)
        assert len(request.images) == plan_.frame_count, name
        assert {image.image.size for image in request.images} == {(plan_.width, plan_.height)}, name
        assert request.video is None and request.image_tokens <= SPEC.video_tokens
        duration = f"{info.duration:.1f}-second video clip"
        assert request.prompt.startswith(f"These are {plan_.frame_count} frames from a {duration}"), name
        assert request.prompt.endswith(VIDEO_PROMPT.format(max_keywords=SPEC.max_keywords)), name
        assert results[name].engine == "gguf", name  # stored like a photo's result
    # The phone clip is stored landscape with a quarter turn: its frames reach the engine upright.
    width, height = asked["phone.mov"].images[0].image.size
    assert height > width


def test_broken_and_protected_clips_fail_in_one_line_and_are_not_retried(
    tmp_path: Path, tiny_gguf: tuple[Path, Path]
) -> None:
    root = tmp_path / "Library"
    root.mkdir()
    make_clip(root / "drm.mp4", "mp4", seconds=1.0)
    make_clip(root / "broken.mov", "mov", seconds=1.0)
    engine = gguf(tiny_gguf)
    with open_catalog() as catalog:
        scan_library(catalog, root)
        # Replaced after the scan (a sync tool, a disk error): the run is the first to meet them. A scan that
        # meets them marks them unreadable itself (test_video_scan).
        make_encrypted(root / "drm.mp4")
        (root / "broken.mov").write_bytes(b"\x00\x00\x00\x18ftypqt  " + b"garbage" * 20)
        plan = plan_run(catalog, str(root), catalog.photos_under(root), SPEC, engine.config)
        ids = {Path(photo.path).name: photo.id for photo in catalog.photos_under(root)}
        engine.load()
        try:
            counts = execute_run(catalog, plan.run_id, engine, retries=1)
        finally:
            engine.unload()
        items = failed_items(catalog, plan.run_id)
        failed = {Path(path).name: (error, kind) for path, error, kind in items}
        statuses = {name: catalog.photo(photo_id).status for name, photo_id in ids.items()}
        again = plan_run(catalog, str(root), catalog.photos_under(root), SPEC, engine.config)
    assert (counts.done, counts.failed) == (0, 2)
    assert engine.asked == []  # nothing reached the engine
    assert failed["drm.mp4"] == (PROTECTED, "protected")
    error, kind = failed["broken.mov"]
    assert "\n" not in error and kind in {"corrupt", "not-a-video", "unsupported"}
    assert statuses == {"drm.mp4": "unreadable", "broken.mov": "unreadable"}  # final until the file changes
    assert again.run_id is None


def test_cancel_while_a_clip_is_sampled_pauses_the_run_with_the_clip_still_queued(
    tmp_path: Path, tiny_gguf: tuple[Path, Path]
) -> None:
    root = tmp_path / "Library"
    root.mkdir()
    clip = make_clip(root / "walk.mp4", "mp4", seconds=2.0)
    engine = gguf(tiny_gguf)
    controller = RunController()
    seen: list[str] = []

    def progress(update: object) -> None:
        current = getattr(update, "current", "")
        if current:
            seen.append(current)
            controller.cancel()  # Ctrl-C as the clip's progress line shows: sampling is next

    with open_catalog() as catalog:
        scan_library(catalog, root)
        plan = plan_run(catalog, str(root), catalog.photos_under(root), SPEC, engine.config)
        with pytest.raises(Cancelled):
            execute_run(catalog, plan.run_id, engine, controller=controller, on_progress=progress)
        counts = run_counts(catalog, plan.run_id)
    assert seen == [str(clip)]  # the progress line names the clip
    assert (counts.pending, counts.done, counts.failed) == (1, 0, 0)
    assert engine.asked == []


def test_a_task_without_a_video_prompt_leaves_the_videos_out(
    tmp_path: Path, tiny_gguf: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "Library"
    make_library(root)
    presets = tasks.all_tasks()
    monkeypatch.setitem(presets, "keywords", replace(presets["keywords"], video_prompt=None))
    with open_catalog() as catalog:
        scan_library(catalog, root)
        config = EngineConfig(engine="gguf", model=str(tiny_gguf[0]), image_tokens=16)
        plan = plan_run(catalog, str(root), catalog.photos_under(root), SPEC, config)
        assert plan.skipped_videos == 3
        assert queued_media(catalog, plan.run_id, "pending") == (1, 0)


class RecordingTransformers(TransformersBackend):
    """The real transformers engine, keeping each batch of requests it is asked."""

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        self.batches: list[list[GenerationRequest]] = []

    def generate_batch(
        self, requests: Sequence[GenerationRequest], cancel: CancelToken | None = None
    ) -> list[str]:
        self.batches.append(list(requests))
        return super().generate_batch(requests, cancel)


@pytest.mark.slow
def test_transformers_tags_photos_and_clips_in_one_batch_clips_as_video(
    tmp_path: Path, tiny_hf_model: Path
) -> None:
    root = tmp_path / "Library"
    files = make_library(root)
    engine = RecordingTransformers(
        EngineConfig(engine="transformers", model=str(tiny_hf_model), image_tokens=16,
                     options={"quant": "fp32", "device": "cpu"})
    )
    spec = replace(SPEC, batch_size=4)
    with open_catalog() as catalog:
        scan_library(catalog, root)
        plan = plan_run(catalog, str(root), catalog.photos_under(root), spec, engine.config)
        engine.load()
        try:
            counts = execute_run(catalog, plan.run_id, engine, retries=0)
        finally:
            engine.unload()
    # The engine refuses a batch whose visual tokens differ from the requests' (a resized frame): none failed.
    assert (counts.done, counts.failed) == (4, 0)
    batch = engine.batches[0]  # the photo and the three clips asked together (invalid answers again alone)
    assert len(batch) == 4
    clips = {Path(request.video.source).name: request for request in batch if request.video is not None}
    assert set(clips) == {"walk.mp4", "phone.mov", "beach.mkv"}
    for name, request in clips.items():
        plan_ = plan_sampling(probe(files[name]), SPEC.video_tokens, mode=SamplingMode.VIDEO)
        assert len(request.video.frames) == plan_.frame_count and request.images == ()
        assert (request.video.width, request.video.height) == (plan_.width, plan_.height)
        assert request.prompt == VIDEO_PROMPT.format(max_keywords=SPEC.max_keywords)  # no preamble
