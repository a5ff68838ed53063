"""Tasks for video clips: each video prompt renders and talks about a clip, the scenes task is video-only
and its answer (times checked against the clip) becomes timed caption lines; the tiny gguf model answers the
scenes schema under its grammar."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

import captioneer.desktop.core.tasks as tasks_module
from captioneer.backends.base import EngineConfig, collect
from captioneer.backends.errors import ConfigurationError, InvalidOutputError
from captioneer.backends.host import open_backend
from captioneer.backends.request import GenerationRequest, PreparedImage, SamplingOptions
from captioneer.backends.structured import parse_structured
from captioneer.desktop.cli import main
from captioneer.desktop.core.answering import Answer
from captioneer.desktop.core.scenes import (
    MAX_SCENES,
    Scene,
    clean_scenes,
    format_time,
    parse_time,
    scene_lines,
)
from captioneer.desktop.core.tasks import (
    ResultFields,
    TaskOptions,
    all_tasks,
    build_request,
    get_task,
    render_prompt,
    task_schema,
)
from tests.test_ui_library_shell import library  # noqa: F401  (the fixture)

VIDEO_TASKS = {"caption", "description", "alt_text", "keywords", "question", "social", "scenes"}


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0.0),
        (7, 7.0),
        (7.5, 7.5),
        ("7", 7.0),
        ("7.5s", 7.5),
        ("12 s", 12.0),
        ("0:07", 7.0),
        ("1:05", 65.0),
        ("12:30", 750.0),
        ("1:02:03", 3723.0),
        ("0:07.5", 7.5),
        (" 0:07 ", 7.0),
        ("0:75", None),  # 75 seconds is no clock time
        ("1:60:00", None),
        ("seven", None),
        ("", None),
        (True, None),
        (None, None),
        (float("nan"), None),
        (float("inf"), None),
        ([7], None),
    ],
)
def test_parse_time(value: object, seconds: float | None) -> None:
    assert parse_time(value) == seconds


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0:00"),
        (7.9, "0:07"),
        (59.99, "0:59"),
        (60, "1:00"),
        (754, "12:34"),
        (3599, "59:59"),
        (3600, "1:00:00"),
        (3723, "1:02:03"),
        (-3, "0:00"),
    ],
)
def test_format_time(seconds: float, text: str) -> None:
    assert format_time(seconds) == text


def scene(start: object, description: object = "A dog runs.") -> dict[str, object]:
    return {"start": start, "description": description}


@pytest.mark.parametrize(
    ("items", "duration", "expected"),
    [
        ([scene(0), scene("0:04", "It jumps.")], 10.0, [(0.0, "A dog runs."), (4.0, "It jumps.")]),
        # Out of order: sorted by start, equal starts keep the model's order.
        ([scene(5, "B"), scene(1, "A"), scene(5, "C")], 10.0, [(1.0, "A"), (5.0, "B"), (5.0, "C")]),
        # Before the clip: its start. Just past the end (rounding): the end. Far past: invented, dropped.
        ([scene(-2, "A"), scene(10.6, "B"), scene(11.5, "C"), scene("1:00", "D")], 10.0,
         [(0.0, "A"), (10.0, "B")]),
        # Unknown duration: nothing is dropped for its time.
        ([scene(300, "A")], None, [(300.0, "A")]),
        # Unreadable start, empty or missing description, not an object: dropped.
        ([scene("soon"), scene(1, "  "), scene(2, None), {"start": 3}, "0:04 text", scene(5, "Kept.")],
         10.0, [(5.0, "Kept.")]),
        # A description is one line.
        ([scene(0, "A dog\nruns\tfast. ")], 10.0, [(0.0, "A dog runs fast.")]),
        ([], 10.0, []),
    ],
)
def test_clean_scenes(items: list[object], duration: float | None, expected: list[tuple[float, str]]) -> None:
    assert clean_scenes(items, duration) == tuple(Scene(start, text) for start, text in expected)


def test_clean_scenes_keeps_at_most_the_first_scenes() -> None:
    items = [scene(second, f"Scene {second}.") for second in reversed(range(12))]
    kept = clean_scenes(items, 20.0)
    assert [item.start for item in kept] == [float(second) for second in range(MAX_SCENES)]


def test_scene_lines() -> None:
    lines = scene_lines([Scene(0, "A dog runs."), Scene(67.4, "It jumps.")])
    assert lines == "0:00 A dog runs.\n1:07 It jumps."
    assert scene_lines([]) == ""


def test_scenes_answer_fills_the_caption_with_timed_lines() -> None:
    task = get_task("scenes")
    data = {"scenes": [scene("0:03", "A cat sleeps."), scene(0, "A door opens."), scene(40, "Invented.")]}
    answer = Answer(text=json.dumps(data), data=data)
    assert task.fields(answer, duration=9.0) == ResultFields(caption="0:00 A door opens.\n0:03 A cat sleeps.")
    # Without the clip's length nothing is dropped for its time.
    assert task.fields(answer).caption.endswith("0:40 Invented.")
    assert task.fields(Answer(text="{}", data={"scenes": [scene("x")]})).caption == ""


def test_scenes_schema_takes_seconds_or_clock_times_and_at_most_eight_scenes() -> None:
    schema = task_schema(get_task("scenes"))
    good = {"scenes": [scene(0), scene("0:07"), scene("1:02:03"), scene(2.5)]}
    assert parse_structured(json.dumps(good), schema) == good
    for bad in ({"scenes": []}, {"scenes": [scene("soon")]}, {"scenes": [scene(1, "")]},
                {"scenes": [scene(i) for i in range(9)]}, {"scenes": [{"start": 1}]}):
        with pytest.raises(InvalidOutputError):
            parse_structured(json.dumps(bad), schema)


def test_video_prompts_render_and_speak_of_a_clip() -> None:
    tasks = all_tasks()
    assert {task.id for task in tasks.values() if task.takes_videos} == VIDEO_TASKS
    options = TaskOptions(language="German", question="What happens?", max_keywords=5, vocabulary=("dog",))
    for task in tasks.values():
        if not task.takes_videos:
            with pytest.raises(ConfigurationError, match=f"'{task.id}' task does not take videos"):
                render_prompt(task, options, video=True)
            continue
        prompt = render_prompt(task, options, video=True)
        assert "{" not in prompt and "German" in prompt, task.id
        assert "video clip" in prompt and "image" not in prompt.replace("What happens?", ""), task.id
        # A video prompt has a place for context exactly where the photo prompt has one.
        if task.takes_photos:
            assert ("{context}" in task.video_prompt) == ("{context}" in task.prompt), task.id
            assert render_prompt(task, options, video=True) != render_prompt(task, options), task.id
    keywords = render_prompt(get_task("keywords"), options, video=True)
    assert "AT MOST 5" in keywords and "Choose keywords only from this list: dog." in keywords


def test_media_of_each_task() -> None:
    media = {task.id: task.media for task in all_tasks().values()}
    assert media["caption"] == "photos and videos"
    assert media["ocr"] == media["diagram"] == media["product"] == "photos only"
    assert media["scenes"] == "videos only"
    assert get_task("scenes").choice_label == "Scene list — videos only"
    assert get_task("ocr").choice_label == "Text in the image (OCR) — photos only"
    assert get_task("caption").choice_label == "Short caption"


def test_scenes_task_refuses_photos_with_one_line() -> None:
    task = get_task("scenes")
    assert not task.takes_photos and task.takes_videos and task.structured
    with pytest.raises(ConfigurationError) as caught:
        build_request(task, [], TaskOptions())
    assert str(caught.value) == (
        "The 'scenes' task takes only videos: choose another task for photos (captioneer tasks)."
    )


def test_a_video_only_task_needs_a_video_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = {"label": "B", "summary": "B", "photos": False, "max_tokens": 10}
    monkeypatch.setattr(tasks_module, "_catalog", lambda: {"tasks": {"broken": broken}, "schemas": {}})
    all_tasks.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="task broken: photos = false needs a video_prompt"):
            all_tasks()
    finally:
        all_tasks.cache_clear()


def test_tasks_command_says_what_each_task_takes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tasks"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "(videos only)" in lines["scenes"] and "[JSON]" in lines["scenes"]
    assert "(photos and videos)" in lines["caption"]
    assert "(photos only)" in lines["ocr"]


def test_tiny_gguf_answers_the_scenes_schema(tiny_gguf: tuple[Path, Path]) -> None:
    """Under the grammar the real engine's answer satisfies the schema, whatever the tiny model says, and it
    reads as scene lines."""
    model, mmproj = tiny_gguf
    config = EngineConfig(engine="gguf", model=str(model), image_tokens=16,
                          options={"mmproj": str(mmproj), "device": "cpu", "threads": 1})
    task = get_task("scenes")
    schema = task_schema(task)
    frames = [PreparedImage(image=Image.new("RGB", (64, 64), (level, 90, 160))) for level in (20, 200)]
    request = GenerationRequest(
        prompt=render_prompt(task, TaskOptions(), video=True),
        images=tuple(frames),
        json_schema=schema,
        options=SamplingOptions(max_new_tokens=task.max_tokens, temperature=0.0),
    )
    backend = open_backend(config, in_process=True)
    backend.load()
    try:
        text = str(collect(backend.generate(request)))
    finally:
        backend.unload()
    data = parse_structured(text, schema)
    assert 1 <= len(data["scenes"]) <= MAX_SCENES
    caption = task.fields(Answer(text=text, data=data), duration=2.0).caption
    for line in caption.splitlines():
        clock, _, description = line.partition(" ")
        assert parse_time(clock) is not None and 0 <= parse_time(clock) <= 2.0 and description


@pytest.mark.qt_log_ignore(
    "OpenType support missing", "propagateSizeHints", "does not support raise", "grabbing the keyboard"
)
def test_tag_dialog_says_which_tasks_take_only_photos_or_only_videos(qtbot, library) -> None:  # noqa: F811
    from captioneer.desktop.ui.library_run_dialog_view import RunDialogView
    from tests.test_ui_library_shell import answer_modal

    window = library()
    seen: dict[str, str] = {}

    def choose(dialog: RunDialogView) -> None:
        seen.update({dialog.task.itemData(i): dialog.task.itemText(i) for i in range(dialog.task.count())})
        dialog.reject()

    answer_modal(qtbot, RunDialogView, choose)
    assert window.runs.dialog.ask() is None
    assert seen["scenes"] == "Scene list — videos only"
    assert seen["ocr"] == "Text in the image (OCR) — photos only"
    assert seen["keywords"] == "Caption + keywords"
