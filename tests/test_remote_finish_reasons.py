"""The Ollama and OpenAI-compatible engines say why an answer ended, and a cut-off answer is told apart from
an invalid one: against the loopback stand-ins of tests/fakes (``done_reason`` / ``finish_reason``) and the
real llama-cpp-python server with the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from captioneer.backends.base import EngineConfig, collect
from captioneer.backends.errors import TruncatedOutputError
from captioneer.backends.ollama_engine import OllamaBackend
from captioneer.backends.openai_engine import OpenAIBackend
from captioneer.backends.request import GenerationRequest, SamplingOptions
from captioneer.desktop.core.captioning import caption_file, generate_answer
from captioneer.desktop.core.images import PixelBudget, prepare_image
from captioneer.desktop.core.tasks import build_request, get_task
from tests.fakes.ollama_server import FakeOllama
from tests.fakes.openai_server import FakeOpenAI
from tests.test_openai_engine import REAL_MODEL
from tests.test_openai_engine import llama_server as llama_server  # the real server, a fixture

COMPLETE = '{"caption": "A red square.", "keywords": ["red", "square"]}'
TAG = "qwen3-vl:2b-instruct"


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    Image.new("RGB", (128, 96), (200, 30, 30)).save(path)
    return path


def keywords_request(photo: Path, max_new_tokens: int = 64) -> GenerationRequest:
    image = prepare_image(photo, PixelBudget(max_tokens=64))
    return build_request(
        get_task("keywords"), [image], sampling=SamplingOptions(max_new_tokens=max_new_tokens)
    )


def ollama(server: FakeOllama) -> OllamaBackend:
    return OllamaBackend(EngineConfig(engine="ollama", model=TAG, options={"host": server.url}))


def openai(server: FakeOpenAI) -> OpenAIBackend:
    return OpenAIBackend(EngineConfig(engine="openai", model="qwen3-vl-2b",
        options={"base_urls": (server.url,)}))


@pytest.mark.parametrize("reason", ["stop", "length"])
def test_ollama_relays_the_done_reason(photo: Path, reason: str) -> None:
    with FakeOllama(responder=lambda body: COMPLETE, done_reason=reason) as server:
        answer = collect(ollama(server).generate(keywords_request(photo)))
    assert answer == COMPLETE and answer.finish_reason == reason


@pytest.mark.parametrize("reason", ["stop", "length"])
def test_openai_relays_the_finish_reason(photo: Path, reason: str) -> None:
    with FakeOpenAI(responder=lambda body: COMPLETE, finish_reason=reason) as server:
        backend = openai(server)
        answer = collect(backend.generate(keywords_request(photo)))
        assert answer == COMPLETE and answer.finish_reason == reason
        [batched, other] = backend.generate_batch([keywords_request(photo), keywords_request(photo)])
        assert batched == COMPLETE and batched.finish_reason == other.finish_reason == reason


@pytest.mark.parametrize("serve", ["ollama", "openai"])
def test_a_cut_off_answer_is_not_taken_as_valid_even_when_it_parses(photo: Path, serve: str) -> None:
    """The server says it stopped at the limit: the JSON that happens to parse is not trusted."""
    if serve == "ollama":
        server, make = FakeOllama(responder=lambda body: COMPLETE, done_reason="length"), ollama
    else:
        server, make = FakeOpenAI(responder=lambda body: COMPLETE, finish_reason="length"), openai
    with server, pytest.raises(TruncatedOutputError) as info:
        generate_answer(make(server), keywords_request(photo, max_new_tokens=50))
    assert str(info.value) == (
        "Cut-off output after 2 attempts: The answer was cut off at 50 tokens; raise the maximum answer "
        "length (--max-tokens)."
    )
    assert info.value.window_text.endswith("length (“Max answer length” in Settings).")
    assert info.value.attempts == 2 and info.value.raw == COMPLETE


def test_a_cut_off_caption_from_ollama_is_kept_with_a_warning(photo: Path) -> None:
    with FakeOllama(responder=lambda body: "A red square on a", done_reason="length") as server:
        result = caption_file(ollama(server), photo, get_task("caption"), image_tokens=64)
    assert result.ok and result.text == "A red square on a"
    assert result.warning is not None and "cut off at 96 tokens" in result.warning


def test_the_real_llama_cpp_server_reports_a_cut_off_answer(
    llama_server,
    photo: Path,
) -> None:
    backend = OpenAIBackend(EngineConfig(engine="openai", model=REAL_MODEL,
        options={"base_urls": (llama_server.url,)}))
    image = prepare_image(photo, PixelBudget(max_tokens=64))
    cut = GenerationRequest(
        "Describe this image.", (image,), options=SamplingOptions(max_new_tokens=5, temperature=0.0)
    )
    assert collect(backend.generate(cut)).finish_reason == "length"
    schema = {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}}
    ends = GenerationRequest(
        "JSON.", (image,), json_schema=schema, options=SamplingOptions(max_new_tokens=64, temperature=0.0)
    )
    answer = collect(backend.generate(ends))
    assert answer.finish_reason == "stop" and json.loads(answer) in ({"ok": True}, {"ok": False})


def test_a_cut_off_keywords_answer_names_the_flag_on_the_command_line_and_the_setting_in_the_window(
    photo: Path,
) -> None:
    """The failed result keeps the message with its setting unrendered: the CLI's JSON and the quick window's
    card each show their own words for it."""
    from captioneer.desktop.ui.quick_caption import display_text

    with FakeOllama(responder=lambda body: COMPLETE, done_reason="length") as server:
        result = caption_file(ollama(server), photo, get_task("keywords"), image_tokens=64)
    assert not result.ok
    assert result.to_json()["error"].endswith("raise the maximum answer length (--max-tokens).")
    shown = display_text(result)
    assert shown.endswith("(“Max answer length” in Settings).") and "--" not in shown
