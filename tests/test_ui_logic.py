"""Qt-free decisions behind the window: collecting dropped files, copy buttons, copy-all, follow-ups."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from captioneer.desktop.core.captioning import CaptionResult
from captioneer.desktop.ui.quick_caption import (
    all_as_json,
    all_as_text,
    collect_images,
    copy_values,
    display_text,
    follow_up_question,
    seconds_per_image,
)


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_collect_expands_folders_sorted_skips_hidden_and_non_images(tmp_path: Path) -> None:
    single = touch(tmp_path / "z-single.heic")
    folder = tmp_path / "album"
    b, a = touch(folder / "b.JPG"), touch(folder / "a.png")
    nested = touch(folder / "sub" / "c.nef")
    touch(folder / ".hidden.jpg")
    touch(folder / ".cache" / "d.jpg")
    touch(folder / "notes.txt")
    collected = collect_images([single, folder, single])
    assert collected.files == (single, a, b, nested)
    assert collected.not_images == 1
    assert collected.over_limit == 0


def test_collect_stops_at_the_limit_and_counts_the_rest(tmp_path: Path) -> None:
    files = [touch(tmp_path / f"{i:02}.jpg") for i in range(7)]
    collected = collect_images([tmp_path], limit=5)
    assert collected.files == tuple(files[:5])
    assert collected.over_limit == 2


def result(task: str, text: str, data: dict | None = None, ok: bool = True) -> CaptionResult:
    return CaptionResult(path="/photos/IMG_1.jpg", task=task, ok=ok, text=text, data=data,
                         error=None if ok else "corrupt or truncated image", seconds=1.5)


@pytest.mark.parametrize(
    ("res", "text", "alt", "keywords"),
    [
        (result("caption", " A dog on a beach. "), "A dog on a beach.", None, None),
        (result("alt_text", "Dog running on sand"), "Dog running on sand", "Dog running on sand", None),
        (
            result("keywords", '{"caption": "A dog."}', {"caption": "A dog.", "keywords": ["dog", "beach"]}),
            "A dog.", None, "dog, beach",
        ),
        (
            result("social", "{}", {"caption": "Beach day!", "hashtags": ["#dog", "#sea"],
                                    "alt_text": "A dog"}),
            "Beach day!", "A dog", "#dog, #sea",
        ),
        (result("caption", "", ok=False), None, None, None),
    ],
)
def test_copy_values(res: CaptionResult, text: str | None, alt: str | None, keywords: str | None) -> None:
    values = copy_values(res)
    assert (values.text, values.alt_text, values.keywords) == (text, alt, keywords)


def test_display_text_lays_out_structured_answers_and_shows_failures() -> None:
    data = {"title": "Beach dog", "caption": "A dog.", "keywords": ["dog", "sea"]}
    structured = result("keywords", "{…}", data)
    assert display_text(structured) == "Title: Beach dog\nCaption: A dog.\nKeywords: dog, sea"
    assert display_text(result("caption", "Plain.")) == "Plain."
    assert display_text(result("caption", "", ok=False)) == "corrupt or truncated image"


def test_copy_all_as_text_and_json() -> None:
    results = [result("caption", "A dog."), result("caption", "", ok=False)]
    assert all_as_text(results) == "IMG_1.jpg\nA dog.\n\nIMG_1.jpg\n(failed: corrupt or truncated image)\n"
    parsed = json.loads(all_as_json(results))
    assert [item["ok"] for item in parsed] == [True, False]
    assert parsed[0]["text"] == "A dog." and parsed[1]["error"] == "corrupt or truncated image"
    assert all_as_text([]) == ""


def test_follow_up_carries_the_earlier_answer() -> None:
    assert follow_up_question("", "  What colour is it? ") == "What colour is it?"
    asked = follow_up_question("A red car.", "What colour is it?")
    assert '"A red car."' in asked and asked.endswith("What colour is it?")
    with pytest.raises(ValueError):
        follow_up_question("A red car.", "  ")


def test_seconds_per_image_uses_the_last_ten() -> None:
    assert seconds_per_image([]) is None
    assert seconds_per_image([100.0] + [2.0] * 10) == pytest.approx(2.0)
