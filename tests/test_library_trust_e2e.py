"""Nothing the user had is lost, end to end: a library of hostile cases (darktable history, digiKam and
Lightroom keyword fields, IPTC-only and Windows keywords, a damaged sidecar, a FIFO sidecar, a temp file a
killed write left) tagged by the real gguf engine on the tiny model, approved, written with
``captioneer write --mode both`` (sidecar and embedded), read back with exiftool, then undone."""

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

from captioneer.desktop.library.catalog import open_catalog
from captioneer.desktop.library.merge import clean_keyword
from tests.test_metadata_trust import DARKTABLE_SIDECAR, DIGIKAM_SIDECAR

REPO = Path(__file__).resolve().parents[1]
EXIFTOOL = shutil.which("exiftool")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        EXIFTOOL is None, reason="exiftool (libimage-exiftool-perl) is the independent reader"
    ),
]

DAMAGED_SIDECAR = DARKTABLE_SIDECAR.replace("<rdf:li>Family</rdf:li>", "<rdf:li>Fish & Chips</rdf:li>")
LEFTOVER = ".captioneer-tmp-0123456789ab-plain.jpg.xmp"
OURS = (
    "XMP-dc:Subject",
    "XMP-dc:Description",
    "XMP-dc:Title",
    "XMP-lr:HierarchicalSubject",
    "XMP-digiKam:TagsList",
    "XMP-iptcCore:AltTextAccessibility",
    "IPTC:Keywords",
    "IPTC:Caption-Abstract",
    "IPTC:CodedCharacterSet",
    "IPTC:ApplicationRecordVersion",
    "IFD0:ImageDescription",
)


