"""The writer never loses what other tools wrote: every keyword field merged, damaged XMP refused, FIFOs and
folders skipped, temp leftovers cleaned, EXIF valid, IPTC notes shown; real files, exiftool reads back.

The sidecars and embedded packets are written by hand the way digiKam, Lightroom, darktable and Windows write
them (namespaces, separators, which fields each one fills).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from captioneer.desktop.library.journal import Journal, undo
from captioneer.desktop.library.merge import Generated
from captioneer.desktop.library.sidecars import WriteMode
from captioneer.desktop.library.write_errors import DamagedXmpError, MetadataWriteError
from captioneer.desktop.library.writer import WriteOptions, apply, plan_write
from captioneer.desktop.library.xmp_check import xmp_problem

SIDECAR = WriteOptions(mode=WriteMode.SIDECAR)
EMBEDDED = WriteOptions(mode=WriteMode.EMBEDDED)

XPACKET_BEGIN = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'

# digiKam 8 with "write to sidecar": tags as TagsList paths, MicrosoftPhoto and lr copies, mediapro; here the
# user's dc:subject lacks People/Alice (digiKam's "write tags to dc:subject" was off when Alice was added).
DIGIKAM_SIDECAR = f"""{XPACKET_BEGIN}
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:digiKam="http://www.digikam.org/ns/1.0/"
    xmlns:MicrosoftPhoto="http://ns.microsoft.com/photo/1.0/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/"
    xmlns:mediapro="http://ns.iview-multimedia.com/mediapro/1.0/"
    xmp:Rating="3"
    MicrosoftPhoto:Rating="50">
   <dc:subject><rdf:Bag><rdf:li>Paris</rdf:li></rdf:Bag></dc:subject>
   <digiKam:TagsList><rdf:Seq><rdf:li>Places/France/Paris</rdf:li><rdf:li>People/Alice</rdf:li></rdf:Seq>
   </digiKam:TagsList>
   <MicrosoftPhoto:LastKeywordXMP><rdf:Bag><rdf:li>Places/France/Paris</rdf:li><rdf:li>People/Alice</rdf:li>
   </rdf:Bag></MicrosoftPhoto:LastKeywordXMP>
   <lr:hierarchicalSubject><rdf:Bag><rdf:li>Places|France|Paris</rdf:li><rdf:li>People|Alice</rdf:li>
   </rdf:Bag></lr:hierarchicalSubject>
   <mediapro:CatalogSets><rdf:Bag><rdf:li>Places|France|Paris</rdf:li><rdf:li>People|Alice</rdf:li></rdf:Bag>
   </mediapro:CatalogSets>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""

