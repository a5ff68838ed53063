"""Embedded writes into JPEG/PNG/TIFF (pixels unchanged, exiftool reads our fields), IPTC, identity, undo."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from captioneer.desktop.library.identity import image_content_key
from captioneer.desktop.library.journal import Journal, read_entries, undo
from captioneer.desktop.library.merge import Generated
from captioneer.desktop.library.sidecars import WriteMode
from captioneer.desktop.library.write_errors import MetadataWriteError
from captioneer.desktop.library.writer import WriteOptions, apply, plan_write

REPO = Path(__file__).resolve().parents[1]


def exiftool(path: Path) -> dict:
    """What the independent reader sees: exiftool's JSON for one file, with group prefixes."""
    binary = shutil.which("exiftool")
    if binary is None:
        pytest.fail("exiftool is missing: apt-get install libimage-exiftool-perl (CI installs it)")
    out = subprocess.run([binary, "-j", "-G1", "-a", str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)[0]


def exiftool_set(path: Path, *assignments: str) -> None:
    subprocess.run(["exiftool", "-q", "-overwrite_original", *assignments, str(path)], check=True)


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_image(path: Path) -> Path:
    """A small photo with real texture (so a re-encode would change pixels)."""
    image = Image.effect_noise((96, 64), 60).convert("RGB")
    image.putpixel((0, 0), (255, 0, 0))
    image.save(path)
    return path


def pixels(path: Path) -> tuple[str, tuple[int, int], bytes]:
    with Image.open(path) as image:
        image.load()
        return image.mode, image.size, image.tobytes()


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "library"
    root.mkdir()
    return root


@pytest.fixture
def journal_dir(tmp_path: Path) -> Path:
    return tmp_path / "journal" / "run-1"


def write(photo: Path, library: Path, journal_dir: Path, mode=WriteMode.EMBEDDED, **generated):
    plan = plan_write(photo, Generated(**generated), library_root=library, options=WriteOptions(mode=mode))
    return apply(plan, Journal(journal_dir))


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif"])
def test_embedded_write_keeps_pixels_and_exiftool_reads_our_fields(library, journal_dir, suffix):
    photo = make_image(library / f"IMG{suffix}")
    exiftool_set(photo, "-XMP-dc:Subject=Family", "-XMP-dc:Subject=Beach", "-XMP-xmp:Rating=4")
    before_pixels = pixels(photo)
    key = image_content_key(photo)

    outcome = write(
        photo,
        library,
        journal_dir,
        keywords=("beach", "sunset"),
        caption="Sunset over the sea.",
        language="en",
    )

    assert outcome.status == "written" and outcome.files[0] == (photo, sha(photo))
    assert pixels(photo) == before_pixels
    seen = exiftool(photo)
    assert as_list(seen["XMP-dc:Subject"]) == ["Family", "Beach", "sunset"]
    # The keywords the photo had in dc:subject reach digiKam's and Lightroom's fields too.
    assert as_list(seen["XMP-lr:HierarchicalSubject"]) == ["Family", "Beach", "sunset"]
    assert as_list(seen["XMP-digiKam:TagsList"]) == ["Family", "Beach", "sunset"]
    assert seen["XMP-dc:Description"] == "Sunset over the sea."
    assert seen["XMP-dc:Description-en"] == "Sunset over the sea."
    assert seen["XMP-xmp:Rating"] == 4
    assert image_content_key(photo) == key
    assert not [p for p in library.iterdir() if p.name.startswith(".captioneer-tmp-")]


def test_content_key_differs_between_images_and_names_its_kind(library):
    a = make_image(library / "a.jpg")
    b = make_image(library / "b.jpg")
    assert image_content_key(a).startswith("jpeg:")
    assert image_content_key(a) != image_content_key(b)
    png = make_image(library / "c.png")
    assert image_content_key(png).startswith("png:")
    assert image_content_key(make_image(library / "d.tif")).startswith("pixels:")


def test_iptc_is_written_only_when_the_file_already_has_it(library, journal_dir):
    plain = make_image(library / "plain.jpg")
    write(plain, library, journal_dir, keywords=("sea",), caption="Sea.")
    assert not [key for key in exiftool(plain) if key.startswith("IPTC:")]

    with_iptc = make_image(library / "iptc.jpg")
    exiftool_set(with_iptc, "-IPTC:Keywords=Family")
    long_keyword = "x" * 70
    long_caption = "é" * 1500  # 3,000 bytes in UTF-8
    write(with_iptc, library, journal_dir, keywords=("sea", "海", long_keyword), caption=long_caption)
    seen = exiftool(with_iptc)
    assert as_list(seen["IPTC:Keywords"]) == ["Family", "sea", "海"]
    assert len(seen["IPTC:Caption-Abstract"].encode()) <= 2000
    assert seen["IPTC:Caption-Abstract"] == "é" * 1000
    assert as_list(seen["XMP-dc:Subject"]) == ["Family", "sea", "海", long_keyword]
    assert seen["XMP-dc:Description"] == long_caption


def test_heic_gets_a_sidecar_because_exiv2_cannot_write_it(library, journal_dir):
    pytest.importorskip("pillow_heif").register_heif_opener()
    photo = library / "IMG.heic"
    Image.new("RGB", (64, 48), (1, 2, 3)).save(photo)
    original = photo.read_bytes()
    plan = plan_write(photo, Generated(keywords=("x",)), library_root=library)
    assert "exiv2 cannot write" in plan.describe()
    outcome = apply(plan, Journal(journal_dir))
    assert outcome.files[0][0] == library / "IMG.heic.xmp"
    assert photo.read_bytes() == original


def test_undo_restores_every_touched_file_byte_for_byte(library, journal_dir):
    jpeg = make_image(library / "a.jpg")
    exiftool_set(jpeg, "-XMP-dc:Subject=Family")
    png = make_image(library / "b.png")
    sidecar_photo = make_image(library / "c.jpg")
    existing_sidecar = library / "d.jpg.xmp"
    d = make_image(library / "d.jpg")
    exiftool_set(existing_sidecar, "-XMP-dc:Subject=Mine")
    os.utime(jpeg, ns=(1_000_000_000, 1_000_000_000))
    before = {p: (sha(p), p.stat().st_mtime_ns) for p in library.iterdir()}

    write(jpeg, library, journal_dir, keywords=("sea",), caption="Sea.")
    write(png, library, journal_dir, keywords=("sea",))
    write(sidecar_photo, library, journal_dir, mode=WriteMode.SIDECAR, keywords=("sea",))
    write(d, library, journal_dir, mode=WriteMode.BOTH, keywords=("sea",))
    write(jpeg, library, journal_dir, keywords=("second",))  # a second change to the same file
    assert len(read_entries(journal_dir)) == 6
    assert sha(jpeg) != before[jpeg][0]

    report = undo(journal_dir)

    assert report.ok, report
    assert len(report.restored) == 5  # the JPEG twice, one entry each, counted once
    assert {p: (sha(p), p.stat().st_mtime_ns) for p in library.iterdir()} == before
    again = undo(journal_dir)
    assert again.ok and not again.restored and len(again.already_restored) == 5


def test_undo_leaves_a_file_the_user_changed_after_our_write(library, journal_dir):
    photo = make_image(library / "a.jpg")
    original = sha(photo)
    write(photo, library, journal_dir, keywords=("sea",))
    exiftool_set(photo, "-XMP-dc:Subject+=UserAddedLater")
    users_version = sha(photo)

    report = undo(journal_dir)

    assert not report.ok and report.conflicts[0][0] == photo
    assert "changed after Captioneer wrote it" in report.summary() or report.conflicts[0][1]
    assert sha(photo) == users_version
    forced = undo(journal_dir, force=True)
    assert forced.restored == [photo] and sha(photo) == original


def test_journal_records_fields_before_and_after(library, journal_dir):
    photo = make_image(library / "a.jpg")
    exiftool_set(photo, "-XMP-dc:Subject=Family")
    write(photo, library, journal_dir, keywords=("sea",))
    (entry,) = read_entries(journal_dir)
    assert entry.kind == "embedded" and entry.target == str(photo)
    assert entry.fields_before["keywords"] == ["Family"]
    assert entry.fields_after["keywords"] == ["Family", "sea"]
    assert (journal_dir / "backups" / entry.before.backup).exists()


def test_disk_full_during_the_temp_write_leaves_the_original_intact(library, journal_dir):
    photo = library / "big.jpg"
    Image.effect_noise((400, 300), 80).convert("RGB").save(photo, quality=95)
    original = sha(photo)
    size = photo.stat().st_size
    # A real write error from the kernel: the child may not grow any file beyond half the photo's size.
    child = textwrap.dedent(
        f"""
        import resource, signal, sys
        from pathlib import Path
        from captioneer.backends.errors import CaptioneerError
        from captioneer.desktop.library.journal import Journal
        from captioneer.desktop.library.merge import Generated
        from captioneer.desktop.library.write_errors import DiskFullError
        from captioneer.desktop.library.writer import apply, plan_write
        photo, library = Path({str(photo)!r}), Path({str(library)!r})
        plan = plan_write(photo, Generated(keywords=("x",)), library_root=library)
        journal = Journal(Path({str(journal_dir)!r}))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({size // 2}, {size // 2}))
        try:
            apply(plan, journal)
        except DiskFullError as exc:
            print("DISKFULL", exc)
            sys.exit(3)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", child], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 3, result.stderr
    assert "Not enough disk space" in result.stdout and "untouched" in result.stdout
    assert sha(photo) == original
    assert sorted(p.name for p in library.iterdir()) == ["big.jpg"]
    assert read_entries(journal_dir) == []


def test_photo_changed_between_plan_and_apply_is_merged_again(library, journal_dir):
    photo = make_image(library / "a.jpg")
    exiftool_set(photo, "-XMP-dc:Subject=Family")
    plan = plan_write(photo, Generated(keywords=("sunset",)), library_root=library)
    exiftool_set(photo, "-XMP-dc:Subject+=AddedElsewhere", "-XMP-xmp:Label=Red")

    outcome = apply(plan, Journal(journal_dir))

    assert outcome.replanned and outcome.status == "written"
    seen = exiftool(photo)
    assert as_list(seen["XMP-dc:Subject"]) == ["Family", "AddedElsewhere", "sunset"]
    assert seen["XMP-xmp:Label"] == "Red"


def test_metadata_too_large_for_a_jpeg_goes_to_a_sidecar(library, journal_dir):
    photo = make_image(library / "a.jpg")
    original = sha(photo)
    keywords = tuple(f"keyword {i:04d} " + "x" * 70 for i in range(900))
    plan = plan_write(photo, Generated(keywords=keywords), library_root=library)
    assert "too large for a JPEG" in plan.describe()
    outcome = apply(plan, Journal(journal_dir))
    assert [path.name for path, _ in outcome.files] == ["a.jpg.xmp"]
    assert sha(photo) == original
    assert len(as_list(exiftool(library / "a.jpg.xmp")["XMP-dc:Subject"])) == 900


def test_title_and_alt_text_are_read_by_exiftool(library, journal_dir):
    photo = make_image(library / "a.jpg")
    write(photo, library, journal_dir, title="Harbour at dusk", alt_text="Boats moored in a calm harbour.")
    seen = exiftool(photo)
    assert seen["XMP-dc:Title"] == "Harbour at dusk"
    assert seen["XMP-iptcCore:AltTextAccessibility"] == "Boats moored in a calm harbour."


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_truncated_jpeg_is_never_written_into(library, journal_dir, fraction):
    photo = make_image(library / "a.jpg")
    data = photo.read_bytes()
    photo.write_bytes(data[: int(len(data) * fraction)])
    cut = photo.read_bytes()
    with pytest.raises(MetadataWriteError):
        write(photo, library, journal_dir, keywords=("x",))
    assert photo.read_bytes() == cut
    assert sorted(p.name for p in library.iterdir()) == ["a.jpg"]


def make_dng(path: Path) -> Path:
    """A minimal but real DNG: 16-bit Bayer data with the DNG tags LibRaw needs."""
    from PIL.TiffImagePlugin import ImageFileDirectory_v2

    data = bytes((i * 37 + i // 96) % 256 for i in range(96 * 64 * 2))
    image = Image.frombytes("I;16", (96, 64), data)
    tags = ImageFileDirectory_v2()
    for tag, value, kind in (
        (50706, bytes([1, 4, 0, 0]), 1),  # DNGVersion
        (50707, bytes([1, 1, 0, 0]), 1),  # DNGBackwardVersion
        (33421, (2, 2), 3),  # CFARepeatPatternDim
        (33422, bytes([0, 1, 1, 2]), 1),  # CFAPattern: RGGB
        (50717, 65535, 4),  # WhiteLevel
    ):
        tags[tag] = value
        tags.tagtype[tag] = kind
    tags[262] = 32803  # PhotometricInterpretation: colour filter array
    tags[271], tags[272], tags[50708] = "Test", "Test DNG", "Test DNG"
    image.save(path, format="TIFF", tiffinfo=tags)
    return path


def test_dng_is_written_embedded_with_raw_pixels_unchanged(library, journal_dir):
    import rawpy

    photo = make_dng(library / "IMG.dng")
    original = sha(photo)
    with rawpy.imread(str(photo)) as raw:
        before = raw.raw_image_visible.copy()
    key = image_content_key(photo)

    outcome = write(photo, library, journal_dir, keywords=("dng",), caption="A raw file.")

    assert [path for path, _ in outcome.files] == [photo]
    with rawpy.imread(str(photo)) as raw:
        assert (raw.raw_image_visible == before).all()
    seen = exiftool(photo)
    assert seen["File:FileType"] == "DNG"
    assert as_list(seen["XMP-dc:Subject"]) == ["dng"] and seen["XMP-dc:Description"] == "A raw file."
    assert image_content_key(photo) == key
    assert undo(journal_dir).ok and sha(photo) == original
