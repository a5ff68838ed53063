"""The ollama engine against a stand-in Ollama server on loopback (tests/fakes/ollama_server.py)."""

from __future__ import annotations

import base64
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

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
    ResourceExhaustedError,
)
from captioneer.backends.http_util import is_loopback_url, privacy_warning
from captioneer.backends.ollama_engine import OllamaBackend, instruct_tag_for, keep_alive_value
from captioneer.backends.ollama_server import (
    ModelWithoutVisionError,
    is_cloud_tag,
    normalize_tag,
    pull_model,
    resolve_host,
)
from captioneer.backends.registry import create_backend
from captioneer.backends.request import GenerationRequest, SamplingOptions
from captioneer.backends.server_pool import BREAKER_FAILURES, NoServerLeftError
from captioneer.desktop.core.captioning import caption_file, generate_answer
from captioneer.desktop.core.images import PixelBudget, prepare_image
from captioneer.desktop.core.tasks import get_task
from tests.fakes.ollama_server import FakeModel, FakeOllama, ScriptedFailure

TAG = "qwen3-vl:2b-instruct"
KEYWORDS_JSON = json.dumps({"caption": "A red square.", "title": "Red square", "keywords": ["red", "square"]})


@pytest.fixture
def ollama() -> FakeOllama:
    with FakeOllama() as server:
        yield server


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (640, 480), (200, 30, 30)).save(path, quality=90)
    return path


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_util, "RETRY_DELAYS", (0.01, 0.02, 0.04))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def backend_for(server: FakeOllama, **settings: object) -> OllamaBackend:
    """The engine on ``server``: ``settings`` are EngineConfig fields or the engine's options."""
    shared = {key: value for key, value in settings.items() if key in EngineConfig.model_fields}
    options = {key: value for key, value in settings.items() if key not in shared}
    options = {"host": server.url, **options}
    return OllamaBackend(EngineConfig(**{"engine": "ollama", "model": TAG, **shared, "options": options}))


def request_for(photo: Path, **kwargs: object) -> GenerationRequest:
    image = prepare_image(photo, PixelBudget(max_tokens=256))
    return GenerationRequest(prompt="Describe this image.", images=(image,), **kwargs)


# Pure decisions


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, "http://127.0.0.1:11434"),
        ("", "http://127.0.0.1:11434"),
        ("localhost", "http://localhost:11434"),
        ("10.0.0.5:8000", "http://10.0.0.5:8000"),
        (":9999", "http://127.0.0.1:9999"),
        ("http://127.0.0.1:11434/", "http://127.0.0.1:11434"),
        ("https://ollama.example.org", "https://ollama.example.org"),
        ("[::1]", "http://[::1]:11434"),
        ("[::1]:1234", "http://[::1]:1234"),
        ("gpu-box/ollama", "http://gpu-box:11434/ollama"),
    ],
)
def test_resolve_host(given: str | None, expected: str) -> None:
    assert resolve_host(given) == expected


def test_resolve_host_reads_ollama_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "0.0.0.0:7777")
    assert resolve_host(None) == "http://0.0.0.0:7777"
    assert resolve_host("http://127.0.0.1:1") == "http://127.0.0.1:1"


@pytest.mark.parametrize(
    ("tag", "full", "cloud", "instruct"),
    [
        ("qwen3-vl", "qwen3-vl:latest", False, None),
        ("qwen3-vl:2b", "qwen3-vl:2b", False, "qwen3-vl:2b-instruct"),
        ("qwen3-vl:8b", "qwen3-vl:8b", False, "qwen3-vl:8b-instruct"),
        ("qwen3-vl:2b-instruct", "qwen3-vl:2b-instruct", False, None),
        ("qwen3-vl:235b-cloud", "qwen3-vl:235b-cloud", True, None),
        ("gpt-oss:cloud", "gpt-oss:cloud", True, None),
        ("registry.local:5000/qwen3-vl", "registry.local:5000/qwen3-vl:latest", False, None),
    ],
)
def test_tag_rules(tag: str, full: str, cloud: bool, instruct: str | None) -> None:
    assert normalize_tag(tag) == full
    assert is_cloud_tag(tag) is cloud
    assert instruct_tag_for(tag) == instruct


