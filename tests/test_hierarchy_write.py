"""Writing keywords that have a place in the user's hierarchy: the pure merge decisions (full path into
lr:hierarchicalSubject and digiKam:TagsList, leaf and parents into dc:subject and IPTC), and end to end with
the tiny gguf model, `tag --vocabulary`, the review API and exiftool reading back what was written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from captioneer.desktop.cli import main
from captioneer.desktop.library.catalog import open_catalog
from captioneer.desktop.library.fields import PhotoMetadata
from captioneer.desktop.library.keyword_tree import KeywordPath
from captioneer.desktop.library.merge import Generated, MergeOptions, merge
from captioneer.desktop.library.run_spec import RunSpec

PARIS = KeywordPath.parse("[Places]|Europe|France|Paris")
DOG = KeywordPath.parse("Animals|Dog")


def generated(*keywords: str, **paths: KeywordPath) -> Generated:
    return Generated(keywords=keywords, paths=paths)


@pytest.mark.parametrize(
    ("existing", "new", "options", "keywords", "hierarchical", "tags_list"),
    [
        # A keyword with a path: the full path in both hierarchies, leaf and exported parents flat.
        (PhotoMetadata(), generated("Paris", Paris=PARIS), None,
         ("Paris", "Europe", "France"), ("Places|Europe|France|Paris",), ("Places/Europe/France/Paris",)),
        # Keywords without a path are written as before, next to the ones with one.
        (PhotoMetadata(), generated("Dog", "sunset", Dog=DOG), None,
         ("Dog", "Animals", "sunset"), ("Animals|Dog", "sunset"), ("Animals/Dog", "sunset")),
        # ai_branch keeps flat keywords apart; a keyword with a path goes to its own place.
        (PhotoMetadata(), generated("Dog", "sunset", Dog=DOG), MergeOptions(ai_branch="AI"),
         ("Dog", "Animals", "sunset"), ("Animals|Dog", "AI|sunset"), ("Animals/Dog", "AI/sunset")),
        # The user already had the leaf flat: the path is still written, nothing of theirs moves (the
        # empty TagsList gets the path, not the flat leaf it stands for).
        (PhotoMetadata(keywords=("dog", "Family"), hierarchical=("dog", "Family")),
         generated("Dog", Dog=DOG), None,
         ("dog", "Family", "Animals"), ("dog", "Family", "Animals|Dog"), ("Animals/Dog", "Family")),
        # A foreign hierarchy with the same leaf elsewhere stays; ours joins it.
        (PhotoMetadata(hierarchical=("Pets|Dog",), tags_list=("Pets/Dog",)), generated("Dog", Dog=DOG), None,
         ("Dog", "Animals"), ("Pets|Dog", "Animals|Dog"), ("Pets/Dog", "Animals/Dog")),
        # Written before in another case: the same path is not added twice.
        (PhotoMetadata(keywords=("Dog", "Animals"), hierarchical=("animals|dog",),
                       tags_list=("Animals/Dog",)), generated("Dog", Dog=DOG), None,
         ("Dog", "Animals"), ("animals|dog",), ("Animals/Dog",)),
        # A "/" or "|" inside one level never adds a level.
        (PhotoMetadata(), generated("AC/DC", **{"AC/DC": KeywordPath.parse("Music|AC/DC")}), None,
         ("AC/DC", "Music"), ("Music|AC/DC",), ("Music/AC\u2215DC",)),
    ],
)  # fmt: skip
def test_merge_writes_each_path(existing, new, options, keywords, hierarchical, tags_list) -> None:
    result = merge(existing, new, options)
    meta = result.metadata
    assert (meta.keywords, meta.hierarchical, meta.tags_list) == (keywords, hierarchical, tags_list)
    assert not merge(meta, new, options).changed  # writing twice adds nothing


def test_parents_reach_iptc_keywords_and_are_recorded_as_ours() -> None:
    existing = PhotoMetadata(keywords=("Family",), iptc_keywords=("Family",), has_iptc=True)
    meta = merge(existing, generated("Paris", Paris=PARIS)).metadata
    assert meta.iptc_keywords == ("Family", "Paris", "Europe", "France")  # not the bracketed Places
    assert meta.provenance.keywords == ("Paris", "Europe", "France")


def test_a_lightroom_file_keeps_its_parents_out_of_the_top_level() -> None:
    """Lightroom writes every parent into dc:subject next to the full path; those parents are levels of the
    hierarchy it wrote, not keywords to repeat at the top of lr:hierarchicalSubject and digiKam:TagsList."""
    existing = PhotoMetadata(
        keywords=("Places", "France", "Paris"),
        hierarchical=("Places|France|Paris",),
        tags_list=("Places/France/Paris",),
    )
    meta = merge(existing, Generated(keywords=("sunset",))).metadata
    assert meta.hierarchical == ("Places|France|Paris", "sunset")
    assert meta.tags_list == ("Places/France/Paris", "sunset")
    assert meta.keywords == ("Places", "France", "Paris", "sunset")


def test_darktable_tags_are_not_levels_of_the_photos_keywords() -> None:
    existing = PhotoMetadata(keywords=("format",), hierarchical=("darktable|format|jpg",))
    meta = merge(existing, Generated(keywords=("sunset",))).metadata
    assert meta.hierarchical == ("darktable|format|jpg", "format", "sunset")


# ------------------------------------------------------------------------------------- end to end

EXIFTOOL = shutil.which("exiftool")
REPO = Path(__file__).resolve().parents[1]
VOCABULARY = """# every leaf has a path: whatever the tiny model picks from the enum is written at its place
[Places]|Europe|France|Paris = Paree
Animals|Dog = Hound
Animals|Cat
Nature|Sky|Sunset
"""
LEAVES = {"Paris": "Places|Europe|France|Paris", "Dog": "Animals|Dog", "Cat": "Animals|Cat",
          "Sunset": "Nature|Sky|Sunset"}  # fmt: skip
PARENTS = {"Paris": ["Europe", "France"], "Dog": ["Animals"], "Cat": ["Animals"], "Sunset": ["Nature", "Sky"]}


def tag(root: Path, vocabulary: Path, engine: tuple[Path, Path], *write: str) -> str:
    """`captioneer tag` on the real gguf engine with the tiny model, as a separate process."""
    model, mmproj = engine
    done = subprocess.run(
        [sys.executable, "-m", "captioneer.desktop.cli", "tag", str(root), "--vocabulary", str(vocabulary),
         "--engine", "gguf", "--model", str(model), "--mmproj", str(mmproj), "--image-tokens", "16",
         "--temperature", "0", "--threads", "1", "--in-process", *write],
        env=os.environ.copy(), cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stderr


def read_back(path: Path) -> dict[str, list[str]]:
    """The keyword tags exiftool reads from ``path``, each as a list."""
    assert EXIFTOOL, "exiftool is the independent reader"
    out = subprocess.run(
        [EXIFTOOL, "-j", "-G1", "-a", "-XMP-lr:HierarchicalSubject", "-XMP-digiKam:TagsList",
         "-XMP-dc:Subject", "-IPTC:Keywords", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    tags = json.loads(out.stdout)[0]
    as_list = {k: v if isinstance(v, list) else [v] for k, v in tags.items() if k != "SourceFile"}
    return {k: [str(item) for item in v] for k, v in as_list.items()}


def library(tmp_path: Path, count: int, vocabulary: str) -> tuple[Path, Path]:
    """A folder of ``count`` photos and a vocabulary file holding ``vocabulary``."""
    root = tmp_path / "Photos"
    root.mkdir()
    for i in range(count):
        Image.new("RGB", (320, 240), (i * 90, 100, 200 - i * 60)).save(root / f"photo_{i}.jpg", quality=90)
    path = tmp_path / "Keywords.txt"
    path.write_text(vocabulary, encoding="utf-8")
    return root, path


def edit_keywords(keywords: str) -> None:
    """Set every current result's keywords through the review command, as a user would, and approve."""
    with open_catalog(readonly=True) as catalog:
        ids = [result.id for result in catalog.results(current_only=True)]
    for result_id in ids:
        assert main(["review", "edit", str(result_id), "--keywords", keywords, "--approve"]) == 0


