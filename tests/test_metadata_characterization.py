"""What the metadata writer puts on disk, pinned: real files of every kind we merge into, written, then read
back by exiftool and compared with the record in ``tests/fixtures/metadata_characterization.json``.

The record was made by the writer before its fields became one declarative table; any change in what another
program reads from our files (a field, an IPTC copy, a keyword, a hierarchy entry, provenance, the preview
text) fails here. When a change is meant (or exiv2/exiftool was upgraded and the difference is only theirs),
re-record with ``CAPTIONEER_RECORD_CHARACTERIZATION=1`` and review the JSON diff before committing it.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from captioneer.desktop.library.journal import Journal
from captioneer.desktop.library.merge import Generated, MergeOptions
from captioneer.desktop.library.metadata import existing_keywords, exiv2_module, read_metadata
from captioneer.desktop.library.sidecars import SidecarNaming, WriteMode
from captioneer.desktop.library.writer import WriteOptions, apply, plan_write
from tests.test_metadata_sidecar import exiftool as read_with_exiftool

RECORD = Path(__file__).parent / "fixtures" / "metadata_characterization.json"
TIME = "2026-01-02T03:04:05+00:00"
# exiftool tags that describe the file system, exiftool itself, or the size of the encoder's image data.
_IGNORED_GROUPS = ("System:", "ExifTool:", "File:FileSize")


def _xmp_packet(description_attributes: str, *properties: str) -> str:
    """An XMP packet as another program would have written it: one rdf:Description with these properties."""
    body = "\n".join(properties)
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        f'  <rdf:Description rdf:about="" {NS} {description_attributes}>\n'
        f"{body}\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>\n'
    )


def _bag(tag: str, *items: str, kind: str = "Bag") -> str:
    lis = "".join(f"<rdf:li>{item}</rdf:li>" for item in items)
    return f"   <{tag}><rdf:{kind}>{lis}</rdf:{kind}></{tag}>"


def _alt(tag: str, text: str) -> str:
    return f'   <{tag}><rdf:Alt><rdf:li xml:lang="x-default">{text}</rdf:li></rdf:Alt></{tag}>'


NS = (
    'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:lr="http://ns.adobe.com/lightroom/1.0/" '
    'xmlns:digiKam="http://www.digikam.org/ns/1.0/" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
    'xmlns:MicrosoftPhoto="http://ns.microsoft.com/photo/1.0/" '
    'xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/" xmlns:darktable="http://darktable.sf.net/" '
    'xmlns:Iptc4xmpCore="http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/"'
)

DIGIKAM_SIDECAR = _xmp_packet(
    'xmp:Rating="3"',
    _bag("digiKam:TagsList", "People/Anna", "Places/Lake", kind="Seq"),
    _bag("dc:subject", "Anna", "Lake"),
    _bag("MicrosoftPhoto:LastKeywordXMP", "People/Anna", "Places/Lake"),
    _bag("lr:hierarchicalSubject", "People|Anna", "Places|Lake"),
)
LIGHTROOM_SIDECAR = _xmp_packet(
    'crs:Version="15.0" crs:Exposure2012="+0.50"',
    _bag("lr:hierarchicalSubject", "Places|France|Paris", "Events|Holiday"),
    _bag("dc:subject", "Paris", "Holiday", "France"),
    _alt("dc:description", "Eiffel tower at dusk"),
)
DARKTABLE_SIDECAR = _xmp_packet(
    'darktable:xmp_version="5" darktable:history_end="1"',
    "   <darktable:history><rdf:Seq>"
    '<rdf:li darktable:operation="exposure" darktable:enabled="1" darktable:params="0000803f"/>'
    "</rdf:Seq></darktable:history>",
    _bag("lr:hierarchicalSubject", "darktable|format|jpg", "darktable|changed", "nature|tree"),
    _bag("dc:subject", "tree"),
)
WINDOWS_XMP = _xmp_packet(
    'xmp:Rating="5"',
    _bag("MicrosoftPhoto:LastKeywordXMP", "Holiday/Beach", "Family"),
    _bag("MicrosoftPhoto:LastKeywordIPTC", "Family"),
    _bag("dc:subject", "Family", "Holiday"),
)
CAMERA_XMP = _xmp_packet(
    'xmp:Rating="4"',
    _bag("dc:subject", "Family", "Sunset"),
    _alt("Iptc4xmpCore:AltTextAccessibility", "old alt"),
)


def make_image(path: Path, fmt: str) -> Path:
    """A deterministic textured image (the same bytes on every run)."""
    data = bytes(
        (x * 7 + y * 13 + (x * y) % 31) % 256 for y in range(48) for x in range(64) for _ in range(3)
    )
    Image.frombytes("RGB", (64, 48), data).save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return path


def embed(path: Path, *, packet: str = "", exif: dict | None = None, iptc: list | None = None) -> None:
    """Put metadata into an image file the way other programs would have left it (exiv2's own API)."""
    exiv2 = exiv2_module()
    image = exiv2.ImageFactory.open(str(path))
    image.readMetadata()
    for key, value in (exif or {}).items():
        image.exifData()[key] = value
    for key, value in iptc or []:
        image.iptcData().add(exiv2.IptcKey(key), exiv2.StringValue(value))
    if packet:
        image.setXmpPacket(packet)
        image.writeXmpFromPacket(True)
    image.writeMetadata()


def exiftool(path: Path) -> dict:
    """exiftool's view of the file, less what says nothing about what we wrote."""
    tags = read_with_exiftool(path)
    return {k: v for k, v in sorted(tags.items()) if k != "SourceFile" and not k.startswith(_IGNORED_GROUPS)}


def _readback(path: Path) -> dict:
    """What our own reader makes of a written file (the fields and the provenance)."""
    exiv2 = exiv2_module()
    if path.suffix == ".xmp":
        image = exiv2.ImageFactory.open(path.read_bytes())
        image.readMetadata()
        meta = read_metadata(image.xmpData())
    else:
        image = exiv2.ImageFactory.open(str(path))
        image.readMetadata()
        meta = read_metadata(image.xmpData(), image.iptcData(), image.exifData())
    return {
        **meta.fields(),
        "provenance": meta.provenance and dataclasses.asdict(meta.provenance),
        "has_iptc": meta.has_iptc,
        "xmp_packet": image.xmpPacket().splitlines(),
    }


LONG_CAPTION = "Ein langer Text über den Strand, Möwen und Sonnenuntergang. " * 33  # > 2,000 bytes
LONG_KEYWORD = "an extraordinarily long keyword that cannot possibly fit into IPTC's limit"


def _scenarios(root: Path) -> list[tuple[str, Path, list[tuple[Generated, WriteOptions]]]]:
    """(name, photo, the writes to make in order) for every kind of file we merge into."""
    camera = make_image(root / "camera.jpg", "JPEG")
    embed(
        camera,
        packet=CAMERA_XMP,
        exif={"Exif.Image.ImageDescription": "SONY DSC", "Exif.Image.Make": "Sony"},
        iptc=[
            ("Iptc.Envelope.CharacterSet", "\x1b%G"),
            ("Iptc.Application2.Keywords", "Family"),
            ("Iptc.Application2.Keywords", "Beach"),
            ("Iptc.Application2.ObjectName", "Old title"),
        ],
    )
    png = make_image(root / "screen.png", "PNG")
    windows = make_image(root / "windows.jpg", "JPEG")
    embed(windows, packet=WINDOWS_XMP, exif={"Exif.Image.Make": "Canon"})
    tiff = make_image(root / "scan.tif", "TIFF")
    embed(tiff, exif={"Exif.Image.ImageDescription": "A scanned print"})
    plain = make_image(root / "plain.jpg", "JPEG")
    embed(plain, iptc=[("Iptc.Application2.Keywords", "Grandma")])
    digikam = make_image(root / "dk.jpg", "JPEG")
    (root / "dk.jpg.xmp").write_text(DIGIKAM_SIDECAR, encoding="utf-8")
    lightroom = make_image(root / "lr.jpg", "JPEG")
    (root / "lr.xmp").write_text(LIGHTROOM_SIDECAR, encoding="utf-8")
    darktable = make_image(root / "dt.jpg", "JPEG")
    (root / "dt.jpg.xmp").write_text(DARKTABLE_SIDECAR, encoding="utf-8")

    model = {
        "model": "qwen3-vl-2b",
        "engine": "gguf",
        "quant": "Q4_K_M",
        "prompt_hash": "abc123",
        "time": TIME,
    }
    embedded = WriteOptions(mode=WriteMode.EMBEDDED)
    sidecar = WriteOptions(mode=WriteMode.SIDECAR)
    first = Generated(
        keywords=("beach", "sunset", "sea|shore/line", LONG_KEYWORD, "Möwe"),
        caption=LONG_CAPTION,
        title="Evening at the sea",
        alt_text="Gulls over a beach at sunset",
        language="de-DE",
        **model,
    )
    second = Generated(keywords=("gull",), caption="A shorter caption.", title="Evening", **model)
    lighthouse = Generated(keywords=("lighthouse",), alt_text="A lighthouse", **model)
    return [
        (
            "jpeg_exif_iptc_xmp",
            camera,
            [
                (first, WriteOptions(mode=WriteMode.EMBEDDED, merge=MergeOptions(ai_branch="AI"))),
                (second, embedded),
                (second, embedded),
            ],
        ),
        (
            "jpeg_replace_text",
            plain,
            [
                (first, embedded),
                (
                    Generated(caption="Replaced.", **model),
                    WriteOptions(merge=MergeOptions(replace_text=True)),
                ),
            ],
        ),
        ("png", png, [(first, embedded)]),
        ("tiff_exif", tiff, [(second, WriteOptions(mode=WriteMode.BOTH))]),
        ("windows_microsoftphoto", windows, [(first, embedded)]),
        (
            "digikam_sidecar",
            digikam,
            [(first, WriteOptions(mode=WriteMode.SIDECAR, merge=MergeOptions(ai_branch="AI")))],
        ),
        (
            "lightroom_sidecar",
            lightroom,
            [(first, WriteOptions(mode=WriteMode.SIDECAR, naming=SidecarNaming.STEM))],
        ),
        ("darktable_sidecar", darktable, [(second, sidecar)]),
        ("new_sidecar_from_embedded", camera, [(lighthouse, sidecar)]),
    ]


def _normalise(text: str, root: Path) -> str:
    return text.replace(str(root), "<library>")


def observe(root: Path, journal_root: Path) -> dict:
    """Every write of every scenario: preview text, outcome, and what exiftool and our reader see after it."""
    observed: dict = {}
    for name, photo, writes in _scenarios(root):
        steps = []
        before_keywords, notes = existing_keywords(photo)
        for index, (generated, options) in enumerate(writes):
            plan = plan_write(photo, generated, library_root=root, options=options)
            outcome = apply(plan, Journal(journal_root / f"{name}-{index}"))
            steps.append(
                {
                    "preview": _normalise(plan.describe(), root).splitlines(),
                    "status": outcome.status,
                    "notes": [_normalise(note, root) for note in outcome.notes],
                    "files": {
                        target.name: {"exiftool": exiftool(target), "read": _readback(target)}
                        for target, _sha in outcome.files
                    },
                }
            )
        observed[name] = {"existing_keywords": [list(before_keywords), list(notes)], "writes": steps}
    return observed


def test_written_metadata_is_what_was_recorded(tmp_path: Path) -> None:
    root = tmp_path / "library"
    root.mkdir()
    observed = json.loads(json.dumps(observe(root, tmp_path / "journal")))
    if os.environ.get("CAPTIONEER_RECORD_CHARACTERIZATION"):
        RECORD.write_text(json.dumps(observed, indent=1, ensure_ascii=False, sort_keys=True) + "\n", "utf-8")
    recorded = json.loads(RECORD.read_text("utf-8"))
    assert sorted(observed) == sorted(recorded)
    for name in recorded:
        if observed[name] != recorded[name]:
            diff = difflib.unified_diff(_lines(recorded[name]), _lines(observed[name]), "recorded", "now")
            pytest.fail(f"{name} changed:\n" + "\n".join(list(diff)[:60]))


def _lines(value: object) -> list[str]:
    return json.dumps(value, indent=1, ensure_ascii=False, sort_keys=True).splitlines()
