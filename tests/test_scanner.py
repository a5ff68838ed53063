"""Library scans on real files: incremental, relinking moves, offline roots, odd entries, kills."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from captioneer.desktop.cli import main
from captioneer.desktop.library.catalog import open_catalog
from captioneer.desktop.library.folder_walk import LibraryOfflineError
from captioneer.desktop.library.identity import image_content_key
from captioneer.desktop.library.scanner import (
    LibraryPathError,
    default_content_key,
    gif_content_key,
    printable,
    scan_library,
)


def make_photo(path: Path, seed: int, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (48, 32), ((seed * 37) % 256, (seed * 91) % 256, (seed * 13) % 256))
    image.putpixel((seed % 48, 0), (255 - seed % 256, 0, 0))
    image.save(path, format=fmt)
    return path


class CountingKey:
    """The real content key, counting calls (a rescan of an unchanged library must make none)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, path: Path) -> str:
        self.calls += 1
        return image_content_key(path)


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "Photos"
    for i in range(6):
        make_photo(root / "2023" / f"img_{i}.jpg", i)
    for i in range(6, 9):
        make_photo(root / "2024" / "trip" / f"img_{i}.png", i)
    (root / "notes.txt").write_text("not a photo")
    make_photo(root / ".thumbnails" / "t.jpg", 99)
    return root


def test_first_scan_and_unchanged_rescan_is_stat_only(library: Path) -> None:
    key = CountingKey()
    with open_catalog() as catalog:
        report = scan_library(catalog, library, content_key=key)
        assert (report.files, report.new, report.unchanged) == (9, 9, 0)
        assert key.calls == 9
        paths = [p.path for p in catalog.photos_under(library)]
        assert len(paths) == 9 and all(p.endswith((".jpg", ".png")) for p in paths)
        assert not any(".thumbnails" in p for p in paths)
        before = catalog.db.total_changes
        again = scan_library(catalog, library, content_key=key)
        assert (again.files, again.new, again.unchanged, again.catalog_writes) == (9, 0, 9, 0)
        assert key.calls == 9
        assert catalog.db.total_changes == before


def test_moved_folder_is_relinked_by_content(library: Path) -> None:
    with open_catalog() as catalog:
        scan_library(catalog, library)
        ids = {Path(p.path).name: p.id for p in catalog.photos_under(library)}
        (library / "2023").rename(library / "Summer 2023")
        (library / "2024" / "trip" / "img_6.png").rename(library / "renamed.png")
        report = scan_library(catalog, library)
        assert (report.relinked, report.new, report.missing) == (7, 0, 0)
        after = {Path(p.path).name: p.id for p in catalog.photos_under(library)}
        assert after["renamed.png"] == ids["img_6.png"]
        assert after["img_0.jpg"] == ids["img_0.jpg"]
        assert catalog.photo(ids["img_0.jpg"]).path == str(library / "Summer 2023" / "img_0.jpg")
        assert catalog.db.execute("SELECT COUNT(*) FROM photos").fetchone()[0] == 9


def test_a_copy_is_a_new_photo_and_a_deleted_one_is_only_marked_missing(library: Path) -> None:
    with open_catalog() as catalog:
        scan_library(catalog, library)
        (library / "copy.jpg").write_bytes((library / "2023" / "img_1.jpg").read_bytes())
        (library / "2023" / "img_2.jpg").unlink()
        report = scan_library(catalog, library)
        assert (report.new, report.relinked, report.missing) == (1, 0, 1)
        statuses = {Path(p.path).name: p.status for p in catalog.photos_under(library, status=None)}
        assert statuses["img_2.jpg"] == "missing" and statuses["copy.jpg"] == "present"
        # The photo comes back: present again, same id.
        gone = catalog.photo_by_path(str(library / "2023" / "img_2.jpg"))
        make_photo(library / "2023" / "img_2.jpg", 2)
        back = scan_library(catalog, library)
        assert (back.changed, back.new) == (1, 0)
        returned = catalog.photo_by_path(str(library / "2023" / "img_2.jpg"))
        assert returned.id == gone.id and returned.status == "present"