def exiftool(path: Path) -> dict:
    out = subprocess.run(
        [EXIFTOOL, "-j", "-G1", "-a", "-struct", str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)[0]


def foreign(seen: dict) -> dict:
    """Every property that is neither the file system's nor one Captioneer writes (in any language)."""
    return {
        key: value
        for key, value in seen.items()
        if not key.startswith(("System:", "File:", "SourceFile", "ExifTool:", "XMP-captioneer:", "XMP-x:"))
        and key not in OURS
        and key.rsplit("-", 1)[0] not in OURS  # the language variants: XMP-dc:Description-en
    }


def as_list(value: object) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def validate(path: Path) -> list[str]:
    """exiftool's validation warnings for a file."""
    out = subprocess.run(
        [EXIFTOOL, "-validate", "-warning", "-a", "-s", "-s", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.removeprefix("Warning: ") for line in out.splitlines() if line.startswith("Warning: ")]


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every regular file (the FIFO is not read)."""
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_fifo()
    }


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "captioneer.desktop.cli", *args],
        env={**os.environ, "CAPTIONEER_HOME": str(home)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


def make_library(root: Path) -> dict[str, Path]:
    """Photos as other tools leave them; returns each case's photo."""
    root.mkdir()
    cases = ("plain", "lightroom", "iptc", "digikam", "darktable", "damaged", "fifo")
    photos = {}
    for index, name in enumerate(cases):
        photo = root / f"{name}.jpg"
        image = Image.effect_noise((96, 64), 40 + 10 * index).convert("RGB")
        image.paste((40 * index, 200 - 25 * index, 90), (0, 0, 48, 32))
        image.save(photo, quality=90)
        photos[name] = photo
    subprocess.run(
        [
            EXIFTOOL,
            "-q",
            "-overwrite_original",
            "-XMP-dc:Subject=Rome",
            "-XMP-lr:HierarchicalSubject=Places|Italy|Rome",
            "-XMP-lr:HierarchicalSubject=Events|Wedding",
            "-XMP-crs:Exposure2012=+0.35",
            "-XMP-xmp:Label=Green",
            str(photos["lightroom"]),
        ],
        check=True,
    )
    subprocess.run(
        [
            EXIFTOOL,
            "-q",
            "-overwrite_original",
            "-IPTC:Keywords=Oma",
            "-IPTC:Keywords=Strand",
            "-XMP-microsoft:LastKeywordXMP=Katze",
            "-Make=Canon",
            "-Model=Canon EOS R5",
            str(photos["iptc"]),
        ],
        check=True,
    )
    Path(f"{photos['digikam']}.xmp").write_text(DIGIKAM_SIDECAR, encoding="utf-8")
    Path(f"{photos['darktable']}.xmp").write_text(DARKTABLE_SIDECAR, encoding="utf-8")
    Path(f"{photos['damaged']}.xmp").write_text(DAMAGED_SIDECAR, encoding="utf-8")
    os.mkfifo(f"{photos['fifo']}.xmp")
    (root / LEFTOVER).write_bytes(b'<?xpacket begin="')  # a write killed before its rename
    return photos


def test_tag_and_write_a_hostile_library_keeps_everything_the_user_had(
    tmp_path: Path, captioneer_home: Path, tiny_gguf: tuple[Path, Path]
) -> None:
    model, mmproj = tiny_gguf
    root = tmp_path / "Photos"
    photos = make_library(root)
    sidecars = {name: Path(f"{photo}.xmp") for name, photo in photos.items()}
    checked = [photos["lightroom"], photos["iptc"], sidecars["digikam"], sidecars["darktable"]]
    before = {path: exiftool(path) for path in checked}
    warnings_before = {name: validate(photos[name]) for name in ("plain", "iptc", "lightroom")}

    tagged = cli(
        captioneer_home,
        "tag",
        str(root),
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
        "--in-process",
    )
    assert tagged.returncode == 0, tagged.stderr
    approve = cli(
        captioneer_home, "review", "approve", "--all", "--status", "new", "--status", "needs_review"
    )
    assert approve.returncode == 0, approve.stderr
    with open_catalog(readonly=True) as catalog:
        results = {Path(r.path).stem: r for r in catalog.results()}
    assert sorted(results) == sorted(photos)  # the leftover temp and the sidecars are not photos
    assert all(r.caption.strip() or r.keywords for r in results.values()), "nothing to write for a photo"
    untouched = snapshot(root)

    dry = cli(captioneer_home, "write", "--dry-run", "--mode", "both")
    assert dry.returncode == 1, dry.stderr
    assert f"The sidecar {sidecars['damaged']} was left untouched: it is not well-formed XML" in dry.stdout
    assert "fifo.jpg.xmp is a FIFO (named pipe), not a sidecar" in dry.stdout
    assert snapshot(root) == untouched, "a dry run touches nothing"

    written = cli(captioneer_home, "write", "--mode", "both")
    assert written.returncode == 1, written.stderr  # the damaged sidecar is refused, and says so
    err = written.stderr
    assert f"The sidecar {sidecars['damaged']} was left untouched: it is not well-formed XML" in err
    assert "fifo.jpg.xmp is a FIFO (named pipe), not a sidecar" in err
    assert "5 written" in err and "1 skipped" in err and "1 failed" in err
    assert "removed 1 temp file(s)" in err and not (root / LEFTOVER).exists()

    # The damaged sidecar and its photo, and the FIFO's photo: untouched, and still approved.
    after = snapshot(root)
    for name in ("damaged", "fifo"):
        assert after[str(photos[name])] == untouched[str(photos[name])]
    assert after[str(sidecars["damaged"])] == untouched[str(sidecars["damaged"])]
    assert sidecars["fifo"].is_fifo()
    with open_catalog(readonly=True) as catalog:
        reviews = {Path(r.path).stem: r.review for r in catalog.results()}
    assert reviews["damaged"] == reviews["fifo"] == "approved"
    assert {reviews[name] for name in ("plain", "lightroom", "iptc", "digikam", "darktable")} == {"written"}

    # Every foreign property is still there, every keyword the file had is still in its field, and every
    # keyword field now holds the keywords of all the others plus the model's.
    for path in checked:
        seen = exiftool(path)
        assert foreign(seen) == foreign(before[path]), path
        for field in (
            "XMP-dc:Subject",
            "XMP-lr:HierarchicalSubject",
            "XMP-digiKam:TagsList",
            "IPTC:Keywords",
        ):
            old = as_list(before[path].get(field))
            assert as_list(seen.get(field))[: len(old)] == old, (path, field)
        result = results[path.name.split(".")[0]]
        subject = as_list(seen.get("XMP-dc:Subject"))
        assert all(clean_keyword(k) in subject for k in result.keywords), (path, subject)
        tags = as_list(seen.get("XMP-digiKam:TagsList"))
        assert {s.casefold() for s in subject} <= {t.rsplit("/", 1)[-1].casefold() for t in tags}, path
    assert {"Rome", "Wedding"} <= set(as_list(exiftool(photos["lightroom"])["XMP-dc:Subject"]))
    iptc = exiftool(photos["iptc"])
    assert {"Oma", "Strand", "Katze"} <= set(as_list(iptc["XMP-dc:Subject"]))
    assert as_list(iptc["IPTC:Keywords"])[:2] == ["Oma", "Strand"]
    assert {"Paris", "Alice"} <= set(as_list(exiftool(sidecars["digikam"])["XMP-dc:Subject"]))
    darktable = exiftool(sidecars["darktable"])
    assert len(darktable["XMP-darktable:History"]) == 2
    assert {"Family", "Beach"} <= set(as_list(darktable["XMP-dc:Subject"]))
    assert not {"jpg", "changed"} & set(as_list(darktable["XMP-dc:Subject"]))
    # The embedded writes added no warning (the plain JPEG had no EXIF and got none). exiv2 spells the
    # MicrosoftPhoto namespace as Microsoft documents it, with a final slash; exiftool spells it without and
    # notes a minor fix-up when it reads either, as it does for every file digiKam writes.
    for name in ("plain", "iptc", "lightroom"):
        new = set(validate(photos[name])) - set(warnings_before[name])
        assert new <= {"[minor] Fixed incorrect URI for xmlns:MicrosoftPhoto"}, (name, new)

    # One write operation: listed, and undone back to the bytes of before.
    listed = cli(captioneer_home, "undo")
    assert listed.returncode == 0 and listed.stdout.startswith("write 1 · "), listed.stdout
    assert "5 photos (both) · written" in listed.stdout
    undone = cli(captioneer_home, "undo", "1")
    assert undone.returncode == 0, undone.stderr
    assert snapshot(root) == {path: sha for path, sha in untouched.items() if not path.endswith(LEFTOVER)}
