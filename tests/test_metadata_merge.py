"""Pure decisions of the metadata writer: keyword merge, hierarchy escaping, text fields, sidecar names."""

from __future__ import annotations

from pathlib import Path

import pytest

from captioneer.desktop.library.fields import (
    DIGIKAM,
    FIELDS,
    LIGHTROOM,
    PROVENANCE,
    TEXT_FIELDS,
    Kind,
    PhotoMetadata,
    Provenance,
    Writes,
)
from captioneer.desktop.library.merge import (
    Generated,
    MergeOptions,
    all_keywords,
    clean_keyword,
    diff_lines,
    merge,
    merge_keywords,
    text_hash,
)
from captioneer.desktop.library.sidecars import (
    SidecarNaming,
    WriteMode,
    choose_sidecar,
    choose_targets,
    stem_owner,
)


@pytest.mark.parametrize(
    ("existing", "generated", "expected", "added"),
    [
        (["Family", "Beach"], ["beach", "sunset"], ["Family", "Beach", "sunset"], ["sunset"]),
        ([], ["Sunset", "sunset", " SUNSET "], ["Sunset"], ["Sunset"]),
        (["Straße"], ["STRASSE"], ["Straße"], []),  # casefold, not lower()
        (["a"], ["", "  ", "\x00", "\ufffe"], ["a"], []),
        (["x"], ["new\tline\nkeyword"], ["x", "new line keyword"], ["new line keyword"]),
        (["x"], ["nul\x00inside", "bad\ufffechar"], ["x", "nulinside", "badchar"], ["nulinside", "badchar"]),
    ],
)
def test_keywords_merge_case_insensitively_and_never_drop_the_users(existing, generated, expected, added):
    merged, new = merge_keywords(existing, generated)
    assert list(merged) == expected
    assert list(new) == added


def test_clean_keyword_keeps_unicode_and_markup_characters():
    for keyword in ("日本の海", "🌅 sunset", "fish & chips", "a < b", "]]>", "AC/DC", "this|that"):
        assert clean_keyword(keyword) == keyword


def test_the_field_table_is_whole():
    """Every field is an attribute of PhotoMetadata; every text field is one the model produces and whose
    hash provenance keeps; only IPTC-IIM tags carry a byte limit; every tag's kind fits its block."""
    assert {spec.name for spec in FIELDS} == set(PhotoMetadata.__dataclass_fields__) - {
        "provenance",
        "has_iptc",
        "iptc_foreign_charset",
    }
    for spec in TEXT_FIELDS:
        assert spec.name in Generated.__dataclass_fields__
        assert f"{spec.name}_hash" in Provenance.__dataclass_fields__
    for spec in FIELDS:
        for source in spec.sources:
            assert (source.limit is not None) == (source.family == "Iptc"), source
            assert (source.writes is Writes.IF_IPTC) == (source.family == "Iptc"), source
            assert (source.writes is Writes.IF_EXIF) == (source.family == "Exif"), source
            assert (source.kind in (Kind.TEXT, Kind.REPEATED)) == (source.family != "Xmp"), source
    tags = dict(PROVENANCE)
    assert tags["prompt_hash"].key == "Xmp.captioneer.promptHash"
    assert tags["alt_text_hash"].key == "Xmp.captioneer.altTextHash"
    assert tags["keywords"].kind is Kind.BAG and tags["model"].kind is Kind.TEXT


def test_separators_inside_a_keyword_do_not_create_hierarchy_levels():
    assert LIGHTROOM.entry("AC/DC") == "AC/DC"
    assert "|" not in LIGHTROOM.entry("this|that")
    assert DIGIKAM.entry("this|that") == "this|that"
    assert "/" not in DIGIKAM.entry("AC/DC")
    assert LIGHTROOM.entry("this|that", "AI").split("|") == ["AI", LIGHTROOM.entry("this|that")]
    assert DIGIKAM.entry("AC/DC", "AI").split("/") == ["AI", DIGIKAM.entry("AC/DC")]