@pytest.mark.parametrize(
    ("image_tokens", "override", "expected"),
    [(1024, None, 4096), (256, None, 4096), (4096, None, 6144), (3000, None, 5120), (1024, 8192, 8192)],
)
def test_context_fits_the_image_budget(image_tokens: int, override: int | None, expected: int) -> None:
    assert OllamaBackend.context_tokens(image_tokens, override) == expected
    config = EngineConfig(engine="ollama", model=TAG, image_tokens=image_tokens, context_tokens=override)
    assert OllamaBackend(config).num_ctx == expected


@pytest.mark.parametrize(
    ("given", "expected"), [(None, None), ("", None), ("10m", "10m"), ("-1", -1), ("300", 300), ("1.5", 1.5)]
)
def test_keep_alive_value(given: str | None, expected: object) -> None:
    assert keep_alive_value(given) == expected


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:11434", True),
        ("http://127.8.0.1", True),
        ("http://localhost:8080/v1", True),
        ("http://[::1]:8080", True),
        ("http://0.0.0.0:11434", True),
        ("http://192.168.1.20:11434", False),
        ("https://ollama.com", False),
        ("http://gpu-box.lan:8000/v1", False),
    ],
)
def test_loopback_detection(url: str, local: bool) -> None:
    assert is_loopback_url(url) is local


def test_privacy_warning_names_the_remote_host() -> None:
    remote = EngineConfig(engine="ollama", model=TAG, options={"host": "192.168.1.20"})
    warning = privacy_warning(OllamaBackend.destinations(remote), remote.allow_remote)
    assert warning is not None and "http://192.168.1.20:11434" in warning and "--allow-remote" in warning
    assert privacy_warning(OllamaBackend.destinations(remote), allow_remote=True) is None
    local = EngineConfig(engine="ollama", model=TAG, options={"host": "127.0.0.1:11434"})
    assert privacy_warning(OllamaBackend.destinations(local), local.allow_remote) is None


