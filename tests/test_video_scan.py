"""Video clips in a library scan, on real clips made with PyAV: every container catalogued, Live Photo clips
and AppleDouble files left out, broken clips unreadable with one line, moves and metadata edits keeping a
clip's key, keywords from sidecars only, and a scan without PyAV."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from captioneer.backends.cancel import CancelToken
from captioneer.backends.errors import Cancelled
from captioneer.desktop.cli import main
from captioneer.desktop.core.video import AUDIO_ONLY, CUT_SHORT, NEEDS_PYAV, PROTECTED
from captioneer.desktop.evaluation.photos import collect_photos
from captioneer.desktop.library.browse import BrowseFilter, library_trees, photo_ids
from captioneer.desktop.library.catalog import open_catalog
from captioneer.desktop.library.catalog.errors import CatalogError
from captioneer.desktop.library.catalog.runs import NewResult, get_run, record_result
from captioneer.desktop.library.catalog.search import SearchSyntaxError, compile_query
from captioneer.desktop.library.identity import video_content_key
from captioneer.desktop.library.runs import RunSpec, plan_run
from captioneer.desktop.library.scanner import scan_library
from captioneer.desktop.library.video_scan import live_photo_videos
from tests.fakes.tagging_engine import fake_config
from tests.video_clips import KINDS, cut, make_audio_only, make_clip, make_encrypted

CONTAINERS = ("mp4", "mov", "m4v", "mkv", "avi", "3gp")


def make_photo(path: Path, colour: str = "red") -> Path:
    Image.new("RGB", (40, 30), colour).save(path)
    return path


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """One clip of every container, a Live Photo pair, an AppleDouble file and three broken clips."""
    root = tmp_path / "Videos"
    (root / "phone").mkdir(parents=True)
    for name in CONTAINERS:
        make_clip(root / f"clip_{name}{KINDS[name].suffix}", name, fps=10 + CONTAINERS.index(name))
    make_photo(root / "phone" / "IMG_1234.HEIC.jpg")  # a photo, but not the clip's pair (another stem)
    make_photo(root / "phone" / "IMG_2000.JPG")
    make_clip(root / "phone" / "IMG_2000.MOV", "mov", seconds=1.5)  # its Live Photo motion
    # What Finder leaves on a foreign disk beside a copied clip: resource-fork data under a video's name.
    (root / "phone" / "._IMG_2000.MOV").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00" + b"Mac OS X" * 8)
    (root / "broken").mkdir()
    make_audio_only(root / "broken" / "voice.mp4")
    make_encrypted(root / "broken" / "drm.mp4")
    cut(make_clip(root / "broken" / "whole.mp4", "mp4", seconds=3.0), 0.4, "cut.mp4")
    (root / "broken" / "whole.mp4").unlink()
    return root


def names_in_catalog(catalog, root: Path) -> dict[str, str]:  # noqa: ANN001 - a Catalog
    return {str(Path(p.path).relative_to(root)): p.status for p in catalog.photos_under(root, status=None)}


def test_every_container_is_catalogued_and_live_photo_clips_and_appledouble_are_not(library: Path) -> None:
    with open_catalog() as catalog:
        report = scan_library(catalog, library)
        found = names_in_catalog(catalog, library)
    clips = {f"clip_{name}{KINDS[name].suffix}" for name in CONTAINERS}
    assert {name for name, status in found.items() if status == "present"} == clips | {
        "phone/IMG_1234.HEIC.jpg",
        "phone/IMG_2000.JPG",
    }
    assert "phone/IMG_2000.MOV" not in found and "phone/._IMG_2000.MOV" not in found
    assert report.live_photo_videos == [str(library / "phone" / "IMG_2000.MOV")]
    assert (report.files, report.videos, report.new) == (11, 9, 11)
    summary = report.summary()
    assert summary.startswith("2 photos, 9 videos, 11 new")
    assert "1 Live Photo video skipped (their photos are tagged)" in summary
    # Broken clips: unreadable, each with the probe's one line, and nothing about the Live Photo per file.
    assert sorted(report.problem_lines()) == sorted(
        [
            f"unreadable {library / 'broken' / 'cut.mp4'}: {CUT_SHORT}",
            f"unreadable {library / 'broken' / 'drm.mp4'}: {PROTECTED}",
            f"unreadable {library / 'broken' / 'voice.mp4'}: {AUDIO_ONLY}",
        ]
    )
    assert {found[f"broken/{name}"] for name in ("cut.mp4", "drm.mp4", "voice.mp4")} == {"unreadable"}


def test_a_rescan_of_unchanged_clips_reads_nothing(library: Path) -> None:
    with open_catalog() as catalog:
        scan_library(catalog, library)
        again = scan_library(catalog, library)
    assert (again.new, again.changed, again.unchanged, again.catalog_writes) == (0, 0, 11, 0)
    assert len(again.live_photo_videos) == 1


def test_a_renamed_clip_is_moved_not_new(library: Path) -> None:
    with open_catalog() as catalog:
        scan_library(catalog, library)
        before = catalog.photo_by_path(str(library / "clip_mkv.mkv"))
        (library / "clip_mkv.mkv").rename(library / "phone" / "holiday.mkv")
        (library / "clip_mov.mov").rename(library / "renamed.mov")
        report = scan_library(catalog, library)
        after = catalog.photo_by_path(str(library / "phone" / "holiday.mkv"))
        assert (report.relinked, report.new, report.missing) == (2, 0, 0)
        assert after.id == before.id and after.content_key == before.content_key


def test_exiftool_editing_a_movs_metadata_keeps_its_key(library: Path) -> None:
    clip = library / "clip_mov.mov"
    with open_catalog() as catalog:
        scan_library(catalog, library)
        before = catalog.photo_by_path(str(clip))
        data = clip.read_bytes()
        subprocess.run(
            [
                "exiftool",
                "-q",
                "-overwrite_original",
                "-Keys:Title=Beach day",
                "-XMP:Subject=beach",
                str(clip),
            ],
            check=True,
        )
        assert clip.read_bytes() != data
        report = scan_library(catalog, library)
        after = catalog.photo_by_path(str(clip))
    assert report.changed == 1 and report.relinked == 0 and report.new == 0
    assert after.id == before.id and after.content_key == before.content_key
    assert after.content_key.startswith("video:") and after.size != before.size


def test_keys_tell_clips_apart_and_stream_whole_files_where_there_is_no_media_box(tmp_path: Path) -> None:
    one = make_clip(tmp_path / "one.mp4", "mp4", fps=12)
    other = make_clip(tmp_path / "other.mp4", "mp4", fps=8)
    assert video_content_key(one) != video_content_key(other)
    for name in ("mkv", "avi"):
        clip = make_clip(tmp_path / f"c{KINDS[name].suffix}", name)
        assert video_content_key(clip) == "file:" + hashlib.sha256(clip.read_bytes()).hexdigest()


def test_a_clip_copied_elsewhere_in_the_library_is_a_new_item(library: Path) -> None:
    with open_catalog() as catalog:
        scan_library(catalog, library)
        shutil.copy2(library / "clip_mp4.mp4", library / "phone" / "copy.mp4")
        report = scan_library(catalog, library)
    assert (report.new, report.relinked) == (1, 0)


@pytest.mark.parametrize(
    ("names", "motion"),
    [
        (["IMG_1.HEIC", "IMG_1.MOV"], {"IMG_1.MOV"}),
        (["IMG_1.JPG", "IMG_1.mov", "IMG_2.MOV"], {"IMG_1.mov"}),
        (["IMG_1.HEIC", "IMG_1.MP4"], {"IMG_1.MP4"}),  # some exports write the motion as MP4
        (["IMG_1.HEIC", "IMG_1.mkv", "IMG_1.avi"], set()),  # no phone writes a Live Photo so
        (["IMG_1.MOV"], set()),  # a clip alone is a clip
        (["img_1.heic", "IMG_1.MOV"], set()),  # the pairing is by exact name, as sidecars pair
        (["._IMG_1.HEIC", "IMG_1.MOV", "._IMG_1.MOV"], set()),  # AppleDouble files are neither
        (["IMG_1.HEIC.xmp", "IMG_1.HEIC", "IMG_1.MOV", "IMG_1.xmp"], {"IMG_1.MOV"}),
    ],
)
def test_live_photo_pairing(names: list[str], motion: set[str]) -> None:
    assert live_photo_videos(names) == motion


def test_a_videos_keywords_come_from_its_sidecar_only(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    clip = make_clip(root / "clip.mp4", "mp4")
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP:Subject=inside", str(clip)], check=True)
    sidecar = root / "clip.mp4.xmp"
    subprocess.run(["exiftool", "-q", "-o", str(sidecar), "-XMP:Subject=from sidecar"], check=True)
    make_photo(root / "photo.jpg")
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", "-XMP:Subject=in photo", str(root / "photo.jpg")]
    )
    # Index first, then the pictures; its end lost: it still shows a first frame, and exiv2 calls its
    # metadata corrupted (the scan would note that, had it opened the clip with exiv2).
    whole = make_clip(tmp_path / "tail.mp4", "mp4", seconds=3.0, options={"movflags": "faststart"})
    cut(whole, 0.9).rename(root / "tail.mp4")
    with open_catalog() as catalog:
        report = scan_library(catalog, root)
        video_id = catalog.photo_by_path(str(clip)).id
        photo_id = catalog.photo_by_path(str(root / "photo.jpg")).id
        tail = catalog.photo_by_path(str(root / "tail.mp4"))
        assert catalog.existing_keywords(video_id) == (("from sidecar",), None)
        assert catalog.existing_keywords(photo_id) == (("in photo",), None)
        assert tail.status == "present" and catalog.existing_keywords(tail.id) == ((), None)
    assert report.metadata_notes == [] and report.keywords_read == 3


def test_without_pyav_clips_are_skipped_in_one_line_and_never_marked_missing(
    library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_catalog() as catalog:
        scan_library(catalog, library)
        monkeypatch.setitem(sys.modules, "av", None)  # as if the video extra were not installed
        report = scan_library(catalog, library)
        found = names_in_catalog(catalog, library)
    assert report.videos_need_pyav == 9 and report.files == 2 and report.missing == 0
    assert "9 videos skipped (PyAV is not installed)" in report.summary()
    assert report.problem_lines()[0] == f"skipped 9 videos: {NEEDS_PYAV}"
    assert sum(NEEDS_PYAV in line for line in report.problem_lines()) == 1
    assert "missing" not in found.values()


def test_a_first_scan_without_pyav_catalogues_the_photos(
    library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "av", None)
    with open_catalog() as catalog:
        report = scan_library(catalog, library)
        assert set(names_in_catalog(catalog, library)) == {"phone/IMG_1234.HEIC.jpg", "phone/IMG_2000.JPG"}
    assert report.summary().startswith("2 photos, 2 new")


def test_photo_evaluation_still_walks_photos_only(library: Path) -> None:
    selection = collect_photos([library])
    assert sorted(p.name for p in selection.photos) == ["IMG_1234.HEIC.jpg", "IMG_2000.JPG"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("type:video", {"clip_mp4.mp4", "clip_mkv.mkv"}),
        ("type:VIDEOS", {"clip_mp4.mp4", "clip_mkv.mkv"}),
        ("kind:photo", {"IMG_2000.JPG", "beach.png"}),
        ("-type:video", {"IMG_2000.JPG", "beach.png"}),
        ("type:video name:clip_m*", {"clip_mp4.mp4", "clip_mkv.mkv"}),
        ("type:photo OR name:*.mkv", {"IMG_2000.JPG", "beach.png", "clip_mkv.mkv"}),
    ],
)
def test_the_type_term_filters_photos_or_videos(tmp_path: Path, query: str, expected: set[str]) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    make_clip(root / "clip_mp4.mp4", "mp4")
    make_clip(root / "clip_mkv.mkv", "mkv")
    make_photo(root / "IMG_2000.JPG")
    make_clip(root / "IMG_2000.MOV", "mov")  # its Live Photo clip: never in the catalog
    make_photo(root / "beach.png")
    with open_catalog() as catalog:
        scan_library(catalog, root)
        found = {catalog.photo(i).path for i in photo_ids(catalog, BrowseFilter(query=query))}
    assert {Path(path).name for path in found} == expected


def test_an_unknown_type_says_which_there_are() -> None:
    with pytest.raises(SearchSyntaxError, match=r"Unknown type 'gif'\. Use type:photo or type:video\."):
        compile_query("type:gif")


def test_the_browse_filters_kind_and_the_folder_tree_count_clips(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    (root / "trip").mkdir(parents=True)
    make_clip(root / "trip" / "a.mp4", "mp4")
    make_clip(root / "b.mkv", "mkv")
    make_photo(root / "trip" / "c.jpg")
    with open_catalog() as catalog:
        scan_library(catalog, root)
        videos = photo_ids(catalog, BrowseFilter(kind="video"))
        photos = photo_ids(catalog, BrowseFilter(kind="photo", folder=str(root / "trip")))
        assert {Path(catalog.photo(i).path).name for i in videos} == {"a.mp4", "b.mkv"}
        assert [Path(catalog.photo(i).path).name for i in photos] == ["c.jpg"]
        with pytest.raises(CatalogError, match="Unknown type filter 'gif'"):
            photo_ids(catalog, BrowseFilter(kind="gif"))
        (tree,) = library_trees(catalog)
    assert (tree.count, tree.videos) == (3, 2)
    assert (tree.children["trip"].count, tree.children["trip"].videos) == (2, 1)
    assert BrowseFilter(kind="video", status="failed").describe() == "failed · videos only"


def test_padding_after_the_media_keeps_the_key_and_other_media_data_changes_it(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", "mp4")
    before = video_content_key(clip)
    with clip.open("ab") as out:  # a free box, as editors leave after rewriting the movie box
        out.write((8 + 64).to_bytes(4, "big") + b"free" + b"\0" * 64)
    assert video_content_key(clip) == before
    # Fragmented (a media box per keyframe interval, as cameras stream to disk): all of them count, in order,
    # so the same pictures muxed another way are the same clip; other pictures are not.
    fragmented = make_clip(tmp_path / "frag.mp4", "mp4", options={"movflags": "frag_keyframe+empty_moov"})
    assert fragmented.read_bytes() != clip.read_bytes()
    assert video_content_key(fragmented) == before
    other = make_clip(tmp_path / "other.mp4", "mp4", options={"movflags": "frag_keyframe+empty_moov"}, fps=9)
    assert video_content_key(other) != before


def test_search_and_review_list_narrow_to_clips_or_photos(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    make_clip(root / "harbour.mov", "mov")
    make_photo(root / "harbour-boats.jpg")
    with open_catalog() as catalog:
        scan_library(catalog, root)
        items = catalog.photos_under(root)
        assert len(items) == 2
        plan = plan_run(catalog, str(root), items, RunSpec(image_tokens=16), fake_config())
        run = get_run(catalog, plan.run_id)
        for item in items:  # what a run stores for each (the engines' part is tested on its own)
            result = NewResult(caption="Boats in the harbour.", keywords=["boat"])
            record_result(catalog, run, item.id, result)
    assert main(["search", "harbour", "type:video", "--paths"]) == 0
    assert capsys.readouterr().out.splitlines() == [str(root / "harbour.mov")]
    assert main(["review", "list", "--query", "type:photo", "--json"]) == 0
    listed = [json.loads(line)["path"] for line in capsys.readouterr().out.splitlines()]
    assert listed == [str(root / "harbour-boats.jpg")]


def test_a_linked_clip_and_a_pipe_named_like_one_are_skipped_with_the_photos_reasons(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    clip = make_clip(tmp_path / "elsewhere.mp4", "mp4")
    (root / "link.mp4").symlink_to(clip)
    os.mkfifo(root / "pipe.mov")  # opening it would wait for a writer forever
    make_photo(root / "photo.jpg")
    with open_catalog() as catalog:
        report = scan_library(catalog, root)
        assert set(names_in_catalog(catalog, root)) == {"photo.jpg"}
    assert sorted(report.skipped) == [
        (str(root / "link.mp4"), "symbolic link (not followed)"),
        (str(root / "pipe.mov"), "not a regular file"),
    ]


def test_cancel_stops_a_scan_inside_a_clip_and_records_nothing_wrong(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    make_clip(root / "long.mp4", "mp4", seconds=3.0)
    cancelled = CancelToken()
    cancelled.cancel()
    with pytest.raises(Cancelled):
        video_content_key(root / "long.mp4", cancelled)
    token = CancelToken()
    with open_catalog() as catalog:
        # The first file's progress call comes after the loop's own check: the cancel lands inside the clip.
        with pytest.raises(Cancelled):
            scan_library(catalog, root, cancel=token, progress=lambda _count, _name: token.cancel())
        assert names_in_catalog(catalog, root) == {}
        assert scan_library(catalog, root).new == 1
