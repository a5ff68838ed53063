"""Sidecar writes, checked with the real exiftool: merge, foreign properties kept, naming, safety rules."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from captioneer.desktop.library.journal import Journal, remove_stale_temps
from captioneer.desktop.library.merge import Generated
from captioneer.desktop.library.sidecars import SidecarNaming, WriteMode
from captioneer.desktop.library.write_errors import MetadataWriteError, WriteRefusedError
from captioneer.desktop.library.writer import WriteOptions, apply, plan_write

SIDECAR = WriteOptions(mode=WriteMode.SIDECAR)

FOREIGN_SIDECAR = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:darktable="http://darktable.sf.net/"
    xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:foo="http://example.com/foo/1.0/"
    xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/"
    xmlns:stDim="http://ns.adobe.com/xap/1.0/sType/Dimensions#"
    xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#"
    darktable:xmp_version="5"
    darktable:history_end="2"
    crs:Exposure2012="+0.50"
    crs:Temperature="5600"
    foo:Secret="keep me">
   <darktable:history>
    <rdf:Seq>
     <rdf:li darktable:operation="exposure" darktable:enabled="1" darktable:params="0000803f"/>
     <rdf:li darktable:operation="colorin" darktable:enabled="1"
       darktable:params="gz02eJxjZBgFo2AUjHwAAAGoAAs="/>
    </rdf:Seq>
   </darktable:history>
   <foo:Nested><rdf:Bag><rdf:li>x</rdf:li><rdf:li>y</rdf:li></rdf:Bag></foo:Nested>
   <dc:subject><rdf:Bag><rdf:li>Family</rdf:li><rdf:li>Beach</rdf:li></rdf:Bag></dc:subject>
   <mwg-rs:Regions rdf:parseType="Resource">
    <mwg-rs:AppliedToDimensions stDim:w="4000" stDim:h="3000" stDim:unit="pixel"/>
    <mwg-rs:RegionList>
     <rdf:Bag>
      <rdf:li>
       <rdf:Description mwg-rs:Name="Alice" mwg-rs:Type="Face">
        <mwg-rs:Area stArea:x="0.5" stArea:y="0.4" stArea:w="0.1" stArea:h="0.2" stArea:unit="normalized"/>
       </rdf:Description>
      </rdf:li>
     </rdf:Bag>
    </mwg-rs:RegionList>
   </mwg-rs:Regions>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>
"""