def test_load_warns_before_sending_photos_to_another_machine(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    contacted: list[str] = []

    def no_network(host: str) -> str:  # the test must not reach a real remote machine
        contacted.append(host)
        raise EngineUnavailableError("stopped before the network")

    monkeypatch.setattr("captioneer.backends.ollama_engine.server_version", no_network)
    with caplog.at_level(logging.WARNING), pytest.raises(EngineUnavailableError):
        OllamaBackend(EngineConfig(engine="ollama", model=TAG, options={"host": "192.168.1.20"})).load()
    assert "Your photos will be sent to http://192.168.1.20:11434" in caplog.text
    assert contacted == ["http://192.168.1.20:11434"]
    caplog.clear()
    with caplog.at_level(logging.WARNING), pytest.raises(EngineUnavailableError):
        OllamaBackend(EngineConfig(engine="ollama", model=TAG, allow_remote=True,
            options={"host": "192.168.1.20"})).load()
    assert "photos will be sent" not in caplog.text


# Loading: health check and model checks


def test_load_checks_version_tags_and_capabilities(ollama: FakeOllama) -> None:
    backend = backend_for(ollama)
    steps: list[tuple[float, str]] = []
    backend.load(progress=lambda fraction, message: steps.append((fraction, message)))
    paths = [request.path for request in ollama.requests]
    assert paths == ["/api/version", "/api/tags", "/api/show"]
    assert ollama.bodies("/api/show")[0]["model"] == TAG
    assert steps[-1][0] == 1.0
    info = backend.info()
    assert info.loaded and info.details["ollama_version"] == "0.12.10"
    assert "vision" in info.details["capabilities"]
    backend.load()
    assert len(ollama.requests) == 3, "load is idempotent"


def test_nothing_listening_names_the_host() -> None:
    host = f"http://127.0.0.1:{free_port()}"
    backend = OllamaBackend(EngineConfig(engine="ollama", model=TAG, options={"host": host}))
    with pytest.raises(EngineUnavailableError, match="Ollama is not running at " + host) as caught:
        backend.load()
    assert caught.value.exit_code == 2
    assert "ollama serve" in str(caught.value)


def test_something_else_on_the_port_is_not_ollama(ollama: FakeOllama) -> None:
    ollama.failures.append(ScriptedFailure("/api/version", 404, "nope"))
    with pytest.raises(EngineUnavailableError, match="not Ollama"):
        backend_for(ollama).load()


def test_model_not_installed_says_how_to_pull(ollama: FakeOllama) -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        backend_for(ollama, model="qwen3-vl:8b-instruct").load()
    message = str(caught.value)
    assert "not installed" in message and "captioneer models pull qwen3-vl:8b-instruct" in message
    assert caught.value.exit_code == 2


def test_untagged_name_means_latest(ollama: FakeOllama) -> None:
    ollama.models.append(FakeModel("qwen3-vl:latest"))
    backend_for(ollama, model="qwen3-vl").load()


def test_model_without_vision_is_refused(ollama: FakeOllama) -> None:
    ollama.models.append(FakeModel("qwen3:4b", capabilities=("completion", "tools", "thinking")))
    with pytest.raises(ModelWithoutVisionError, match="cannot see images"):
        backend_for(ollama, model="qwen3:4b").load()


def test_ollama_too_old_for_capabilities_is_told_to_update(ollama: FakeOllama) -> None:
    ollama.version = "0.5.7"
    ollama.models = [FakeModel(TAG, capabilities=None)]
    with pytest.raises(ConfigurationError, match="Ollama 0.5.7 .* too old for Qwen3-VL"):
        backend_for(ollama).load()


def test_a_proxy_without_ollamas_api_is_not_ollama(ollama: FakeOllama) -> None:
    ollama.failures.append(ScriptedFailure("/api/tags", 404, "404 page not found"))
    with pytest.raises(EngineUnavailableError, match="not Ollama"):
        backend_for(ollama).load()


def test_cloud_models_need_opt_in(ollama: FakeOllama) -> None:
    ollama.models.append(FakeModel("qwen3-vl:235b-cloud"))
    with pytest.raises(ConfigurationError, match="cloud model"):
        backend_for(ollama, model="qwen3-vl:235b-cloud").load()
    assert ollama.requests == [], "refused before contacting the server"
    backend_for(ollama, model="qwen3-vl:235b-cloud", allow_cloud=True).load()


def test_plain_thinking_tag_gets_a_hint(ollama: FakeOllama, caplog: pytest.LogCaptureFixture) -> None:
    ollama.models.append(FakeModel("qwen3-vl:2b", capabilities=("completion", "vision", "thinking")))
    with caplog.at_level(logging.WARNING):
        backend_for(ollama, model="qwen3-vl:2b").load()
    assert "qwen3-vl:2b-instruct" in caplog.text


# Generation: what is sent, what comes back


def test_streams_and_sends_images_options_and_no_thinking(ollama: FakeOllama, photo: Path) -> None:
    ollama.responder = lambda body: "A red square on a white background, seen from the front."
    backend = backend_for(ollama, keep_alive="10m", image_tokens=256)
    request = request_for(
        photo, system="Be brief.", options=SamplingOptions(max_new_tokens=77, temperature=0.0, seed=5)
    )
    chunks = list(backend.generate(request))
    assert len(chunks) > 3, "the answer arrives in pieces"
    assert "".join(chunks) == "A red square on a white background, seen from the front."
    body = ollama.last_chat()
    assert body["model"] == TAG and body["stream"] is True and body["think"] is False
    assert body["keep_alive"] == "10m"
    assert "format" not in body
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    user = body["messages"][1]
    assert user["role"] == "user" and user["content"] == "Describe this image."
    expected_png = base64.b64encode(request.images[0].png_bytes).decode()
    assert user["images"] == [expected_png]
    options = body["options"]
    assert options["num_predict"] == 77 and options["num_ctx"] == 4096
    assert options["temperature"] == 0.0 and options["seed"] == 5 and options["top_k"] == 20


def test_structured_task_sends_the_schema_and_is_validated(ollama: FakeOllama, photo: Path) -> None:
    ollama.responder = lambda body: KEYWORDS_JSON
    backend = backend_for(ollama)
    backend.load()
    task = get_task("keywords")
    result = caption_file(backend, photo, task)
    assert result.ok, result.error
    assert result.data == json.loads(KEYWORDS_JSON)
    body = ollama.last_chat()
    assert body["format"]["required"] == ["caption", "keywords"]
    assert body["options"]["num_predict"] == task.max_tokens


def test_invalid_structured_answer_is_retried_then_reported(ollama: FakeOllama, photo: Path) -> None:
    ollama.responder = lambda body: "Sure! Here are keywords: red, square"
    result = caption_file(backend_for(ollama), photo, get_task("keywords"))
    assert not result.ok and result.error_kind == "invalid-output"
    assert len(ollama.bodies("/api/chat")) == 2


def test_error_line_inside_a_200_stream_is_a_failure(ollama: FakeOllama, photo: Path) -> None:
    ollama.responder = lambda body: "one two three four five six seven eight"
    ollama.stream_error = (2, "an error was encountered while running the model: unexpected EOF")
    streamed: list[str] = []
    with pytest.raises(GenerationError, match="unexpected EOF"):
        generate_answer(backend_for(ollama), request_for(photo), on_chunk=streamed.append)
    assert streamed == ["one two ", "three four "], "pieces before the error were streamed, nothing returned"


def test_out_of_memory_in_stream_is_resource_exhaustion(ollama: FakeOllama, photo: Path) -> None:
    ollama.stream_error = (0, "model requires more system memory (7.1 GiB) than is available (3.2 GiB)")
    with pytest.raises(ResourceExhaustedError, match="more system memory"):
        list(backend_for(ollama).generate(request_for(photo)))


def test_stream_ending_without_done_is_a_failure(ollama: FakeOllama, photo: Path) -> None:
    ollama.responder = lambda body: "one two three four five six"
    ollama.drop_stream_after = 1
    with pytest.raises(GenerationError, match="without finishing"):
        list(backend_for(ollama).generate(request_for(photo)))


def test_busy_server_is_retried_with_backoff(ollama: FakeOllama, photo: Path) -> None:
    backend = backend_for(ollama)
    backend.load()
    ollama.failures.append(ScriptedFailure("/api/chat", 503, "server busy, please try again", times=2))
    assert "".join(backend.generate(request_for(photo))) == "A red square on a white background."
    assert len(ollama.bodies("/api/chat")) == 3


def test_busy_server_gives_up_after_bounded_retries(ollama: FakeOllama, photo: Path) -> None:
    backend = backend_for(ollama)
    backend.load()
    ollama.failures.append(ScriptedFailure("/api/chat", 429, "too many requests", times=100))
    with pytest.raises(NoServerLeftError, match="HTTP 429"):
        list(backend.generate(request_for(photo)))
    # The breaker opens after BREAKER_FAILURES busy answers; one more try, then it gives up.
    assert len(ollama.bodies("/api/chat")) == BREAKER_FAILURES + 1


def test_ollama_stopped_after_load_is_not_running(photo: Path) -> None:
    server = FakeOllama().start()
    backend = backend_for(server)
    backend.load()
    server.stop()
    with pytest.raises(EngineUnavailableError, match="Ollama is not running at " + backend.host):
        list(backend.generate(request_for(photo)))


def test_model_removed_after_load_is_not_found(ollama: FakeOllama, photo: Path) -> None:
    backend = backend_for(ollama)
    backend.load()
    ollama.models.clear()
    with pytest.raises(ModelNotFoundError, match="ollama pull qwen3-vl:2b-instruct"):
        list(backend.generate(request_for(photo)))


def test_request_larger_than_the_context_is_refused_before_sending(ollama: FakeOllama, photo: Path) -> None:
    backend = backend_for(ollama, context_tokens=512)
    backend.load()
    with pytest.raises(ResourceExhaustedError, match="context"):
        list(backend.generate(request_for(photo, options=SamplingOptions(max_new_tokens=400))))
    assert ollama.bodies("/api/chat") == []


def test_hung_server_hits_the_request_deadline(ollama: FakeOllama, photo: Path) -> None:
    backend = backend_for(ollama, request_timeout=0.5)
    backend.load()
    ollama.hang.add("/api/chat")
    started = time.monotonic()
    with pytest.raises(NoServerLeftError, match=r"within 0.5 s \(request timeout\)"):
        list(backend.generate(request_for(photo)))
    assert time.monotonic() - started < 3


def test_cancel_returns_promptly_from_a_hung_server(ollama: FakeOllama, photo: Path) -> None:
    backend = backend_for(ollama)
    backend.load()
    ollama.hang.add("/api/chat")
    cancel = CancelToken()
    threading.Timer(0.3, cancel.cancel).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        list(backend.generate(request_for(photo), cancel))
    assert time.monotonic() - started < 2


def test_bad_request_timeout_option_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="request_timeout"):
        OllamaBackend(EngineConfig(engine="ollama", model=TAG, options={"request_timeout": "soon"}))


