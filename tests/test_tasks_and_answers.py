"""Task presets, schema validation, and the validate-and-retry loop every engine goes through."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from PIL import Image

from captioneer.backends.base import (
    Backend,
    BackendInfo,
    Capabilities,
    Completion,
    EngineConfig,
    finish_reason_of,
)
from captioneer.backends.cancel import CancelToken
from captioneer.backends.errors import (
    Cancelled,
    ConfigurationError,
    InvalidOutputError,
    ResourceExhaustedError,
    TruncatedOutputError,
)
from captioneer.backends.request import GenerationRequest, PreparedImage, SamplingOptions
from captioneer.backends.structured import parse_structured
from captioneer.desktop.core.captioning import caption_file, generate_answer
from captioneer.desktop.core.tasks import (
    TaskOptions,
    all_tasks,
    build_request,
    get_task,
    render_prompt,
    task_schema,
)

REQUIRED_TASKS = {
    "caption",
    "description",
    "alt_text",
    "keywords",
    "ocr",
    "question",
    "product",
    "social",
    "diagram",
}


class ScriptedEngine(Backend):
    """A test stand-in for an engine: answers from a script, to exercise the orchestration around engines.
    A :class:`Completion` in the script ends its stream with that finish reason.

    Real engines are tested on real tiny models in their own test files.
    """

    name = "scripted"
    capabilities = Capabilities(json_schema=True)

    def __init__(self, answers: list[str | Exception]) -> None:
        super().__init__(EngineConfig(engine="scripted", model="script"))
        self.answers = list(answers)
        self.requests: list[GenerationRequest] = []

    def load(self, progress=None, cancel=None) -> None:
        pass

    def generate(self, request: GenerationRequest, cancel: CancelToken | None = None) -> Iterator[str]:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        for i in range(0, len(answer), 4):
            if cancel is not None:
                cancel.raise_if_cancelled()
            yield answer[i : i + 4]
        return finish_reason_of(answer)  # a Completion in the script says why it ended

    def unload(self) -> None:
        pass

    def info(self) -> BackendInfo:
        return BackendInfo(engine="scripted", model="script", loaded=True)


def _image() -> PreparedImage:
    return PreparedImage(image=Image.new("RGB", (64, 64), (1, 2, 3)))


def test_every_required_task_exists_and_renders() -> None:
    tasks = all_tasks()
    assert set(tasks) >= REQUIRED_TASKS
    for task in tasks.values():
        options = TaskOptions(language="German", question="What is on the table?")
        for video in (False, True):
            if not (task.takes_videos if video else task.takes_photos):
                continue
            prompt = render_prompt(task, options, video=video)
            assert "{" not in prompt, f"unfilled placeholder in {task.id}: {prompt}"
            if task.translate:
                assert "German" in prompt, f"{task.id} ignores the output language"
        assert task.max_tokens > 0


def test_structured_tasks_have_bounded_schemas() -> None:
    keywords = task_schema(get_task("keywords"), TaskOptions(max_keywords=7))
    assert keywords["required"] == ["caption", "keywords"]
    assert keywords["properties"]["keywords"]["maxItems"] == 7
    assert "title" in keywords["properties"]
    social = task_schema(get_task("social"))
    assert set(social["required"]) == {"caption", "hashtags", "alt_text"}
    assert task_schema(get_task("caption")) is None


def test_vocabulary_constrains_keywords() -> None:
    task = get_task("keywords")
    options = TaskOptions(vocabulary=("beach", "sunset", "dog", "beach"))
    schema = task_schema(task, options)
    assert schema["properties"]["keywords"]["items"]["enum"] == ["beach", "dog", "sunset"]
    assert "beach, dog, sunset" in render_prompt(task, options)


def test_question_task_needs_a_question() -> None:
    with pytest.raises(ConfigurationError, match="needs a question"):
        render_prompt(get_task("question"), TaskOptions())


def test_unknown_task_lists_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match="caption"):
        get_task("captionz")


def test_unknown_sampling_option_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="temprature"):
        SamplingOptions.from_user(temprature=0.5)
    with pytest.raises(ConfigurationError, match="max_new_tokens"):
        SamplingOptions.from_user(max_new_tokens=0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ('{"caption": "a dog"', "not valid JSON"),
        ('{"caption": "a dog", "keywords": "dog"}', "keywords"),
        ('{"keywords": ["dog"]}', "caption"),
        ('{"caption": "a dog", "keywords": []}', "keywords"),
    ],
)
def test_parse_structured_rejects_bad_answers(text: str, message: str) -> None:
    schema = task_schema(get_task("keywords"))
    with pytest.raises(InvalidOutputError, match=message):
        parse_structured(text, schema)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # an extra key at the top is dropped, the known ones kept
        (
            '{"caption": "A dog.", "keywords": ["dog"], "mood": "happy"}',
            {"caption": "A dog.", "keywords": ["dog"]},
        ),
        # several extras, of any type, before and after the known keys
        (
            '{"confidence": 0.9, "caption": "A dog.", "tags": ["x"], "keywords": ["dog"], "notes": {"a": 1}}',
            {"caption": "A dog.", "keywords": ["dog"]},
        ),
        # the optional key stays
        (
            '{"caption": "A dog.", "title": "Dog", "keywords": ["dog"], "language": "en"}',
            {"caption": "A dog.", "title": "Dog", "keywords": ["dog"]},
        ),
        # nothing extra: unchanged
        ('{"caption": "A dog.", "keywords": ["dog"]}', {"caption": "A dog.", "keywords": ["dog"]}),
    ],
)
def test_parse_structured_drops_unknown_keys(text: str, expected: dict) -> None:
    schema = task_schema(get_task("keywords"))
    assert schema["additionalProperties"] is False, "the grammar still keeps models from inventing keys"
    assert parse_structured(text, schema) == expected


def test_unknown_keys_are_dropped_in_nested_objects_too() -> None:
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "people": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"name": {"type": "string"}},
                },
            }
        },
    }
    value = parse_structured('{"people": [{"name": "Ann", "age": 4}], "extra": true}', schema)
    assert value == {"people": [{"name": "Ann"}]}


def test_json_error_messages_name_the_position_once() -> None:
    schema = task_schema(get_task("keywords"))
    with pytest.raises(InvalidOutputError) as info:
        parse_structured('{"caption": "a dog', schema)
    assert "at at" not in str(info.value)
    assert "Unterminated string starting at character 12" in str(info.value)


def test_raw_control_characters_in_strings_do_not_fail_the_answer() -> None:
    """An engine without a grammar may put a raw newline or tab inside a string; the content is still clear
    (whoever stores it removes the control characters)."""
    schema = task_schema(get_task("keywords"))
    raw = '{"caption": "A dog\non\tgrass.", "keywords": ["dog\x07"]}'
    assert "\n" in raw and "\\n" not in raw
    value = parse_structured(raw, schema)
    assert value == {"caption": "A dog\non\tgrass.", "keywords": ["dog\x07"]}


def test_a_truncated_answer_is_refused_as_cut_off_even_when_it_parses() -> None:
    schema = task_schema(get_task("keywords"))
    complete = '{"caption": "A dog.", "keywords": ["dog"]}'
    with pytest.raises(TruncatedOutputError, match="cut off at 64 tokens; raise the maximum answer length"):
        parse_structured(complete, schema, truncated_at=64)


def test_parse_structured_accepts_fenced_json() -> None:
    schema = task_schema(get_task("keywords"))
    value = parse_structured('```json\n{"caption": "A dog.", "keywords": ["dog", "grass"]}\n```', schema)
    assert value["keywords"] == ["dog", "grass"]


def test_invalid_json_is_retried_once_with_a_new_seed() -> None:
    good = '{"caption": "A dog on grass.", "keywords": ["dog", "grass"]}'
    engine = ScriptedEngine(['{"caption": "A dog', good])
    request = build_request(
        get_task("keywords"), [_image()], sampling=SamplingOptions(temperature=0.0, seed=3)
    )
    retries: list[str] = []
    answer = generate_answer(engine, request, on_retry=retries.append)
    assert answer.data == {"caption": "A dog on grass.", "keywords": ["dog", "grass"]}
    assert answer.attempts == 2
    assert len(retries) == 1 and "not valid JSON" in retries[0]
    second = engine.requests[1].options
    assert second.seed == 4 and second.temperature > 0, "a greedy retry would repeat the same mistake"


def test_invalid_twice_gives_a_clear_invalid_output_error() -> None:
    engine = ScriptedEngine(["nope", "still nope"])
    request = build_request(get_task("keywords"), [_image()])
    with pytest.raises(InvalidOutputError, match="after 2 attempts") as info:
        generate_answer(engine, request)
    assert info.value.raw == "still nope"


def test_plain_task_streams_chunks_and_strips() -> None:
    engine = ScriptedEngine(["  A red square on white.  \n"])
    chunks: list[str] = []
    answer = generate_answer(engine, build_request(get_task("caption"), [_image()]), on_chunk=chunks.append)
    assert len(chunks) > 1 and "".join(chunks) == "  A red square on white.  \n"
    assert answer.text == "A red square on white."


def test_cancel_propagates() -> None:
    engine = ScriptedEngine(["a long answer " * 10])
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        generate_answer(engine, build_request(get_task("caption"), [_image()]), cancel=cancel)


def test_caption_file_reports_bad_files_and_keeps_going(tmp_path) -> None:
    good = tmp_path / "good.png"
    Image.new("RGB", (200, 100), (0, 128, 0)).save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_text("not a photo")
    engine = ScriptedEngine(["A green rectangle."])
    task = get_task("caption")
    failed = caption_file(engine, bad, task)
    assert not failed.ok and failed.error_kind == "not-an-image" and not engine.requests
    done = caption_file(engine, good, task)
    assert done.ok and done.text == "A green rectangle." and done.image_tokens == 18
    assert done.to_json()["text"] == "A green rectangle."


def test_out_of_memory_retries_once_at_half_the_budget(tmp_path) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (1600, 1200), (0, 0, 200)).save(path)
    engine = ScriptedEngine([ResourceExhaustedError("Out of memory."), "A blue field."])
    result = caption_file(engine, path, get_task("caption"), image_tokens=1024)
    assert result.ok
    first, second = (req.image_tokens for req in engine.requests)
    assert first == 972 and second <= 512
    assert result.image_tokens == second
    again = ScriptedEngine([ResourceExhaustedError("Out of memory."), ResourceExhaustedError("Still out.")])
    failed = caption_file(again, path, get_task("caption"), image_tokens=1024)
    assert (failed.ok, failed.error_kind, failed.error) == (False, "resources", "Still out.")
    assert failed.attempts == 2
    assert len(again.requests) == 2  # once, not halving again and again


def test_a_prepared_image_is_downscaled_from_its_own_pixels() -> None:
    pixels = Image.new("RGB", (640, 480), (10, 20, 30))
    image = PreparedImage(pixels, source="a.jpg", original_size=(4000, 3000))
    smaller = image.downscaled((320, 224))
    assert (smaller.width, smaller.height, smaller.tokens) == (320, 224, 70)
    assert (smaller.source, smaller.original_size) == ("a.jpg", (4000, 3000))
    assert smaller.image.getpixel((100, 100)) == (10, 20, 30)
    with pytest.raises(ValueError, match="not smaller"):
        image.downscaled((672, 480))
    with pytest.raises(ValueError, match="multiples of 32"):
        image.downscaled((300, 200))


def test_keywords_result_json_has_caption_and_keywords(tmp_path) -> None:
    path = tmp_path / "p.png"
    Image.new("RGB", (64, 64)).save(path)
    engine = ScriptedEngine(['{"caption": "Night.", "title": "Dark", "keywords": ["night", "black"]}'])
    result = caption_file(engine, path, get_task("keywords")).to_json()
    assert result["ok"] and result["caption"] == "Night." and result["keywords"] == ["night", "black"]
    assert result["title"] == "Dark" and result["image_tokens"] == 4


def test_a_structured_answer_cut_off_at_the_limit_is_retried_then_reported_as_cut_off() -> None:
    complete = '{"caption": "A dog.", "keywords": ["dog"]}'
    engine = ScriptedEngine(
        [Completion(complete, "length"), Completion('{"caption": "A dog on gr', "length")]
    )
    request = build_request(get_task("keywords"), [_image()], sampling=SamplingOptions(max_new_tokens=40))
    with pytest.raises(TruncatedOutputError) as info:
        generate_answer(engine, request)
    message = str(info.value)
    assert message.startswith("Cut-off output after 2 attempts: The answer was cut off at 40 tokens")
    assert "raise the maximum answer length" in message and "not valid JSON" not in message
    assert info.value.attempts == 2 == len(engine.requests)


def test_an_answer_that_stopped_by_itself_is_not_cut_off() -> None:
    engine = ScriptedEngine([Completion('{"caption": "A dog.", "keywords": ["dog"]}', "stop")])
    answer = generate_answer(engine, build_request(get_task("keywords"), [_image()]))
    assert answer.data == {"caption": "A dog.", "keywords": ["dog"]} and answer.truncated_at is None


def test_a_cut_off_plain_answer_is_kept_with_a_warning(tmp_path) -> None:
    path = tmp_path / "p.png"
    Image.new("RGB", (64, 64)).save(path)
    engine = ScriptedEngine([Completion("A long and winding description of the", "length")])
    result = caption_file(engine, path, get_task("caption"), sampling=SamplingOptions(max_new_tokens=8))
    assert result.ok and result.text == "A long and winding description of the"
    assert result.warning == (
        "The answer was cut off at 8 tokens; raise the maximum answer length (--max-tokens)."
    )
    assert result.to_json()["warning"] == result.warning
    finished = caption_file(ScriptedEngine([Completion("A dog.", "stop")]), path, get_task("caption"))
    assert finished.warning is None


def test_cut_off_answers_are_told_apart_from_invalid_ones_in_results(tmp_path) -> None:
    path = tmp_path / "p.png"
    Image.new("RGB", (64, 64)).save(path)
    cut = ScriptedEngine([Completion('{"caption": "A', "length"), Completion('{"caption": "B', "length")])
    result = caption_file(cut, path, get_task("keywords"))
    assert not result.ok and result.error_kind == "truncated" and "cut off at 1024 tokens" in result.error
    broken = caption_file(ScriptedEngine(["nope", "still nope"]), path, get_task("keywords"))
    assert not broken.ok and broken.error_kind == "invalid-output" and "cut off" not in broken.error


def test_generations_spent_before_are_counted_in_attempts_and_message() -> None:
    engine = ScriptedEngine(["nope", "still nope"])
    with pytest.raises(InvalidOutputError, match="after 3 attempts") as info:
        generate_answer(engine, build_request(get_task("keywords"), [_image()]), attempts_before=1)
    assert info.value.attempts == 3


def test_a_single_attempt_is_singular() -> None:
    engine = ScriptedEngine(["nope"])
    with pytest.raises(InvalidOutputError, match="after 1 attempt: ") as info:
        generate_answer(engine, build_request(get_task("keywords"), [_image()]), retries=0)
    assert info.value.attempts == 1


def test_caption_file_counts_every_generation_it_made(tmp_path) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (1600, 1200), (0, 0, 200)).save(path)
    engine = ScriptedEngine([ResourceExhaustedError("Out of memory."), "nope", "still nope"])
    result = caption_file(engine, path, get_task("keywords"), image_tokens=1024)
    assert not result.ok and result.error_kind == "invalid-output"
    assert result.attempts == len(engine.requests) == 3
    assert "after 3 attempts" in result.error
    ok = ScriptedEngine(
        [ResourceExhaustedError("Out of memory."), '{"caption": "Blue.", "keywords": ["blue"]}']
    )
    assert caption_file(ok, path, get_task("keywords"), image_tokens=1024).attempts == 2


def test_caption_file_stores_no_control_characters(tmp_path) -> None:
    path = tmp_path / "p.png"
    Image.new("RGB", (64, 64)).save(path)
    # JSON escapes (which any grammar allows) that decode to control characters.
    answer = json.dumps(
        {
            "caption": "Night\x00 sky\nover\x1b town.",
            "title": "Dark\nsky",
            "keywords": ["night\x07", "black\tsky"],
        }
    )
    assert "\\u0000" in answer
    result = caption_file(ScriptedEngine([answer]), path, get_task("keywords"))
    assert result.ok
    assert result.data == {
        "caption": "Night sky\nover town.",
        "title": "Dark sky",
        "keywords": ["night", "black sky"],
    }
    out = result.to_json()
    assert out["caption"] == "Night sky\nover town." and out["keywords"] == ["night", "black sky"]
    plain = caption_file(ScriptedEngine(["A\x00 red\r\nsquare\x7f."]), path, get_task("description"))
    assert plain.text == "A red\nsquare."
    invalid = caption_file(ScriptedEngine(["bad\x00", "worse\x1b"]), path, get_task("keywords"))
    assert invalid.text == "worse"
