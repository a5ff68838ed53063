"""A clip's reviewed result is written to an XMP sidecar, never into the clip: `captioneer write` in
sidecar and embedded mode, full and stem naming, a Lightroom sidecar updated and kept, a photo and a clip with
one stem never sharing a sidecar, undo; exiftool reads the sidecars back. Clips are real
(tests/video_clips.py); results are recorded straight into the catalog as a run stores them."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

from captioneer.desktop.cli import main
from captioneer.desktop.core.scenes import Scene, scene_lines
from captioneer.desktop.library.catalog import open_catalog
from captioneer.desktop.library.catalog.runs import (
    NewResult,
    get_run,
    insert_run,
    queue_photos,
    record_result,
)
from captioneer.desktop.library.metadata import existing_keywords
from captioneer.desktop.library.runs import RunSpec, plan_run
from captioneer.desktop.library.scanner import scan_library
from captioneer.desktop.library.sidecars import (
    VIDEO_SIDECAR,
    SidecarNaming,
    WriteMode,
    choose_targets,
    find_sidecar,
    stem_owner,
)
from tests.fakes.tagging_engine import fake_config
from tests.test_review_write_cli import exiftool
from tests.video_clips import make_clip

pytestmark = pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is the independent reader")

LIGHTROOM_SIDECAR = """<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="Adobe XMP Core 7.0-c000">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/"
    xmlns:xmpDM="http://ns.adobe.com/xmp/1.0/DynamicMedia/"
   xmp:Rating="4"
   xmpDM:pick="1">
   <dc:subject><rdf:Bag><rdf:li>Family</rdf:li><rdf:li>Summer</rdf:li></rdf:Bag></dc:subject>
   <lr:hierarchicalSubject><rdf:Bag><rdf:li>People|Family</rdf:li></rdf:Bag></lr:hierarchicalSubject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""

RESULTS = {
    "trip.jpg": NewResult(caption="A harbour at dawn.", keywords=["harbour", "boats"], title="Harbour"),
    "trip.mp4": NewResult(
        caption="A dog runs along the beach and jumps into the sea.",
        keywords=["dog", "beach", "running"],
        title="Dog at the beach",
        alt_text="A dog running into the sea",
    ),
    "clip.MP4": NewResult(caption="Children play football in a park.", keywords=["football"], title="Match"),
    "home.mov": NewResult(caption="A birthday cake with candles.", keywords=["cake", "Family"]),
}
CLIPS = ("trip.mp4", "clip.MP4", "home.mov")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listed(value: object) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else [str(value)]


def add_rows(root: Path, names: list[str]) -> None:
    """Catalog rows for the files the scan did not take (clips, until the scan knows videos)."""
    with open_catalog() as catalog:
        known = {Path(photo.path).name for photo in catalog.photos_under(root)}
        [library_id] = catalog.db.execute("SELECT library_id FROM photos LIMIT 1").fetchone()
        with catalog.transaction() as db:
            for name in names:
                if name in known:
                    continue
                st = (root / name).stat()
                db.execute(
                    "INSERT INTO photos (library_id, path, size, mtime_ns, content_key, status, first_seen, "
                    "last_seen) VALUES (?, ?, ?, ?, ?, 'present', ?, ?)",
                    (library_id, str(root / name), st.st_size, st.st_mtime_ns, f"test:{name}", time.time(),
                     time.time()),
                )


def tag(root: Path, results: dict[str, NewResult]) -> None:
    """Results recorded for ``results``' files (one keywords run) and approved."""
    with open_catalog() as catalog:
        scan_library(catalog, root)
    add_rows(root, list(results))
    with open_catalog() as catalog:
        photos = [photo for photo in catalog.photos_under(root) if Path(photo.path).name in results]
        plan = plan_run(catalog, str(root), photos, RunSpec(task="keywords"), fake_config())
        run = get_run(catalog, plan.run_id)
        for photo in photos:
            record_result(catalog, run, photo.id, results[Path(photo.path).name])
    assert main(["review", "approve", "--all"]) == 0


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "lib"
    root.mkdir()
    Image.new("RGB", (64, 48), (40, 90, 160)).save(root / "trip.jpg", quality=90)
    make_clip(root / "trip.mp4", "mp4")
    make_clip(root / "clip.MP4", "mp4")
    make_clip(root / "home.mov", "mov", rotation=90)
    (root / "home.xmp").write_text(LIGHTROOM_SIDECAR, encoding="utf-8")  # Lightroom's, for home.mov
    return root