def test_registry_builds_the_ollama_engine(ollama: FakeOllama) -> None:
    backend = create_backend(EngineConfig(engine="ollama", model=TAG, options={"host": ollama.url}))
    assert isinstance(backend, OllamaBackend)


# Pulling models


def test_pull_reports_aggregated_progress(ollama: FakeOllama) -> None:
    ollama.pull_library["qwen3-vl:4b-instruct"] = [3_000_000, 1_000, 500_000]
    steps: list[tuple[float, str]] = []
    pull_model(ollama.url, "qwen3-vl:4b-instruct", lambda fraction, text: steps.append((fraction, text)))
    fractions = [fraction for fraction, _ in steps]
    assert fractions[-1] == 1.0
    assert any(0.0 < fraction < 1.0 for fraction in fractions)
    assert "Pulling qwen3-vl:4b-instruct" in steps[-2][1] and "3.5 MB of 3.5 MB" in steps[-2][1]
    assert ollama.bodies("/api/pull")[0]["model"] == "qwen3-vl:4b-instruct"
    backend_for(ollama, model="qwen3-vl:4b-instruct").load()


def test_pull_of_an_unknown_tag_is_not_found(ollama: FakeOllama) -> None:
    with pytest.raises(ModelNotFoundError, match="no model called qwen3-vl:99b"):
        pull_model(ollama.url, "qwen3-vl:99b")


