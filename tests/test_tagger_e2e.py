"""The album tagger end to end: the real gguf engine on the tiny model, SIGKILL mid-run, resume, write,
exiftool read-back, rescan after writing, and undo back to byte-identical files."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from captioneer.desktop.library.catalog import open_catalog
from captioneer.desktop.library.fields import LIGHTROOM
from captioneer.desktop.library.merge import clean_keyword

REPO = Path(__file__).resolve().parents[1]
GOOD_PHOTOS = 200
"""Photos to tag (plus three bad files): some 20 s on an idle 2-core CPU, minutes on a busy one."""
KILL_AFTER = 40
EXIFTOOL = shutil.which("exiftool")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        EXIFTOOL is None, reason="exiftool (libimage-exiftool-perl) is the independent reader"
    ),
]

FOREIGN_SIDECAR = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:acme="http://example.com/acme/1.0/"
    xmp:Rating="4"
    acme:Album="Summer at the lake">
   <dc:subject><rdf:Bag><rdf:li>Holiday</rdf:li><rdf:li>Lake</rdf:li></rdf:Bag></dc:subject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>
"""

DARKTABLE_SIDECAR = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:darktable="http://darktable.sf.net/"
    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"
    xmpMM:DerivedFrom="dt.jpg"
    darktable:xmp_version="5"
    darktable:raw_params="0"
    darktable:history_end="1">
   <darktable:history>
    <rdf:Seq>
     <rdf:li darktable:num="0" darktable:operation="exposure" darktable:enabled="1"
      darktable:modversion="6" darktable:params="0000000000000000" darktable:multi_name=""
      darktable:multi_priority="0"/>
    </rdf:Seq>
   </darktable:history>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>