@pytest.mark.skipif(EXIFTOOL is None, reason="exiftool (libimage-exiftool-perl) is the independent reader")
def test_tag_with_a_hierarchical_vocabulary_writes_paths_exiftool_reads(
    tmp_path: Path, tiny_gguf: tuple[Path, Path]
) -> None:
    root, vocabulary = library(tmp_path, 2, VOCABULARY)
    said = tag(root, vocabulary, tiny_gguf, "--write", "sidecar", "--write-unreviewed")
    assert "2 written" in said, said
    # The keywords JSON schema's enum holds the leaves: whatever the tiny model chose is a leaf at its path.
    for sidecar in sorted(root.glob("*.xmp")):
        tags = read_back(sidecar)
        chosen = [k for k in tags["XMP-dc:Subject"] if k in LEAVES]
        assert chosen, tags
        for leaf in chosen:
            assert LEAVES[leaf] in tags["XMP-lr:HierarchicalSubject"]
            assert LEAVES[leaf].replace("|", "/") in tags["XMP-digiKam:TagsList"]
            assert set(PARENTS[leaf]) <= set(tags["XMP-dc:Subject"])
        assert "Places" not in tags["XMP-dc:Subject"]  # a bracketed grouping level is no keyword

    # Keywords set in review (the user's, not the model's) that are in the vocabulary get their paths too.
    edit_keywords("Paris; sunset; harbour")
    assert main(["write", "--mode", "sidecar"]) == 0
    for sidecar in sorted(root.glob("*.xmp")):
        tags = read_back(sidecar)
        assert {"Places|Europe|France|Paris", "Nature|Sky|Sunset", "harbour"} <= set(
            tags["XMP-lr:HierarchicalSubject"]
        )
        digikam, subject = set(tags["XMP-digiKam:TagsList"]), set(tags["XMP-dc:Subject"])
        assert {"Places/Europe/France/Paris", "Nature/Sky/Sunset", "harbour"} <= digikam
        assert {"Paris", "Europe", "France", "sunset", "Nature", "Sky", "harbour"} <= subject
        assert "Places" not in tags["XMP-dc:Subject"]
        assert not {"Europe", "France", "Nature", "Sky"} & set(tags["XMP-lr:HierarchicalSubject"])
    before = {p.name: p.read_bytes() for p in root.iterdir()}
    with open_catalog() as catalog:
        catalog.set_review([r.id for r in catalog.results(current_only=True)], "approved")
    assert main(["write", "--mode", "sidecar"]) == 0  # writing twice adds nothing
    assert {p.name: p.read_bytes() for p in root.iterdir()} == before


