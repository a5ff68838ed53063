"""The openai engine against what vLLM (and SGLang, llama-server, LM Studio) do on their own: enlarge small
images, lower ``max_tokens`` to what the context leaves, think unless told not to. Checked on the loopback
stand-in speaking the OpenAI protocol with vLLM's behaviours (``tests/fakes/openai_server.py``); the real
vLLM run is ``bench/vllm_integration.py``."""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from captioneer.backends.base import EngineConfig
from captioneer.backends.errors import ConfigurationError, GenerationError
from captioneer.backends.openai_engine import (
    MIN_IMAGE_TOKENS,
    OpenAIBackend,
    completion_arguments,
    context_advice,
    trimmed_answer,
)
from captioneer.backends.request import GenerationRequest, SamplingOptions
from captioneer.desktop.core.captioning import caption_file
from captioneer.desktop.core.images import PixelBudget, engine_budget, prepare_image
from captioneer.desktop.core.tasks import get_task
from tests.fakes.openai_server import FakeOpenAI

REPO = Path(__file__).resolve().parents[1]
KEYWORDS_JSON = json.dumps({"caption": "A red square.", "keywords": ["red", "square"]})
SERVER_MIN_PIXELS = 64 * 32 * 32
"""Qwen3-VL's released preprocessor_config.json: ``size.shortest_edge`` 65,536 (``longest_edge`` below)."""
SERVER_MAX_PIXELS = 16384 * 32 * 32


def server_resize(width: int, height: int) -> tuple[int, int]:
    """What the server's Qwen3-VL image processor does to an image (transformers' and vLLM's smart resize,
    factor 32): sides rounded to multiples of 32, the area brought inside [min_pixels, max_pixels]."""
    factor = 32
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > SERVER_MAX_PIXELS:
        beta = math.sqrt(height * width / SERVER_MAX_PIXELS)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < SERVER_MIN_PIXELS:
        beta = math.sqrt(SERVER_MIN_PIXELS / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return w, h


@pytest.fixture
def stand_in() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    Image.new("RGB", (320, 240), (30, 160, 60)).save(path)
    return path


def backend_for(url: str, model: str = "qwen3-vl-2b", image_tokens: int = 64) -> OpenAIBackend:
    config = EngineConfig(engine="openai", model=model, image_tokens=image_tokens,
        options={"base_urls": (url,)})
    return OpenAIBackend(config)


def request_for(photo: Path, budget: int = 64, max_new_tokens: int = 8) -> GenerationRequest:
    image = prepare_image(photo, engine_budget(budget, OpenAIBackend.capabilities))
    options = SamplingOptions(max_new_tokens=max_new_tokens, temperature=0.0)
    return GenerationRequest(prompt="Describe this image.", images=(image,), options=options)


def sent_image_size(body: dict) -> tuple[int, int]:
    url = body["messages"][-1]["content"][0]["image_url"]["url"]
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as image:
        return image.size


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]


# Image sizing: what is counted is what the server processes.


