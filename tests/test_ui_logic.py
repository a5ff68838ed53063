"""Qt-free decisions behind the window: collecting dropped files, copy buttons, copy-all, follow-ups."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from captioneer.desktop.core.captioning import CaptionResult
from captioneer.desktop.ui.card_history import (
    CardHistory,
    Outcome,
    discard_question,
    needs_caption,
    shown_as_text,
    uncopied_answers,
)
from captioneer.desktop.ui.quick_caption import (
    all_as_json,
    all_as_text,
    collect_images,
    copy_values,
    display_text,
    file_key,
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


# -- the cards' memory (desktop/ui/card_history.py) ----------------------------------------------------


def test_a_card_keeps_every_answer_and_shows_follow_ups_beneath_the_one_on_show() -> None:
    history = CardHistory()
    first = history.add(result("caption", "A dog on a beach."), datetime(2026, 5, 1, 14, 5))
    history.add_follow_up("What colour is the dog?", "Brown.")
    second = history.add(result("alt_text", "Dog running on sand"), datetime(2026, 5, 1, 14, 7))
    assert history.current is second and (history.index, len(history.answers)) == (1, 2)
    assert not history.browse(1)
    assert history.browse(-1) and history.current is first
    assert not history.browse(-1)
    assert first.shown_text() == "A dog on a beach.\n\nQ: What colour is the dog?\nA: Brown."
    assert first.heading().endswith("· 14:05") and second.shown_text() == "Dog running on sand"


def test_a_follow_up_makes_a_copied_answer_new_again_and_counts_what_would_be_lost() -> None:
    history = CardHistory()
    history.add(result("caption", "A dog."))
    other = CardHistory()
    assert uncopied_answers([history, other]) == 1
    history.current.copied = True
    assert uncopied_answers([history, other]) == 0
    history.add_follow_up("Where?", "On a beach.")
    assert uncopied_answers([history]) == 1
    assert discard_question(1) == "1 answer has not been copied. Discard it?"
    assert discard_question(3) == "3 answers have not been copied. Discard them?"
    with pytest.raises(ValueError):
        CardHistory().add_follow_up("Where?", "Here.")


@pytest.mark.parametrize(
    ("outcome", "tasks", "task", "runs"),
    [
        (Outcome.NEW, [], "caption", True),
        (Outcome.DONE, ["caption"], "caption", False),  # a good answer is re-run only on request
        (Outcome.DONE, ["caption"], "alt_text", True),  # no answer for the chosen task yet
        (Outcome.FAILED, ["caption"], "caption", True),
        (Outcome.CANCELLED, ["caption"], "caption", True),
        (Outcome.CANCELLED, [], "caption", True),
        (Outcome.DONE, [("question", "How many?")], ("question", "How many?"), False),
        (Outcome.DONE, [("question", "How many?")], ("question", "What colour?"), True),  # a new question
    ],
)
def test_caption_runs_new_failed_and_cancelled_cards_only(outcome, tasks, task, runs) -> None:
    history = CardHistory()
    for done in tasks:
        task_id, question = done if isinstance(done, tuple) else (done, None)
        history.add(result(task_id, "text"), question=question)
    task_id, question = task if isinstance(task, tuple) else (task, None)
    assert needs_caption(outcome, history, task_id, question) is runs


def test_one_file_under_several_spellings_is_one_file(tmp_path: Path, monkeypatch) -> None:
    photo = touch(tmp_path / "album" / "a.jpg")
    (tmp_path / "link.jpg").symlink_to(photo)
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path)
    dotted = tmp_path / "other" / ".." / "album" / "a.jpg"
    spellings = [photo, Path("album/a.jpg"), dotted, tmp_path / "link.jpg"]
    assert len({file_key(path) for path in spellings}) == 1
    collected = collect_images([*spellings, tmp_path / "album"])
    assert collected.files == (photo,)


def test_copy_all_as_text_is_each_name_over_what_its_card_shows() -> None:
    assert shown_as_text([("a.jpg", "A dog.\n\nQ: Where?\nA: Beach."), ("b.jpg", "A cat.")]) == (
        "a.jpg\nA dog.\n\nQ: Where?\nA: Beach.\n\nb.jpg\nA cat.\n"
    )
    assert shown_as_text([]) == ""
