"""Writing keywords that have a place in the user's hierarchy: the pure merge decisions (full path into
lr:hierarchicalSubject and digiKam:TagsList, leaf and parents into dc:subject and IPTC), and end to end with
the tiny gguf model, `tag --vocabulary`, the review API and exiftool reading back what was written."""

from __future__ import annotations

import pytest

from captioneer.desktop.library.fields import PhotoMetadata
from captioneer.desktop.library.keyword_tree import KeywordPath
from captioneer.desktop.library.merge import Generated, MergeOptions, merge

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
