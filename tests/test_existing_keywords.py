"""The keywords a photo already has (any keyword field, embedded or in either sidecar) read at scan into the
catalog, and used by search, the keyword filter and autocomplete; real files written by exiftool."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from captioneer.desktop.cli import main
from captioneer.desktop.library.browse import BrowseFilter, keyword_counts, photo_ids
from captioneer.desktop.library.catalog import MIGRATIONS, open_catalog
from captioneer.desktop.library.catalog.search import search
from captioneer.desktop.library.metadata import existing_keywords
from captioneer.desktop.library.runs import RunSpec, execute_run, plan_run
from captioneer.desktop.library.scanner import default_keyword_reader, scan_library
from tests.fakes.tagging_engine import FakeEngine, fake_config

pytestmark = pytest.mark.skipif(shutil.which("exiftool") is None, reason="needs exiftool")


def exiftool(*args: str) -> None:
    subprocess.run(["exiftool", "-q", "-q", "-overwrite_original", *args], check=True)


def photo(path: Path, shade: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (48, 32), (shade, 90, 140)).save(path)
    return path


def xmp_packet(body: str) -> str:
    return (
        '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">{body}</rdf:Description>'
        '</rdf:RDF></x:xmpmeta>\n<?xpacket end="w"?>'
    )


def subject(*keywords: str) -> str:
    items = "".join(f"<rdf:li>{k}</rdf:li>" for k in keywords)
    return f"<dc:subject><rdf:Bag>{items}</rdf:Bag></dc:subject>"


def test_every_keyword_field_embedded_and_in_both_sidecar_names(tmp_path: Path) -> None:
    jpeg = photo(tmp_path / "IMG_1.jpg")
    exiftool(
        "-XMP-dc:Subject=Family",
        "-XMP-dc:Subject=Beach",
        "-XMP-lr:HierarchicalSubject=Places|Italy|Rome",
        "-XMP-digiKam:TagsList=People/Anna",
        "-XMP-microsoft:LastKeywordXMP=Events/Wedding",
        "-IPTC:Keywords=IptcOnly",
        "-IPTC:Keywords=family",  # the same keyword in another case is one keyword
        str(jpeg),
    )
    keywords, notes = existing_keywords(jpeg)
    assert keywords == ("Family", "Beach", "IptcOnly", "Rome", "Anna", "Wedding") and notes == ()

    alone = photo(tmp_path / "IMG_2.png")
    (tmp_path / "IMG_2.png.xmp").write_text(xmp_packet(subject("Full name")), encoding="utf-8")
    (tmp_path / "IMG_2.xmp").write_text(xmp_packet(subject("Stem name", "Full NAME")), encoding="utf-8")
    assert existing_keywords(alone) == (("Full name", "Stem name"), ())

    # RAW+JPEG: IMG_3.xmp is the RAW's (Lightroom); the JPEG never takes its keywords.
    pair = photo(tmp_path / "IMG_3.jpg")
    (tmp_path / "IMG_3.cr2").write_bytes(b"raw")
    (tmp_path / "IMG_3.xmp").write_text(xmp_packet(subject("RAW only")), encoding="utf-8")
    assert existing_keywords(pair) == ((), ())


MALFORMED = {
    "stray ampersand": xmp_packet(subject("Tom & Jerry", "Kept?")),
    "unbound prefix": xmp_packet(subject("Lost") + "<darktable:history>x</darktable:history>"),
    "missing close tag": xmp_packet(subject("Lost")).replace("</rdf:Description>", ""),
    "truncated": xmp_packet(subject("Lost", "Also lost"))[:200],
    "doctype": '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "Lost">]>' + xmp_packet(subject("&e;")),
}


@pytest.mark.parametrize("damage", sorted(MALFORMED))
def test_a_malformed_sidecar_records_nothing_notes_it_and_never_stops_the_scan(
    tmp_path: Path, damage: str
) -> None:
    root = tmp_path / "lib"
    bad = photo(root / "bad.jpg")
    exiftool("-XMP-dc:Subject=Embedded", str(bad))
    (root / "bad.jpg.xmp").write_text(MALFORMED[damage], encoding="utf-8")
    good = photo(root / "good.jpg", 50)
    (root / "good.jpg.xmp").write_text(xmp_packet(subject("Fine")), encoding="utf-8")
    keywords, notes = existing_keywords(bad)
    assert keywords == ("Embedded",)  # the photo's own keywords still count
    assert len(notes) == 1 and "bad.jpg.xmp" in notes[0] and "not shown" in notes[0]
    with open_catalog() as catalog:
        report = scan_library(catalog, root)
        assert report.new == 2
        assert [path for path, _note in report.metadata_notes] == [str(bad)]
        assert any(line.startswith(f"metadata {bad}: bad.jpg.xmp") for line in report.problem_lines())
        bad_id = catalog.photo_by_path(str(bad)).id
        good_id = catalog.photo_by_path(str(good)).id
        assert catalog.existing_keywords(bad_id) == (("Embedded",), notes[0])
        assert catalog.existing_keywords(good_id) == (("Fine",), None)


class CountingReader:
    """The real keyword reader, counting the photos it reads."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def __call__(self, path: Path, sidecars: tuple[Path, ...]):
        self.paths.append(Path(path).name)
        return default_keyword_reader(path, sidecars)