def test_merge_adds_new_keywords_to_every_keyword_field_and_records_them_as_ours():
    existing = PhotoMetadata(
        keywords=("Family", "Beach"), hierarchical=("People|Family",), tags_list=("People/Family",)
    )
    result = merge(existing, Generated(keywords=("beach", "sunset"), model="m", engine="gguf"))
    meta = result.metadata
    assert result.changed
    assert meta.keywords == ("Family", "Beach", "sunset")
    # Beach was only in dc:subject: digiKam and Lightroom must see it too (it is still not ours).
    assert meta.hierarchical == ("People|Family", "Beach", "sunset")
    assert meta.tags_list == ("People/Family", "Beach", "sunset")
    assert meta.provenance.keywords == ("sunset",)
    assert meta.provenance.model == "m"


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        (PhotoMetadata(keywords=("Family", "Beach")), ("Family", "Beach")),
        (PhotoMetadata(hierarchical=("Places|France|Paris", "people|Alice")), ("Paris", "Alice")),
        (PhotoMetadata(tags_list=("Places/France/Paris", "Alice")), ("Paris", "Alice")),
        (PhotoMetadata(iptc_keywords=("Oma", "Strand")), ("Oma", "Strand")),
        (PhotoMetadata(microsoft_keywords=("Places/Paris", "Cat")), ("Paris", "Cat")),
        (
            PhotoMetadata(
                keywords=("Family",),
                iptc_keywords=("family", "Dog"),
                hierarchical=("Pets|dog", "darktable|format|jpg", "darktable|changed"),
                tags_list=("Trips/Rome",),
            ),
            ("Family", "Dog", "Rome"),
        ),
        # Our own stand-ins for a separator inside one keyword turn back into the keyword.
        (
            PhotoMetadata(hierarchical=("AI|this\u00a6that",), tags_list=("AC\u2215DC",)),
            ("this|that", "AC/DC"),
        ),
    ],
)
def test_all_keywords_unites_every_keyword_field_with_leaves_of_hierarchies(existing, expected):
    assert all_keywords(existing) == expected


def test_keywords_only_in_hierarchies_or_iptc_reach_dc_subject_and_every_field_is_kept():
    existing = PhotoMetadata(
        keywords=("Family",),
        hierarchical=("Places|France|Paris", "darktable|format|jpg"),
        tags_list=("Pets/Dog",),
        iptc_keywords=("Family", "Oma"),
        microsoft_keywords=("Cat",),
        has_iptc=True,
    )
    meta = merge(existing, Generated(keywords=("sunset", "paris"))).metadata
    assert meta.keywords == ("Family", "Oma", "Paris", "Dog", "Cat", "sunset")
    assert meta.hierarchical == (
        "Places|France|Paris",
        "darktable|format|jpg",
        "Family",
        "Oma",
        "Dog",
        "Cat",
        "sunset",
    )
    assert meta.tags_list == ("Pets/Dog", "Family", "Oma", "Paris", "Cat", "sunset")
    assert meta.iptc_keywords == ("Family", "Oma", "Paris", "Dog", "Cat", "sunset")
    assert meta.provenance.keywords == ("sunset",)
    assert not merge(meta, Generated(keywords=("sunset", "paris"))).changed  # a second write is a no-op


def test_every_field_keeps_its_own_entries_exactly_even_duplicates_and_blanks():
    existing = PhotoMetadata(keywords=("beach", "Beach", " "), iptc_keywords=("a", "A"), has_iptc=True)
    meta = merge(existing, Generated(keywords=("sun",))).metadata
    assert meta.keywords == ("beach", "Beach", " ", "a", "sun")
    assert meta.iptc_keywords == ("a", "A", "beach", "sun")


