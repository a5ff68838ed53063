"""The `captioneer` command line frame: version, help, task listing, quiet exit when the reader goes away."""

from __future__ import annotations

import subprocess
import sys

from captioneer.desktop import __version__
from captioneer.desktop.cli import main


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "captioneer.desktop.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_version() -> None:
    done = _run("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"captioneer {__version__}"


def test_tasks_lists_every_preset(capsys) -> None:
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    for task in ("caption", "alt_text", "keywords", "ocr", "social"):
        assert out.count(f"\n{task} ") + out.startswith(f"{task} ") == 1


def test_unknown_task_is_a_configuration_error(tmp_path, capsys) -> None:
    image = tmp_path / "x.png"
    image.write_bytes(b"")
    code = main(["caption", str(image), "--task", "nope", "--model", "m.gguf", "--mmproj", "p.gguf"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("captioneer: Unknown task 'nope'") and "Traceback" not in err


def test_reader_going_away_is_not_a_traceback() -> None:
    # Like `captioneer tasks | head -0`: the pipe is closed before the command writes anything.
    process = subprocess.Popen(
        [sys.executable, "-m", "captioneer.desktop.cli", "tasks"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    stderr = process.stderr.read()
    process.wait(timeout=60)
    assert "Broken pipe" not in stderr and "Traceback" not in stderr, stderr
    assert process.returncode == 141
