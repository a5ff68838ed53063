"""Server engines (ollama, openai) under faults: servers that die mid-answer, hang, stall, stream forever or
stay busy, the circuit breaker, requests in flight per server, and tagging runs that survive all of it.

The servers are the loopback stand-ins in tests/fakes (they speak the real protocols); the engines, the
catalog, the run and the command line are the real ones. Every timeout is set small through the engines'
options, so each test ends in seconds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import signal
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
from captioneer.backends.errors import Cancelled, ConfigurationError, EngineUnavailableError, GenerationError
from captioneer.backends.http_util import (
    AnswerTooLongError,
    EngineTimeoutError,
    ServerLimits,
    StreamBrokenError,
    token_cap,
)
from captioneer.backends.ollama_engine import OllamaBackend
from captioneer.backends.openai_engine import OpenAIBackend
from captioneer.backends.request import GenerationRequest, SamplingOptions
from captioneer.backends.server_pool import (
    BREAKER_FAILURES,
    Breaker,
    NoServerLeftError,
    ServerPool,
    breaker_admits,
    breaker_step,
)
from captioneer.desktop.core.images import PixelBudget, prepare_image
from captioneer.desktop.library.catalog import Catalog, open_catalog
from captioneer.desktop.library.runs import RunController, RunSpec, execute_run, get_run, plan_run, run_counts
from captioneer.desktop.library.scanner import scan_library
from tests.fakes.ollama_server import FakeOllama, ScriptedFailure
from tests.fakes.openai_server import FakeOpenAI

ANSWER = "A red square on a white table."
FAST = {"connect_timeout": 1.0, "read_timeout": 0.5, "request_timeout": 5.0, "retry_down_after": 30.0}


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_util, "RETRY_DELAYS", (0.01, 0.02, 0.04))
    monkeypatch.setattr("captioneer.backends.server_pool.RETRY_DELAYS", (0.01, 0.02, 0.04))


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    Image.new("RGB", (96, 64), (200, 30, 30)).save(path)
    return path


def request_for(photo: Path, max_new_tokens: int = 16, system: str | None = None) -> GenerationRequest:
    image = prepare_image(photo, PixelBudget(max_tokens=16))
    options = SamplingOptions(max_new_tokens=max_new_tokens, temperature=0.0)
    return GenerationRequest(prompt="Describe this image.", images=(image,), system=system, options=options)


def openai(*urls: str, **extra: object) -> OpenAIBackend:
    backend = OpenAIBackend(
        EngineConfig(engine="openai", model="qwen3-vl-2b", options={"base_urls": urls, **FAST, **extra})
    )
    backend.load()
    return backend


def ollama(url: str, **extra: object) -> OllamaBackend:
    backend = OllamaBackend(
        EngineConfig(engine="ollama", model="qwen3-vl:2b-instruct", options={"host": url, **FAST, **extra})
    )
    backend.load()
    return backend


def most_at_once(windows: list[tuple[float, float]]) -> int:
    """The largest number of answers that were streaming at the same moment."""
    events = sorted([(start, 1) for start, _ in windows] + [(end, -1) for _, end in windows])
    current = best = 0
    for _, step in events:
        current += step
        best = max(best, current)
    return best


# ---------------------------------------------------------------------------------------------------------
# The circuit breaker: a pure state machine


COOL = 10.0


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([], Breaker()),
        ([("start", 0), ("success", 1)], Breaker()),
        ([("busy", 1)], Breaker("closed", 1, 0.0)),
        ([("busy", 1), ("busy", 2)], Breaker("closed", 2, 0.0)),
        ([("busy", 1), ("busy", 2), ("busy", 3)], Breaker("open", 3, 3 + COOL)),
        ([("busy", 1), ("success", 2), ("busy", 3), ("busy", 4)], Breaker("closed", 2, 0.0)),
        ([("fault", 5)], Breaker("open", 1, 5 + COOL)),
        ([("fault", 5), ("start", 16)], Breaker("half-open", 1, 5 + COOL)),
        ([("fault", 5), ("start", 16), ("success", 17)], Breaker()),
        ([("fault", 5), ("start", 16), ("busy", 17)], Breaker("open", 2, 17 + COOL)),
        ([("fault", 5), ("start", 16), ("fault", 17)], Breaker("open", 2, 17 + COOL)),
        ([("fault", 5), ("start", 16), ("neutral", 17)], Breaker("open", 1, 5 + COOL)),
        ([("start", 0), ("neutral", 1)], Breaker()),
    ],
)
def test_breaker_table(events: list[tuple[str, float]], expected: Breaker) -> None:
    state = Breaker()
    for event, now in events:
        state = breaker_step(state, event, now, cool_down=COOL)
    assert state == expected


@pytest.mark.parametrize(
    ("state", "now", "admits"),
    [
        (Breaker(), 0.0, True),
        (Breaker("closed", 2, 0.0), 0.0, True),
        (Breaker("open", 3, 10.0), 9.9, False),
        (Breaker("open", 3, 10.0), 10.0, True),
        (Breaker("half-open", 3, 10.0), 11.0, False),
    ],
)
def test_breaker_admits(state: Breaker, now: float, admits: bool) -> None:
    assert breaker_admits(state, now) is admits


def test_breaker_rejects_an_unknown_event() -> None:
    with pytest.raises(ValueError, match="unknown breaker event"):
        breaker_step(Breaker(), "exploded", 0.0, cool_down=COOL)


# ---------------------------------------------------------------------------------------------------------
# The pool: slots, round robin, skipping, giving up


def test_pool_keeps_parallel_requests_per_server_and_prefers_untried_servers() -> None:
    now = [100.0]
    pool = ServerPool(["a", "b"], parallel=2, cool_down=30, clock=lambda: now[0])
    cancel = CancelToken()
    taken = [pool.acquire({}, cancel).url for _ in range(4)]
    assert sorted(taken) == ["a", "a", "b", "b"]
    assert pool._choose({}) is None, "every slot is taken: the next request waits"
    pool.release(pool.servers[1], "success")
    assert pool.acquire({"a": 1}, cancel).url == "b"
    pool.release(pool.servers[0], "success")
    assert pool.acquire({"b": 1}, cancel).url == "a", "a request that failed on b goes to a"


def test_pool_skips_an_open_server_until_its_cool_down_ends(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    pool = ServerPool(["a", "b"], cool_down=30, clock=lambda: now[0])
    cancel = CancelToken()
    a = pool.acquire({}, cancel)
    with caplog.at_level(logging.WARNING):
        assert pool.release(a, "fault", "Nothing answers at a.") is True
    assert "skipping a until " in caplog.text and "then trying it with one request" in caplog.text
    assert pool.state(a).startswith("skipped until ")
    for _ in range(3):
        server = pool.acquire({}, cancel)
        assert server.url == "b"
        pool.release(server, "success")
    now[0] += 31
    trial = pool.acquire({}, cancel)
    assert trial.url == "a" and pool.state(trial) == "trial request in flight"
    assert pool.acquire({}, cancel).url == "b", "only one trial goes to a half-open server"
    pool.release(trial, "success")
    assert pool.state(trial) == "ok"


def test_a_streamed_request_is_never_the_trial_of_a_server_that_broke_off_an_answer() -> None:
    now = [100.0]
    pool = ServerPool(["a", "b", "c"], cool_down=30, clock=lambda: now[0])
    cancel = CancelToken()
    pool.trip(pool.servers[0], "Nothing answers at a.")  # refused: a streamed trial can still move on
    pool.servers[1].broke_off = True
    pool.trip(pool.servers[1], "b broke off an answer.")
    now[0] += 31
    streamed = [pool.acquire({}, cancel, trial=False).url for _ in range(2)]
    assert streamed == ["a", "c"], "b's trial waits for a request that can start again elsewhere"
    assert pool.acquire({}, cancel, trial=True).url == "b"


def test_pool_tries_the_longest_cooled_server_when_all_are_open_and_then_gives_up() -> None:
    now = [100.0]
    pool = ServerPool(["a", "b"], cool_down=30, clock=lambda: now[0])
    pool.trip(pool.servers[0], "a is down")
    now[0] += 1
    pool.trip(pool.servers[1], "b is down")
    cancel = CancelToken()
    assert pool.acquire({}, cancel).url == "a", "nobody is healthy: the one out longest is tried"
    with pytest.raises(
        NoServerLeftError, match="None of the servers can answer — a: a is down; b: b is down"
    ):
        pool.acquire({"a": 2, "b": 2}, cancel)


def test_pool_with_one_server_gives_up_with_its_own_error() -> None:
    pool = ServerPool(["a"])
    pool.trip(pool.servers[0], "Nothing answers at a — start the server.")
    with pytest.raises(NoServerLeftError) as caught:
        pool.acquire({"a": 2}, CancelToken())
    assert str(caught.value) == "Nothing answers at a — start the server."
    assert caught.value.exit_code == 2


def test_pool_wait_for_a_slot_can_be_cancelled() -> None:
    pool = ServerPool(["a"])
    cancel = CancelToken()
    pool.acquire({}, cancel)
    threading.Timer(0.2, cancel.cancel).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        pool.acquire({}, cancel)
    assert time.monotonic() - started < 2


# ---------------------------------------------------------------------------------------------------------
# Limits: defaults, validation


def limits_of(**options: object) -> ServerLimits:
    return OllamaBackend(EngineConfig(engine="ollama", model="m", options=options)).limits


def test_server_limits_defaults_and_validation() -> None:
    limits = limits_of()
    assert (limits.connect_timeout, limits.read_timeout, limits.request_timeout) == (5.0, 120.0, 600.0)
    assert (limits.parallel, limits.retry_down_after, limits.max_answer_bytes) == (1, 30.0, 16384 * 1024)
    assert limits_of(parallel=4, max_answer_kb=8).max_answer_bytes == 8192
    for key, bad in (("parallel", 0), ("parallel", 1.5), ("read_timeout", -1), ("max_answer_kb", True)):
        with pytest.raises(ConfigurationError, match=f"ollama engine's option {key} = {bad!r} is not valid"):
            limits_of(**{key: bad})
    with pytest.raises(ConfigurationError, match="paralel is not an option of the ollama engine; it takes: "):
        limits_of(paralel=2)
    assert token_cap(96) == 4 * 96 + 32


# ---------------------------------------------------------------------------------------------------------
# openai: mid-answer failure


def test_a_server_dying_mid_answer_hands_every_photo_to_the_healthy_one(
    photo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        FakeOpenAI(responder=lambda body: "half of a broken answer", die_after=2) as dying,
        FakeOpenAI(responder=lambda body: ANSWER) as healthy,
    ):
        backend = openai(dying.url, healthy.url, parallel=2)
        with caplog.at_level(logging.WARNING):
            answers = backend.generate_batch([request_for(photo, system=f"p{i}") for i in range(6)])
        assert answers == [ANSWER] * 6, "each answer restarts from scratch: nothing of the broken one is kept"
        assert len(healthy.chats()) == 6
        assert len(dying.chats()) >= 1
        assert f"skipping {dying.url} until " in caplog.text
        assert "broke while it was answering" in caplog.text
        states = {entry["url"]: entry["state"] for entry in backend.info().details["servers"]}
        assert states[healthy.url] == "ok" and states[dying.url].startswith("skipped until ")


def test_a_batch_keeps_its_finished_answers_when_one_request_fails(photo: Path) -> None:
    with FakeOpenAI(responder=lambda body: ANSWER) as server:
        backend = openai(server.url)
        server.failures.append((400, "this image cannot be read"))
        answers = backend.generate_batch([request_for(photo, system=f"p{i}") for i in range(3)])
    assert isinstance(answers[0], GenerationError) and "this image cannot be read" in str(answers[0])
    assert answers[1:] == [ANSWER, ANSWER]


def test_streaming_cannot_take_pieces_back_so_a_mid_answer_death_is_raised(photo: Path) -> None:
    with FakeOpenAI(responder=lambda body: "one two three four", die_after=2) as server:
        backend = openai(server.url)
        pieces: list[str] = []
        with pytest.raises(StreamBrokenError, match=f"{server.url}.*broke while it was answering"):
            for piece in backend.generate(request_for(photo)):
                pieces.append(piece)
    assert pieces == ["one ", "two "]


def test_one_server_dying_once_mid_answer_is_asked_again_from_scratch(photo: Path) -> None:
    with FakeOpenAI() as server:
        backend = openai(server.url)
        calls: list[int] = []

        def dies_the_first_time(body: dict) -> str:
            calls.append(1)
            server.die_after = 3 if len(calls) == 1 else None
            return ANSWER

        server.responder = dies_the_first_time
        assert backend.generate_batch([request_for(photo)]) == [ANSWER]
    assert len(calls) == 2


def test_every_server_dying_is_one_clear_error_per_request(photo: Path) -> None:
    with (
        FakeOpenAI(responder=lambda body: ANSWER, die_after=1) as first,
        FakeOpenAI(responder=lambda body: ANSWER, die_after=1) as second,
    ):
        backend = openai(first.url, second.url)
        started = time.monotonic()
        [answer] = backend.generate_batch([request_for(photo)])
        assert isinstance(answer, NoServerLeftError) and answer.exit_code == 2
        assert str(answer).startswith("None of the servers can answer — ")
        assert f"{first.url}: The connection to the server at {first.url} broke" in str(answer)
        assert f"{second.url}: The connection to the server at {second.url} broke" in str(answer)
    assert len(first.chats()) == 2 and len(second.chats()) == 2, "each server is tried twice, no more"
    assert time.monotonic() - started < 5, "no waiting for cool-downs when everything is down"


# ---------------------------------------------------------------------------------------------------------
# openai: hung servers, timeouts and caps


def test_a_server_stalling_after_three_pieces_times_out_and_the_photo_moves(photo: Path) -> None:
    with (
        FakeOpenAI(responder=lambda body: ANSWER, stall_after=3) as stalled,
        FakeOpenAI(responder=lambda body: ANSWER) as healthy,
    ):
        backend = openai(stalled.url, healthy.url, read_timeout=0.4)
        started = time.monotonic()
        answers = backend.generate_batch([request_for(photo) for _ in range(3)])
        elapsed = time.monotonic() - started
        assert answers == [ANSWER] * 3
        assert elapsed < 4, f"a stalled server costs one read timeout, not forever ({elapsed:.1f} s)"
        assert backend.pool.servers[0].last_error == (
            f"The server at {stalled.url} sent nothing for 0.4 s (read timeout) — "
            "it may be hung or overloaded."
        )


def test_a_server_that_never_sends_headers_times_out(photo: Path) -> None:
    with FakeOpenAI(hang_chat=True) as hung:
        backend = openai(hung.url, read_timeout=0.3)
        started = time.monotonic()
        [answer] = backend.generate_batch([request_for(photo)])
        assert isinstance(answer, NoServerLeftError)
        assert str(answer) == (
            f"The server at {hung.url} sent nothing for 0.3 s (read timeout) — it may be hung or overloaded."
        )
    assert time.monotonic() - started < 3


def test_a_slow_first_byte_within_the_read_timeout_is_fine_and_beyond_it_is_not(photo: Path) -> None:
    with FakeOpenAI(responder=lambda body: ANSWER, first_byte_delay=0.4) as slow:
        assert openai(slow.url, read_timeout=2.0).generate_batch([request_for(photo)]) == [ANSWER]
        [late] = openai(slow.url, read_timeout=0.15).generate_batch([request_for(photo)])
    assert isinstance(late, NoServerLeftError) and "read timeout" in str(late)


def test_the_per_image_deadline_stops_a_server_that_trickles(photo: Path) -> None:
    words = " ".join(f"w{i}" for i in range(40))
    with FakeOpenAI(responder=lambda body: words, piece_delay=0.1) as slow:
        backend = openai(slow.url, read_timeout=2.0, request_timeout=0.5)
        with pytest.raises(
            EngineTimeoutError, match=r"did not finish the answer within 0.5 s \(request timeout\)"
        ):
            list(backend.generate(request_for(photo, max_new_tokens=64)))


def test_a_server_streaming_forever_is_cut_off_at_the_token_cap(photo: Path) -> None:
    with (
        FakeOpenAI(responder=lambda body: "again", endless=True) as endless,
        FakeOpenAI(responder=lambda body: ANSWER) as healthy,
    ):
        backend = openai(endless.url, healthy.url)
        started = time.monotonic()
        answers = backend.generate_batch([request_for(photo, max_new_tokens=8) for _ in range(2)])
        assert answers == [ANSWER, ANSWER]
        assert time.monotonic() - started < 5
        time.sleep(0.3)
        settled = endless.streamed
        time.sleep(0.5)
        assert endless.streamed == settled, "the connection was closed: the endless server stopped streaming"
        assert (
            "sent more than 64 pieces for an answer of at most 8 tokens" in backend.pool.servers[0].last_error
        )


def test_a_server_sending_huge_pieces_is_cut_off_at_the_byte_cap(photo: Path) -> None:
    huge = " ".join("x" * 3000 for _ in range(10))
    with FakeOpenAI(responder=lambda body: huge) as server:
        backend = openai(server.url, max_answer_kb=8)
        with pytest.raises(AnswerTooLongError, match=f"{server.url} sent more than 8 kB"):
            list(backend.generate(request_for(photo, max_new_tokens=400)))


def test_connect_timeout_names_the_server(photo: Path) -> None:
    # A listening socket whose backlog is full and never accepted: the connection attempt hangs.
    with socket.socket() as blocked:
        blocked.bind(("127.0.0.1", 0))
        blocked.listen(0)
        url = f"http://127.0.0.1:{blocked.getsockname()[1]}/v1"
        fillers = []
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(blocked.getsockname())
            fillers.append(filler)
        try:
            backend = OpenAIBackend(
                EngineConfig(engine="openai", model="m",
                    options={"base_urls": (url,), **FAST, "connect_timeout": 0.3})
            )
            started = time.monotonic()
            with pytest.raises(EngineUnavailableError, match=f"{url} did not accept a connection in time"):
                backend.load()
            assert time.monotonic() - started < 4
        finally:
            for filler in fillers:
                filler.close()


# ---------------------------------------------------------------------------------------------------------
# openai: busy servers and the circuit breaker


def test_a_server_busy_forever_is_opened_and_stops_costing_requests(
    photo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        FakeOpenAI(always_fail=(429, "Too Many Requests")) as busy,
        FakeOpenAI(responder=lambda body: ANSWER) as healthy,
    ):
        backend = openai(busy.url, healthy.url)
        with caplog.at_level(logging.WARNING):
            answers = [("".join(backend.generate(request_for(photo)))) for _ in range(10)]
        assert answers == [ANSWER] * 10
        assert len(busy.chats()) == BREAKER_FAILURES, "after K busy answers the server is skipped"
        assert f"skipping {busy.url} until " in caplog.text and "HTTP 429" in caplog.text


def test_a_lone_server_busy_forever_ends_after_a_few_requests(photo: Path) -> None:
    with FakeOpenAI(always_fail=(503, "Service Unavailable")) as busy:
        backend = openai(busy.url)
        with pytest.raises(NoServerLeftError, match="HTTP 503"):
            list(backend.generate(request_for(photo)))
    assert len(busy.chats()) == BREAKER_FAILURES + 1, "K busy answers open it; one more try, then it gives up"


def test_a_busy_server_is_tried_again_after_its_cool_down(photo: Path) -> None:
    with (
        FakeOpenAI(always_fail=(503, "Service Unavailable")) as flaky,
        FakeOpenAI(responder=lambda body: "from the healthy one") as healthy,
    ):
        backend = openai(flaky.url, healthy.url, retry_down_after=0.3)
        for _ in range(4):
            assert "".join(backend.generate(request_for(photo))) == "from the healthy one"
        flaky.always_fail = None
        flaky.responder = lambda body: "back again"
        time.sleep(0.4)
        answers = ["".join(backend.generate(request_for(photo))) for _ in range(4)]
    assert "back again" in answers
    assert backend.pool.state(backend.pool.servers[0]) == "ok"


# ---------------------------------------------------------------------------------------------------------
# openai: requests in flight


def test_parallel_requests_per_server_are_kept_in_flight_and_capped(photo: Path) -> None:
    with (
        FakeOpenAI(responder=lambda body: "one two three", piece_delay=0.1) as first,
        FakeOpenAI(responder=lambda body: "one two three", piece_delay=0.1) as second,
    ):
        backend = openai(first.url, second.url, parallel=3)
        assert backend.concurrency() == 6
        answers = backend.generate_batch([request_for(photo) for _ in range(12)])
        assert answers == ["one two three"] * 12
        assert most_at_once(first.windows) == 3 and most_at_once(second.windows) == 3


def test_cancel_is_prompt_while_requests_are_in_flight(photo: Path) -> None:
    with FakeOpenAI(hang_chat=True) as hung:
        backend = openai(hung.url, parallel=4, read_timeout=30.0)
        cancel = CancelToken()
        threading.Timer(0.3, cancel.cancel).start()
        started = time.monotonic()
        with pytest.raises(Cancelled):
            backend.generate_batch([request_for(photo) for _ in range(4)], cancel)
        assert time.monotonic() - started < 2
        assert backend.pool.servers[0].in_flight == 0, "every slot was given back"


# ---------------------------------------------------------------------------------------------------------
# ollama


def test_ollama_stalling_after_three_pieces_times_out_with_a_message(photo: Path) -> None:
    with FakeOllama(
        responder=lambda body: "one two three four five six seven eight", chunk_words=1
    ) as server:
        backend = ollama(server.url, read_timeout=0.3)
        server.stall_after = 3
        started = time.monotonic()
        [answer] = backend.generate_batch([request_for(photo)])
        assert isinstance(answer, NoServerLeftError)
        assert str(answer) == (
            f"Ollama at {server.url} sent nothing for 0.3 s (read timeout) — it may be hung or overloaded."
        )
    assert time.monotonic() - started < 3


def test_ollama_dying_once_mid_answer_is_asked_again_from_scratch(photo: Path) -> None:
    with FakeOllama(responder=lambda body: ANSWER, chunk_words=1) as server:
        backend = ollama(server.url)
        calls = []

        def responder(body: dict) -> str:
            calls.append(1)
            server.die_after = 2 if len(calls) == 1 else None
            return ANSWER

        server.responder = responder
        assert backend.generate_batch([request_for(photo)]) == [ANSWER]
    assert len(calls) == 2


def test_ollama_streaming_forever_is_cut_off(photo: Path) -> None:
    with FakeOllama(responder=lambda body: "again and again", endless=True) as server:
        backend = ollama(server.url)
        with pytest.raises(
            AnswerTooLongError, match="sent more than 40 pieces for an answer of at most 2 tokens"
        ):
            list(backend.generate(request_for(photo, max_new_tokens=2)))


def test_ollama_busy_forever_gives_up_after_a_few_requests(photo: Path) -> None:
    with FakeOllama(failures=[ScriptedFailure("/api/chat", 503, "server busy", times=100)]) as server:
        backend = ollama(server.url)
        with pytest.raises(NoServerLeftError, match="HTTP 503"):
            list(backend.generate(request_for(photo)))
    assert len(server.bodies("/api/chat")) == BREAKER_FAILURES + 1


def test_ollama_parallel_keeps_several_requests_in_flight(photo: Path) -> None:
    with FakeOllama(responder=lambda body: ANSWER, first_byte_delay=0.5) as server:
        backend = ollama(server.url, parallel=4, read_timeout=2.0)
        assert backend.concurrency() == 4
        started = time.monotonic()
        answers = backend.generate_batch([request_for(photo) for _ in range(4)])
        elapsed = time.monotonic() - started
    assert answers == [ANSWER] * 4
    assert elapsed < 1.5, f"four 0.5 s answers at once take about 0.5 s, not 2 s ({elapsed:.2f} s)"


# ---------------------------------------------------------------------------------------------------------
# Tagging runs through the real engine and catalog


WORDS = (
    "red",
    "green",
    "blue",
    "yellow",
    "purple",
    "orange",
    "grey",
    "teal",
    "brown",
    "pink",
    "black",
    "white",
)


def keywords_answer(body: dict) -> str:
    """A keywords-task answer of its own for each photo (picked by a hash of the image sent), so no two
    neighbouring photos share a caption. Not a model: the words are made up."""
    image = json.dumps(body["messages"][-1]["content"][0]).encode()
    digest = hashlib.sha256(image).digest()
    first, second, third = (WORDS[byte % len(WORDS)] for byte in digest[:3])
    caption = f"A {first} square beside a {second} circle on a plain {third} background, photo {digest[3]}."
    return json.dumps({"caption": caption, "keywords": [first, "square", "circle"]})


def make_library(root: Path, count: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.new("RGB", (64, 64), ((index * 37) % 256, (index * 91) % 256, 120)).save(
            root / f"p{index:02d}.png"
        )
    return root


def results_per_photo(catalog: Catalog, run_id: int) -> list[int]:
    return [
        int(row[0])
        for row in catalog.db.execute(
            "SELECT COUNT(r.id) FROM run_items i LEFT JOIN results r "
            "ON r.run_id = i.run_id AND r.photo_id = i.photo_id WHERE i.run_id = ? GROUP BY i.photo_id",
            (run_id,),
        )
    ]


def plan(catalog: Catalog, root: Path, config: EngineConfig, batch_size: int = 1) -> int:
    scan_library(catalog, root)
    spec = RunSpec(image_tokens=16, batch_size=batch_size, sampling={"temperature": 0.0})
    planned = plan_run(catalog, str(root), catalog.photos_under(root), spec, config)
    assert planned.run_id is not None
    return planned.run_id


def test_run_stores_a_batch_s_finished_answers_and_asks_again_only_for_the_failed_one(tmp_path: Path) -> None:
    root = make_library(tmp_path / "lib", 4)
    with FakeOpenAI(responder=keywords_answer) as server, open_catalog() as catalog:
        config = EngineConfig(engine="openai", model="qwen3-vl-2b",
            options={"base_urls": (server.url,), **FAST})
        run_id = plan(catalog, root, config, batch_size=4)
        backend = OpenAIBackend(config)
        backend.load()
        server.failures.append((400, "cannot decode this image"))
        counts = execute_run(catalog, run_id, backend)
        assert (counts.done, counts.failed) == (4, 0)
        assert results_per_photo(catalog, run_id) == [1, 1, 1, 1]
        assert len(server.chats()) == 5, "four answers in the batch, one of them failed and was asked again"


def test_run_with_a_server_dying_mid_answer_tags_every_photo_once(tmp_path: Path) -> None:
    root = make_library(tmp_path / "lib", 10)
    with (
        FakeOpenAI(responder=keywords_answer, die_after=5) as dying,
        FakeOpenAI(responder=keywords_answer, piece_delay=0.01) as healthy,
        open_catalog() as catalog,
    ):
        config = EngineConfig(engine="openai", model="qwen3-vl-2b",
            options={"base_urls": (dying.url, healthy.url), **FAST, "parallel": 2, "retry_down_after": 0.2})
        run_id = plan(catalog, root, config)
        backend = OpenAIBackend(config)
        backend.load()
        events: list[str] = []
        counts = execute_run(catalog, run_id, backend, on_event=events.append)
        assert (counts.done, counts.failed, counts.pending) == (10, 0, 0)
        assert any(f"skipping {dying.url} until " in event for event in events), "the window shows it too"
        assert results_per_photo(catalog, run_id) == [1] * 10
        assert len(dying.chats()) >= 2, "the dying server was tried, and tried again after its cool-down"
        assert len(healthy.chats()) == 10


def test_run_ends_when_no_server_is_left_keeping_what_landed_and_resumes(tmp_path: Path) -> None:
    root = make_library(tmp_path / "lib", 8)
    answered: list[int] = []

    def until_three(body: dict) -> str:
        answered.append(1)
        if len(answered) > 3:
            server.die_after = 1  # the server breaks from the fourth answer on
        return keywords_answer(body)

    with FakeOpenAI(responder=until_three) as server, open_catalog() as catalog:
        config = EngineConfig(engine="openai", model="qwen3-vl-2b",
            options={"base_urls": (server.url,), **FAST})
        run_id = plan(catalog, root, config)
        backend = OpenAIBackend(config)
        backend.load()
        with pytest.raises(NoServerLeftError, match="broke while it was answering"):
            execute_run(catalog, run_id, backend)
        counts = run_counts(catalog, run_id)
        assert (counts.done, counts.pending) == (3, 5)
        assert get_run(catalog, run_id).state == "paused"
        server.die_after = None
        server.responder = keywords_answer
        counts = execute_run(catalog, run_id, OpenAIBackend(config))
        assert (counts.done, counts.pending) == (8, 0)
        assert results_per_photo(catalog, run_id) == [1] * 8


def test_run_keeps_n_requests_in_flight_per_server_and_tags_each_photo_once(tmp_path: Path) -> None:
    root = make_library(tmp_path / "lib", 12)
    with (
        FakeOpenAI(responder=keywords_answer, piece_delay=0.05) as first,
        FakeOpenAI(responder=keywords_answer, piece_delay=0.05) as second,
        open_catalog() as catalog,
    ):
        config = EngineConfig(engine="openai", model="qwen3-vl-2b",
            options={"base_urls": (first.url, second.url), **FAST, "parallel": 3})
        run_id = plan(catalog, root, config)
        backend = OpenAIBackend(config)
        backend.load()
        counts = execute_run(catalog, run_id, backend)
        assert (counts.done, counts.pending) == (12, 0)
        assert results_per_photo(catalog, run_id) == [1] * 12
        assert most_at_once(first.windows) == 3 and most_at_once(second.windows) == 3


def test_run_cancel_with_requests_in_flight_is_prompt_and_loses_nothing(tmp_path: Path) -> None:
    root = make_library(tmp_path / "lib", 6)
    with FakeOpenAI(hang_chat=True) as hung, open_catalog() as catalog:
        config = EngineConfig(engine="openai", model="qwen3-vl-2b",
            options={"base_urls": (hung.url,), **FAST, "parallel": 3, "read_timeout": 30.0})
        run_id = plan(catalog, root, config)
        backend = OpenAIBackend(config)
        backend.load()
        controller = RunController()
        threading.Timer(0.3, controller.cancel).start()
        started = time.monotonic()
        with pytest.raises(Cancelled):
            execute_run(catalog, run_id, backend, controller=controller)
        assert time.monotonic() - started < 2
        counts = run_counts(catalog, run_id)
        assert (counts.done, counts.pending) == (0, 6)
        assert get_run(catalog, run_id).state == "paused"


# ---------------------------------------------------------------------------------------------------------
# The command line: a real `captioneer tag` against two servers, one of them faulty


def tag(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "captioneer.desktop.cli",
            "tag",
            str(root),
            "--engine",
            "openai",
            "--model",
            "qwen3-vl-2b",
            "--image-tokens",
            "64",  # the smallest budget an OpenAI-compatible server keeps as it is
            "--max-tokens",
            "64",
            "--temperature",
            "0",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def catalog_counts(root: Path) -> list[int]:
    with open_catalog() as catalog:
        run_id = catalog.db.execute("SELECT MAX(id) FROM runs").fetchone()[0]
        return results_per_photo(catalog, run_id)


@pytest.mark.parametrize(
    "fault",
    [
        {"die_after": 4},
        {"stall_after": 3},
        {"hang_chat": True},
        {"endless": True},
        {"always_fail": (503, "Service Unavailable")},
    ],
    ids=[
        "dies-mid-answer",
        "stalls-after-3-pieces",
        "stalls-before-headers",
        "streams-forever",
        "busy-forever",
    ],
)
def test_cli_tag_with_one_faulty_and_one_healthy_server_tags_every_photo_once(
    tmp_path: Path, fault: dict
) -> None:
    root = make_library(tmp_path / "lib", 8)
    with (
        FakeOpenAI(responder=keywords_answer, **fault) as faulty,
        FakeOpenAI(responder=keywords_answer) as healthy,
    ):
        done = tag(
            root,
            "--base-url",
            faulty.url,
            "--base-url",
            healthy.url,
            "--parallel",
            "2",
            "--read-timeout",
            "0.5",
            "--request-timeout",
            "5",
            "--connect-timeout",
            "1",
            "--retry-down-after",
            "0.5",
        )
        assert done.returncode == 0, done.stderr
        assert catalog_counts(root) == [1] * 8
        assert len(faulty.chats()) >= 1
        assert f"skipping {faulty.url} until " in done.stderr


def test_cli_tag_with_no_server_left_exits_2_with_one_clear_line(tmp_path: Path) -> None:
    root = make_library(tmp_path / "lib", 3)
    with (
        FakeOpenAI(responder=keywords_answer, die_after=1) as first,
        FakeOpenAI(responder=keywords_answer, die_after=1) as second,
    ):
        urls = (first.url, second.url)
        done = tag(root, "--base-url", urls[0], "--base-url", urls[1], "--read-timeout", "0.5")
    assert done.returncode == 2, done.stderr
    final = done.stderr.strip().splitlines()[-1]
    assert final.startswith("captioneer: None of the servers can answer — ")
    assert all(f"{url}: The connection to the server at {url} broke" in final for url in urls)
    assert catalog_counts(root) == [0, 0, 0], "nothing half-answered was stored"


def test_cli_flags_and_settings_reach_the_engine(tmp_path: Path) -> None:
    import argparse

    from captioneer.desktop.commands.engine_args import add_engine_arguments, overrides_from_args
    from captioneer.desktop.core.engine_setup import engine_config
    from captioneer.desktop.core.settings import Settings

    parser = argparse.ArgumentParser()
    add_engine_arguments(parser)
    settings = Settings(
        engine="openai",
        model="m",
        openai_base_urls=["127.0.0.1:1"],
        server_parallel=3,
        server_read_timeout=7.5,
    )
    config = engine_config(
        settings, overrides_from_args(parser.parse_args(["--request-timeout", "90", "--max-answer-kb", "64"]))
    )
    assert config.options == {
        "base_urls": ("127.0.0.1:1",),
        "parallel": 3,
        "connect_timeout": 5.0,
        "read_timeout": 7.5,
        "request_timeout": 90.0,
        "retry_down_after": 30.0,
        "max_answer_kb": 64,
    }
    assert OpenAIBackend(config).limits == ServerLimits(5.0, 7.5, 90.0, 64 * 1024, 3, 30.0)
    gguf_flags = parser.parse_args(["--engine", "gguf", "--model", "x.gguf"])
    gguf = engine_config(settings, overrides_from_args(gguf_flags))
    assert gguf.options == {"device": "auto"}, "in-process engines get none of the server options"
    with pytest.raises(ConfigurationError, match="parallel"):
        engine_config(settings, overrides_from_args(parser.parse_args(["--parallel", "0"])))


def test_cli_tag_ctrl_c_with_requests_in_flight_stops_promptly(tmp_path: Path) -> None:
    root = make_library(tmp_path / "lib", 6)
    with FakeOpenAI(hang_chat=True) as hung:
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "captioneer.desktop.cli",
                "tag",
                str(root),
                "--engine",
                "openai",
                "--model",
                "qwen3-vl-2b",
                "--image-tokens",
                "64",
                "--base-url",
                hung.url,
                "--parallel",
                "3",
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while len(hung.chats()) < 3:  # three requests in flight, none answered
            assert time.monotonic() < deadline and child.poll() is None, "the run never sent its requests"
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        started = time.monotonic()
        _, stderr = child.communicate(timeout=30)
        assert time.monotonic() - started < 5, "Ctrl-C stops the requests in flight at once"
    assert child.returncode == 130, stderr
    assert "stopping after the current photo" in stderr
    with open_catalog() as catalog:
        run = catalog.db.execute("SELECT id, state FROM runs").fetchone()
        assert run[1] == "paused" and run_counts(catalog, run[0]).pending == 6
