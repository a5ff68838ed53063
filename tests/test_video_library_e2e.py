"""Issue 20's whole round, as a user runs it: a library of clips made here with PyAV (every container, a
portrait phone clip, a Live Photo beside its photo, a copy-protected and a cut-short clip) is tagged with the
tiny gguf and transformers models through `captioneer tag`, reviewed with `captioneer review`, written with
`captioneer write` and read back by exiftool from the sidecars. The tiny models answer nonsense, so the tests
assert what the product decides (what is catalogued, skipped and failed, where metadata goes, that no clip
changes) and what review put in, not the models' words."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from tests.test_tagger_e2e import cli
from tests.video_clips import make_clip, make_encrypted

REPO = Path(__file__).resolve().parents[1]
EXIFTOOL = shutil.which("exiftool")

pytestmark = pytest.mark.skipif(EXIFTOOL is None, reason="exiftool is the independent reader")

CLIPS = {
    "Trip/VID_0001.mp4": ("mp4", {}),
    "Trip/portrait.MOV": ("mov", {"rotation": 90}),
    "Trip/beach.mkv": ("mkv", {}),
    "Trip/old.avi": ("avi", {}),
    "Trip/phone.3gp": ("3gp", {}),
    "Trip/export.m4v": ("m4v", {}),
}
CLIPS_NAMES = [Path(name).name for name in CLIPS]


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def library(root: Path) -> dict[str, str]:
    """The test library; the SHA-256 of every clip, to prove none is ever written into."""
    for name, (kind, extra) in CLIPS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        make_clip(root / name, kind, seconds=2.0, **extra)
    Image.new("RGB", (320, 240), "orange").save(root / "Trip/IMG_0007.jpg")
    Image.new("RGB", (320, 240), "teal").save(root / "Trip/IMG_0008.jpg")
    make_clip(root / "Trip/IMG_0008.MOV", "mov", seconds=1.5)  # the Live Photo's motion
    make_encrypted(root / "Trip/rental.mp4")
    whole = (root / "Trip/VID_0001.mp4").read_bytes()
    (root / "Trip/cut.mp4").write_bytes(whole[: len(whole) // 3])
    return {path.name: digest(path) for path in (root / "Trip").iterdir()}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listed(home: Path, *query: str) -> list[dict]:
    states = [arg for state in ("new", "needs_review", "approved", "written") for arg in ("--status", state)]
    done = cli(home, "review", "list", "--json", *states, *query)
    return [json.loads(line) for line in ok(done).splitlines()]


def exif(path: Path) -> dict:
    done = subprocess.run(
        [EXIFTOOL, "-j", "-struct", "-XMP-dc:all", "-XMP-lr:all", "-XMP-digiKam:TagsList", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout)[0]


def test_a_clip_library_is_tagged_reviewed_and_written_to_sidecars_with_gguf(
    tmp_path: Path, tiny_gguf: tuple[Path, Path]
) -> None:
    model, mmproj = tiny_gguf
    root, home = tmp_path / "Phone", tmp_path / "home"
    before = library(root)
    engine = ["--engine", "gguf", "--model", str(model), "--mmproj", str(mmproj), "--temperature", "0",
              "--threads", "1", "--in-process", "--video-tokens", "512"]  # fmt: skip

    said = ok(cli(home, "tag", str(root), *engine))
    assert "2 photos, 8 videos" in said and "2 unreadable" in said
    assert "1 Live Photo video skipped (their photos are tagged)" in said
    assert "copy-protected" in said and "cut short" in said
    assert "2 photos and 6 videos to tag" in said and "finished: 8 tagged (2 photos and 6 videos)" in said
    tagged = {Path(item["path"]).name: item for item in listed(home)}
    assert set(tagged) == {*CLIPS_NAMES, "IMG_0007.jpg", "IMG_0008.jpg"}

    # The scene list: videos only (the photos are left out and said so), times checked against the clip.
    said = ok(cli(home, "tag", str(root), *engine, "--task", "scenes"))
    assert "2 photos skipped: the 'scenes' task takes only videos" in said and "6 videos to tag" in said
    scenes = listed(home, "--query", "type:video")
    assert sum(item["task"] == "scenes" for item in scenes) == 6

    # Review: the clip's caption, keywords and scene list as a person sets them, then approve everything.
    by_task = {(Path(item["path"]).name, item["task"]): item["result_id"] for item in listed(home)}
    ok(cli(home, "review", "edit", str(by_task["portrait.MOV", "keywords"]), "--caption",
           "A child waves at the camera.", "--keywords", "child; waving; garden"))  # fmt: skip
    ok(cli(home, "review", "edit", str(by_task["portrait.MOV", "scenes"]), "--caption",
           "0:00 A child walks into the garden.\n0:01 The child waves."))  # fmt: skip
    ok(cli(home, "review", "edit", str(by_task["beach.mkv", "keywords"]), "--keywords", "beach; sea"))
    ok(cli(home, "review", "approve", "--all"))
    shown = ok(cli(home, "review", "list", "--status", "approved", "--query", "type:video waves"))
    assert "    caption:  0:00 A child walks into the garden.\n              0:01 The child waves.\n" in shown
    found = ok(cli(home, "search", "type:video garden"))
    assert "0:00 A child walks into the garden. / 0:01 The child waves." in found

    # Written: photos inside (embedded mode), clips only to sidecars, Lightroom naming for the clips.
    said = ok(cli(home, "write", "--mode", "embedded", "--naming", "stem"))
    assert said.count("videos are never modified: using a sidecar") == 6
    after = {path.name: digest(path) for path in (root / "Trip").iterdir() if path.suffix != ".xmp"}
    for name in [*CLIPS_NAMES, "IMG_0008.MOV", "rental.mp4", "cut.mp4"]:
        assert after[name] == before[name], f"{name} was changed"
    assert after["IMG_0007.jpg"] != before["IMG_0007.jpg"]  # the photo took its metadata inside
    sidecars = sorted(path.name for path in (root / "Trip").glob("*.xmp"))
    assert sidecars == sorted(f"{Path(name).stem}.xmp" for name in CLIPS_NAMES)

    portrait = exif(root / "Trip/portrait.xmp")
    # The newest task's caption is the description (the scene list, tagged after the keywords task).
    assert portrait["Description"] == "0:00 A child walks into the garden.\n0:01 The child waves."
    assert portrait["Subject"] == ["child", "waving", "garden"]
    assert portrait["HierarchicalSubject"] == ["child", "waving", "garden"]
    assert exif(root / "Trip/beach.xmp")["Subject"] == ["beach", "sea"]

    # Written once is written: a second write changes nothing; undo takes the sidecars away and gives the
    # photo its bytes back.
    again = ok(cli(home, "write", "--mode", "embedded", "--naming", "stem"))
    assert "0 written" in again or "nothing to write" in again, again
    assert {path.name: digest(path) for path in (root / "Trip").glob("*.xmp")}.keys() == set(sidecars)
    ok(cli(home, "undo", "1"))
    assert not list((root / "Trip").glob("*.xmp"))
    assert digest(root / "Trip/IMG_0007.jpg") == before["IMG_0007.jpg"]



def test_the_transformers_engine_tags_clips_as_video_and_the_sidecars_read_back(
    tmp_path: Path, tiny_hf_model: Path
) -> None:
    root, home = tmp_path / "Clips", tmp_path / "home"
    root.mkdir()
    make_clip(root / "walk.mp4", "mp4", seconds=3.0)
    make_clip(root / "turned.mov", "mov", seconds=2.0, rotation=270)
    before = {path.name: digest(path) for path in root.iterdir()}
    engine = ["--engine", "transformers", "--model", str(tiny_hf_model), "--quant", "fp32", "--max-tokens",
              "24", "--temperature", "0", "--in-process", "--video-tokens", "256"]  # fmt: skip
    said = ok(cli(home, "tag", str(root), *engine, "--task", "caption"))
    assert "Clips: 2 videos, 2 new" in said and ": 2 videos to tag" in said
    results = listed(home)
    assert len(results) == 2 and all(item["status"] in {"new", "needs_review"} for item in results)
    for item in results:
        name = Path(item["path"]).stem
        ok(cli(home, "review", "edit", str(item["result_id"]), "--caption", f"Clip {name}."))
    ok(cli(home, "review", "approve", "--all"))
    ok(cli(home, "write", "--mode", "sidecar"))
    assert {path.name: digest(path) for path in root.iterdir() if path.suffix != ".xmp"} == before
    assert exif(root / "walk.mp4.xmp")["Description"] == "Clip walk."
    assert exif(root / "turned.mov.xmp")["Description"] == "Clip turned."