def test_iptc_keywords_are_left_alone_without_iptc_and_long_ones_stay_xmp_only():
    no_iptc = merge(PhotoMetadata(keywords=("a",)), Generated(keywords=("b",))).metadata
    assert no_iptc.iptc_keywords == ()
    long_keyword = "x" * 65
    result = merge(
        PhotoMetadata(iptc_keywords=("a",), has_iptc=True), Generated(keywords=(long_keyword, "b"))
    )
    assert result.metadata.iptc_keywords == ("a", "b")
    assert result.metadata.keywords == ("a", long_keyword, "b")
    assert any("longer than IPTC's 64 bytes: written to XMP only" in note for note in result.notes)


def test_iptc_notes_say_what_was_shortened_or_left_alone():
    caption = "é" * 1500  # 3,000 bytes
    notes = merge(PhotoMetadata(has_iptc=True), Generated(caption=caption)).notes
    assert any(
        "IPTC Caption-Abstract shortened to IPTC's limit of 2,000 bytes (3,000 bytes" in n for n in notes
    )
    assert not merge(PhotoMetadata(), Generated(caption=caption)).notes  # no IPTC-IIM: nothing cut
    foreign = PhotoMetadata(has_iptc=True, iptc_foreign_charset=True, iptc_keywords=("a",))
    result = merge(foreign, Generated(keywords=("b",)))
    assert result.metadata.iptc_keywords == ("a",)
    assert any("character set other than UTF-8" in note for note in result.notes)


def test_ai_branch_puts_generated_keywords_under_their_own_branch():
    result = merge(PhotoMetadata(), Generated(keywords=("sunset",)), MergeOptions(ai_branch="AI"))
    assert result.metadata.keywords == ("sunset",)
    assert result.metadata.hierarchical == ("AI|sunset",)
    assert result.metadata.tags_list == ("AI/sunset",)


def test_a_second_identical_merge_changes_nothing_not_even_provenance():
    generated = Generated(keywords=("beach", "sunset"), caption="A beach.", language="en", time="t1")
    first = merge(PhotoMetadata(keywords=("Family",)), generated)
    second = merge(first.metadata, Generated(**{**generated.__dict__, "time": "t2"}))
    assert not second.changed
    assert second.metadata is first.metadata


def test_caption_is_written_when_empty_in_x_default_and_the_language():
    meta = merge(PhotoMetadata(), Generated(caption="Ein Strand.", language="de")).metadata
    assert meta.caption == {"x-default": "Ein Strand.", "de": "Ein Strand."}
    assert meta.provenance.caption_hash == text_hash("Ein Strand.")


def test_users_caption_is_kept_unless_replacing_is_asked_for():
    existing = PhotoMetadata(caption={"x-default": "Grandma's 80th", "fr": "Les 80 ans"})
    result = merge(existing, Generated(caption="A cake."))
    assert not result.changed
    assert result.metadata.caption == existing.caption
    assert any("kept the existing caption" in note for note in result.notes)
    replaced = merge(existing, Generated(caption="A cake."), MergeOptions(replace_text=True)).metadata
    assert replaced.caption == {"x-default": "A cake.", "fr": "Les 80 ans"}


def test_our_own_earlier_caption_is_updated():
    first = merge(PhotoMetadata(), Generated(caption="A cake.")).metadata
    second = merge(first, Generated(caption="A birthday cake with candles.")).metadata
    assert second.caption == {"x-default": "A birthday cake with candles."}


def test_our_earlier_keywords_stay_in_provenance_when_more_are_added():
    first = merge(PhotoMetadata(), Generated(keywords=("sunset",))).metadata
    second = merge(first, Generated(keywords=("sea",))).metadata
    assert second.provenance.keywords == ("sunset", "sea")


def test_provenance_forgets_keywords_the_user_removed():
    prov = Provenance(keywords=("sunset", "gone"))
    meta = merge(PhotoMetadata(keywords=("sunset",), provenance=prov), Generated(keywords=("sea",))).metadata
    assert meta.provenance.keywords == ("sunset", "sea")