def test_rescan_reads_again_only_when_the_photo_or_a_sidecar_changed(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    one, two, three = (photo(root / f"p{i}.jpg", i * 30) for i in range(3))
    exiftool("-XMP-dc:Subject=Old", str(one))
    with open_catalog() as catalog:
        reader = CountingReader()
        scan_library(catalog, root, keywords=reader)
        assert sorted(reader.paths) == ["p0.jpg", "p1.jpg", "p2.jpg"]

        reader = CountingReader()
        scan_library(catalog, root, keywords=reader)
        assert reader.paths == []  # nothing changed: no metadata read at all

        exiftool("-XMP-dc:Subject+=New", str(one))  # the photo itself changed
        sidecar = root / "p1.jpg.xmp"
        sidecar.write_text(xmp_packet(subject("Sidecar")), encoding="utf-8")  # a sidecar appeared
        reader = CountingReader()
        report = scan_library(catalog, root, keywords=reader)
        assert sorted(reader.paths) == ["p0.jpg", "p1.jpg"] and report.keywords_read == 2
        assert catalog.existing_keywords(catalog.photo_by_path(str(one)).id)[0] == ("Old", "New")
        assert catalog.existing_keywords(catalog.photo_by_path(str(two)).id)[0] == ("Sidecar",)

        sidecar.write_text(xmp_packet(subject("Edited in digiKam")), encoding="utf-8")
        os.utime(sidecar, ns=(1, 1))  # a different mtime, whatever the clock's resolution
        reader = CountingReader()
        scan_library(catalog, root, keywords=reader)
        assert reader.paths == ["p1.jpg"]
        assert catalog.existing_keywords(catalog.photo_by_path(str(two)).id)[0] == ("Edited in digiKam",)

        sidecar.unlink()
        scan_library(catalog, root)
        assert catalog.existing_keywords(catalog.photo_by_path(str(two)).id)[0] == ()
        assert catalog.existing_keywords(catalog.photo_by_path(str(three)).id)[0] == ()


def test_an_older_catalog_is_migrated_and_its_photos_read_on_the_next_scan(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    exiftool("-XMP-dc:Subject=Vintage", str(photo(root / "old.jpg")))
    path = tmp_path / "catalog.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute(
        "CREATE TABLE schema_migrations "
        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    MIGRATIONS[0](db)  # a catalog made before the keywords were read: the first schema only
    db.execute("INSERT INTO schema_migrations VALUES (1, 'm001_initial', 0)")
    db.close()
    with open_catalog(path) as catalog:
        assert catalog.schema_version() == len(MIGRATIONS)
        scan_library(catalog, root)
        assert catalog.existing_keywords(catalog.photo_by_path(str(root / "old.jpg")).id)[0] == ("Vintage",)


def test_search_filter_and_autocomplete_include_the_files_keywords(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "lib"
    tagged = photo(root / "tagged.jpg")
    exiftool("-XMP-dc:Subject=Grandma", "-XMP-lr:HierarchicalSubject=Trips|Lisbon", str(tagged))
    untagged = photo(root / "later" / "untagged.jpg", 80)
    (root / "later" / "untagged.jpg.xmp").write_text(xmp_packet(subject("Grandma")), encoding="utf-8")
    with open_catalog() as catalog:
        scan_library(catalog, root)
        config = fake_config()
        plan = plan_run(
            catalog, str(root), [catalog.photo_by_path(str(tagged))], RunSpec(image_tokens=16), config
        )
        execute_run(catalog, plan.run_id, FakeEngine(config))
        assert [r.path for r in search(catalog, "keyword:lisbon")] == [str(tagged)]
        assert [r.path for r in search(catalog, "keyword:grand*")] == [str(tagged)]
        assert [r.path for r in search(catalog, "grandma")] == [str(tagged)]  # a bare word too
        ids = photo_ids(catalog, BrowseFilter(keyword="GRANDMA"))
        assert sorted(catalog.photo(i).path for i in ids) == sorted([str(tagged), str(untagged)])
        assert dict(keyword_counts(catalog))["Grandma"] == 2
        assert "Lisbon" in dict(keyword_counts(catalog))
    assert main(["search", "--paths", "keyword:Lisbon"]) == 0
    assert capsys.readouterr().out.splitlines() == [str(tagged)]
    assert main(["search", "keyword:Lisbon"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("(in the file: Grandma; Lisbon)")
    assert main(["search", "--json", "keyword:Lisbon"]) == 0
    assert json.loads(capsys.readouterr().out)["existing_keywords"] == ["Grandma", "Lisbon"]


def test_scan_reads_the_stem_sidecar_only_for_its_owner(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    alone = photo(root / "IMG_1.jpg")
    (root / "IMG_1.xmp").write_text(xmp_packet(subject("Lightroom name")), encoding="utf-8")
    pair = photo(root / "IMG_2.jpg", 40)
    shutil.copyfile(pair, root / "IMG_2.tif")  # two non-RAW files: neither owns IMG_2.xmp
    (root / "IMG_2.xmp").write_text(xmp_packet(subject("Shared")), encoding="utf-8")
    (root / "IMG_2.jpg.xmp").write_text(xmp_packet(subject("Mine")), encoding="utf-8")
    with open_catalog() as catalog:
        scan_library(catalog, root)
        assert catalog.existing_keywords(catalog.photo_by_path(str(alone)).id)[0] == ("Lightroom name",)
        assert catalog.existing_keywords(catalog.photo_by_path(str(pair)).id)[0] == ("Mine",)
        assert catalog.existing_keywords(catalog.photo_by_path(str(root / "IMG_2.tif")).id)[0] == ()
