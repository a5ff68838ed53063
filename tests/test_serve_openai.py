"""`captioneer serve`'s OpenAI-compatible chat completions, asked by the official `openai` client (whole and
streamed), by raw HTTP (the SSE framing), and by Captioneer's own openai engine captioning through it."""

from __future__ import annotations

import base64
import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from captioneer.backends.base import EngineConfig
from captioneer.backends.registry import engine_class
from captioneer.backends.request import GenerationRequest, SamplingOptions
from captioneer.desktop.cli import main
from captioneer.desktop.core.images import prepare_image
from captioneer.desktop.core.settings import Settings
from captioneer.desktop.server.service import Service
from tests.test_serve import LONG, PATIENCE, LiveServer, ask, error_of, in_background, jpeg, serving, wait_for

SHORT_SCHEMA = {
    "type": "object",
    "properties": {"caption": {"type": "string", "maxLength": 24}},
    "required": ["caption"],
    "additionalProperties": False,
}


@pytest.fixture
def serve(tiny_gguf: tuple[Path, Path]) -> Iterator[Callable[..., LiveServer]]:
    yield from serving(tiny_gguf)


def data_url(image: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(image).decode()


def messages(text: str = "Describe the photo.", image: bytes | None = None) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "You describe photos."},
        {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": data_url(image or jpeg())}},
            {"type": "text", "text": text},
        ]},
    ]


def client(live: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0, timeout=PATIENCE)


def test_the_openai_client_whole_and_streamed(serve: Callable[..., LiveServer]) -> None:
    live = serve()
    api = client(live)
    assert [model.id for model in api.models.list()] == ["model.gguf"]
    whole = api.chat.completions.create(model="model.gguf", messages=messages(), max_tokens=12, temperature=0)
    assert whole.object == "chat.completion" and whole.model == "model.gguf"
    (choice,) = whole.choices
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason == "length"  # the tiny model never ends by itself
    stream = api.chat.completions.create(
        model="model.gguf", messages=messages(), max_tokens=12, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [chunk.choices[0].delta.content for chunk in chunks if chunk.choices[0].delta.content]
    assert len(pieces) >= 3
    assert [chunk.choices[0].finish_reason for chunk in chunks][-1] == "length"
    assert {chunk.id for chunk in chunks} == {chunks[0].id}
    # Streamed or not, greedy gives the same answer (the whole one is trimmed of outer spaces).
    assert "".join(pieces).strip() == choice.message.content
    assert live.health()["served"] == 2


def test_the_stream_is_server_sent_events_ending_done(serve: Callable[..., LiveServer]) -> None:
    live = serve()
    body = {"messages": messages(), "max_tokens": 5, "stream": True}
    with httpx.stream("POST", f"{live.url}/v1/chat/completions", json=body, timeout=PATIENCE) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    for event in events[:-2]:
        assert event.startswith("data: ")
        assert json.loads(event.removeprefix("data: "))["object"] == "chat.completion.chunk"


def test_response_format_json_schema_constrains_the_answer(serve: Callable[..., LiveServer]) -> None:
    live = serve()
    answer = client(live).chat.completions.create(
        model="model.gguf", messages=messages("Caption it as JSON."), max_tokens=120, temperature=0,
        response_format={"type": "json_schema",
                         "json_schema": {"name": "answer", "schema": SHORT_SCHEMA, "strict": True}},
    )
    assert answer.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(answer.choices[0].message.content), SHORT_SCHEMA)


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}]},
         400, "never fetches images from the network"),
        ({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,@@@"}}]}]},
         400, "not valid base64"),
        ({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": data_url(b"GIF89a broken")}}]}]},
         400, "The image cannot be used"),
        ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
         400, "no earlier assistant turns"),
        ({"messages": []}, 400, "messages"),
        ({"messages": [{"role": "user", "content": "hi"}], "logprobs": True}, 400, "logprobs"),
        ({"messages": [{"role": "user", "content": "hi"}], "temperature": 7}, 400, "temperature"),
        ({"messages": [{"role": "user", "content": "hi"}], "model": "gpt-4o"}, 404,
         "serves model.gguf only (see GET /v1/models), not gpt-4o"),
    ],
)
def test_bad_chat_requests(serve: Callable[..., LiveServer], body: dict[str, Any], status: int,
                           says: str) -> None:
    live = serve()
    response = httpx.post(f"{live.url}/v1/chat/completions", json={**body, "max_tokens": 4}, timeout=PATIENCE)
    assert response.status_code == status, response.text
    assert says in error_of(response)["message"]
    assert live.health()["served"] == 0


def test_the_openai_client_shows_the_servers_message(serve: Callable[..., LiveServer]) -> None:
    live = serve()
    image = {"type": "image_url", "image_url": {"url": "http://lan/x.jpg"}}
    remote = [{"role": "user", "content": [image]}]
    with pytest.raises(openai.BadRequestError, match="never fetches images from the network"):
        client(live).chat.completions.create(model="model.gguf", messages=remote)


def test_closing_a_stream_cancels_its_generation(serve: Callable[..., LiveServer]) -> None:
    live = serve()
    body = {"messages": messages(), "max_tokens": LONG, "stream": True}
    with httpx.stream("POST", f"{live.url}/v1/chat/completions", json=body, timeout=PATIENCE) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
    health = wait_for(lambda: (h := live.health())["cancelled"] == 1 and h, "the stream's request to stop")
    assert (health["in_flight"], health["served"], health["failed"]) == (0, 0, 0)
    follow = httpx.post(f"{live.url}/v1/chat/completions", json={"messages": messages(), "max_tokens": 4},
                        timeout=PATIENCE)
    assert follow.status_code == 200


