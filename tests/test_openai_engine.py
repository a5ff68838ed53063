"""The openai engine against a real OpenAI-compatible server on loopback (llama-cpp-python's server on the
tiny Qwen3-VL GGUF, vision included) and, for failures it cannot produce on demand, a protocol stand-in."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image

from captioneer.backends import http_util
from captioneer.backends.base import EngineConfig
from captioneer.backends.cancel import CancelToken
from captioneer.backends.errors import (
    Cancelled,
    ConfigurationError,
    EngineUnavailableError,
    GenerationError,
    ModelNotFoundError,
)
from captioneer.backends.http_util import privacy_warning
from captioneer.backends.openai_engine import (
    OpenAIBackend,
    completion_arguments,
    normalize_base_url,
    response_format,
)
from captioneer.backends.registry import create_backend
from captioneer.backends.request import GenerationRequest, SamplingOptions
from captioneer.backends.server_pool import BREAKER_FAILURES, NoServerLeftError, ServerPool
from captioneer.desktop.core.captioning import generate_answer
from captioneer.desktop.core.images import PixelBudget, prepare_image
from captioneer.desktop.core.tasks import build_request, get_task
from tests.fakes.openai_server import FakeOpenAI

REAL_MODEL = "tiny-qwen3vl"
KEYWORDS_JSON = json.dumps({"caption": "A red square.", "keywords": ["red", "square"]})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class LlamaServer:
    url: str
    log: Path


@pytest.fixture(scope="module")
def llama_server(
    tiny_gguf: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    """llama-cpp-python's OpenAI-compatible server on 127.0.0.1, serving the tiny Qwen3-VL with its mmproj
    through the mtmd chat handler (which uses the GGUF's own chat template)."""
    model, mmproj = tiny_gguf
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model), "--clip_model_path", str(mmproj), "--chat_format", "mtmd",
        "--model_alias", REAL_MODEL, "--n_ctx", "2048", "--n_threads", "1",
        "--host", "127.0.0.1", "--port", str(port), "--verbose", "false",
    ]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {log_path.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server did not start within 60 s")
            time.sleep(0.2)
        yield LlamaServer(url, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def stand_in() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    Image.new("RGB", (320, 240), (30, 160, 60)).save(path)
    return path


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_util, "RETRY_DELAYS", (0.01, 0.02, 0.04))


def backend_for(*urls: str, model: str = "qwen3-vl-2b", **options: object) -> OpenAIBackend:
    return OpenAIBackend(EngineConfig(engine="openai", model=model, options={"base_urls": urls, **options}))


def small_request(photo: Path, **kwargs: object) -> GenerationRequest:
    image = prepare_image(photo, PixelBudget(max_tokens=64))
    kwargs.setdefault("options", SamplingOptions(max_new_tokens=8, temperature=0.0))
    return GenerationRequest(prompt="Describe this image.", images=(image,), **kwargs)


# Pure decisions


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("127.0.0.1:8080", "http://127.0.0.1:8080/v1"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/v1"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/v1"),
        ("http://127.0.0.1:8080/v1/", "http://127.0.0.1:8080/v1"),
        ("https://gpu.lan/openai/v1", "https://gpu.lan/openai/v1"),
    ],
)
def test_normalize_base_url(given: str, expected: str) -> None:
    assert normalize_base_url(given) == expected


def test_response_format_styles() -> None:
    schema = {"type": "object"}
    assert response_format(schema, "json_schema") == {
        "type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}
    }
    assert response_format(schema, "json_object") == {"type": "json_object", "schema": schema}
    assert response_format(schema, "none") is None


def test_completion_arguments(photo: Path) -> None:
    request = small_request(
        photo, system="Be brief.", json_schema={"type": "object"},
        options=SamplingOptions(max_new_tokens=33, temperature=0.1, top_k=7, seed=3),
    )
    arguments = completion_arguments("m", request, "json_schema")
    assert arguments["max_tokens"] == 33 and arguments["seed"] == 3 and arguments["stream"] is True
    assert arguments["extra_body"]["top_k"] == 7
    assert arguments["messages"][0] == {"role": "system", "content": "Be brief."}
    image_part, text_part = arguments["messages"][1]["content"]
    assert image_part["image_url"]["url"] == request.images[0].data_url()
    assert text_part == {"type": "text", "text": "Describe this image."}
    assert arguments["response_format"]["type"] == "json_schema"
    assert "response_format" not in completion_arguments("m", request, "none")