@pytest.mark.skipif(EXIFTOOL is None, reason="exiftool (libimage-exiftool-perl) is the independent reader")
def test_embedded_write_keeps_a_foreign_hierarchy(tmp_path: Path, tiny_gguf: tuple[Path, Path]) -> None:
    """A JPEG that Lightroom (here: exiftool, as Lightroom writes) already tagged Trips|Rome|Colosseum, with
    the parents in dc:subject and IPTC: all of it stays, in order, and ours joins at its own paths."""
    assert EXIFTOOL
    # Lightroom's own export format, read as it is.
    lightroom = "[Places]\n\tEurope\n\t\tFrance\n\t\t\tParis\nAnimals\n\tDog\n"
    root, vocabulary = library(tmp_path, 1, lightroom)
    photo = root / "photo_0.jpg"
    subprocess.run(
        [EXIFTOOL, "-q", "-overwrite_original", "-XMP-lr:HierarchicalSubject=Trips|Rome|Colosseum",
         "-XMP-digiKam:TagsList=Trips/Rome/Colosseum", "-XMP-dc:Subject=Trips", "-XMP-dc:Subject=Rome",
         "-XMP-dc:Subject=Colosseum", "-IPTC:Keywords=Trips", "-IPTC:Keywords=Rome",
         "-IPTC:Keywords=Colosseum", "-IPTC:CodedCharacterSet=UTF8", str(photo)],
        check=True,
    )  # fmt: skip
    tag(root, vocabulary, tiny_gguf)
    edit_keywords("Paris; Dog")
    assert main(["write", "--mode", "embedded"]) == 0
    assert not list(root.glob("*.xmp"))
    tags = read_back(photo)
    ours = ["Places|Europe|France|Paris", "Animals|Dog"]
    assert tags["XMP-lr:HierarchicalSubject"] == ["Trips|Rome|Colosseum", *ours]
    assert tags["XMP-digiKam:TagsList"] == ["Trips/Rome/Colosseum", *(p.replace("|", "/") for p in ours)]
    flat = ["Trips", "Rome", "Colosseum", "Paris", "Europe", "France", "Dog", "Animals"]
    assert tags["XMP-dc:Subject"] == flat
    assert tags["IPTC:Keywords"] == tags["XMP-dc:Subject"]


def test_runs_stored_before_paths_still_load() -> None:
    old = '{"task": "keywords", "vocabulary": ["Dog"], "synonyms": {}, "batch_size": 1}'
    assert RunSpec.from_json(old).keyword_paths == {}
    spec = RunSpec(vocabulary=("Dog",), keyword_paths={"Dog": "Animals|Dog"})
    assert RunSpec.from_json(spec.to_json()) == spec


def test_the_windows_run_keeps_the_paths_of_a_lightroom_list(qtbot, tmp_path: Path) -> None:
    """The Tag Photos dialog's vocabulary goes through the same reader: a Lightroom export as it is."""
    from captioneer.desktop.ui.library_window import LibraryWindow
    from tests.test_ui_library import fake_args, fake_opener

    exported = tmp_path / "Keywords.txt"
    exported.write_bytes("\ufeff[Places]\r\n\tFrance\r\n\t\tParis\r\n\t\t\t{Paree}\r\n".encode())
    window = LibraryWindow(overrides=fake_args(), opener=fake_opener())
    qtbot.addWidget(window.view)
    try:
        spec = window.runs.run_spec("keywords", "English", exported)
    finally:
        window.shutdown()
    assert spec.vocabulary == ("Paris",) and spec.synonyms == {"paree": "Paris"}
    assert spec.keyword_paths == {"France": "[Places]|France", "Paris": "[Places]|France|Paris"}


def test_tag_says_which_vocabulary_names_are_written_without_a_path(
    tmp_path: Path, tiny_gguf: tuple[Path, Path]
) -> None:
    root, vocabulary = library(tmp_path, 1, "Places\n\tFrance\n\t\tParis\n\tTexas\n\t\tParis\n")
    said = tag(root, vocabulary, tiny_gguf)
    assert "the vocabulary has Paris at more than one place: written without a path" in said
