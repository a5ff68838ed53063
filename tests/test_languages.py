"""One table of output languages (desktop/core/languages.py): the names the window offers reach the tagger's
language check and the metadata writer's BCP-47 tags, read back with exiftool."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from captioneer.desktop.cli import main
from captioneer.desktop.core.languages import LANGUAGES, OUTPUT_LANGUAGES, find_language
from captioneer.desktop.library.catalog import open_catalog
from captioneer.desktop.library.publishing import language_tag
from captioneer.desktop.library.quality import in_language
from captioneer.desktop.library.runs import RunSpec, execute_run, plan_run
from captioneer.desktop.library.scanner import scan_library
from tests.fakes.tagging_engine import FakeEngine, fake_config
from tests.test_review_write_cli import exiftool

ENGLISH = "A small red boat is moored in the quiet harbour at the end of the day."
BCP47 = re.compile(r"[a-z]{2,3}")


def test_every_offered_language_has_a_real_tag_whichever_way_it_is_named() -> None:
    assert OUTPUT_LANGUAGES[0] == "English" and len(OUTPUT_LANGUAGES) == len(set(OUTPUT_LANGUAGES))
    for language in LANGUAGES:
        assert BCP47.fullmatch(language.tag), language
        for name in (language.name, language.english, language.english.title(), f" {language.name.upper()} "):
            assert find_language(name) == language
            assert language_tag(name) == language.tag
    assert language_tag("de-CH") == "de-CH"  # a tag is kept as given
    assert language_tag("Klingon of the far stars") == ""  # neither a known name nor a tag
    assert find_language("Klingon") is None


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        (ENGLISH, "Deutsch", False),
        (ENGLISH, "German", False),
        ("Ein kleines rotes Boot liegt am Ende des Tages im ruhigen Hafen.", "Deutsch", True),
        (ENGLISH, "Русский", False),
        ("Небольшая красная лодка стоит в тихой гавани.", "Русский", True),
        (ENGLISH, "Klingon", True),  # unknown languages are not checked
    ],
)
def test_the_language_check_knows_the_names_the_window_offers(
    text: str, language: str, expected: bool
) -> None:
    assert in_language(text, language) is expected


def test_a_run_in_a_language_picked_by_its_own_name_is_checked_and_tagged(tmp_path: Path, capsys) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    for i in range(2):
        Image.new("RGB", (64, 48), (i * 90, 120, 30)).save(root / f"p{i}.jpg", quality=90)
    with open_catalog() as catalog:
        scan_library(catalog, root)
        photos = catalog.photos_under(root)
        english = fake_config()
        plan = plan_run(catalog, str(root), photos, RunSpec(language="Deutsch", image_tokens=16), english)
        execute_run(catalog, plan.run_id, FakeEngine(english))
        assert {r.review_reason for r in catalog.results(run_id=plan.run_id)} == {"caption is not in Deutsch"}
        german = fake_config(language="german")
        spec = RunSpec(language="Deutsch", image_tokens=16)
        again = plan_run(catalog, str(root), photos, spec, german, redo=True)
        execute_run(catalog, again.run_id, FakeEngine(german))
        assert {r.review for r in catalog.results(run_id=again.run_id)} == {"new"}
    assert main(["write", "--unreviewed", "--mode", "sidecar"]) == 0
    capsys.readouterr()
    read = exiftool(root / "p0.jpg.xmp")
    assert read["XMP-dc:Description-de"] == read["XMP-dc:Description"]
    languages = {key for key in read if key.startswith("XMP-dc:Description-")}
    assert languages == {"XMP-dc:Description-de"}  # not "Description-Deutsch"