@pytest.mark.parametrize(
    ("mode", "naming", "sidecars"),
    [
        ("sidecar", "full",
         {"trip.jpg": "trip.jpg.xmp", "trip.mp4": "trip.mp4.xmp", "clip.MP4": "clip.MP4.xmp"}),
        ("embedded", "full", {"trip.jpg": None, "trip.mp4": "trip.mp4.xmp", "clip.MP4": "clip.MP4.xmp"}),
        # Stem naming: the clip alone under its stem takes it; trip.jpg keeps trip.xmp, so trip.mp4 stays off.
        ("sidecar", "stem", {"trip.jpg": "trip.xmp", "trip.mp4": "trip.mp4.xmp", "clip.MP4": "clip.xmp"}),
        ("embedded", "stem", {"trip.jpg": None, "trip.mp4": "trip.mp4.xmp", "clip.MP4": "clip.xmp"}),
    ],
)
def test_clip_results_are_written_to_sidecars_only(
    library: Path, mode: str, naming: str, sidecars: dict[str, str | None], capsys: pytest.CaptureFixture[str]
) -> None:
    clips = {name: (sha256(library / name), os.stat(library / name).st_mtime_ns) for name in CLIPS}
    photo_before = sha256(library / "trip.jpg")
    tag(library, RESULTS)
    capsys.readouterr()

    assert main(["write", "--mode", mode, "--naming", naming]) == 0
    err = capsys.readouterr().err
    assert "4 written" in err
    for name, (digest, mtime) in clips.items():
        assert (sha256(library / name), os.stat(library / name).st_mtime_ns) == (digest, mtime), name
    if mode == "embedded":
        assert err.count("videos are never modified: using a sidecar") == 3
        assert sha256(library / "trip.jpg") != photo_before and not (library / "trip.jpg.xmp").exists()
    else:
        assert "videos are never modified" not in err  # the sidecar was asked for: nothing to explain
    expected = {sidecar for sidecar in sidecars.values() if sidecar} | {"home.xmp"}
    assert {path.name for path in library.glob("*.xmp")} == expected

    for name, sidecar in sidecars.items():
        if sidecar is None:
            continue
        read = exiftool(library / sidecar)
        result = RESULTS[name]
        assert read["XMP-dc:Description"] == result.caption
        assert read["XMP-dc:Title"] == result.title
        assert set(listed(read["XMP-dc:Subject"])) == set(result.keywords)
        assert set(listed(read["XMP-lr:HierarchicalSubject"])) == set(result.keywords)
        assert read.get("XMP-iptcCore:AltTextAccessibility") == result.alt_text
        assert any(key.startswith("XMP-captioneer:") for key in read), sorted(read)


def test_lightroom_sidecar_of_a_clip_is_updated_and_keeps_its_rating(library: Path, capsys) -> None:
    tag(library, {"home.mov": RESULTS["home.mov"]})
    assert main(["write", "--mode", "embedded"]) == 0
    assert "1 written" in capsys.readouterr().err
    assert not (library / "home.mov.xmp").exists()  # updated, not shadowed by a rival
    read = exiftool(library / "home.xmp")
    assert read["XMP-xmp:Rating"] == 4 and read["XMP-xmpDM:Pick"] == 1
    assert listed(read["XMP-dc:Subject"]) == ["Family", "Summer", "cake"]
    assert set(listed(read["XMP-lr:HierarchicalSubject"])) == {"People|Family", "Summer", "cake"}
    assert read["XMP-dc:Description"] == "A birthday cake with candles."