def test_pull_can_be_cancelled(ollama: FakeOllama) -> None:
    ollama.pull_library["qwen3-vl:8b-instruct"] = [6_000_000, 6_000_000]
    ollama.pull_delay = 0.2
    cancel = CancelToken()
    seen: list[float] = []

    def progress(fraction: float, message: str) -> None:
        seen.append(fraction)
        if fraction > 0:
            cancel.cancel()

    with pytest.raises(Cancelled):
        pull_model(ollama.url, "qwen3-vl:8b-instruct", progress, cancel)
    assert max(seen) < 1.0
    assert all(model.name != "qwen3-vl:8b-instruct" for model in ollama.models)


def test_pull_refuses_cloud_tags_without_opt_in(ollama: FakeOllama) -> None:
    with pytest.raises(ConfigurationError, match="cloud"):
        pull_model(ollama.url, "qwen3-vl:235b-cloud")


def test_pull_with_nothing_listening() -> None:
    with pytest.raises(EngineUnavailableError, match="not running"):
        pull_model(f"127.0.0.1:{free_port()}", TAG)


# The command line, end to end


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "captioneer.desktop.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_streams_a_caption(ollama: FakeOllama, photo: Path) -> None:
    done = run_cli("caption", str(photo), "--engine", "ollama", "--model", TAG, "--host", ollama.url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "A red square on a white background."
    assert ollama.last_chat()["messages"][-1]["images"]


def test_cli_keywords_returns_validated_json(ollama: FakeOllama, photo: Path) -> None:
    ollama.responder = lambda body: KEYWORDS_JSON
    done = run_cli(
        "caption", str(photo), "--task", "keywords", "--json",
        "--engine", "ollama", "--model", TAG, "--host", ollama.url,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] and result["keywords"] == ["red", "square"] and result["engine"] == "ollama"
    assert "format" in ollama.last_chat()


def test_cli_with_nothing_listening_prints_one_line_and_exits_2(photo: Path) -> None:
    host = f"http://127.0.0.1:{free_port()}"
    done = run_cli("caption", str(photo), "--engine", "ollama", "--model", TAG, "--host", host)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("captioneer: Ollama is not running at " + host)
    assert done.stdout == ""
