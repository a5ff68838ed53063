"""`captioneer runs/review/write/undo/search` on a catalog tagged by the stand-in engine (tests/fakes): each
write one undoable operation, damaged sidecars and FIFOs refused or skipped while the rest is written,
leftover temp files cleaned, IPTC notes shown."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

from captioneer.backends.cancel import CancelToken
from captioneer.desktop.cli import main
from captioneer.desktop.commands.tag import ProgressPrinter, cancel_on_signals
from captioneer.desktop.library.catalog import open_catalog
from captioneer.desktop.library.runs import RunProgress, RunSpec, execute_run, plan_run
from captioneer.desktop.library.scanner import scan_library
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


def exiftool(path: Path) -> dict:
    binary = shutil.which("exiftool")
    assert binary, "exiftool is needed to check what was written"
    out = subprocess.run([binary, "-j", "-G1", "-a", str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)[0]


def result_ids(capsys) -> list[int]:
    assert main(["review", "list", "--json"]) == 0
    return [json.loads(line)["result_id"] for line in capsys.readouterr().out.splitlines()]


def review_states() -> dict[str, str]:
    with open_catalog(readonly=True) as catalog:
        return {Path(r.path).name: r.review for r in catalog.results()}


def test_each_write_is_one_operation_undone_on_its_own(library: Path, capsys) -> None:
    ids = result_ids(capsys)
    p0_sidecar, p1_sidecar = library / "p0.jpg.xmp", library / "p1.jpg.xmp"
    assert main(["review", "approve", str(ids[0])]) == 0
    assert main(["write", "--mode", "sidecar"]) == 0
    assert "write 1: 1 written" in capsys.readouterr().err
    after_first = p0_sidecar.read_bytes()
    assert main(["review", "edit", str(ids[0]), "--caption", "Edited later.", "--approve"]) == 0
    assert main(["review", "approve", str(ids[1])]) == 0
    assert main(["write", "--mode", "sidecar"]) == 0
    assert "write 2: 2 written" in capsys.readouterr().err

    assert main(["undo"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split(" · ")[0] for line in listed] == ["write 2", "write 1"]
    assert "2 photos (sidecar) · written · runs 1" in listed[0] and "1 photo (sidecar)" in listed[1]

    # The older write is refused while the newer one of the same photo stands; nothing is touched.
    assert main(["undo", "1"]) == 1
    err = capsys.readouterr().err
    assert "undo write 2 first" in err and "--force" in err and len(err.strip().splitlines()) == 1
    assert exiftool(p0_sidecar)["XMP-dc:Description"] == "Edited later."

    assert main(["undo", "2"]) == 0  # the newest write of p0: no --force needed
    assert "undo write 2: 2 restored" in capsys.readouterr().err
    assert p0_sidecar.read_bytes() == after_first and not p1_sidecar.exists()
    assert review_states()["p0.jpg"] == review_states()["p1.jpg"] == "approved"

    assert main(["undo", "1"]) == 0
    assert not p0_sidecar.exists() and not list(library.glob("*.xmp"))
    assert main(["undo"]) == 0
    assert [line.rsplit(" · ", 2)[1] for line in capsys.readouterr().out.splitlines()] == ["undone", "undone"]
    assert main(["undo", "7"]) == 1
    assert "there is no write 7" in capsys.readouterr().err


def test_undo_help_says_the_argument_is_a_write_not_a_run(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["undo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "not a run number" in text and "list the write operations" in text


DAMAGED_DARKTABLE_SIDECAR = """<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:darktable="http://darktable.sf.net/"
    xmlns:dc="http://purl.org/dc/elements/1.1/" darktable:history_end="1">
   <darktable:history><rdf:Seq><rdf:li darktable:operation="exposure"/></rdf:Seq></darktable:history>
   <dc:subject><rdf:Bag><rdf:li>Fish & Chips</rdf:li></rdf:Bag></dc:subject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def test_write_refuses_damaged_xmp_skips_a_fifo_and_writes_the_rest(library: Path, capsys) -> None:
    assert main(["review", "approve", "--all"]) == 0
    damaged = library / "p0.jpg.xmp"
    damaged.write_text(DAMAGED_DARKTABLE_SIDECAR, encoding="utf-8")
    content = damaged.read_bytes()
    fifo = library / "p1.jpg.xmp"
    os.mkfifo(fifo)
    leftover = library / ".captioneer-tmp-0123456789ab-p2.jpg.xmp"
    leftover.write_bytes(b"<half")
    capsys.readouterr()

    assert main(["write", "--dry-run", "--mode", "sidecar"]) == 1  # the dry run shows the same refusal
    captured = capsys.readouterr()
    refusal = f"{library / 'p0.jpg'}: The sidecar {damaged} was left untouched: it is not well-formed XML"
    assert refusal in captured.out
    assert "p1.jpg.xmp is a FIFO (named pipe), not a sidecar" in captured.out
    assert "dry run: 2 files would change, 0 already up to date, 1 skipped, 1 failed" in captured.err
    assert leftover.exists() and not (library / "p2.jpg.xmp").exists()

    assert main(["write", "--mode", "sidecar"]) == 1
    err = capsys.readouterr().err
    assert refusal in err and "invalid token at line 6" in err
    assert "removed 1 temp file(s) an interrupted write left" in err
    assert "2 written" in err and "1 skipped" in err and "1 failed" in err
    assert damaged.read_bytes() == content and fifo.is_fifo() and not leftover.exists()
    assert exiftool(library / "p2.jpg.xmp")["XMP-dc:Description"]
    states = review_states()
    assert states["p0.jpg"] == states["p1.jpg"] == "approved"  # still pending for the next write
    assert states["p2.jpg"] == states["p3.jpg"] == "written"


