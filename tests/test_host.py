"""The engine host process with the real transformers and llama.cpp engines: same answers as in-process,
crashes, quarantine, cancel, recycling, unload.

Hosts that the production code starts with ``spawn`` (a fresh interpreter, ~4 s to import torch here) are
used where the start method matters: the shared fp32 host and the CLI. Tests that restart hosts many times
use ``forkserver`` with the engines preloaded, so a restart takes a fraction of a second; the code under
test is the same apart from how the process is created.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest
from PIL import Image, ImageDraw

from captioneer.backends.base import Completion, EngineConfig, collect
from captioneer.backends.cancel import CancelToken
from captioneer.backends.errors import (
    Cancelled,
    EngineCrashedError,
    GenerationError,
    ImageError,
    InvalidOutputError,
    ModelFileError,
    TruncatedOutputError,
)
from captioneer.backends.host import (
    HostedBackend,
    HostPolicy,
    QuarantinedImageError,
    _rebuild_error,
    describe_exit,
    open_backend,
    should_recycle,
)
from captioneer.backends.host_process import FAULT_INJECTION_KEY, _error_state
from captioneer.backends.request import GenerationRequest, PreparedImage, SamplingOptions
from captioneer.backends.transformers_engine import TransformersBackend
from captioneer.desktop.cli import main as cli_main

GREEDY = SamplingOptions(max_new_tokens=24, temperature=0.0)
LONG = SamplingOptions(max_new_tokens=4000, temperature=0.0)
PRELOAD = [
    "captioneer.backends.host", "captioneer.backends.transformers_engine", "captioneer.backends.gguf",
    "torch", "transformers",
    "transformers.models.qwen3_vl.modeling_qwen3_vl", "bitsandbytes", "llama_cpp",
]


def picture(width: int, height: int, seed: int) -> PreparedImage:
    image = Image.new("RGB", (width, height), ((seed * 70) % 256, (seed * 40) % 256, (seed * 90) % 256))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 4, height // 4, width // 2, height // 2), fill=(255 - seed * 30, 20, 200))
    return PreparedImage(image, source=f"picture-{seed}.png")


def ask(image: PreparedImage, options: SamplingOptions = GREEDY) -> GenerationRequest:
    return GenerationRequest("Describe this image.", (image,), options=options)


def hf_config(model: Path, quant: str = "fp32", **extra: object) -> EngineConfig:
    return EngineConfig(engine="transformers", model=str(model),
        options={"quant": quant, "device": "cpu", **extra})


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def is_host(process: psutil.Process) -> bool:
    try:
        return "spawn_main" in " ".join(process.cmdline())
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(scope="module")
def fast_start() -> str:
    """forkserver with the engines imported once, so each host starts in a fraction of a second."""
    multiprocessing.get_context("forkserver").set_forkserver_preload(PRELOAD)
    return "forkserver"


@pytest.fixture
def host_factory(fast_start: str):
    """Hosts made by a test; each is unloaded afterwards and checked to have left no process behind."""
    made: list[HostedBackend] = []

    def make(config: EngineConfig, policy: HostPolicy | None = None) -> HostedBackend:
        host = HostedBackend(config, policy, start_method=fast_start)
        made.append(host)
        return host

    yield make
    for host in made:
        pid = host.pid
        host.unload()
        assert pid is None or gone(pid)


@pytest.fixture(scope="module")
def spawned(tiny_hf_model: Path):
    """The production path: a spawned host with the fp32 tiny model, and the progress its load reported."""
    host = HostedBackend(hf_config(tiny_hf_model))
    steps: list[tuple[float, str]] = []
    host.load(progress=lambda fraction, message: steps.append((fraction, message)))
    yield host, steps
    host.unload()


@pytest.fixture(scope="module")
def in_process(tiny_hf_model: Path):
    backend = TransformersBackend(hf_config(tiny_hf_model))
    backend.load()
    yield backend
    backend.unload()


# -- decisions (pure functions) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "served", "rss", "expected"),
    [
        (HostPolicy(), 1000, 10 * 2**30, None),
        (HostPolicy(recycle_every=3), 2, None, None),
        (HostPolicy(recycle_every=3), 3, None, "served 3 requests"),
        (HostPolicy(memory_limit_bytes=2**30), 1, 2**30, None),
        (HostPolicy(memory_limit_bytes=2**30), 1, 2**30 + 1, "uses 1024 MiB, over the 1024 MiB limit"),
        (HostPolicy(memory_limit_bytes=2**30), 1, None, None),
    ],
)
def test_should_recycle(policy: HostPolicy, served: int, rss: int | None, expected: str | None) -> None:
    assert should_recycle(policy, served, rss) == expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (-signal.SIGKILL, "was killed by SIGKILL while doing X (often the system running out of memory)"),
        (-signal.SIGSEGV, "was killed by SIGSEGV while doing X (a crash in the engine's native code)"),
        (-signal.SIGABRT, "was killed by SIGABRT while doing X (the engine's native code aborted)"),
        (-signal.SIGTERM, "was killed by SIGTERM while doing X. "),
        (3, "exited unexpectedly with status 3 while doing X"),
        (None, "stopped responding while doing X"),
    ],
)
def test_describe_exit(code: int | None, expected: str) -> None:
    message = describe_exit("gguf", code, "doing X")
    assert message.startswith("The gguf engine process ")
    assert expected in message
    assert message.endswith("Captioneer starts a fresh engine process for the next request.")


def test_policy_is_validated() -> None:
    for bad in ({"recycle_every": 0}, {"memory_limit_bytes": 0}, {"max_crashes_per_image": 0}):
        with pytest.raises(ValueError):
            HostPolicy(**bad)


def test_errors_cross_the_pipe_with_their_type_and_attributes() -> None:
    image_error = _rebuild_error(_error_state(ImageError("too big", kind="too-large"), "gguf"))
    assert type(image_error) is ImageError and str(image_error) == "too big"
    assert image_error.kind == "too-large"
    invalid = _rebuild_error(_error_state(InvalidOutputError("bad JSON", raw="{oops"), "gguf"))
    assert type(invalid) is InvalidOutputError and invalid.raw == "{oops"
    cut = _rebuild_error(_error_state(TruncatedOutputError("cut off", raw="{", attempts=3), "gguf"))
    assert type(cut) is TruncatedOutputError and cut.raw == "{" and cut.attempts == 3
    bug = _rebuild_error(_error_state(KeyError("x"), "gguf"))
    assert type(bug) is GenerationError
    assert "The gguf engine failed unexpectedly (KeyError" in str(bug)
    assert "KeyError" in bug.host_traceback
    foreign = _rebuild_error({"module": "os", "type": "system", "message": "m", "attrs": {}})
    assert type(foreign) is GenerationError


def test_open_backend(tiny_hf_model: Path) -> None:
    config = hf_config(tiny_hf_model)
    assert isinstance(open_backend(config, in_process=True), TransformersBackend)
    hosted = open_backend(config)
    assert isinstance(hosted, HostedBackend)
    assert hosted.capabilities.batching and hosted.capabilities.in_process
    assert hosted.pid is None and not hosted.info().loaded  # nothing starts before load()


# -- the spawned production host ------------------------------------------------------------------------


@pytest.mark.slow
def test_load_progress_and_info(spawned: tuple[HostedBackend, list[tuple[float, str]]]) -> None:
    spawned, steps = spawned
    fractions = [fraction for fraction, _ in steps]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    info = spawned.info()
    assert info.loaded and info.engine == "transformers" and info.quant == "fp32" and info.device == "cpu"
    assert info.details["host_pid"] == spawned.pid != os.getpid()
    assert info.memory_bytes == info.details["host_rss_bytes"] > 50 * 2**20  # torch alone is bigger
    assert 0 < info.details["engine_memory_bytes"] < info.memory_bytes
    assert psutil.Process(spawned.pid).memory_info().rss > 50 * 2**20


@pytest.mark.slow
def test_host_gives_the_same_answers_as_in_process(
    spawned: tuple[HostedBackend, list[tuple[float, str]]], in_process: TransformersBackend
) -> None:
    spawned = spawned[0]
    requests = [ask(picture(64, 64, 1)), ask(picture(96, 160, 2)), ask(picture(224, 128, 3))]
    expected = ["".join(in_process.generate(request)) for request in requests]
    chunks = list(spawned.generate(requests[0]))
    assert "".join(chunks) == expected[0]
    assert [spawned.generate_batch(requests)] == [expected]
    assert spawned.info().details["last_image_tokens"] == [r.image_tokens for r in requests]


@pytest.mark.slow
def test_cli_uses_the_host_by_default(
    tiny_hf_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = tmp_path / "red.png"
    Image.new("RGB", (300, 200), (220, 30, 30)).save(photo)
    args = [
        "caption", str(photo), "--engine", "transformers", "--model", str(tiny_hf_model), "--quant", "nf4",
        "--device", "cpu", "--temperature", "0", "--max-tokens", "8", "--image-tokens", "64", "--json",
    ]
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    seen: list[int] = []
    watching = threading.Event()

    def watch() -> None:
        while not watching.is_set():
            seen.extend(c.pid for c in psutil.Process().children() if c.pid not in before and is_host(c))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        assert cli_main(args) == 0
    finally:
        watching.set()
        watcher.join()
    hosted = json.loads(capsys.readouterr().out)
    assert seen, "the caption command should have run the engine in a host process"
    assert all(gone(pid) for pid in seen)
    assert cli_main([*args, "--in-process"]) == 0
    direct = json.loads(capsys.readouterr().out)
    assert hosted["ok"] and hosted["text"] == direct["text"]
    assert (hosted["engine"], hosted["quant"]) == ("transformers", "nf4")


# -- restarts, crashes, cancel (fast-starting hosts) ----------------------------------------------------


@pytest.mark.parametrize("quant", ["bf16", "fp32", "nf4", "int8"])
def test_every_profile_same_text_in_process_and_hosted(tiny_hf_model: Path, host_factory, quant: str) -> None:
    request = ask(picture(96, 64, 4))
    direct = TransformersBackend(hf_config(tiny_hf_model, quant))
    direct.load()
    try:
        expected = "".join(direct.generate(request))
    finally:
        direct.unload()
    host = host_factory(hf_config(tiny_hf_model, quant))
    host.load()
    assert "".join(host.generate(request)) == expected
    assert host.info().quant == quant


def test_killing_the_host_mid_generation(tiny_hf_model: Path, host_factory) -> None:
    host = host_factory(hf_config(tiny_hf_model))
    host.load()
    expected = "".join(host.generate(ask(picture(64, 64, 5))))
    victim = host.pid
    received = []
    with pytest.raises(EngineCrashedError) as crash:
        for chunk in host.generate(ask(picture(64, 96, 6), LONG)):
            received.append(chunk)
            if len(received) == 1:
                os.kill(victim, signal.SIGKILL)
    assert "was killed by SIGKILL while captioning picture-6.png" in str(crash.value)
    assert gone(victim) and host.pid is None
    assert "".join(host.generate(ask(picture(64, 64, 5)))) == expected  # a fresh host, same answer
    assert host.pid not in (None, victim)
    info = host.info()
    assert (info.details["host_crashes"], info.details["host_starts"]) == (1, 2)


def test_cancel_through_the_host_within_a_second(tiny_hf_model: Path, host_factory) -> None:
    host = host_factory(hf_config(tiny_hf_model))
    host.load()
    pid = host.pid
    cancel = CancelToken()
    started = None
    busy_info = None
    with pytest.raises(Cancelled):
        for _ in host.generate(ask(picture(64, 64, 7), LONG), cancel):
            if started is None:
                started = time.monotonic()
                threading.Timer(0.05, cancel.cancel).start()
                busy_info = host.info()  # mid-request: answered from the last report, without waiting
    assert started is not None and time.monotonic() - started < 1.0
    assert busy_info.loaded and busy_info.details["host_busy"] and busy_info.quant == "fp32"
    assert busy_info.details["host_pid"] == pid and busy_info.memory_bytes > 0
    assert not host.info().details["host_busy"]
    # A consumer that walks away mid-stream: the host stops and stays in step for the next request.
    stream = host.generate(ask(picture(64, 64, 7), LONG))
    next(stream)
    stream.close()
    assert "".join(host.generate(ask(picture(64, 64, 8)))) == "".join(host.generate(ask(picture(64, 64, 8))))
    assert host.pid == pid  # cancelling never needed a restart


def test_a_photo_that_crashes_the_host_is_quarantined(tiny_hf_model: Path, host_factory) -> None:
    poison = picture(64, 64, 9)
    host = host_factory(hf_config(tiny_hf_model, **{FAULT_INJECTION_KEY: {"abort_on_image": poison.sha256}}))
    host.load()
    healthy = "".join(host.generate(ask(picture(64, 64, 10))))
    for _ in range(2):
        with pytest.raises(EngineCrashedError, match="killed by SIGABRT while captioning picture-9.png"):
            list(host.generate(ask(poison)))
    starts = host.starts
    refused = "Skipped picture-9.png: it crashed the transformers engine 2 times"
    with pytest.raises(QuarantinedImageError, match=refused):
        list(host.generate(ask(poison)))
    with pytest.raises(QuarantinedImageError):
        host.generate_batch([ask(picture(64, 64, 10)), ask(poison)])
    assert host.starts == starts  # refused without even starting a host
    assert "".join(host.generate(ask(picture(64, 64, 10)))) == healthy


def test_recycling_every_n_requests_loses_nothing(tiny_hf_model: Path, host_factory) -> None:
    host = host_factory(hf_config(tiny_hf_model), HostPolicy(recycle_every=2))
    host.load()
    requests = [ask(picture(64, 64, seed)) for seed in range(1, 4)]
    first_pid = host.pid
    answers = ["".join(host.generate(request)) for request in requests]
    assert host.recycles == 1 and host.starts == 2
    assert gone(first_pid)
    assert answers == host.generate_batch(requests)  # the second host's second request: recycled after it
    assert host.recycles == 2 and host.pid is None


def test_recycling_above_a_memory_limit(tiny_hf_model: Path, host_factory) -> None:
    host = host_factory(hf_config(tiny_hf_model), HostPolicy(memory_limit_bytes=64 * 2**20))
    host.load()
    pid = host.pid
    first = "".join(host.generate(ask(picture(64, 64, 11))))
    assert host.pid is None and gone(pid)  # torch alone is over 64 MiB: the host went away after the request
    assert host.recycles == 1
    assert "".join(host.generate(ask(picture(64, 64, 11)))) == first
    assert host.starts == 2


def test_unload_leaves_no_process(tiny_hf_model: Path, host_factory) -> None:
    host = host_factory(hf_config(tiny_hf_model))
    host.load()
    pid = host.pid
    host.unload()
    assert gone(pid) and host.pid is None and not host.info().loaded
    with pytest.raises(GenerationError, match="not loaded"):
        list(host.generate(ask(picture(64, 64, 12))))
    host.unload()  # idempotent


def test_a_load_failure_in_the_host_is_the_engines_own_error(tmp_path: Path, host_factory) -> None:
    host = host_factory(hf_config(tmp_path / "missing-model"))
    with pytest.raises(ModelFileError, match="does not exist"):
        host.load()
    assert host.pid is None
    with pytest.raises(GenerationError, match="not loaded"):
        list(host.generate(ask(picture(64, 64, 12))))


def test_a_dropped_host_is_reaped(tiny_hf_model: Path, fast_start: str) -> None:
    host = HostedBackend(hf_config(tiny_hf_model), start_method=fast_start)
    host.load()
    pid = host.pid
    del host
    gc.collect()
    deadline = time.monotonic() + 5
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(pid)


def test_gguf_through_the_host(tiny_gguf: tuple[Path, Path], host_factory) -> None:
    model, mmproj = tiny_gguf
    config = EngineConfig(engine="gguf", model=str(model), image_tokens=64,
        options={"mmproj": str(mmproj), "device": "cpu", "threads": 1})
    request = ask(picture(64, 64, 13), SamplingOptions(max_new_tokens=12, temperature=0.0, seed=1))
    direct = open_backend(config, in_process=True)
    direct.load()
    try:
        expected = "".join(direct.generate(request))
    finally:
        direct.unload()
    host = host_factory(config)
    host.load()
    assert "".join(host.generate(request)) == expected
    assert host.info().engine == "gguf"
    victim = host.pid
    with pytest.raises(EngineCrashedError, match="gguf engine process was killed by SIGKILL"):
        for index, _ in enumerate(host.generate(ask(picture(64, 64, 14), LONG))):
            if index == 0:
                os.kill(victim, signal.SIGKILL)
    assert "".join(host.generate(request)) == expected


def test_cancel_while_the_engine_encodes_the_image_keeps_the_host(
    tiny_gguf: tuple[Path, Path], host_factory
) -> None:
    """A cancel before the first token (llama.cpp encoding a big image, ~10 s here) used to outlast the 5 s
    grace: the host was killed and the model loaded again. Now the engine stops inside the encoder; the
    same process, with its model, answers the next request."""
    model, mmproj = tiny_gguf
    config = EngineConfig(engine="gguf", model=str(model), image_tokens=4096, context_tokens=8192,
        options={"mmproj": str(mmproj), "device": "cpu", "threads": 2})
    host = host_factory(config)
    host.load()
    pid = host.pid
    small = ask(picture(64, 64, 16))
    expected = "".join(host.generate(small))
    cancel = CancelToken()
    fired: list[float] = []
    timer = threading.Timer(0.5, lambda: (fired.append(time.monotonic()), cancel.cancel()))
    timer.start()
    with pytest.raises(Cancelled):
        list(host.generate(ask(picture(2048, 2048, 17), LONG), cancel))
    timer.join()
    assert time.monotonic() - fired[0] < 3.0  # the grace before a kill is 5 s
    assert host.pid == pid and host.starts == 1 and host.crashes == 0
    assert "".join(host.generate(small)) == expected


def test_an_engine_that_ignores_cancel_is_killed(tiny_hf_model: Path, host_factory) -> None:
    """With no grace at all the host cannot stop in time: it is killed; the next request gets a new one."""
    host = host_factory(hf_config(tiny_hf_model), HostPolicy(cancel_grace_seconds=0.0))
    host.load()
    pid = host.pid
    cancel = CancelToken()
    with pytest.raises(Cancelled):
        for _ in host.generate(ask(picture(64, 64, 15), LONG), cancel):
            cancel.cancel()
    assert gone(pid) and host.pid is None
    assert "".join(host.generate(ask(picture(64, 64, 15))))
    assert host.crashes == 0 and host.starts == 2


def test_cli_reports_a_photo_that_crashes_the_host_and_goes_on(
    tiny_hf_model: Path, tmp_path: Path, fast_start: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import captioneer.desktop.core.engine_setup as engine_setup
    from captioneer.desktop.core.images import prepare_image

    poison, fine = tmp_path / "poison.png", tmp_path / "fine.png"
    Image.new("RGB", (300, 200), (220, 30, 30)).save(poison)
    Image.new("RGB", (300, 200), (30, 30, 220)).save(fine)
    fault = {FAULT_INJECTION_KEY: {"abort_on_image": prepare_image(poison, 64).sha256}}
    configure = engine_setup.engine_config

    def with_fault(settings: object, overrides: object) -> EngineConfig:
        config = configure(settings, overrides)
        return config.model_copy(update={"options": {**config.options, **fault}})

    monkeypatch.setattr(engine_setup, "engine_config", with_fault)
    monkeypatch.setattr(engine_setup, "open_backend",
                        lambda settings, config, in_process: HostedBackend(config, start_method=fast_start))
    code = cli_main([
        "caption", str(poison), str(fine), "--engine", "transformers", "--model", str(tiny_hf_model),
        "--device", "cpu", "--temperature", "0", "--max-tokens", "8", "--image-tokens", "64", "--json",
    ])
    captured = capsys.readouterr()
    crashed, captioned = (json.loads(line) for line in captured.out.splitlines())
    assert code == 1
    assert (crashed["ok"], crashed["error_kind"]) == (False, "engine-crashed")
    assert "killed by SIGABRT" in crashed["error"]
    assert captioned["ok"] and captioned["text"]
    assert f"{poison}: The transformers engine process was killed by SIGABRT" in captured.err


def test_finish_reasons_cross_the_pipe(tiny_gguf: tuple[Path, Path], host_factory) -> None:
    model, mmproj = tiny_gguf
    config = EngineConfig(engine="gguf", model=str(model), image_tokens=64,
        options={"mmproj": str(mmproj), "device": "cpu", "threads": 1})
    host = host_factory(config)
    host.load()
    cut = ask(picture(64, 64, 15), SamplingOptions(max_new_tokens=6, temperature=0.0))
    schema = {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}}
    ends = GenerationRequest("JSON.", (picture(64, 64, 16),), json_schema=schema,
                             options=SamplingOptions(max_new_tokens=64, temperature=0.0))
    assert collect(host.generate(cut)).finish_reason == "length"
    assert collect(host.generate(ends)).finish_reason == "stop"
    answers = host.generate_batch([cut, ends])
    assert all(isinstance(answer, Completion) for answer in answers)
    assert [answer.finish_reason for answer in answers] == ["length", "stop"]
    assert json.loads(answers[1]) in ({"ok": True}, {"ok": False})