# darktable 4: its history, its own automatic tags under darktable|…, the user's tags in dc:subject and lr.
DARKTABLE_SIDECAR = """<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:exif="http://ns.adobe.com/exif/1.0/"
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/"
    xmlns:darktable="http://darktable.sf.net/"
    xmp:Rating="2"
    xmpMM:DerivedFrom="IMG_7.JPG"
    darktable:import_timestamp="63840000000000000"
    darktable:xmp_version="5"
    darktable:raw_params="0"
    darktable:auto_presets_applied="1"
    darktable:history_end="2"
    darktable:iop_order_version="4">
   <darktable:masks_history><rdf:Seq/></darktable:masks_history>
   <darktable:history>
    <rdf:Seq>
     <rdf:li darktable:num="0" darktable:operation="exposure" darktable:enabled="1" darktable:modversion="6"
      darktable:params="00000000000080b9" darktable:multi_name="" darktable:multi_priority="0"
      darktable:blendop_version="13" darktable:blendop_params="gz11eJxjYGBgkGAAgRNODGiAEV0AJ"/>
     <rdf:li darktable:num="1" darktable:operation="colorbalancergb" darktable:enabled="1"
      darktable:modversion="5" darktable:params="0000000000000000" darktable:multi_name=""
      darktable:multi_priority="0" darktable:blendop_version="13" darktable:blendop_params="gz11eJx"/>
    </rdf:Seq>
   </darktable:history>
   <dc:subject><rdf:Bag><rdf:li>Family</rdf:li></rdf:Bag></dc:subject>
   <lr:hierarchicalSubject>
    <rdf:Bag>
     <rdf:li>darktable|format|jpg</rdf:li>
     <rdf:li>darktable|changed</rdf:li>
     <rdf:li>Trips|Beach</rdf:li>
    </rdf:Bag>
   </lr:hierarchicalSubject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def exiftool(path: Path) -> dict:
    """What the independent reader sees: exiftool's JSON for one file, groups as prefixes, structs kept."""
    binary = shutil.which("exiftool")
    assert binary, "exiftool is needed to check what was written"
    out = subprocess.run(
        [binary, "-j", "-G1", "-a", "-struct", str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)[0]


def exiftool_set(path: Path, *assignments: str) -> None:
    subprocess.run(["exiftool", "-q", "-overwrite_original", *assignments, str(path)], check=True)


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_jpeg(path: Path, colour=(30, 120, 200)) -> Path:
    Image.new("RGB", (64, 48), colour).save(path, quality=90)
    return path


def foreign(seen: dict) -> dict:
    """The properties of an exiftool reading that are not the file system's or ours."""
    ours = (
        "XMP-dc:Subject",
        "XMP-dc:Description",
        "XMP-lr:HierarchicalSubject",
        "XMP-digiKam:TagsList",
        "IPTC:Keywords",
        "IPTC:Caption-Abstract",
    )
    return {
        key: value
        for key, value in seen.items()
        if not key.startswith(("System:", "File:", "SourceFile", "ExifTool:", "XMP-captioneer:", "XMP-x:"))
        and key not in ours
    }


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "library"
    root.mkdir()
    return root


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal" / "write-1")


def write(photo: Path, library: Path, journal: Journal, options: WriteOptions = SIDECAR, **generated):
    plan = plan_write(photo, Generated(**generated), library_root=library, options=options)
    return plan, apply(plan, journal)


# ---- bullet 1: every keyword field merged with every other -----------------------------------------------


def test_digikam_sidecar_keeps_every_tag_and_dc_subject_gains_the_tags_only_digikam_had(library, journal):
    photo = make_jpeg(library / "IMG_1.JPG")
    sidecar = library / "IMG_1.JPG.xmp"
    sidecar.write_text(DIGIKAM_SIDECAR, encoding="utf-8")
    before = foreign(exiftool(sidecar))

    write(photo, library, journal, keywords=("sunset", "alice"))

    after = exiftool(sidecar)
    assert as_list(after["XMP-dc:Subject"]) == ["Paris", "Alice", "sunset"]
    assert as_list(after["XMP-digiKam:TagsList"]) == ["Places/France/Paris", "People/Alice", "sunset"]
    assert as_list(after["XMP-lr:HierarchicalSubject"]) == ["Places|France|Paris", "People|Alice", "sunset"]
    assert foreign(after) == before  # MicrosoftPhoto keywords, mediapro sets, both ratings: all still there
    assert as_list(after["XMP-captioneer:Keywords"]) == ["sunset"]


def test_darktable_sidecar_keeps_history_and_its_own_tags_stay_out_of_dc_subject(library, journal):
    photo = make_jpeg(library / "IMG_7.JPG")
    sidecar = library / "IMG_7.JPG.xmp"
    sidecar.write_text(DARKTABLE_SIDECAR, encoding="utf-8")
    before = foreign(exiftool(sidecar))

    write(photo, library, journal, keywords=("sea",))

    after = exiftool(sidecar)
    assert as_list(after["XMP-dc:Subject"]) == ["Family", "Beach", "sea"]
    assert as_list(after["XMP-lr:HierarchicalSubject"]) == [
        "darktable|format|jpg",
        "darktable|changed",
        "Trips|Beach",
        "Family",
        "sea",
    ]
    assert as_list(after["XMP-digiKam:TagsList"]) == ["Family", "Beach", "sea"]
    assert foreign(after) == before
    assert len(after["XMP-darktable:History"]) == 2


def test_lightroom_jpeg_keywords_only_in_the_hierarchy_reach_every_field(library, journal):
    photo = make_jpeg(library / "DSC_2.jpg")
    # Lightroom Classic exports: leaves (and here one parent) in dc:subject, full paths in lr, crs settings.
    exiftool_set(
        photo,
        "-XMP-dc:Subject=Rome",
        "-XMP-lr:HierarchicalSubject=Places|Italy|Rome",
        "-XMP-lr:HierarchicalSubject=Events|Wedding",
        "-XMP-crs:Exposure2012=+0.35",
        "-XMP-xmp:Label=Green",
    )
    before = foreign(exiftool(photo))

    write(photo, library, journal, options=EMBEDDED, keywords=("church",))

    after = exiftool(photo)
    assert as_list(after["XMP-dc:Subject"]) == ["Rome", "Wedding", "church"]
    assert as_list(after["XMP-lr:HierarchicalSubject"]) == [
        "Places|Italy|Rome",
        "Events|Wedding",
        "church",
    ]
    assert as_list(after["XMP-digiKam:TagsList"]) == ["Rome", "Wedding", "church"]
    assert foreign(after) == before


def test_iptc_only_and_windows_keywords_reach_xmp_and_iptc_gets_the_rest(library, journal):
    photo = make_jpeg(library / "scan.jpg")
    exiftool_set(
        photo,
        "-IPTC:Keywords=Oma",
        "-IPTC:Keywords=Strand",
        "-XMP-microsoft:LastKeywordXMP=Katze",
        "-XMP-dc:Subject=Urlaub",
    )

    write(photo, library, journal, options=EMBEDDED, keywords=("sea",))

    after = exiftool(photo)
    assert as_list(after["XMP-dc:Subject"]) == ["Urlaub", "Oma", "Strand", "Katze", "sea"]
    assert as_list(after["IPTC:Keywords"]) == ["Oma", "Strand", "Urlaub", "Katze", "sea"]
    assert as_list(after["XMP-digiKam:TagsList"]) == ["Urlaub", "Oma", "Strand", "Katze", "sea"]
    assert as_list(after["XMP-microsoft:LastKeywordXMP"]) == ["Katze"]


# ---- bullet 2: existing XMP that did not read completely is never replaced ------------------------------

DAMAGED = {
    "stray ampersand": ("<rdf:li>Beach</rdf:li>", "<rdf:li>Fish & Chips</rdf:li>"),
    "unbound prefix": ("<dc:subject>", "<foo:note>x</foo:note><dc:subject>"),
    "missing close tag": ("</rdf:Seq>\n   </darktable:history>", "</rdf:Seq>"),
}


def damaged_sidecars() -> Iterator[tuple[str, str]]:
    good = DARKTABLE_SIDECAR.replace(
        "<rdf:li>Family</rdf:li>", "<rdf:li>Family</rdf:li><rdf:li>Beach</rdf:li>"
    )
    for name, (old, new) in DAMAGED.items():
        assert old in good
        yield name, good.replace(old, new)
    yield "truncated", good[: good.index("<dc:subject>") + 40]


@pytest.mark.parametrize(("case", "text"), list(damaged_sidecars()), ids=[c for c, _ in damaged_sidecars()])
def test_a_damaged_sidecar_is_left_untouched_and_named(library, journal, case, text):
    photo = make_jpeg(library / "IMG_7.JPG")
    sidecar = library / "IMG_7.JPG.xmp"
    sidecar.write_text(text, encoding="utf-8")
    content = sidecar.read_bytes()

    with pytest.raises(DamagedXmpError) as raised:
        plan_write(photo, Generated(keywords=("sea",)), library_root=library, options=SIDECAR)

    message = str(raised.value)
    assert str(sidecar) in message and "left untouched" in message and "\n" not in message
    assert "not well-formed XML" in message
    assert sidecar.read_bytes() == content
    assert sorted(p.name for p in library.iterdir()) == ["IMG_7.JPG", "IMG_7.JPG.xmp"]


def test_a_property_exiv2_did_not_read_is_named_even_in_well_formed_xml():
    packet = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="4">'
        "<dc:subject><rdf:Bag><rdf:li>a</rdf:li></rdf:Bag></dc:subject>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    namespaces = {"dc": "http://purl.org/dc/elements/1.1/", "xmp": "http://ns.adobe.com/xap/1.0/"}
    assert xmp_problem(packet, ["Xmp.xmp.Rating", "Xmp.dc.subject[1]"], namespaces) == ""
    assert xmp_problem(packet, ["Xmp.dc.subject[1]"], namespaces) == (
        "exiv2 could read only part of it (it would lose http://ns.adobe.com/xap/1.0/Rating)"
    )


def jpeg_with_xmp_packet(path: Path, packet: bytes) -> Path:
    """A JPEG whose APP1 XMP segment holds exactly ``packet`` (as a tool that writes raw packets would)."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (9, 90, 200)).save(buffer, "JPEG", quality=90)
    data = buffer.getvalue()
    payload = b"http://ns.adobe.com/xap/1.0/\x00" + packet
    segment = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    path.write_bytes(data[:2] + segment + data[2:])
    return path


EMBEDDED_PACKET = (
    XPACKET_BEGIN + "{doctype}"
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="4">'
    "<dc:subject><rdf:Bag><rdf:li>Family</rdf:li><rdf:li>{beach}</rdf:li></rdf:Bag></dc:subject>"
    '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
)


@pytest.mark.parametrize(
    ("case", "doctype", "beach"),
    [
        ("doctype with an entity", '<!DOCTYPE x:xmpmeta [<!ENTITY kw "Beach">]>', "&kw;"),
        ("stray ampersand", "", "Fish & Chips"),
    ],
)
def test_damaged_embedded_xmp_is_left_untouched(library, journal, case, doctype, beach):
    packet = EMBEDDED_PACKET.format(doctype=doctype, beach=beach).encode("utf-8")
    photo = jpeg_with_xmp_packet(library / "a.jpg", packet)
    assert exiftool(photo)["XMP-xmp:Rating"] == 4  # other tools read the packet: there is data to lose
    original = sha(photo)

    with pytest.raises(DamagedXmpError, match="embedded XMP did not read completely") as raised:
        plan_write(photo, Generated(keywords=("sea",)), library_root=library, options=EMBEDDED)

    assert str(photo) in str(raised.value)
    assert sha(photo) == original


def test_a_sound_embedded_packet_is_still_written(library, journal):
    packet = EMBEDDED_PACKET.format(doctype="", beach="Beach").encode("utf-8")
    photo = jpeg_with_xmp_packet(library / "a.jpg", packet)
    _, outcome = write(photo, library, journal, options=EMBEDDED, keywords=("sea",))
    assert outcome.status == "written"
    seen = exiftool(photo)
    assert as_list(seen["XMP-dc:Subject"]) == ["Family", "Beach", "sea"] and seen["XMP-xmp:Rating"] == 4


# ---- bullet 3: a FIFO or a folder where a file should be ------------------------------------------------


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail instead of hanging (opening a FIFO with no writer waits forever)."""

    def expired(_signum, _frame):
        raise TimeoutError(f"still waiting after {seconds} s: something opened a FIFO")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("kind", ["fifo", "folder"])
@pytest.mark.parametrize("where", ["sidecar", "stem sidecar", "photo"])
def test_fifo_or_folder_is_skipped_with_a_message(library, journal, kind, where):
    photo = make_jpeg(library / "IMG.jpg")
    path = {"sidecar": "IMG.jpg.xmp", "stem sidecar": "IMG.xmp", "photo": "IMG.jpg"}[where]
    if where == "photo":
        photo.unlink()
    target = library / path
    os.mkfifo(target) if kind == "fifo" else target.mkdir()
    other = make_jpeg(library / "other.jpg")

    with deadline(10):
        plan, outcome = write(photo, library, journal, keywords=("sea",))
        _, other_outcome = write(other, library, journal, keywords=("sea",))

    described = {"fifo": "a FIFO (named pipe)", "folder": "a folder"}[kind]
    assert outcome.status == "skipped" and f"{path} is {described}" in outcome.reason
    assert f"{path} is {described}" in plan.describe()
    assert other_outcome.status == "written"  # the rest of the write carries on
    assert target.is_fifo() if kind == "fifo" else target.is_dir()


def test_a_fifo_swapped_in_after_the_plan_is_refused_not_waited_on(library, journal):
    photo = make_jpeg(library / "IMG.jpg")
    sidecar = library / "IMG.jpg.xmp"
    sidecar.write_text(DARKTABLE_SIDECAR, encoding="utf-8")
    plan = plan_write(photo, Generated(keywords=("sea",)), library_root=library, options=SIDECAR)
    sidecar.unlink()
    os.mkfifo(sidecar)

    with deadline(10), pytest.raises(MetadataWriteError, match="a FIFO"):
        apply(plan, journal)

    assert sidecar.is_fifo() and journal.entries() == []


# ---- bullet 4: temp leftovers cleaned, only ours, never through links -----------------------------------


def test_undo_cleans_leftover_temps_and_only_ours(library, journal, tmp_path):
    photo = make_jpeg(library / "IMG.jpg")
    original = sha(photo)
    write(photo, library, journal, options=EMBEDDED, keywords=("sea",))
    leftover = library / ".captioneer-tmp-0123456789ab-IMG.jpg"  # an undo killed before its rename
    leftover.write_bytes(b"half a photo")
    outside = tmp_path / "precious.txt"
    outside.write_text("keep")
    link = library / ".captioneer-tmp-fedcba987654-IMG.jpg"
    link.symlink_to(outside)
    lookalike = library / ".captioneer-tmp-user-notes-IMG.jpg"  # not our pattern: a user's file
    lookalike.write_text("mine")

    report = undo(journal.directory)

    assert report.ok and sha(photo) == original
    assert not leftover.exists()
    assert link.is_symlink() and outside.read_text() == "keep"
    assert lookalike.read_text() == "mine"


# ---- bullet 5: valid EXIF or none -----------------------------------------------------------------------


def validate(path: Path) -> list[str]:
    out = subprocess.run(
        ["exiftool", "-validate", "-warning", "-a", "-s", "-s", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(line for line in out.splitlines() if not line.startswith("Validate"))


def test_embedded_jpeg_writes_add_no_exif_warning(library, journal):
    plain = make_jpeg(library / "plain.jpg")
    camera = make_jpeg(library / "camera.jpg")
    exiftool_set(
        camera,
        "-Make=Canon",
        "-Model=Canon EOS R5",
        "-XResolution=72",
        "-YResolution=72",
        "-ResolutionUnit=inches",
        "-YCbCrPositioning=Centered",
        "-ExifVersion=0232",
        "-ColorSpace=sRGB",
        "-DateTimeOriginal=2024:05:01 10:00:00",
        "-ImageDescription=SONY DSC",
    )
    for photo in (plain, camera):
        warnings = validate(photo)
        write(photo, library, journal, options=EMBEDDED, keywords=("sea",), caption="A calm sea.")
        assert validate(photo) == warnings, photo.name
    assert not [key for key in exiftool(plain) if key.startswith(("IFD0:", "ExifIFD:"))]  # none added
    seen = exiftool(camera)
    assert seen["IFD0:ImageDescription"] == "A calm sea." and seen["IFD0:Make"] == "Canon"


# ---- bullet 6: IPTC notes are part of the plan (dry run) and the outcome --------------------------------


def test_iptc_truncation_notes_are_in_the_dry_run_and_the_outcome(library, journal):
    photo = make_jpeg(library / "iptc.jpg")
    exiftool_set(photo, "-IPTC:Keywords=Family")
    caption = "é" * 1500  # 3,000 bytes
    long_keyword = "k" * 70
    plan = plan_write(
        photo, Generated(keywords=(long_keyword,), caption=caption), library_root=library, options=EMBEDDED
    )
    described = plan.describe()
    assert "IPTC Caption-Abstract shortened to IPTC's limit of 2,000 bytes" in described
    assert f"keyword '{long_keyword}' is longer than IPTC's 64 bytes: written to XMP only" in described

    outcome = apply(plan, journal)

    assert any("Caption-Abstract shortened" in note for note in outcome.notes)
    assert any("written to XMP only" in note for note in outcome.notes)
    seen = exiftool(photo)
    assert len(seen["IPTC:Caption-Abstract"].encode()) <= 2000 and seen["XMP-dc:Description"] == caption
    assert as_list(seen["IPTC:Keywords"]) == ["Family"]