def test_iptc_notes_are_shown_in_the_dry_run_and_the_write(library: Path, capsys) -> None:
    ids = result_ids(capsys)
    photo = library / "p0.jpg"
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-IPTC:Keywords=Family", str(photo)], check=True)
    caption = "Ein sehr langer Satz über den Strand. " * 60  # 2,220 bytes
    assert (
        main(["review", "edit", str(ids[0]), "--caption", caption, "--add-keyword", "k" * 70, "--approve"])
        == 0
    )
    capsys.readouterr()

    assert main(["write", "--dry-run", "--mode", "embedded"]) == 0
    out = capsys.readouterr().out
    assert "note: IPTC Caption-Abstract shortened to IPTC's limit of 2,000 bytes" in out
    assert "is longer than IPTC's 64 bytes: written to XMP only" in out

    assert main(["write", "--mode", "embedded"]) == 0
    err = capsys.readouterr().err
    assert f"{photo}: note: IPTC Caption-Abstract shortened to IPTC's limit of 2,000 bytes" in err
    assert f"{photo}: note: keyword '{'k' * 70}' is longer than IPTC's 64 bytes" in err
    assert len(exiftool(photo)["IPTC:Caption-Abstract"].encode()) <= 2000


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


def test_approved_results_without_text_say_why_nothing_is_written(
    library: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cut-off answer leaves an empty result; approving it must not be answered with "approve first"."""
    with open_catalog() as catalog:
        ids = [result.id for result in catalog.results()]
    assert main(["review", "edit", str(ids[0]), "--caption", "", "--keywords", "", "--approve"]) == 0
    capsys.readouterr()
    before = digest(library)
    assert main(["write", "--mode", "sidecar"]) == 0
    err = capsys.readouterr().err
    assert "1 results ready to write have no caption and no keywords" in err and f"ids {ids[0]}" in err
    assert "approve results first" not in err and digest(library) == before
    assert main(["review", "reject", str(ids[0])]) == 0
    capsys.readouterr()
    assert main(["write", "--mode", "sidecar"]) == 0
    assert "approve results first" in capsys.readouterr().err
