"""`captioneer runs/review/write/undo/search` on a catalog tagged by the stand-in engine (tests/fakes)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import time
from pathlib import Path

import pytest
from PIL import Image

from backends.cancel import CancelToken
from desktop.cli import main
from desktop.commands.tag import ProgressPrinter, cancel_on_signals
from desktop.library.catalog import open_catalog
from desktop.library.runs import RunProgress, RunSpec, execute_run, plan_run
from desktop.library.scanner import scan_library
from tests.fakes.tagging_engine import FakeEngine, fake_config


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "lib"
    root.mkdir()
    for i in range(4):
        Image.new("RGB", (64, 48), (i * 60, 120, 30)).save(root / f"p{i}.jpg", quality=90)
    with open_catalog() as catalog:
        scan_library(catalog, root)
        config = fake_config(invalid_on=[])
        plan = plan_run(catalog, str(root), catalog.photos_under(root), RunSpec(image_tokens=16), config)
        execute_run(catalog, plan.run_id, FakeEngine(config))
    return root


def digest(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.iterdir())}


def test_review_write_and_undo(library: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs"]) == 0
    assert "4/4 done" in capsys.readouterr().out
    assert main(["review", "list", "--json"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(listed) == 4 and {item["status"] for item in listed} == {"new"}
    first, second = listed[0]["result_id"], listed[1]["result_id"]

    # Nothing approved yet: nothing is written.
    before = digest(library)
    assert main(["write", "--mode", "sidecar"]) == 0
    assert "nothing to write" in capsys.readouterr().err and digest(library) == before

    edit = f"review edit {first} --add-keyword kitchen --remove-keyword Square --approve".split()
    assert main([*edit, "--caption", "Our red kitchen."]) == 0
    assert main(["review", "approve", str(second)]) == 0
    assert main(["review", "reject", "--all", "--status", "new"]) == 0
    assert "2 results rejected" in capsys.readouterr().err
    assert main(["review", "approve"]) == 2  # neither ids nor --all
    assert main(["review", "approve", "999"]) == 2
    capsys.readouterr()

    assert main(["write", "--dry-run", "--mode", "embedded"]) == 0
    out = capsys.readouterr().out
    assert "Our red kitchen." in out and "kitchen" in out and digest(library) == before

    assert main(["write", "--mode", "embedded"]) == 0
    assert "2 written" in capsys.readouterr().err
    after = digest(library)
    assert sum(after[name] != before[name] for name in before) == 2
    assert main(["write", "--mode", "embedded"]) == 0  # written results are not written again
    assert "nothing to write" in capsys.readouterr().err
    assert main(["search", "status:written", "--paths"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2

    assert main(["undo", "1"]) == 0
    assert "2 restored" in capsys.readouterr().err
    assert digest(library) == before
    assert main(["search", "status:approved", "--paths"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(["undo", "1"]) == 0  # again: nothing left to restore
    assert "0 restored, 2 already as before" in capsys.readouterr().err


def test_write_unreviewed_skips_rejected_and_undo_without_writes(library: Path, capsys) -> None:
    with open_catalog() as catalog:
        results = catalog.results()
        catalog.set_review([results[0].id], "rejected")
    assert main(["undo", "1"]) == 1
    assert "nothing to undo" in capsys.readouterr().err.lower()
    assert main(["write", "--unreviewed", "--mode", "sidecar"]) == 0
    assert "3 written" in capsys.readouterr().err
    assert sorted(p.name for p in library.glob("*.xmp")) == ["p1.jpg.xmp", "p2.jpg.xmp", "p3.jpg.xmp"]


def test_search_exit_status_and_lock_message(library: Path, capsys) -> None:
    assert main(["search", "giraffe"]) == 1
    assert main(["search", "status:oops"]) == 2
    assert "Unknown status" in capsys.readouterr().err
    with open_catalog():
        assert main(["review", "approve", "--all"]) == 1
        assert "in use by another Captioneer" in capsys.readouterr().err
        assert main(["search", "square"]) == 0  # reading works while another process writes


class FakeTerminal(io.StringIO):
    """A stderr that says it is a terminal (a stand-in for a TTY)."""

    def isatty(self) -> bool:
        return True


def progress(done: int, total: int = 10) -> RunProgress:
    return RunProgress(
        run_id=1,
        total=total,
        done=done,
        failed=0,
        needs_review=0,
        elapsed=done * 6.0,
        photos_per_minute=10.0 if done else None,
        eta_seconds=(total - done) * 6.0 if done else None,
    )


def test_progress_is_one_updating_line_on_a_terminal() -> None:
    terminal = FakeTerminal()
    printer = ProgressPrinter(terminal)
    for done in range(11):
        printer(progress(done))
        time.sleep(0.11)
    printer.end_line()
    text = terminal.getvalue()
    assert text.count("\r") == 11 and text.count("\n") == 1
    assert "run 1: 10/10 · 10.0 photos/min · ETA 0s" in text and "ETA 54s" in text


def test_progress_in_a_log_is_periodic_lines() -> None:
    log = io.StringIO()
    printer = ProgressPrinter(log, interval=3600)
    for done in range(11):
        printer(progress(done))
    lines = log.getvalue().splitlines()
    assert lines == ["run 1: 0/10", "run 1: 10/10 · 10.0 photos/min · ETA 0s"]


def test_ctrl_c_asks_the_run_to_stop_instead_of_killing_it() -> None:
    token = CancelToken()
    with cancel_on_signals(token.cancel):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert token.cancelled
        with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C stops at once
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
