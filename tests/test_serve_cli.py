"""`captioneer serve` as a person runs it: a real process on a free port, asked over HTTP, stopped with
Ctrl+C or SIGTERM (requests in flight cancelled, the engine host gone, the exit status the CLI's), and its
configuration errors in one line with exit status 2."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import psutil
import pytest

from captioneer.desktop.cli import main
from tests.test_serve import LONG, LONG_TASK, PATIENCE, jpeg, wait_for

ROOT = Path(__file__).resolve().parent.parent


def engine_flags(tiny_gguf: tuple[Path, Path]) -> list[str]:
    model, mmproj = tiny_gguf
    return ["--model", str(model), "--mmproj", str(mmproj), "--image-tokens", "64", "--threads", "2"]


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class ServeProcess:
    """``captioneer serve --port 0 …`` in a process of its own; ``url`` is the line it prints on stdout."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "captioneer.desktop.cli", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
            env={**os.environ, **(env or {})},
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        assert self.url.startswith("http://"), self.finish()[1]

    def finish(self, timeout: float = PATIENCE) -> tuple[int, str]:
        """Wait for the process to end: its exit status and everything it wrote on stderr."""
        _out, err = self.process.communicate(timeout=timeout)
        return self.process.returncode, err

    def engine_pids(self) -> list[int]:
        return [child.pid for child in psutil.Process(self.process.pid).children(recursive=True)]


@pytest.fixture
def served(tiny_gguf: tuple[Path, Path]):
    processes: list[ServeProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> ServeProcess:
        processes.append(ServeProcess(*engine_flags(tiny_gguf), *args, env=env))
        return processes[-1]

    yield start
    for serve_process in processes:
        if serve_process.process.poll() is None:
            serve_process.process.kill()
            serve_process.process.communicate()


def test_serve_as_a_person_runs_it_then_ctrl_c(served) -> None:
    serving = served(env={"CAPTIONEER_API_TOKEN": "from-the-environment"})
    assert serving.url.startswith("http://127.0.0.1:")
    token = {"Authorization": "Bearer from-the-environment"}
    assert httpx.get(f"{serving.url}/health").status_code == 401
    assert httpx.get(f"{serving.url}/health", headers=token).json()["loaded"] is True
    answer = httpx.post(f"{serving.url}/v1/vision/completion", headers=token, timeout=PATIENCE,
                        files={"image": ("p.jpg", jpeg(), "image/jpeg")}, data={"max_tokens": "6"})
    assert answer.status_code == 200 and answer.json()["engine"] == "gguf"
    hosts = serving.engine_pids()
    assert hosts, "the engine host process runs under the server"
    serving.process.send_signal(signal.SIGINT)
    status, err = serving.finish()
    assert status == 130
    lines = [line for line in err.splitlines() if line]
    assert lines[0].startswith("captioneer: loading gguf model ")
    assert lines[-2].startswith("captioneer: serving model.gguf on http://127.0.0.1:")
    assert lines[-1] == "captioneer: interrupted"
    assert "from-the-environment" not in err  # a given token is never printed
    # The engine host was stopped before the exit; multiprocessing's resource tracker leaves on its own
    # when it sees its parent gone.
    wait_for(lambda: not any(running(pid) for pid in hosts), "the server's child processes to end")


def test_sigterm_cancels_the_request_in_flight_and_exits_0(served) -> None:
    serving = served()
    with httpx.Client(timeout=PATIENCE) as http:
        outcome: list[object] = []

        def long_request() -> None:
            try:
                outcome.append(http.post(
                    f"{serving.url}/v1/vision/completion",
                    data={"max_tokens": str(LONG), "task": LONG_TASK, "temperature": "0"},
                    files={"image": ("p.jpg", jpeg(), "image/jpeg")},
                ))
            except httpx.HTTPError as exc:
                outcome.append(exc)

        thread = threading.Thread(target=long_request)
        thread.start()
        wait_for(lambda: httpx.get(f"{serving.url}/health").json()["in_flight"] == 1, "the request to run")
        serving.process.send_signal(signal.SIGTERM)
        status, err = serving.finish()
        thread.join(PATIENCE)
    assert status == 0, err
    response = outcome[0]
    assert isinstance(response, httpx.Response) and response.status_code == 503
    assert "shutting down" in response.json()["error"]["message"]


def test_listening_beyond_loopback_prints_a_token_once_and_checks_it(served) -> None:
    serving = served("--bind", "0.0.0.0", "--allow-remote")
    port = serving.url.rsplit(":", 1)[1]
    local = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{local}/health").status_code == 401
    serving.process.send_signal(signal.SIGTERM)
    status, err = serving.finish()
    assert status == 0
    (line,) = [line for line in err.splitlines() if "API token" in line]
    token = line.rsplit(": ", 1)[1]
    assert len(token) >= 32 and err.count(token) == 1


def test_configuration_errors_exit_2_with_one_line(
    tiny_gguf: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    flags = engine_flags(tiny_gguf)
    assert main(["serve", "--bind", "0.0.0.0", *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("captioneer: --bind 0.0.0.0 would let other machines send photos to this server: "
                          "pass --allow-remote as well")
    assert main(["serve", "--in-flight", "2", *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the gguf engine answers one request at a time" in err
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        assert main(["serve", "--port", str(port), *flags]) == 2
    finally:
        taken.close()
    err = capsys.readouterr().err
    assert err == (f"captioneer: Port {port} on 127.0.0.1 is already in use (another captioneer serve?): "
                   "pass another --port, or --port 0 for a free one.\n")
    assert main(["serve", "--max-queue", "-1", *flags]) == 2
    assert "--max-queue -1: give 0 or more." in capsys.readouterr().err