def test_captioneers_own_openai_engine_captions_through_serve(
    serve: Callable[..., LiveServer], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live = serve()
    photo = tmp_path / "harbour.jpg"
    photo.write_bytes(jpeg((640, 480), (20, 90, 160)))
    through = ["--engine", "openai", "--base-url", f"{live.url}/v1", "--model", "model.gguf",
               "--image-tokens", "64", "--temperature", "0"]
    assert main(["caption", str(photo), "--json", "--max-tokens", "10", *through]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["ok"] and record["engine"] == "openai" and record["text"]
    assert main(["caption", str(photo), "--json", "--task", "keywords", *through]) == 0
    keywords = json.loads(capsys.readouterr().out)
    assert keywords["ok"], keywords
    assert isinstance(keywords["keywords"], list) and isinstance(keywords["caption"], str)
    assert live.health()["served"] >= 2


def test_several_in_flight_through_an_openai_engine(serve: Callable[..., LiveServer]) -> None:
    """`serve --engine openai --in-flight 2` in front of another serve: two requests are answered at once
    (the one behind queues them), a third has no room (queue 0) and gets 429."""
    behind = serve(max_queue=4)
    config = EngineConfig(engine="openai", model="model.gguf", image_tokens=64,
                          options={"base_urls": (f"{behind.url}/v1",), "parallel": 2})
    backend = engine_class("openai")(config)
    backend.load()
    front = LiveServer(Service(backend, config, Settings(temperature=0.0), in_flight=2, max_queue=0))
    try:
        first, first_outcome = in_background(lambda: ask(front, jpeg(), max_tokens=300))
        second, second_outcome = in_background(lambda: ask(front, jpeg(), max_tokens=300))
        health = wait_for(lambda: (h := front.health())["in_flight"] == 2 and h, "two requests in flight")
        assert health["engine"] == "openai" and health["waiting"] == 0
        assert ask(front, jpeg(), max_tokens=4).status_code == 429
        behind_health = behind.health()
        assert behind_health["in_flight"] + behind_health["waiting"] + behind_health["served"] >= 1
        first.join(PATIENCE)
        second.join(PATIENCE)
        for outcome in (first_outcome, second_outcome):
            assert outcome[0].status_code == 200, outcome[0].text
            assert outcome[0].json()["engine"] == "openai"
        assert (front.health()["served"], behind.health()["served"]) == (2, 2)
    finally:
        front.stop()
        backend.unload()


def test_an_engine_host_killed_mid_stream_ends_it_with_an_error_event(
    serve: Callable[..., LiveServer],
) -> None:
    live = serve()
    victim = live.service.backend.info().details["host_pid"]
    body = {"messages": messages(), "max_tokens": LONG, "stream": True}
    with httpx.stream("POST", f"{live.url}/v1/chat/completions", json=body, timeout=PATIENCE) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
        os.kill(victim, signal.SIGKILL)
        events = [line.removeprefix("data: ") for line in lines if line]
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["type"] == "engine_crashed" and "killed by SIGKILL" in error["message"]
    with pytest.raises(openai.APIError, match="killed by SIGKILL"):
        # The official client raises the same error event as an APIError (here on a fresh stream, after
        # another kill).
        stream = client(live).chat.completions.create(model="model.gguf", messages=messages(),
                                                      max_tokens=LONG, stream=True)
        for index, _chunk in enumerate(stream):
            if index == 1:
                os.kill(live.service.backend.info().details["host_pid"], signal.SIGKILL)
    # That photo crashed the engine twice: the engine host refuses it from now on (503 saying so), and
    # serves every other photo.
    refused = httpx.post(f"{live.url}/v1/chat/completions", json={"messages": messages(), "max_tokens": 4},
                         timeout=PATIENCE)
    assert refused.status_code == 503
    assert "it crashed the gguf engine 2 times" in error_of(refused)["message"]
    other = messages(image=jpeg((320, 240), (200, 40, 40)))
    again = httpx.post(f"{live.url}/v1/chat/completions", json={"messages": other, "max_tokens": 4},
                       timeout=PATIENCE)
    assert again.status_code == 200
    health = live.health()
    assert (health["failed"], health["served"]) == (3, 1)



def test_captioneers_openai_engine_with_parallel_requests_waits_in_the_queue(
    serve: Callable[..., LiveServer],
) -> None:
    """Two photos at once from Captioneer's openai engine (``--parallel 2``) into a server that answers one
    at a time: the second waits in the queue instead of being turned away, and both are answered."""
    live = serve(max_queue=1)
    config = EngineConfig(engine="openai", model="model.gguf", image_tokens=64,
                          options={"base_urls": (f"{live.url}/v1",), "parallel": 2})
    backend = engine_class("openai")(config)
    backend.load()
    try:
        requests = [
            GenerationRequest("Describe it.", (prepare_image(jpeg((320, 240), colour), 64),),
                              options=SamplingOptions(max_new_tokens=200, temperature=0))
            for colour in ((200, 30, 30), (30, 200, 30))
        ]
        answers = backend.generate_batch(requests)
    finally:
        backend.unload()
    assert all(isinstance(answer, str) and answer for answer in answers), answers
    health = live.health()
    assert (health["served"], health["rejected"], health["failed"]) == (2, 0, 0)
