"""Clips on the command line: `captioneer tag` tags a folder of photos and clips on the real gguf engine,
counting each, and leaves the clips out for a task without a video prompt; `captioneer caption CLIP` prints
the clip's sampling plan and answers it, and refuses a task without a video prompt before the model loads;
`--video-tokens` is checked in one line; the gguf context grows to hold a clip's frames, and a clip that
does not fit an explicit context says so."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from captioneer.backends.base import EngineConfig
from captioneer.backends.errors import ResourceExhaustedError
from captioneer.backends.gguf import GGUFBackend, context_size
from captioneer.backends.request import PreparedClip, PreparedImage
from captioneer.desktop.cli import main as cli_main
from captioneer.desktop.core import tasks
from captioneer.desktop.core.tasks import build_request
from captioneer.desktop.library.catalog import open_catalog
from captioneer.desktop.library.run_media import clip_context
from captioneer.desktop.library.runs import get_run
from captioneer.desktop.library.scanner import media_count
from tests.test_video_runs import VIDEO_PROMPT, make_library
from tests.video_clips import make_clip


@pytest.fixture
def captions_take_videos(monkeypatch: pytest.MonkeyPatch) -> None:
    """The caption preset with a video prompt (tasks.toml's own video prompts come separately)."""
    presets = tasks.all_tasks()
    prompt = "Write one short sentence that describes this video clip. Write in {language}."
    monkeypatch.setitem(presets, "caption", replace(presets["caption"], video_prompt=prompt))


def gguf_flags(tiny_gguf: tuple[Path, Path]) -> list[str]:
    model, mmproj = tiny_gguf
    return [
        "--engine", "gguf", "--model", str(model), "--mmproj", str(mmproj), "--image-tokens", "16",
        "--max-tokens", "8", "--temperature", "0", "--in-process",
    ]


def test_caption_a_clip_prints_its_plan_and_answers_it(
    tmp_path: Path, tiny_gguf: tuple[Path, Path], captions_take_videos: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    clip = make_clip(tmp_path / "walk.mp4", "mp4", seconds=2.0)
    phone = make_clip(tmp_path / "phone.mov", "mov", seconds=1.0, rotation=90)
    photo = tmp_path / "photo.png"
    Image.new("RGB", (96, 64), (200, 40, 40)).save(photo)
    files = [str(clip), str(phone), str(photo)]
    code = cli_main(["caption", *files, "--video-tokens", "128", "--json", *gguf_flags(tiny_gguf)])
    captured = capsys.readouterr()
    records = {Path(record["path"]).name: record for record in map(json.loads, captured.out.splitlines())}
    assert code == 0
    assert f"captioneer: {clip}: 4 frames at 160×96, 60 tokens" in captured.err.splitlines()
    assert f"captioneer: {phone}: 4 frames at 96×160, 60 tokens" in captured.err.splitlines()  # upright
    assert str(photo) not in captured.err  # a photo has no plan to print
    assert (records["walk.mp4"]["ok"], records["walk.mp4"]["image_tokens"]) == (True, 60)
    assert records["photo.png"]["ok"]


def test_caption_refuses_a_clip_for_a_task_without_a_video_prompt_before_loading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    presets = tasks.all_tasks()
    monkeypatch.setitem(presets, "ocr", replace(presets["ocr"], video_prompt=None))
    clip = make_clip(tmp_path / "walk.mp4", "mp4", seconds=1.0)
    code = cli_main(["caption", str(clip), "--task", "ocr", "--engine", "gguf", "--model", "missing.gguf"])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "captioneer: The 'ocr' task does not take videos: choose a task that does."
    )


@pytest.mark.parametrize("command", ["tag", "caption"])
def test_video_tokens_below_the_smallest_is_one_line_and_exit_2(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path if command == "tag" else make_clip(tmp_path / "walk.mp4", "mp4", seconds=1.0)
    code = cli_main([command, str(target), "--video-tokens", "63", "--engine", "gguf", "--model", "x.gguf"])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "captioneer: A clip budget of 63 tokens cannot be used: "
        "choose 64 to 24,576 tokens (the default is 4,096)."
    )


@pytest.mark.parametrize(
    ("photos", "videos", "said"),
    [
        (3, 0, "3 photos"), (1, 0, "1 photo"), (3, 2, "3 photos and 2 videos"), (0, 1, "1 video"),
        (0, 0, "0 photos"),
    ],  # fmt: skip
)
def test_tag_counts_photos_and_videos(photos: int, videos: int, said: str) -> None:
    assert media_count(photos, videos) == said


def test_the_gguf_context_grows_to_hold_a_clip_unless_the_context_was_chosen() -> None:
    photo = EngineConfig(engine="gguf", model="m.gguf", image_tokens=1024)
    assert clip_context(photo, 4096).context_tokens == context_size(4096) > context_size(1024)
    assert clip_context(photo, 512).context_tokens is None  # the photo's context holds it already
    chosen = photo.model_copy(update={"context_tokens": 2048})
    assert clip_context(chosen, 4096).context_tokens == 2048
    video = EngineConfig(engine="transformers", model="folder", image_tokens=1024)
    assert clip_context(video, 4096) == video  # sizes nothing by the image budget


def test_a_clip_that_does_not_fit_an_explicit_context_says_so(tiny_gguf: tuple[Path, Path]) -> None:
    model, mmproj = tiny_gguf
    config = EngineConfig(
        engine="gguf", model=str(model), image_tokens=16, context_tokens=512, options={"mmproj": str(mmproj)}
    )
    pictures = [Image.new("RGB", (512, 512), (level, 90, 30)) for level in (0, 80, 160)]  # 256 tokens each
    frames = tuple(PreparedImage(picture, source="clip.mp4") for picture in pictures)
    clip = PreparedClip(frames=frames, times=(0.5, 1.5, 2.5), duration=3.0, source="clip.mp4")
    request = build_request(replace(tasks.get_task("caption"), video_prompt="Describe the clip."), clip)
    engine = GGUFBackend(config)
    engine.load()
    try:
        with pytest.raises(ResourceExhaustedError) as raised:
            list(engine.generate(request))
    finally:
        engine.unload()
    message = str(raised.value)
    assert message.startswith("The 3 video frames (768 tokens) and prompt")
    assert "512-token context" in message and "--video-tokens" in message and "--context" in message


def test_tag_a_folder_of_photos_and_clips_counts_each(
    tmp_path: Path, tiny_gguf: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A keywords task with a video prompt of the test's own; the ocr task takes no videos.
    presets = tasks.all_tasks()
    monkeypatch.setitem(presets, "keywords", replace(presets["keywords"], video_prompt=VIDEO_PROMPT))
    monkeypatch.setitem(presets, "ocr", replace(presets["ocr"], video_prompt=None))
    root = tmp_path / "Library"
    make_library(root)
    flags = [*gguf_flags(tiny_gguf), "--video-tokens", "64", "--no-retry"]
    assert cli_main(["tag", str(root), "--task", "ocr", *flags]) == 0
    said = capsys.readouterr().err.splitlines()
    assert "captioneer: 3 videos skipped: the 'ocr' task takes no videos" in said
    assert "captioneer: run 1: 1 photo to tag" in said
    assert cli_main(["tag", str(root), *flags]) == 0
    said = capsys.readouterr().err.splitlines()
    assert "captioneer: run 2: 1 photo and 3 videos to tag" in said
    finished = "captioneer: run 2 finished: 4 tagged (1 photo and 3 videos), 0 failed"
    assert any(line.startswith(finished) for line in said)
    with open_catalog() as catalog:
        assert get_run(catalog, 2).spec.video_tokens == 64  # the clip budget is the run's, kept for a resume