def test_diff_lines_name_fields_and_languages():
    after = merge(
        PhotoMetadata(keywords=("a",)), Generated(keywords=("b",), caption="c", language="en")
    ).metadata
    lines = "\n".join(diff_lines(PhotoMetadata(keywords=("a",)), after))
    assert "dc:subject: + b" in lines
    assert "dc:description[en]" in lines and "dc:description[x-default]" in lines


@pytest.mark.parametrize(
    ("photo", "siblings", "owner"),
    [
        ("IMG_1.JPG", ["IMG_1.JPG"], True),
        ("IMG_1.JPG", ["IMG_1.JPG", "IMG_1.CR2"], False),
        ("IMG_1.CR2", ["IMG_1.JPG", "IMG_1.CR2"], True),
        ("IMG_1.JPG", ["IMG_1.JPG", "IMG_1.TIF"], False),
        ("IMG_1.NEF", ["IMG_1.NEF", "IMG_1.CR2"], False),
    ],
)
def test_stem_sidecar_owner(photo, siblings, owner):
    assert stem_owner(Path(photo), siblings) is owner


@pytest.mark.parametrize(
    ("photo", "naming", "siblings", "full", "stem", "expected", "note"),
    [
        ("IMG.JPG", SidecarNaming.FULL, ["IMG.JPG"], False, False, "IMG.JPG.xmp", ""),
        ("IMG.JPG", SidecarNaming.STEM, ["IMG.JPG"], False, False, "IMG.xmp", ""),
        ("IMG.JPG", SidecarNaming.FULL, ["IMG.JPG"], False, True, "IMG.xmp", ""),  # update, don't shadow
        ("IMG.JPG", SidecarNaming.STEM, ["IMG.JPG"], True, False, "IMG.JPG.xmp", ""),
        ("IMG.JPG", SidecarNaming.FULL, ["IMG.JPG"], True, True, "IMG.JPG.xmp", "both"),
        ("IMG.JPG", SidecarNaming.FULL, ["IMG.JPG", "IMG.CR2"], False, True, "IMG.JPG.xmp", "belongs"),
        ("IMG.CR2", SidecarNaming.FULL, ["IMG.JPG", "IMG.CR2"], False, True, "IMG.xmp", ""),
        ("IMG.JPG", SidecarNaming.STEM, ["IMG.JPG", "IMG.CR2"], False, False, "IMG.JPG.xmp", "shared"),
    ],
)
def test_choose_sidecar(photo, naming, siblings, full, stem, expected, note):
    choice = choose_sidecar(Path("/lib") / photo, naming, siblings, full, stem)
    assert choice.path.name == expected
    assert choice.exists is (full if expected.endswith(photo + ".xmp") else stem)
    assert (note in " ".join(choice.notes)) if note else not choice.notes


@pytest.mark.parametrize(
    ("name", "mode", "writable", "exiv2_ok", "embed", "sidecar"),
    [
        ("a.jpg", WriteMode.EMBEDDED, True, True, True, False),
        ("a.jpg", WriteMode.BOTH, True, True, True, True),
        ("a.jpg", WriteMode.SIDECAR, True, True, False, True),
        ("a.jpg", WriteMode.EMBEDDED, False, True, False, True),
        ("a.cr2", WriteMode.EMBEDDED, True, True, False, True),
        ("a.cr2", WriteMode.BOTH, True, True, False, True),
        ("a.dng", WriteMode.EMBEDDED, True, True, True, False),
        ("a.heic", WriteMode.EMBEDDED, True, False, False, True),
        ("a.gif", WriteMode.EMBEDDED, True, True, False, True),
        ("a.dng", WriteMode.EMBEDDED, True, None, False, True),  # None: pixels cannot be verified
    ],
)
def test_choose_targets(name, mode, writable, exiv2_ok, embed, sidecar):
    targets = choose_targets(
        Path(name),
        mode,
        image_writable=writable,
        exiv2_can_write=bool(exiv2_ok),
        verifiable=exiv2_ok is not None,
    )
    assert (targets.embed, targets.sidecar) == (embed, sidecar)
    assert bool(targets.reasons) == (not embed and mode is not WriteMode.SIDECAR)