def test_pool_round_robin_takes_failed_servers_out_and_back() -> None:
    now = [100.0]
    pool = ServerPool(["a", "b", "c"], cool_down=30, clock=lambda: now[0])
    cancel = CancelToken()

    def pick() -> str:
        server = pool.acquire({}, cancel)
        pool.release(server, "success")
        return server.url

    assert [pick() for _ in range(4)] == ["a", "b", "c", "a"]
    pool.trip(pool.servers[1], "refused")
    assert [pick() for _ in range(4)] == ["c", "a", "c", "a"]
    now[0] += 31
    assert [pick() for _ in range(3)] == ["b", "c", "a"], "after its cool-down b gets a trial, then its turns"


def test_pool_needs_a_server() -> None:
    with pytest.raises(ConfigurationError, match="--base-url"):
        ServerPool([])


def test_remote_servers_are_named_in_the_privacy_warning() -> None:
    config = EngineConfig(engine="openai", model="m", options={"base_urls": ("http://127.0.0.1:8080", "http://10.1.2.3:8000/v1")})
    warning = privacy_warning(OpenAIBackend.destinations(config), config.allow_remote)
    assert warning is not None and "http://10.1.2.3:8000/v1" in warning and "127.0.0.1" not in warning


def test_load_warns_before_sending_photos_to_another_machine(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_network(self: OpenAIBackend, server: object) -> tuple[str, ...]:  # never reach a remote machine
        raise EngineUnavailableError("stopped before the network")

    monkeypatch.setattr(OpenAIBackend, "_list_models", no_network)
    with caplog.at_level(logging.WARNING), pytest.raises(EngineUnavailableError):
        backend_for("http://10.1.2.3:8000").load()
    assert "Your photos will be sent to http://10.1.2.3:8000/v1" in caplog.text


# The real server


def test_real_server_streams_a_caption_of_an_image(llama_server: LlamaServer, photo: Path) -> None:
    config = EngineConfig(engine="openai", model=REAL_MODEL, options={"base_urls": (llama_server.url,)})
    backend = create_backend(config)
    assert isinstance(backend, OpenAIBackend)
    backend.load()
    images_before = llama_server.log.read_text(errors="replace").count("image decoded")
    chunks = list(backend.generate(small_request(photo)))
    assert len(chunks) >= 2 and "".join(chunks)
    assert backend.info().details["servers"][0]["state"] == "ok"
    log = llama_server.log.read_text(errors="replace")
    assert log.count("image decoded") == images_before + 1, "the server's vision encoder saw the image"


def test_real_server_structured_answer_uses_the_format_it_supports(
    llama_server: LlamaServer, photo: Path
) -> None:
    backend = backend_for(llama_server.url, model=REAL_MODEL)
    backend.load()
    task = get_task("keywords")
    image = prepare_image(photo, PixelBudget(max_tokens=64))
    request = build_request(task, [image], sampling=SamplingOptions(max_new_tokens=200, temperature=0.0))
    answer = generate_answer(backend, request)
    # llama-cpp-python's server rejects OpenAI's json_schema and constrains with json_object + schema instead.
    assert backend.info().details["servers"][0]["response_format"] == "json_object"
    assert isinstance(answer.data, dict) and answer.data["keywords"]


def test_real_server_without_the_model_lists_what_it_serves(llama_server: str) -> None:
    with pytest.raises(ModelNotFoundError, match=f"it serves: {REAL_MODEL}"):
        backend_for(llama_server.url, model="qwen3-vl-8b").load()


def test_round_robin_skips_a_dead_server_and_retries_it_later(
    llama_server: LlamaServer, photo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dead_port = free_port()
    dead = f"http://127.0.0.1:{dead_port}/v1"
    backend = backend_for(llama_server.url, dead, model=REAL_MODEL, retry_down_after=1.0)
    with caplog.at_level(logging.WARNING):
        backend.load()
    assert "Nothing answers at " + dead in caplog.text
    states = {server["url"]: server["state"] for server in backend.info().details["servers"]}
    assert states[llama_server.url] == "ok" and states[dead].startswith("skipped until ")
    for _ in range(3):
        assert "".join(backend.generate(small_request(photo)))
    with FakeOpenAI(models=[REAL_MODEL], responder=lambda body: "back again", port=dead_port) as revived:
        time.sleep(1.1)
        answers = ["".join(backend.generate(small_request(photo))) for _ in range(2)]
        assert "back again" in answers, "the server that came back is used again"
        assert len(revived.chats()) == 1


def test_round_robin_spreads_requests_over_live_servers(llama_server: LlamaServer, photo: Path) -> None:
    with FakeOpenAI(models=[REAL_MODEL], responder=lambda body: "from the stand-in") as other:
        backend = backend_for(llama_server.url, other.url, model=REAL_MODEL)
        answers = ["".join(backend.generate(small_request(photo))) for _ in range(4)]
    assert answers.count("from the stand-in") == 2
    assert len(other.chats()) == 2


def test_a_batch_is_answered_concurrently_across_servers(photo: Path) -> None:
    def echo(name: str):
        return lambda body: f"{name} saw {body['messages'][0]['content']}"

    with (
        FakeOpenAI(responder=echo("first"), piece_delay=0.1) as first,
        FakeOpenAI(responder=echo("second"), piece_delay=0.1) as second,
    ):
        backend = backend_for(first.url, second.url)
        assert backend.capabilities.batching
        requests = [small_request(photo, system=f"photo-{index}") for index in range(4)]
        answers = backend.generate_batch(requests)
    assert [answer.split(" saw ")[1] for answer in answers] == [f"photo-{index}" for index in range(4)]
    assert [len(first.chats()), len(second.chats())] == [2, 2]
    overlaps = [
        a_start < b_end and b_start < a_end
        for a_start, a_end in first.windows
        for b_start, b_end in second.windows
    ]
    assert any(overlaps), "both servers were working at the same time"


def test_bad_parallel_option_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="parallel"):
        backend_for("127.0.0.1:8080", parallel=0)


def test_cli_captions_through_the_real_server(llama_server: LlamaServer, photo: Path) -> None:
    done = subprocess.run(
        [
            sys.executable, "-m", "captioneer.desktop.cli", "caption", str(photo),
            "--engine", "openai", "--base-url", llama_server.url, "--model", REAL_MODEL,
            "--image-tokens", "64", "--max-tokens", "8",
        ],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


# Failures, from the stand-in


def test_sends_images_as_data_urls_and_the_schema(stand_in: FakeOpenAI, photo: Path) -> None:
    stand_in.responder = lambda body: KEYWORDS_JSON
    request = small_request(photo, json_schema={"type": "object", "required": ["caption"]})
    answer = generate_answer(backend_for(stand_in.url), request)
    assert answer.data == json.loads(KEYWORDS_JSON)
    body = stand_in.chats()[-1]
    assert body["messages"][-1]["content"][0]["image_url"]["url"] == request.images[0].data_url()
    assert body["response_format"]["json_schema"]["schema"] == {"type": "object", "required": ["caption"]}
    assert body["top_k"] == 20 and body["max_tokens"] == 8


def test_server_without_response_format_still_gets_validated_json(stand_in: FakeOpenAI, photo: Path) -> None:
    stand_in.reject_response_format = True
    stand_in.responder = lambda body: KEYWORDS_JSON
    backend = backend_for(stand_in.url)
    answer = generate_answer(backend, small_request(photo, json_schema={"type": "object"}))
    assert answer.data is not None
    styles = [body.get("response_format", {}).get("type") for body in stand_in.chats()]
    assert styles == ["json_schema", "json_object", None]
    generate_answer(backend, small_request(photo, json_schema={"type": "object"}))
    assert "response_format" not in stand_in.chats()[-1], "the server's limits are remembered"


def test_nothing_listening_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(EngineUnavailableError, match="Nothing answers at " + url) as caught:
        backend_for(url).load()
    assert caught.value.exit_code == 2


def test_every_server_down_is_one_clear_error() -> None:
    urls = [f"http://127.0.0.1:{free_port()}/v1" for _ in range(2)]
    with pytest.raises(EngineUnavailableError, match="None of the servers answers"):
        backend_for(*urls).load()


def test_wrong_api_key_is_a_configuration_error(stand_in: FakeOpenAI, photo: Path) -> None:
    stand_in.api_key = "sk-right"
    with pytest.raises(ConfigurationError, match="--api-key"):
        backend_for(stand_in.url, api_key="sk-wrong").load()
    assert "".join(backend_for(stand_in.url, api_key="sk-right").generate(small_request(photo)))


def test_busy_server_is_retried_with_backoff(stand_in: FakeOpenAI, photo: Path) -> None:
    backend = backend_for(stand_in.url)
    backend.load()
    stand_in.failures += [(503, "Service Unavailable"), (429, "Too Many Requests")]
    assert "".join(backend.generate(small_request(photo))) == "A red square."
    assert len(stand_in.chats()) == 3


def test_busy_server_gives_up_after_bounded_retries(stand_in: FakeOpenAI, photo: Path) -> None:
    backend = backend_for(stand_in.url)
    backend.load()
    stand_in.failures += [(503, "Service Unavailable")] * 10
    with pytest.raises(NoServerLeftError, match="HTTP 503"):
        list(backend.generate(small_request(photo)))
    # The breaker opens after BREAKER_FAILURES busy answers; one more try, then it gives up.
    assert len(stand_in.chats()) == BREAKER_FAILURES + 1


def test_error_event_inside_a_200_stream_is_a_failure(stand_in: FakeOpenAI, photo: Path) -> None:
    stand_in.responder = lambda body: "one two three four"
    stand_in.stream_error = (2, "llama_decode returned -3")
    streamed: list[str] = []
    with pytest.raises(GenerationError, match="llama_decode returned -3"):
        generate_answer(backend_for(stand_in.url), small_request(photo), on_chunk=streamed.append)
    assert streamed == ["one ", "two "]


def test_stream_without_finish_reason_is_a_failure(stand_in: FakeOpenAI, photo: Path) -> None:
    stand_in.responder = lambda body: "one two three four"
    stand_in.drop_stream_after = 2
    with pytest.raises(GenerationError, match="without finishing"):
        list(backend_for(stand_in.url).generate(small_request(photo)))


def test_a_server_without_the_openai_api_is_named(stand_in: FakeOpenAI) -> None:
    with pytest.raises(EngineUnavailableError, match="not with the OpenAI API .* ends with /v1"):
        backend_for(stand_in.url.removesuffix("/v1") + "/api").load()


def test_a_server_that_lacks_the_model_leaves_the_rotation(stand_in: FakeOpenAI, photo: Path) -> None:
    with FakeOpenAI(models=["other-model"]) as late:
        backend = backend_for(stand_in.url, late.url)
        backend.load()  # the late server is excluded at load: it lists only other-model
        assert [server["state"] for server in backend.info().details["servers"]] == [
            "ok", "does not serve qwen3-vl-2b"
        ]
        backend.pool.servers[1].excluded = None  # as if it had been down at load time
        answers = ["".join(backend.generate(small_request(photo))) for _ in range(3)]
    assert answers == ["A red square."] * 3
    assert backend.pool.servers[1].excluded == "does not serve qwen3-vl-2b"
    assert len(late.chats()) == 1


def test_unknown_model_on_the_stand_in_is_not_found(stand_in: FakeOpenAI) -> None:
    with pytest.raises(ModelNotFoundError, match="it serves: qwen3-vl-2b"):
        backend_for(stand_in.url, model="gpt-4o").load()


def test_cancel_returns_promptly_from_a_hung_server(stand_in: FakeOpenAI, photo: Path) -> None:
    stand_in.hang_chat = True
    cancel = CancelToken()
    threading.Timer(0.3, cancel.cancel).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        list(backend_for(stand_in.url).generate(small_request(photo), cancel))
    assert time.monotonic() - started < 2


def test_hung_server_hits_the_request_deadline(stand_in: FakeOpenAI, photo: Path) -> None:
    stand_in.hang_chat = True
    backend = backend_for(stand_in.url, request_timeout=0.4)
    with pytest.raises(NoServerLeftError, match=r"within 0.4 s \(request timeout\)"):
        list(backend.generate(small_request(photo)))


def test_cli_with_nothing_listening_prints_one_line_and_exits_2(photo: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    done = subprocess.run(
        [sys.executable, "-m", "captioneer.desktop.cli", "caption", str(photo), "--engine", "openai",
         "--base-url", url, "--model", "m"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"captioneer: Nothing answers at {url} — start the server (llama-server, LM Studio, vLLM…) "
        "or check --base-url."
    ]