"""


def make_library(root: Path) -> dict[str, Path]:
    """A few hundred small generated photos in mixed formats, bad files, existing keywords and sidecars."""
    rng = random.Random(7)
    special: dict[str, Path] = {}
    for i in range(GOOD_PHOTOS):
        folder = root / ("2023" if i % 3 else "2024/trip") / f"set{i % 5}"
        folder.mkdir(parents=True, exist_ok=True)
        size = (rng.randint(64, 200), rng.randint(64, 200))
        image = Image.effect_noise(size, rng.randint(10, 120)).convert("RGB")
        image.paste(
            (rng.randrange(256), rng.randrange(256), rng.randrange(256)), (0, 0, size[0] // 2, size[1] // 2)
        )
        suffix = (".jpg", ".jpg", ".jpg", ".png", ".webp")[i % 5]
        path = folder / f"IMG_{i:04d}{suffix}"
        image.save(path)
        special.setdefault(suffix, path)
    (root / "bad").mkdir()
    (root / "bad" / "zero.jpg").write_bytes(b"")
    (root / "bad" / "random.jpg").write_bytes(random.Random(1).randbytes(3000))
    whole = special[".jpg"].read_bytes()
    (root / "bad" / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    special["cut"] = root / "bad" / "cut.jpg"
    # Existing keywords embedded by another tool.
    keyworded = root / "2023" / "set1" / "IMG_0001.jpg"
    subprocess.run(
        [
            EXIFTOOL,
            "-q",
            "-overwrite_original",
            "-XMP-dc:Subject=Family",
            "-XMP-dc:Subject=Beach",
            str(keyworded),
        ],
        check=True,
    )
    special["keyworded"] = keyworded
    foreign = root / "2023" / "set2" / "IMG_0002.jpg"
    Path(f"{foreign}.xmp").write_text(FOREIGN_SIDECAR, encoding="utf-8")
    special["foreign"] = foreign
    darktable = root / "2023" / "set4" / "IMG_0004.webp"
    Path(f"{darktable}.xmp").write_text(DARKTABLE_SIDECAR, encoding="utf-8")
    special["darktable"] = darktable
    readonly = root / "2023" / "set2" / "IMG_0007.jpg"
    readonly.chmod(0o444)
    special["readonly"] = readonly
    return special


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()
    }


def exiftool(*paths: Path) -> list[dict[str, object]]:
    out = subprocess.run(
        [EXIFTOOL, "-j", "-struct", "-XMP:all", *map(str, paths)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout)


def as_list(value: object) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def same_text(read: str, ours: str) -> bool:
    """exiftool prints number-like strings as numbers; compare them as numbers."""
    if read == ours:
        return True
    try:
        return float(read) == float(ours)
    except ValueError:
        return False


def contains(read: list[str], ours: str) -> bool:
    return any(same_text(value, ours) for value in read)


def cli(home: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "captioneer.desktop.cli", *args],
        env={**os.environ, "CAPTIONEER_HOME": str(home)},
        cwd=REPO,
        stdin=subprocess.DEVNULL,  # no terminal: `tag` must never wait for an answer here
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def results_in_catalog(home: Path) -> int:
    path = home / "data" / "catalog.sqlite"
    if not path.exists():
        return 0
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5)
    try:
        return int(db.execute("SELECT COUNT(*) FROM results").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def test_tag_kill_resume_write_exiftool_undo(
    tmp_path: Path, captioneer_home: Path, tiny_gguf: tuple[Path, Path]
) -> None:
    model, mmproj = tiny_gguf
    root = tmp_path / "Photos"
    special = make_library(root)
    engine = [
        "--model",
        str(model),
        "--mmproj",
        str(mmproj),
        "--image-tokens",
        "16",
        "--max-keywords",
        "3",
        "--temperature",
        "0",
        "--threads",
        "2",
        "--recycle-every",
        "80",
    ]
    clock = time.monotonic()
    timings: dict[str, float] = {}

    def lap(name: str) -> None:
        nonlocal clock
        now = time.monotonic()
        timings[name] = now - clock
        clock = now

    # 1. Tag, and SIGKILL the command mid-run (its engine host process goes with the process group).
    child = subprocess.Popen(
        [sys.executable, "-m", "captioneer.desktop.cli", "tag", str(root), *engine],
        env={**os.environ, "CAPTIONEER_HOME": str(captioneer_home)},
        cwd=REPO,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 600
        while (
            results_in_catalog(captioneer_home) < 40 and time.monotonic() < deadline and child.poll() is None
        ):
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)  # the engine host too, as a power cut would
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL, child.stderr.read() if child.stderr else ""
    killed_at = results_in_catalog(captioneer_home)
    assert KILL_AFTER <= killed_at < GOOD_PHOTOS, "the kill should land mid-run"
    lap(f"tag until killed at {killed_at} results")

    # 2. Run the same command again: it resumes and finishes every photo exactly once.
    resumed = cli(captioneer_home, "tag", str(root), *engine)
    assert resumed.returncode == 1, resumed.stderr  # the half JPEG fails to decode and is listed
    assert "resuming run 1" in resumed.stderr and "photos/min" in resumed.stderr
    assert f"failed {special['cut']}" in resumed.stderr
    lap("resume to the end")
    with open_catalog(readonly=True) as catalog:
        db = catalog.db
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        per_photo = db.execute("SELECT photo_id, COUNT(*) FROM results GROUP BY photo_id").fetchall()
        assert len(per_photo) == GOOD_PHOTOS and {count for _, count in per_photo} == {1}
        states = dict(db.execute("SELECT state, COUNT(*) FROM run_items GROUP BY state").fetchall())
        assert states == {"done": GOOD_PHOTOS, "failed": 1}
        unreadable = {
            Path(r[0]).name for r in db.execute("SELECT path FROM photos WHERE status = 'unreadable'")
        }
        assert unreadable == {"zero.jpg", "random.jpg", "cut.jpg"}
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1

    runs = cli(captioneer_home, "runs", "--json")
    assert json.loads(runs.stdout)[0]["done"] == GOOD_PHOTOS

    # 3. Review (the random tiny model may repeat itself: flagged results need approving too), then write.
    approve = cli(
        captioneer_home, "review", "approve", "--all", "--status", "new", "--status", "needs_review"
    )
    assert approve.returncode == 0, approve.stderr
    before_write = snapshot(root)
    dry = cli(captioneer_home, "write", "--dry-run", "--mode", "both")
    assert dry.returncode == 0 and "dc:subject" in dry.stdout
    assert snapshot(root) == before_write, "a dry run touches nothing"
    written = cli(captioneer_home, "write", "--mode", "both")
    assert written.returncode == 0, written.stderr
    assert f"{GOOD_PHOTOS} written" in written.stderr
    lap("review, dry run, write")

    # 4. exiftool reads our keywords and caption back; what was there before is still there.
    with open_catalog(readonly=True) as catalog:
        results = {Path(r.path): r for r in catalog.results()}
    sample = [special[".jpg"], special[".png"], special["keyworded"], special["foreign"]]
    targets = [special[".webp"].with_name(special[".webp"].name + ".xmp"), *sample]
    for path, tags in zip(targets, exiftool(*targets), strict=True):
        photo = path.with_suffix("") if path.suffix == ".xmp" else path
        result = results[photo]
        subjects = as_list(tags.get("Subject"))
        hierarchy = as_list(tags.get("HierarchicalSubject"))
        for keyword in result.keywords:
            assert contains(subjects, clean_keyword(keyword)), (path, keyword, subjects)
            assert contains(hierarchy, LIGHTROOM.entry(clean_keyword(keyword))), (path, keyword, hierarchy)
        assert same_text(str(tags.get("Description")), result.caption.strip()), (
            path,
            tags.get("Description"),
        )
    [keyworded] = exiftool(special["keyworded"])
    assert as_list(keyworded["Subject"])[:2] == ["Family", "Beach"]
    [foreign] = exiftool(Path(f"{special['foreign']}.xmp"))
    assert foreign["Album"] == "Summer at the lake" and str(foreign["Rating"]) == "4"
    assert as_list(foreign["Subject"])[:2] == ["Holiday", "Lake"]
    darktable_xmp = Path(f"{special['darktable']}.xmp").read_text(encoding="utf-8")
    assert 'darktable:operation="exposure"' in darktable_xmp and "darktable:history_end" in darktable_xmp
    assert "http://ns.captioneer.app/1.0/" in darktable_xmp  # our provenance namespace joined theirs
    # The read-only photo is untouched; its metadata went to a sidecar.
    assert snapshot(root)[str(special["readonly"])] == before_write[str(special["readonly"])]
    assert Path(f"{special['readonly']}.xmp").exists()
    # Nothing was written into the bad files.
    for name in ("zero.jpg", "random.jpg", "cut.jpg"):
        assert snapshot(root)[str(root / "bad" / name)] == before_write[str(root / "bad" / name)]

    lap("exiftool checks")
    # 5. Our own writes keep photo identity: a rescan finds every photo and has nothing to tag.
    again = cli(captioneer_home, "tag", str(root), *engine)
    assert again.returncode == 0 and "nothing to tag" in again.stderr, again.stderr
    assert "0 new" in again.stderr
    assert cli(captioneer_home, "write", "--mode", "both").stderr.count("nothing to write") == 1

    lap("rescan")
    # 6. Undo the run: every file byte-identical to before the write; our new sidecars are gone.
    undone = cli(captioneer_home, "undo", "1")
    assert undone.returncode == 0, undone.stderr
    assert snapshot(root) == before_write
    with open_catalog(readonly=True) as catalog:
        assert {r.review for r in catalog.results()} == {"approved"}
    lap("undo")
    print(" · ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items()))


def test_no_retry_keeps_a_bad_answer_after_one_attempt(
    tmp_path: Path, captioneer_home: Path, tiny_gguf: tuple[Path, Path]
) -> None:
    """The tiny model's keywords JSON, cut at 24 tokens, is invalid: asked again by default, once with
    ``--no-retry``; either way the photo is kept for review."""
    model, mmproj = tiny_gguf
    root = tmp_path / "Photos"
    root.mkdir()
    for i in range(2):
        Image.new("RGB", (320, 240), (i * 90, 100, 200 - i * 60)).save(root / f"photo_{i}.jpg")
    attempts = {}
    for flag in ("", "--no-retry"):
        home = tmp_path / f"home{flag}"
        done = cli(home, "tag", str(root), "--engine", "gguf", "--model", str(model), "--mmproj", str(mmproj),
                   "--image-tokens", "16", "--max-tokens", "24", "--temperature", "0", "--threads", "1",
                   "--in-process", *([flag] if flag else []))
        assert done.returncode == 0, done.stderr
        db = sqlite3.connect(home / "data" / "catalog.sqlite")
        try:
            rows = db.execute("SELECT attempts, review, review_reason FROM results").fetchall()
        finally:
            db.close()
        assert len(rows) == 2 and all(review == "needs_review" for _, review, _ in rows)
        attempts[flag] = {count for count, _, _ in rows}
        assert all(reason.startswith("Cut-off output after") for _, _, reason in rows)
        assert all("cut off at 24 tokens" in reason for _, _, reason in rows)
    assert attempts == {"": {2}, "--no-retry": {1}}


def test_retagging_writes_only_what_review_shows(
    tmp_path: Path, captioneer_home: Path, tiny_gguf: tuple[Path, Path]
) -> None:
    """Issue 14's case with the real engine: approve, tag again (skipped without a terminal, then replaced),
    tag with another task, approve; the dry run has one change per file and exiftool reads back exactly the
    current results `review list` shows, never the superseded keywords."""
    model, mmproj = tiny_gguf
    root = tmp_path / "Photos"
    root.mkdir()
    for i in range(2):
        Image.new("RGB", (320, 240), (i * 90, 100, 200 - i * 60)).save(root / f"photo_{i}.jpg")
    engine = ["--engine", "gguf", "--model", str(model), "--mmproj", str(mmproj), "--image-tokens", "16",
              "--max-keywords", "3", "--temperature", "0", "--threads", "1", "--in-process"]  # fmt: skip

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = cli(captioneer_home, *args)
        assert done.returncode == 0, done.stderr
        return done

    def listed(*args: str) -> list[dict]:
        return [json.loads(line) for line in run("review", "list", "--json", *args).stdout.splitlines()]

    run("tag", str(root), *engine)
    run("review", "approve", "--all", "--status", "new", "--status", "needs_review")
    old = {item["path"]: item for item in listed("--status", "approved")}
    # No terminal to ask: the reviewed photos are skipped, with the flag that tags them again.
    skipped = run("tag", str(root), "--redo", *engine)
    assert "skipped 2 photos whose keywords result you already reviewed" in skipped.stderr
    assert "--reviewed replace" in skipped.stderr
    run("tag", str(root), "--redo", "--reviewed", "replace", *engine)
    new = {item["path"]: item for item in listed()}
    assert len(new) == 2
    assert not {r["result_id"] for r in new.values()} & {r["result_id"] for r in old.values()}
    for item in new.values():
        run("review", "edit", str(item["result_id"]), "--keywords", "harbour; fishing boat", "--approve")
    run("tag", str(root), "--task", "caption", *engine)
    run("review", "approve", "--all", "--status", "new", "--status", "needs_review")
    current = listed("--status", "approved")
    assert sorted(item["task"] for item in current) == ["caption", "caption", "keywords", "keywords"]

    dry = run("write", "--dry-run", "--mode", "sidecar")
    for path in old:
        assert dry.stdout.count(f"{path}\n") == 1, dry.stdout  # one combined change per file
    run("write", "--mode", "sidecar")
    for path in old:
        [tags] = exiftool(Path(f"{path}.xmp"))
        mine = {item["task"]: item for item in current if item["path"] == path}
        assert sorted(as_list(tags.get("Subject"))) == ["fishing boat", "harbour"]
        assert sorted(as_list(tags.get("TagsList"))) == ["fishing boat", "harbour"]
        assert same_text(str(tags.get("Description")), mine["caption"]["caption"].strip())

    # Keep both: the written results stay current, the new ones are versions; nothing new to write.
    kept = run("tag", str(root), "--redo", "--reviewed", "keep", *engine)
    assert "2 new results were kept as versions" in kept.stderr
    assert "nothing to write" in run("write", "--dry-run").stderr