LIGHTROOM_SIDECAR = """<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/" crs:Version="15.0">
   <dc:subject><rdf:Bag><rdf:li>{keyword}</rdf:li></rdf:Bag></dc:subject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def exiftool(path: Path) -> dict:
    """What the independent reader sees: exiftool's JSON for one file, groups as prefixes, structs kept."""
    binary = shutil.which("exiftool")
    if binary is None:
        pytest.fail("exiftool is missing: apt-get install libimage-exiftool-perl (CI installs it)")
    out = subprocess.run(
        [binary, "-j", "-G1", "-a", "-struct", "-charset", "filename=utf8", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)[0]


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def make_jpeg(path: Path, colour=(30, 120, 200)) -> Path:
    Image.new("RGB", (64, 48), colour).save(path, quality=90)
    return path


def tree_state(root: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime of every file under root (links not followed)."""
    state = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            state[str(path)] = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    return state


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "library"
    root.mkdir()
    return root


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal" / "run-1")


def write(photo: Path, library: Path, journal: Journal, options: WriteOptions = SIDECAR, **generated):
    plan = plan_write(photo, Generated(**generated), library_root=library, options=options)
    return plan, apply(plan, journal)


def test_sidecar_with_foreign_properties_keeps_every_one_of_them(library, journal):
    photo = make_jpeg(library / "IMG_1.JPG")
    sidecar = library / "IMG_1.JPG.xmp"
    sidecar.write_text(FOREIGN_SIDECAR, encoding="utf-8")
    before = exiftool(sidecar)

    plan, outcome = write(
        photo, library, journal, keywords=("beach", "sunset"), caption="Two people on a beach."
    )

    assert outcome.status == "written"
    assert any("darktable owns this sidecar" in note for note in outcome.notes)
    after = exiftool(sidecar)
    ours = {"XMP-dc:Subject", "XMP-dc:Description", "XMP-lr:HierarchicalSubject", "XMP-digiKam:TagsList"}
    for key, value in before.items():
        if key.startswith(("System:", "File:", "SourceFile", "ExifTool:")) or key in ours:
            continue
        assert after.get(key) == value, key
    for key in ("XMP-darktable:History", "XMP-crs:Exposure2012", "XMP-foo:Secret", "XMP-mwg-rs:RegionInfo"):
        assert key in after, key
    assert as_list(after["XMP-dc:Subject"]) == ["Family", "Beach", "sunset"]
    assert as_list(after["XMP-lr:HierarchicalSubject"]) == ["Family", "Beach", "sunset"]
    assert after["XMP-dc:Description"] == "Two people on a beach."
    assert as_list(after["XMP-captioneer:Keywords"]) == ["sunset"]
    ET.fromstring(sidecar.read_bytes().decode("utf-8").split("?>", 1)[1].rsplit("<?xpacket", 1)[0])


def test_existing_lightroom_sidecar_is_updated_not_shadowed(library, journal):
    photo = make_jpeg(library / "IMG_2.jpg")
    lightroom = library / "IMG_2.xmp"
    lightroom.write_text(LIGHTROOM_SIDECAR.format(keyword="Holiday"), encoding="utf-8")

    _, outcome = write(photo, library, journal, keywords=("sea",))

    assert outcome.files[0][0] == lightroom
    assert not (library / "IMG_2.jpg.xmp").exists()
    after = exiftool(lightroom)
    assert as_list(after["XMP-dc:Subject"]) == ["Holiday", "sea"]
    assert str(after["XMP-crs:Version"]) == "15.0"


def test_raw_and_jpeg_pair_never_share_the_raws_sidecar(library, journal):
    raw = library / "IMG_3.CR2"
    raw.write_bytes(b"not really a canon raw file, but named like one" * 10)
    jpeg = make_jpeg(library / "IMG_3.JPG")
    raw_sidecar = library / "IMG_3.xmp"
    raw_sidecar.write_text(LIGHTROOM_SIDECAR.format(keyword="RawOnly"), encoding="utf-8")
    raw_bytes = raw_sidecar.read_bytes()

    _, jpeg_outcome = write(jpeg, library, journal, keywords=("jpeg-tag",))
    assert jpeg_outcome.files[0][0] == library / "IMG_3.JPG.xmp"
    assert raw_sidecar.read_bytes() == raw_bytes
    assert as_list(exiftool(library / "IMG_3.JPG.xmp")["XMP-dc:Subject"]) == ["jpeg-tag"]

    _, raw_outcome = write(
        raw, library, journal, options=WriteOptions(mode=WriteMode.EMBEDDED), keywords=("raw-tag",)
    )
    assert raw_outcome.files[0][0] == raw_sidecar
    assert raw.read_bytes().startswith(b"not really")
    assert as_list(exiftool(raw_sidecar)["XMP-dc:Subject"]) == ["RawOnly", "raw-tag"]


def test_lightroom_naming_for_a_pair_gives_the_jpeg_its_own_sidecar(library, journal):
    (library / "IMG_4.NEF").write_bytes(b"x" * 100)
    jpeg = make_jpeg(library / "IMG_4.jpg")
    options = WriteOptions(mode=WriteMode.SIDECAR, naming=SidecarNaming.STEM)
    plan, outcome = write(jpeg, library, journal, options=options, keywords=("a",))
    assert outcome.files[0][0].name == "IMG_4.jpg.xmp"
    assert "shared" in plan.describe()
    single = make_jpeg(library / "IMG_5.jpg")
    _, outcome = write(single, library, journal, options=options, keywords=("a",))
    assert outcome.files[0][0].name == "IMG_5.xmp"


def test_read_only_image_gets_a_sidecar_and_stays_untouched(library, journal):
    photo = make_jpeg(library / "IMG_6.jpg")
    photo.chmod(0o444)
    original = photo.read_bytes()
    plan, outcome = write(photo, library, journal, options=WriteOptions(), keywords=("ro",))
    assert "read-only" in plan.describe()
    assert outcome.files[0][0] == library / "IMG_6.jpg.xmp"
    assert photo.read_bytes() == original


def test_read_only_folder_is_skipped_with_a_visible_reason(library, journal):
    folder = library / "locked"
    folder.mkdir()
    photo = make_jpeg(folder / "IMG_7.jpg")
    folder.chmod(0o555)
    try:
        before = tree_state(library)
        plan, outcome = write(photo, library, journal, keywords=("x",))
        assert outcome.status == "skipped"
        assert "read-only folder" in outcome.reason and "pending" in outcome.reason
        assert tree_state(library) == before
    finally:
        folder.chmod(0o755)


def test_change_between_plan_and_apply_is_merged_not_overwritten(library, journal):
    photo = make_jpeg(library / "IMG_8.jpg")
    sidecar = library / "IMG_8.jpg.xmp"
    sidecar.write_text(LIGHTROOM_SIDECAR.format(keyword="Family"), encoding="utf-8")
    plan = plan_write(photo, Generated(keywords=("sunset",)), library_root=library, options=SIDECAR)
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", "-XMP-dc:Subject+=External", str(sidecar)], check=True
    )

    outcome = apply(plan, journal)

    assert outcome.replanned
    assert as_list(exiftool(sidecar)["XMP-dc:Subject"]) == ["Family", "External", "sunset"]


SPECIAL = ("AC/DC", "this|that", "日本の海", "🌅", "fish & chips", "a < b", "]]>", 'say "hi"')


@pytest.mark.parametrize("mode", [WriteMode.SIDECAR, WriteMode.EMBEDDED])
def test_special_characters_round_trip_through_exiftool(library, journal, mode):
    photo = make_jpeg(library / "IMG_9.jpg")
    keywords = (*SPECIAL, "nul\x00byte", "non\ufffecharacter")
    caption = "Fish & chips < 5 € ]]> 日本 🌅"
    write(photo, library, journal, options=WriteOptions(mode=mode), keywords=keywords, caption=caption)

    target = photo if mode is WriteMode.EMBEDDED else library / "IMG_9.jpg.xmp"
    seen = exiftool(target)
    expected = [*SPECIAL, "nulbyte", "noncharacter"]
    assert [str(k) for k in as_list(seen["XMP-dc:Subject"])] == expected
    hierarchical = [str(k) for k in as_list(seen["XMP-lr:HierarchicalSubject"])]
    assert len(hierarchical) == len(expected)
    assert all("|" not in entry for entry in hierarchical)
    assert "AC/DC" in hierarchical
    tags = [str(k) for k in as_list(seen["XMP-digiKam:TagsList"])]
    assert all("/" not in entry for entry in tags) and "this|that" in tags
    assert seen["XMP-dc:Description"] == caption


def test_second_identical_write_changes_nothing_on_disk(library, journal):
    photos = [make_jpeg(library / f"IMG_{i}.jpg") for i in range(3)]
    generated = {"keywords": ("beach", "sunset"), "caption": "A beach.", "language": "en"}
    modes = [SIDECAR, WriteOptions(), WriteOptions(mode=WriteMode.BOTH)]
    for photo, options in zip(photos, modes, strict=True):
        write(photo, library, journal, options=options, **generated)
    before = tree_state(library)
    for photo, options in zip(photos, modes, strict=True):
        plan, outcome = write(photo, library, journal, options=options, **generated)
        assert not plan.changed and outcome.status == "unchanged"
        assert "nothing to change" in plan.describe()
    assert tree_state(library) == before


def test_dry_run_touches_nothing(library, journal):
    make_jpeg(library / "a.jpg")
    make_jpeg(library / "b.jpg")
    (library / "b.jpg.xmp").write_text(FOREIGN_SIDECAR, encoding="utf-8")
    (library / "c.CR2").write_bytes(b"raw" * 50)
    before = tree_state(library)
    texts = []
    for name in ("a.jpg", "b.jpg", "c.CR2"):
        for mode in WriteMode:
            plan = plan_write(
                library / name,
                Generated(keywords=("x",), caption="y"),
                library_root=library,
                options=WriteOptions(mode=mode),
            )
            texts.append(plan.describe())
    assert tree_state(library) == before
    assert sorted(p.name for p in library.iterdir()) == ["a.jpg", "b.jpg", "b.jpg.xmp", "c.CR2"]
    assert "dc:subject: + x" in "\n".join(texts)
    assert "create sidecar: a.jpg.xmp" in "\n".join(texts)


def test_planted_symlink_sidecar_is_refused(library, journal, tmp_path):
    bashrc = tmp_path / "home" / ".bashrc"
    bashrc.parent.mkdir()
    bashrc.write_text("export PATH=/usr/bin\n")
    photo = make_jpeg(library / "IMG.jpg")
    (library / "IMG.jpg.xmp").symlink_to(bashrc)
    with pytest.raises(WriteRefusedError, match="symbolic link"):
        plan_write(photo, Generated(keywords=("x",)), library_root=library, options=SIDECAR)
    assert bashrc.read_text() == "export PATH=/usr/bin\n"


def test_symlinked_photo_and_folders_leading_out_are_refused(library, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    real = make_jpeg(outside / "real.jpg")
    (library / "link.jpg").symlink_to(real)
    (library / "linked-folder").symlink_to(outside, target_is_directory=True)
    for photo in (library / "link.jpg", library / "linked-folder" / "real.jpg", real):
        with pytest.raises(WriteRefusedError):
            plan_write(photo, Generated(keywords=("x",)), library_root=library)
    assert sorted(p.name for p in outside.iterdir()) == ["real.jpg"]


def test_leftover_temps_are_cleaned(library, journal):
    photo = make_jpeg(library / "IMG.jpg")
    leftover = library / ".captioneer-tmp-0123456789ab-IMG.jpg.xmp"
    leftover.write_bytes(b"<half")
    other = library / "sub" / ".captioneer-tmp-0123456789ab-x.jpg"
    other.parent.mkdir()
    other.write_bytes(b"half")
    write(photo, library, journal, keywords=("x",))
    assert not leftover.exists()
    assert remove_stale_temps(library) == [other]
    assert not os.path.exists(other)


def test_new_sidecar_carries_what_the_photo_already_has(library, journal):
    photo = make_jpeg(library / "IMG.jpg")
    subprocess.run(
        [
            "exiftool",
            "-q",
            "-overwrite_original",
            "-XMP-dc:Subject=Family",
            "-XMP-dc:Title=Grandma",
            str(photo),
        ],
        check=True,
    )
    original = photo.read_bytes()
    plan, outcome = write(photo, library, journal, keywords=("cake",))
    assert "create sidecar: IMG.jpg.xmp" in plan.describe()
    seen = exiftool(library / "IMG.jpg.xmp")
    assert as_list(seen["XMP-dc:Subject"]) == ["Family", "cake"]
    assert seen["XMP-dc:Title"] == "Grandma"
    assert photo.read_bytes() == original


def test_read_only_sidecar_is_skipped_and_kept(library, journal):
    photo = make_jpeg(library / "IMG.jpg")
    sidecar = library / "IMG.jpg.xmp"
    sidecar.write_text(LIGHTROOM_SIDECAR.format(keyword="Mine"), encoding="utf-8")
    sidecar.chmod(0o444)
    content = sidecar.read_bytes()
    _, outcome = write(photo, library, journal, keywords=("x",))
    assert outcome.status == "skipped" and "read-only" in outcome.reason
    assert sidecar.read_bytes() == content


def test_damaged_sidecar_is_reported_and_never_overwritten(library, journal):
    photo = make_jpeg(library / "IMG.jpg")
    sidecar = library / "IMG.jpg.xmp"
    sidecar.write_bytes(b"<x:xmpmeta this is not xml")
    with pytest.raises(MetadataWriteError, match="not valid XMP"):
        plan_write(photo, Generated(keywords=("x",)), library_root=library, options=SIDECAR)
    assert sidecar.read_bytes() == b"<x:xmpmeta this is not xml"


def test_zero_byte_sidecar_left_by_a_crashed_tool_is_replaced(library, journal):
    photo = make_jpeg(library / "IMG.jpg")
    sidecar = library / "IMG.jpg.xmp"
    sidecar.write_bytes(b"")
    _, outcome = write(photo, library, journal, keywords=("x",))
    assert outcome.files[0][0] == sidecar
    assert as_list(exiftool(sidecar)["XMP-dc:Subject"]) == ["x"]