def test_undo_removes_new_sidecars_and_restores_the_lightroom_one(library: Path, capsys) -> None:
    lightroom = (library / "home.xmp").read_bytes()
    before = {path.name: sha256(path) for path in library.iterdir()}
    tag(library, RESULTS)
    assert main(["write", "--mode", "sidecar"]) == 0
    assert (library / "trip.mp4.xmp").exists() and (library / "home.xmp").read_bytes() != lightroom
    capsys.readouterr()
    assert main(["undo", "1"]) == 0
    assert "4 restored" in capsys.readouterr().err
    assert {path.name: sha256(path) for path in library.iterdir()} == before
    assert main(["search", "status:approved", "--paths"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4


def test_dry_run_names_the_clip_sidecar_and_touches_nothing(library: Path, capsys) -> None:
    tag(library, {"clip.MP4": RESULTS["clip.MP4"]})
    before = {path.name: sha256(path) for path in library.iterdir()}
    assert main(["write", "--dry-run", "--mode", "embedded"]) == 0
    out = capsys.readouterr().out
    assert "create sidecar: clip.MP4.xmp" in out and "videos are never modified: using a sidecar" in out
    assert "Children play football in a park." in out
    assert {path.name: sha256(path) for path in library.iterdir()} == before


def test_scene_list_is_written_as_the_clip_description(library: Path, capsys) -> None:
    """The scenes task's result (timed lines) lands in dc:description as written, line breaks kept."""
    scenes = scene_lines([Scene(0, "A dog waits on the sand."), Scene(1.5, "It runs into the sea.")])
    with open_catalog() as catalog:
        scan_library(catalog, library)
    add_rows(library, ["trip.mp4"])
    with open_catalog() as catalog:
        [clip] = [photo for photo in catalog.photos_under(library) if photo.path.endswith("trip.mp4")]
        spec = RunSpec(task="scenes")
        with catalog.transaction() as db:
            run_id = insert_run(db, str(library), spec, ("gguf", "fake-model.gguf", None), "scenes", "keep")
            queue_photos(db, run_id, [clip.id])
        record_result(catalog, get_run(catalog, run_id), clip.id, NewResult(caption=scenes))
    assert main(["review", "approve", "--all"]) == 0
    assert main(["write", "--mode", "sidecar"]) == 0
    read = exiftool(library / "trip.mp4.xmp")
    assert read["XMP-dc:Description"] == "0:00 A dog waits on the sand.\n0:01 It runs into the sea."
    assert "XMP-dc:Subject" not in read


def test_a_clips_existing_keywords_come_from_its_sidecar(library: Path) -> None:
    """Never from inside the clip (exiftool can put XMP there; Captioneer neither reads nor writes it)."""
    clip = library / "trip.mp4"
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", "-XMP-dc:Subject=Inside", str(clip)], check=True
    )
    assert "Inside" in listed(exiftool(clip)["XMP-dc:Subject"])
    assert existing_keywords(clip) == ((), ())
    tag(library, {"trip.mp4": RESULTS["trip.mp4"]})
    assert main(["write", "--mode", "embedded"]) == 0
    keywords, notes = existing_keywords(clip)
    assert set(keywords) == {"dog", "beach", "running"} and notes == ()
    assert existing_keywords(library / "home.mov") == (("Family", "Summer"), ())


@pytest.mark.parametrize(
    ("item", "siblings", "owner"),
    [
        ("clip.mp4", ["clip.mp4"], True),
        ("IMG_1.MOV", ["IMG_1.HEIC", "IMG_1.MOV"], False),  # a Live Photo: the still keeps the stem name
        ("IMG_1.HEIC", ["IMG_1.HEIC", "IMG_1.MOV"], True),
        ("trip.mp4", ["trip.jpg", "trip.mp4"], False),
        ("trip.jpg", ["trip.jpg", "trip.mp4"], True),
        ("a.mp4", ["a.mp4", "a.mov"], False),  # two clips: neither
        ("a.mov", ["a.mp4", "a.mov"], False),
        ("IMG_1.CR2", ["IMG_1.CR2", "IMG_1.JPG", "IMG_1.MOV"], True),
        ("IMG_1.JPG", ["IMG_1.CR2", "IMG_1.JPG", "IMG_1.MOV"], False),
        ("IMG_1.MOV", ["IMG_1.CR2", "IMG_1.JPG", "IMG_1.MOV"], False),
        ("IMG_1.JPG", ["IMG_1.JPG", "IMG_1.TIF", "IMG_1.MOV"], False),
    ],
)
def test_stem_owner_with_clips(item: str, siblings: list[str], owner: bool) -> None:
    assert stem_owner(Path(item), siblings) is owner


@pytest.mark.parametrize("mode", list(WriteMode))
@pytest.mark.parametrize("name", ["clip.mp4", "CLIP.MOV", "a.m4v", "a.mkv", "a.avi", "a.3gp"])
def test_a_clip_always_goes_to_a_sidecar(name: str, mode: WriteMode) -> None:
    targets = choose_targets(Path(name), mode, image_writable=True, exiv2_can_write=True)
    assert (targets.embed, targets.sidecar) == (False, True)
    assert targets.reasons == (() if mode is WriteMode.SIDECAR else (VIDEO_SIDECAR,))


def test_a_live_photo_pair_never_shares_a_sidecar(tmp_path: Path) -> None:
    for name in ("IMG_1.HEIC", "IMG_1.MOV"):
        (tmp_path / name).write_bytes(b"x")
    still, clip = find_sidecar(tmp_path / "IMG_1.HEIC", SidecarNaming.STEM), find_sidecar(
        tmp_path / "IMG_1.MOV", SidecarNaming.STEM
    )
    assert (still.path.name, clip.path.name) == ("IMG_1.xmp", "IMG_1.MOV.xmp")
    assert "would be shared with another file" in clip.notes[0]
    (tmp_path / "IMG_1.xmp").write_text(LIGHTROOM_SIDECAR, encoding="utf-8")
    clip = find_sidecar(tmp_path / "IMG_1.MOV", SidecarNaming.FULL)
    assert clip.path.name == "IMG_1.MOV.xmp" and "IMG_1.xmp belongs to another file" in clip.notes[0]
    assert find_sidecar(tmp_path / "IMG_1.HEIC", SidecarNaming.FULL).path.name == "IMG_1.xmp"
