"""Keyword scores against the keywords photos already carry, reference captions from COCO files, and the
photos an evaluation reads: table tests of the pure functions, real files and exiftool for the readers,
nothing written."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from captioneer.backends.errors import ConfigurationError
from captioneer.desktop.evaluation.keyword_scores import (
    KeywordCounts,
    load_keyword_map,
    micro_average,
    normalise_keywords,
    photo_counts,
)
from captioneer.desktop.evaluation.photos import collect_photos, read_keyword_truth
from captioneer.desktop.evaluation.references import load_references, parse_references
from captioneer.desktop.library.keywords import parse_vocabulary

MAP = parse_vocabulary("dog = puppy, hound\nsea = ocean\nautomobile = car\n")


@pytest.mark.parametrize(
    ("predicted", "truth", "keyword_map", "expected"),
    [
        (["dog", "beach"], ["Dog", "Beach", "sunset"], None, KeywordCounts(2, 2, 3, 1)),
        (["Dogs ", "  beaches"], ["dog", "beach"], None, KeywordCounts(2, 2, 2, 1)),  # case, plural, spaces
        (["dog", "dogs", "DOG"], ["dog"], None, KeywordCounts(1, 1, 1, 1)),  # variants count once
        (["puppy", "ocean"], ["dog", "sea"], MAP, KeywordCounts(2, 2, 2, 1)),  # synonyms mapped
        (["puppy"], ["hound"], MAP, KeywordCounts(1, 1, 1, 1)),  # both sides mapped
        (["puppy"], ["dog"], None, KeywordCounts(0, 1, 1, 1)),  # no map: no match
        (["car", "tree"], ["automobile"], MAP, KeywordCounts(1, 2, 1, 1)),  # words outside the map kept
        (["photo", "2023", "keywords"], ["dog"], None, KeywordCounts(0, 0, 1, 1)),  # junk dropped
        (["dog"], ["2023-05-01", "IMG_1234.JPG"], None, KeywordCounts(0, 1, 1, 1)),
        (["dog"], ["2023"], None, KeywordCounts()),  # no true keywords left: the photo does not count
        ([], ["dog", "cat"], None, KeywordCounts(0, 0, 2, 1)),  # no answer: recall suffers
    ],
)
def test_photo_counts(predicted, truth, keyword_map, expected) -> None:
    assert photo_counts(predicted, truth, keyword_map) == expected


def test_scores_are_micro_averaged_over_photos() -> None:
    total = micro_average([KeywordCounts(2, 4, 3, 1), KeywordCounts(0, 1, 5, 1), KeywordCounts(1, 1, 2, 1)])
    assert total == KeywordCounts(3, 6, 10, 3)
    assert (total.precision, total.recall) == (pytest.approx(3 / 6), pytest.approx(3 / 10))
    assert total.f1 == pytest.approx(2 * 0.5 * 0.3 / (0.5 + 0.3))  # harmonic mean of the micro P and R
    nothing = KeywordCounts(0, 0, 4, 1)
    assert (nothing.precision, nothing.recall, nothing.f1) == (None, 0.0, 0.0)
    assert micro_average([]).f1 is None


def test_normalise_keeps_every_keyword_and_the_users_spelling() -> None:
    many = [f"word{chr(97 + i)}" for i in range(26)]
    assert normalise_keywords(many) == many  # the task's cap on model keywords does not apply here
    assert normalise_keywords(["Ocean", "seas"], MAP) == ["sea"]


def test_the_keyword_map_file_is_a_vocabulary_and_bad_files_say_why(tmp_path: Path) -> None:
    path = tmp_path / "map.txt"
    path.write_text("# mine\ndog = puppy\n", encoding="utf-8")
    assert load_keyword_map(path).lookup("Puppies") == "dog"
    path.write_text("# only a comment\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="has no keywords"):
        load_keyword_map(path)
    with pytest.raises(ConfigurationError, match="Cannot read the keyword map"):
        load_keyword_map(tmp_path / "missing.txt")
    path.write_bytes(b"dog = \xe9\n")
    with pytest.raises(ConfigurationError, match="^The keyword map .* is not UTF-8 text"):
        load_keyword_map(path)


COCO = {
    "images": [
        {"id": 1, "file_name": "IMG_1.jpg"},
        {"id": 2, "file_name": "trip\\day2\\IMG_2.JPG"},
        {"id": 3, "file_name": "day2/IMG_3.jpg"},
        {"id": 4, "file_name": "unused.jpg"},
    ],
    "annotations": [
        {"image_id": 1, "caption": "A dog."},
        {"image_id": 1, "caption": "  A brown dog.  "},
        {"image_id": 2, "caption": "A beach."},
        {"image_id": 3, "caption": "A cat."},
        {"image_id": 3, "caption": "   "},
    ],
}


def test_references_match_photos_by_relative_path_or_base_name() -> None:
    references = parse_references(COCO, "refs.json")
    photos = [Path("/p/IMG_1.jpg"), Path("/p/trip/day2/img_2.jpg"), Path("/p/other/IMG_2.jpg"),
              Path("/p/day2/IMG_3.jpg"), Path("/p/day3/IMG_3.jpg")]
    assert references.match(photos) == {
        photos[0]: ("A dog.", "A brown dog."),
        photos[1]: ("A beach.",),
        photos[3]: ("A cat.",),
    }


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ([], "is not a JSON object"),
        ({"annotations": []}, 'has no "images" list'),
        ({"images": []}, 'has no "annotations" list'),
        ({"images": [{"id": 1}], "annotations": []}, 'image (number 1) without an "id" and a "file_name"'),
        ({"images": [{"id": 1, "file_name": "a"}, {"id": 1, "file_name": "b"}], "annotations": []},
         "the id 1 twice"),
        ({"images": [{"id": 1, "file_name": "a"}], "annotations": [{"image_id": 1}]},
         'annotation (number 1) without a "caption"'),
        ({"images": [{"id": 1, "file_name": "a"}], "annotations": [{"image_id": 2, "caption": "x"}]},
         "for image_id 2, not among its images"),
        ({"images": [{"id": 1, "file_name": "a"}], "annotations": []}, "has no captions"),
    ],
)
def test_a_bad_reference_file_is_refused_in_one_line(data, problem: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_references(data, "refs.json")
    assert problem in str(caught.value) and "\n" not in str(caught.value)


def test_reference_files_that_cannot_be_read(tmp_path: Path) -> None:
    path = tmp_path / "refs.json"
    path.write_text('{"images": [', encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"is not valid JSON \(line 1, column 13"):
        load_references(path)
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(ConfigurationError, match="not UTF-8"):
        load_references(path)
    with pytest.raises(ConfigurationError, match="Cannot read the reference file"):
        load_references(tmp_path / "missing.json")
    path.write_text("[" * 100_000, encoding="utf-8")
    with pytest.raises(ConfigurationError, match="nests too deeply"):
        load_references(path)
    path.write_text(json.dumps(COCO), encoding="utf-8")
    assert load_references(path).for_photo(Path("IMG_1.jpg")) == ("A dog.", "A brown dog.")


def _digest(folder: Path) -> dict[str, str]:
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in files}


def test_the_truth_is_read_from_embedded_metadata_and_sidecars_and_nothing_is_written(tmp_path: Path) -> None:
    library = tmp_path / "library"
    (library / "sub").mkdir(parents=True)
    for name in ("a.jpg", "b.jpg", "sub/c.png", "d.jpg"):
        Image.new("RGB", (32, 32), "red").save(library / name)
    (library / "notes.txt").write_text("not a photo")
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-dc:Subject=Beach", "-XMP-dc:Subject=dog",
                    "-IPTC:Keywords=sunset", str(library / "a.jpg")], check=True)
    subprocess.run(["exiftool", "-q", "-o", str(library / "sub" / "c.png.xmp"), "-XMP-dc:Subject=cat",
                    "-XMP-lr:HierarchicalSubject=Animals|Pets|kitten", str(library / "sub" / "c.png")],
                   check=True)
    before = _digest(library)
    selection = collect_photos([library])
    assert [p.relative_to(library).as_posix() for p in selection.photos] == ["a.jpg", "b.jpg", "d.jpg",
                                                                             "sub/c.png"]
    truth, notes = read_keyword_truth(selection.photos)
    assert truth == {library / "a.jpg": frozenset({"Beach", "dog", "sunset"}),
                     library / "sub" / "c.png": frozenset({"cat", "kitten"})}
    assert notes == []
    assert _digest(library) == before  # read-only: every file's bytes unchanged, nothing added


def test_collect_photos_takes_files_and_folders_once_and_stops_at_the_limit(tmp_path: Path) -> None:
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    selection = collect_photos([tmp_path / "b.jpg", tmp_path], limit=2)
    assert selection.photos == [tmp_path / "b.jpg", tmp_path / "a.jpg"]
    with pytest.raises(ConfigurationError, match="does not exist"):
        collect_photos([tmp_path / "nope"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigurationError, match="No photos to evaluate"):
        collect_photos([empty])