def test_metadata_only_change_keeps_identity(library: Path) -> None:
    photo = library / "2023" / "img_3.jpg"
    with open_catalog() as catalog:
        scan_library(catalog, library)
        before = catalog.photo_by_path(str(photo))
        data = photo.read_bytes()
        comment = b"edited by another app"
        photo.write_bytes(data[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + data[2:])
        report = scan_library(catalog, library)
        assert report.changed == 1
        after = catalog.photo_by_path(str(photo))
        assert after.id == before.id and after.content_key == before.content_key and after.size != before.size


@pytest.mark.parametrize("state", ["missing", "empty", "file"])
def test_offline_root_aborts_and_marks_nothing_missing(library: Path, tmp_path: Path, state: str) -> None:
    with open_catalog() as catalog:
        scan_library(catalog, library)
        moved = tmp_path / "unplugged"
        library.rename(moved)
        if state == "empty":
            library.mkdir()
        elif state == "file":
            library.write_text("x")
        with pytest.raises(LibraryOfflineError, match="Library offline"):
            scan_library(catalog, library)
        statuses = {p.status for p in catalog.photos_under(library, status=None)}
        assert statuses == {"present"}
    assert sum(1 for _ in moved.rglob("*.jpg")) == 7  # nothing on disk touched


def test_bad_files_are_recorded_as_unreadable_with_the_reason(library: Path) -> None:
    (library / "zero.jpg").write_bytes(b"")
    (library / "random.jpg").write_bytes(os.urandom(2000))
    good = (library / "2023" / "img_0.jpg").read_bytes()
    (library / "cut.png").write_bytes((library / "2024" / "trip" / "img_7.png").read_bytes()[:60])
    (library / "cut.jpg").write_bytes(good[: len(good) // 2])
    with open_catalog() as catalog:
        report = scan_library(catalog, library)
        assert report.unreadable >= 3
        photos = {Path(p.path).name: p for p in catalog.photos_under(library, status=None)}
        assert photos["zero.jpg"].status == "unreadable" and photos["zero.jpg"].error_kind in (
            "empty",
            "corrupt",
        )
        assert photos["random.jpg"].status == "unreadable"
        assert photos["cut.png"].status == "unreadable"
        assert again_unchanged(catalog, library)


def again_unchanged(catalog, library: Path) -> bool:
    report = scan_library(catalog, library)
    return report.catalog_writes == 0 and report.unchanged == report.files


@pytest.mark.skipif(os.name == "nt", reason="POSIX special files")
def test_symlinks_fifos_and_unreadable_folders(library: Path, tmp_path: Path) -> None:
    (library / "loop").symlink_to(library, target_is_directory=True)
    (library / "link.jpg").symlink_to(library / "2023" / "img_0.jpg")
    outside = make_photo(tmp_path / "outside" / "secret.jpg", 50)
    (library / "outside").symlink_to(outside.parent, target_is_directory=True)
    os.mkfifo(library / "pipe.jpg")
    locked = library / "locked"
    make_photo(locked / "hidden.jpg", 60)
    with open_catalog() as catalog:
        scan_library(catalog, library)
        locked.chmod(0)
        try:
            report = scan_library(catalog, library)
        finally:
            locked.chmod(0o755)
        reasons = dict(report.skipped)
        assert "symbolic link" in reasons[str(library / "loop")]
        assert "symbolic link" in reasons[str(library / "link.jpg")]
        assert "regular file" in reasons[str(library / "pipe.jpg")]
        if os.geteuid() != 0:
            assert "not readable" in reasons[str(locked)]
        # A folder that could not be read keeps its photos as they were: never "missing".
        assert catalog.photo_by_path(str(locked / "hidden.jpg")).status == "present"
        assert not any("secret" in p.path for p in catalog.photos_under(library, status=None))


def test_file_changing_while_hashed_is_requeued_not_stored(library: Path) -> None:
    victim = library / "2023" / "img_4.jpg"

    def changing_key(path: Path) -> str:
        key = image_content_key(path)
        if path == victim:
            os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
        return key

    with open_catalog() as catalog:
        report = scan_library(catalog, library, content_key=changing_key)
        assert report.requeued == [str(victim)]
        assert catalog.photo_by_path(str(victim)) is None
        later = scan_library(catalog, library)
        assert later.new == 1 and catalog.photo_by_path(str(victim)).content_key


def test_scan_killed_midway_resumes_without_duplicates(tmp_path: Path, captioneer_home: Path) -> None:
    root = tmp_path / "big"
    for i in range(120):
        make_photo(root / f"d{i % 7}" / f"p{i:03d}.png", i, "PNG")
    script = (
        "import time; from pathlib import Path\n"
        "from captioneer.desktop.library.catalog import open_catalog\n"
        "from captioneer.desktop.library.identity import image_content_key\n"
        "from captioneer.desktop.library.scanner import scan_library\n"
        "def slow(p):\n    time.sleep(0.01)\n    print('keyed', flush=True)\n"
        "    return image_content_key(p)\n"
        f"scan_library(open_catalog(), Path({str(root)!r}), content_key=slow, commit_every=7)\n"
    )
    env = {**os.environ, "CAPTIONEER_HOME": str(captioneer_home)}
    # Killed mid-scan, counted in photos keyed rather than seconds (a busy machine starts Python slowly).
    for keyed in (20, 45):
        child = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        for _ in range(keyed):
            assert child.stdout.readline() == "keyed\n"
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    db = sqlite3.connect(captioneer_home / "data" / "catalog.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    with open_catalog() as catalog:
        report = scan_library(catalog, root)
        assert report.files == 120 and report.new + report.unchanged == 120
        rows = catalog.db.execute("SELECT COUNT(*), COUNT(DISTINCT path) FROM photos").fetchone()
        assert rows == (120, 120)


@pytest.mark.skipif(os.name == "nt", reason="POSIX byte file names")
def test_odd_file_names(library: Path) -> None:
    make_photo(library / "-leading dash.jpg", 70)
    make_photo(library / "cafe\u0301 NFD.jpg", 71)
    make_photo(library / "日本 🌅.png", 72)
    legacy = os.fsencode(library) + b"/caf\xe9 latin1.jpg"
    with open(legacy, "wb") as fh:
        fh.write((library / "2023" / "img_0.jpg").read_bytes())
    with open_catalog() as catalog:
        report = scan_library(catalog, library)
        names = {Path(p.path).name for p in catalog.photos_under(library)}
        assert {"-leading dash.jpg", "cafe\u0301 NFD.jpg", "日本 🌅.png"} <= names
        assert any("not UTF-8" in reason for _, reason in report.skipped)
        assert report.files == 12


def test_leftover_captioneer_temp_files_are_never_catalogued(library: Path) -> None:
    # A killed write leaves its temp copy beside the photo: a complete, decodable JPEG under a hidden name.
    leftover = library / "2023" / ".captioneer-tmp-0123456789ab-img_0.jpg"
    leftover.write_bytes((library / "2023" / "img_0.jpg").read_bytes())
    with open_catalog() as catalog:
        report = scan_library(catalog, library)
        paths = {p.path for p in catalog.photos_under(library, status=None)}
        assert str(leftover) not in paths
        assert report.files == 9


def test_unreadable_files_are_named_up_to_a_limit_with_escaped_names(
    library: Path, tiny_gguf: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    broken = library / "broken"
    broken.mkdir()
    for i in range(23):
        (broken / f"bad_{i:02}.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    forged = broken / "a evil.jpg\ncaptioneer: run 1 finished: 0 failed.jpg"
    forged.write_bytes(b"not an image")
    with open_catalog() as catalog:
        report = scan_library(catalog, library)
        lines = report.problem_lines(limit=20)
        assert len(report.unreadable_files) == 24
        assert sum(line.startswith("unreadable ") for line in lines) == 20
        assert lines[-1] == "… and 4 more unreadable"
        assert all("\n" not in line for line in lines)
        # A rescan still names them (they are not tagged), not only the first scan.
        again = scan_library(catalog, library)
        assert again.unchanged == report.files and len(again.unreadable_files) == 24
    model, mmproj = tiny_gguf
    for path in library.rglob("img_*"):
        path.unlink()  # nothing left to tag: the command stops after the scan lines
    code = main(["tag", str(broken), "--model", str(model), "--mmproj", str(mmproj)])
    err = capsys.readouterr().err
    assert code == 0
    assert "unreadable " + str(broken / "bad_00.jpg") + ": " in err
    assert "… and 4 more unreadable" in err
    assert "a evil.jpg\\ncaptioneer: run 1 finished" in err
    assert not any(line.startswith("captioneer: run 1 finished") for line in err.splitlines())


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("a\nb.jpg", "a\\nb.jpg"),
        ("a\rb\x1b[2J.jpg", "a\\rb\\x1b[2J.jpg"),
        ("a\u2028b.jpg", "a\\u2028b.jpg"),
        ("caf\udce9.jpg", "caf\\xe9.jpg"),
        ("日本 🌅 e\u0301.jpg", "日本 🌅 e\u0301.jpg"),
    ],
)
def test_printable_escapes_what_could_forge_lines(name: str, shown: str) -> None:
    assert printable(name) == shown
    printable(name).encode("utf-8")  # always valid UTF-8


def make_animated_gif(path: Path, frames: int, mark_last: bool = False) -> Path:
    """A real animation: a square moving over 400×300 frames (small file, every frame costs a decode)."""
    palette = [value for j in range(256) for value in ((j * 7) % 256, (j * 13) % 256, (j * 29) % 256)]
    images = []
    for i in range(frames):
        image = Image.new("P", (400, 300), 0)
        image.putpalette(palette)
        left, top = i % 350, (i * 3) % 250
        ImageDraw.Draw(image).rectangle((left, top, left + 50, top + 50), fill=1 + i % 200)
        images.append(image)
    if mark_last:
        images[-1].putpixel((399, 299), 255)
    images[0].save(path, save_all=True, append_images=images[1:], duration=40, loop=0, comment=b"first")
    return path


def test_animated_gif_key_is_bounded_and_still_relinks_moves(library: Path, tmp_path: Path) -> None:
    gif = make_animated_gif(library / "2024" / "anim.gif", frames=300)
    started = time.perf_counter()
    with Image.open(gif) as image:  # what keying by decoded pixels costs: every frame
        for frame in range(image.n_frames):
            image.seek(frame)
            image.load()
    decode_seconds = time.perf_counter() - started
    default_content_key(make_animated_gif(tmp_path / "warm-up.gif", 2))  # Pillow loads its plugins once
    started = time.perf_counter()
    key = default_content_key(gif)
    key_seconds = time.perf_counter() - started
    assert key.startswith("gif:")
    assert key_seconds < decode_seconds / 5, (key_seconds, decode_seconds)
    # Metadata written by another tool (XMP and a comment, by exiftool) keeps the key.
    edited = tmp_path / "edited.gif"
    shutil.copyfile(gif, edited)
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", "-XMP-dc:Subject=Beach", "-Comment=edited", str(edited)],
        check=True,
    )
    assert edited.read_bytes() != gif.read_bytes()
    assert default_content_key(edited) == key
    # One changed pixel in the last frame changes it.
    assert default_content_key(make_animated_gif(tmp_path / "changed.gif", 300, mark_last=True)) != key
    with open_catalog() as catalog:
        scan_library(catalog, library)
        before = catalog.photo_by_path(str(gif))
        assert before is not None and before.content_key == key
        moved = library / "2023" / "renamed.gif"
        gif.rename(moved)
        report = scan_library(catalog, library)
        assert report.relinked == 1
        after = catalog.photo_by_path(str(moved))
        assert after is not None and after.id == before.id


@pytest.mark.skipif(os.name == "nt", reason="POSIX byte file names")
@pytest.mark.parametrize("locale", ["C.UTF-8", "C"])
def test_caption_output_is_utf8_and_one_line_per_photo_for_any_file_name(
    tiny_gguf: tuple[Path, Path], tmp_path: Path, locale: str
) -> None:
    name = os.fsencode(tmp_path) + b"/caf\xe9\ncaptioneer: forged.jpg"
    os.rename(make_photo(tmp_path / "p.jpg", 5), name)
    model, mmproj = tiny_gguf
    options = ["--model", str(model), "--mmproj", str(mmproj), "--max-tokens", "2", "--threads", "2"]
    command = [sys.executable, "-m", "captioneer.desktop.cli", "caption", *options, name]
    env = {**os.environ, "LC_ALL": locale, "PYTHONPATH": str(Path(__file__).parent.parent)}
    env.pop("PYTHONIOENCODING", None)
    as_json = subprocess.run([*command, "--json"], capture_output=True, env=env, timeout=120)
    assert as_json.returncode == 0, as_json.stderr
    lines = as_json.stdout.decode("utf-8").splitlines()  # valid UTF-8, and one line
    assert len(lines) == 1
    assert json.loads(lines[0])["path"] == str(tmp_path) + "/caf\\xe9\ncaptioneer: forged.jpg"
    if locale == "C":
        return  # the text output is the same under both
    second = name.replace(b"forged", b"other")
    os.rename(make_photo(tmp_path / "q.jpg", 6), second)
    as_text = subprocess.run([*command, second], capture_output=True, env=env, timeout=120)
    assert as_text.returncode == 0, as_text.stderr
    headers = [line for line in as_text.stdout.decode("utf-8").splitlines() if line.startswith("==> ")]
    assert headers == [
        f"==> {tmp_path}/caf\\xe9\\ncaptioneer: forged.jpg <==",
        f"==> {tmp_path}/caf\\xe9\\ncaptioneer: other.jpg <==",
    ]
    assert not any(line.startswith(b"captioneer: forged") for line in as_text.stdout.splitlines())


@pytest.mark.skipif(os.name == "nt", reason="POSIX byte file names")
def test_a_library_folder_whose_name_is_not_utf8_is_one_clear_line(tmp_path: Path) -> None:
    folder = os.fsencode(tmp_path) + b"/caf\xe9"
    os.mkdir(folder)
    os.rename(make_photo(tmp_path / "p.jpg", 5), folder + b"/p.jpg")
    with open_catalog() as catalog, pytest.raises(LibraryPathError, match=r"caf\\xe9 has a name that is not"):
        scan_library(catalog, Path(os.fsdecode(folder)))


def test_a_gif_that_does_not_decode_is_still_unreadable(library: Path) -> None:
    gif = make_animated_gif(library / "anim.gif", frames=3)
    data = bytearray(gif.read_bytes())
    start = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)  # past the global colour table
    while data[start] == 0x21:  # past the extensions, to the first image descriptor
        start += 2
        while data[start]:
            start += 1 + data[start]
        start += 1
    assert data[start] == 0x2C and not data[start + 9] & 0x80 and data[start + 10] == 8
    data[start + 10] = 15  # its LZW code size: no GIF has 15
    gif.write_bytes(bytes(data))
    assert gif_content_key(gif) is not None  # well-formed blocks: only decoding the first frame can tell
    with open_catalog() as catalog:
        report = scan_library(catalog, library)
        assert [path for path, _reason in report.unreadable_files] == [str(gif)]