@pytest.mark.parametrize(
    ("size", "low", "high"),
    [
        ((320, 240), 64, 64),
        ((3000, 2000), 64, 64),
        ((3000, 2000), 64, 80),
        ((100, 4000), 64, 70),
        ((150, 100), 64, 64),  # grown to the minimum, where rounding up used to overshoot the budget
        ((300, 100), 4, 4),
        ((20_000, 40), 64, 1024),
    ],
)
def test_a_budget_always_lands_inside_its_token_range(size: tuple[int, int], low: int, high: int) -> None:
    width, height = PixelBudget(max_tokens=high, min_tokens=low).fit(*size)
    assert width % 32 == 0 and height % 32 == 0
    assert low <= (width // 32) * (height // 32) <= high


@pytest.mark.parametrize("size", [(320, 240), (4000, 3000), (1920, 1080), (1080, 1920), (640, 200), (50, 50)])
@pytest.mark.parametrize("budget", [64, 100, 256, 1024])
def test_images_for_a_server_are_ones_its_processor_keeps_as_they_are(
    tmp_path: Path, size: tuple[int, int], budget: int
) -> None:
    path = tmp_path / "photo.png"
    Image.new("RGB", size, (200, 40, 40)).save(path)
    image = prepare_image(path, engine_budget(budget, OpenAIBackend.capabilities))
    assert server_resize(image.width, image.height) == (image.width, image.height), "the server would resize"
    assert MIN_IMAGE_TOKENS <= image.tokens <= budget


def test_a_budget_below_the_models_minimum_is_refused_with_the_flag_to_change() -> None:
    with pytest.raises(ConfigurationError, match=r"below the 64 tokens .*--image-tokens 64 or more"):
        backend_for("http://127.0.0.1:9/v1", image_tokens=32)
    backend_for("http://127.0.0.1:9/v1", image_tokens=64)


def test_cli_refuses_a_budget_below_the_minimum_in_one_line(stand_in: FakeOpenAI, photo: Path) -> None:
    done = subprocess.run(
        [
            sys.executable, "-m", "captioneer.desktop.cli", "caption", str(photo), "--engine", "openai",
            "--base-url", stand_in.url, "--model", "qwen3-vl-2b", "--image-tokens", "32",
        ],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert done.returncode == 2
    assert "--image-tokens 64 or more" in done.stderr and "Traceback" not in done.stderr
    assert stand_in.chats() == [], "nothing is sent"


def test_request_keeps_the_image_size_and_turns_thinking_off(photo: Path) -> None:
    request = request_for(photo)
    arguments = completion_arguments("m", request, "json_schema")
    width, height = request.images[0].width, request.images[0].height
    assert arguments["extra_body"]["mm_processor_kwargs"] == {
        "min_pixels": width * height, "max_pixels": width * height
    }
    assert arguments["extra_body"]["chat_template_kwargs"] == {"enable_thinking": False}
    assert arguments["stream_options"] == {"include_usage": True}
    without = completion_arguments("m", request, "json_schema", limits=False)
    assert "mm_processor_kwargs" not in without["extra_body"]
    text_only = GenerationRequest(prompt="Hi.")
    assert "mm_processor_kwargs" not in completion_arguments("m", text_only, "none")["extra_body"]


def test_caption_reports_the_tokens_the_server_processes(stand_in: FakeOpenAI, photo: Path) -> None:
    """A 4:3 photo at a 64-token budget used to go out as 288×192 (54 tokens), which vLLM enlarged to
    320×224 (70 tokens) while 54 was reported."""
    result = caption_file(backend_for(stand_in.url), photo, get_task("caption"), image_tokens=64)
    assert result.ok, result.error
    body = stand_in.chats()[-1]
    width, height = sent_image_size(body)
    assert server_resize(width, height) == (width, height)
    assert result.image_tokens == (width // 32) * (height // 32) == 64
    assert body["mm_processor_kwargs"] == {"min_pixels": width * height, "max_pixels": width * height}


def test_a_server_that_refuses_per_request_limits_gets_the_images_as_they_are(
    stand_in: FakeOpenAI, photo: Path
) -> None:
    stand_in.refuse_processor_limits = True
    backend = backend_for(stand_in.url)
    assert "".join(backend.generate(request_for(photo))) == "A red square."
    assert "".join(backend.generate(request_for(photo))) == "A red square."
    sent = ["mm_processor_kwargs" in body for body in stand_in.chats()]
    assert sent == [True, False, False], "asked once, then remembered"


def test_tag_run_records_the_tokens_the_server_processes(
    tmp_path: Path, captioneer_home: Path, stand_in: FakeOpenAI
) -> None:
    stand_in.responder = lambda body: KEYWORDS_JSON
    root = tmp_path / "Photos"
    root.mkdir()
    for index, size in enumerate([(320, 240), (640, 200), (200, 900)]):
        Image.new("RGB", size, (40 * index, 90, 200)).save(root / f"photo{index}.jpg")
    done = subprocess.run(
        [
            sys.executable, "-m", "captioneer.desktop.cli", "tag", str(root), "--engine", "openai",
            "--base-url", stand_in.url, "--model", "qwen3-vl-2b", "--image-tokens", "64",
        ],
        env={**os.environ, "CAPTIONEER_HOME": str(captioneer_home)},
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    db = sqlite3.connect(captioneer_home / "data" / "catalog.sqlite")
    try:
        recorded = sorted(row[0] for row in db.execute("SELECT image_tokens FROM results"))
    finally:
        db.close()
    sent = {(width // 32) * (height // 32) for width, height in map(sent_image_size, stand_in.chats())}
    assert len(recorded) == 3 and set(recorded) == sent
    assert all(MIN_IMAGE_TOKENS <= tokens <= 64 for tokens in recorded)
    for width, height in map(sent_image_size, stand_in.chats()):
        assert server_resize(width, height) == (width, height)


# max_tokens quietly lowered by the server


def usage(prompt: int, completion: int) -> SimpleNamespace:
    return SimpleNamespace(prompt_tokens=prompt, completion_tokens=completion)


@pytest.mark.parametrize(
    ("asked", "finish", "counts", "context", "expected"),
    [
        (512, "length", usage(1900, 148), 2048, "--max-model-len 2412 or more"),
        (512, "length", usage(1900, 148), None, "cut the answer off at 148 of the 512 tokens"),
        (512, "length", usage(100, 512), 2048, None),  # the asked limit itself: not the server's doing
        (512, "stop", usage(1900, 148), 2048, None),  # finished on its own
        (512, "length", None, 2048, None),  # no usage: nothing to tell from
    ],
)
def test_trimmed_answer_table(
    asked: int, finish: str, counts: SimpleNamespace | None, context: int | None, expected: str | None
) -> None:
    message = trimmed_answer("http://gpu:8000/v1", asked, finish, counts, context)
    if expected is None:
        assert message is None
    else:
        assert message is not None and expected in message and "http://gpu:8000/v1" in message
        assert "\n" not in message


def test_an_answer_cut_short_by_the_servers_context_says_so(stand_in: FakeOpenAI, photo: Path) -> None:
    stand_in.max_model_len, stand_in.prompt_tokens = 105, 100
    stand_in.responder = lambda body: " ".join(f"word{index}" for index in range(20))
    backend = backend_for(stand_in.url)
    with pytest.raises(GenerationError) as caught:
        "".join(backend.generate(request_for(photo, max_new_tokens=16)))
    message = str(caught.value)
    assert "cut the answer off at 5 of the 16 tokens" in message
    assert "105-token context" in message and "--max-model-len 116 or more" in message


def test_an_answer_with_room_is_not_flagged(stand_in: FakeOpenAI, photo: Path) -> None:
    stand_in.max_model_len, stand_in.prompt_tokens = 4096, 100
    assert "".join(backend_for(stand_in.url).generate(request_for(photo))) == "A red square."


def test_a_context_too_small_for_the_budget_is_named_at_load(
    stand_in: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    stand_in.max_model_len = 1024
    with caplog.at_level(logging.WARNING):
        backend_for(stand_in.url, image_tokens=1024).load()
    lines = warnings_of(caplog)
    assert any("--max-model-len 2324 or more" in line and stand_in.url in line for line in lines)
    assert context_advice(stand_in.url, "m", 4096, 1024) is None
    assert context_advice(stand_in.url, "m", None, 1024) is None


# Thinking


def test_thinking_is_switched_off_and_a_server_that_honours_it_is_quiet(
    stand_in: FakeOpenAI, photo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stand_in.thinking = "Let me look at the colours first."
    with caplog.at_level(logging.WARNING):
        answer = "".join(backend_for(stand_in.url).generate(request_for(photo)))
    assert answer == "A red square."
    assert stand_in.chats()[-1]["chat_template_kwargs"] == {"enable_thinking": False}
    assert not [line for line in warnings_of(caplog) if "thinking" in line]


def test_a_server_that_thinks_anyway_is_named_once(
    stand_in: FakeOpenAI, photo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stand_in.thinking, stand_in.thinking_switch = "Let me look at the colours first.", False
    backend = backend_for(stand_in.url)
    with caplog.at_level(logging.WARNING):
        answers = ["".join(backend.generate(request_for(photo))) for _ in range(2)]
    assert answers == ["A red square.", "A red square."], "reasoning is never part of the answer"
    thinking = [line for line in warnings_of(caplog) if "thinking model" in line]
    assert len(thinking) == 1 and stand_in.url in thinking[0] and "Instruct" in thinking[0]


def test_think_tags_left_in_the_text_are_noticed(
    stand_in: FakeOpenAI, photo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stand_in.responder = lambda body: "Colours first. </think> A red square."
    with caplog.at_level(logging.WARNING):
        "".join(backend_for(stand_in.url).generate(request_for(photo)))
    assert [line for line in warnings_of(caplog) if "thinking model" in line]


def test_a_thinking_model_is_named_at_load(stand_in: FakeOpenAI, caplog: pytest.LogCaptureFixture) -> None:
    stand_in.models = ["Qwen3-VL-2B-Thinking"]
    with caplog.at_level(logging.WARNING):
        backend_for(stand_in.url, model="Qwen3-VL-2B-Thinking").load()
    assert any("Thinking model" in line and "Instruct" in line for line in warnings_of(caplog))
