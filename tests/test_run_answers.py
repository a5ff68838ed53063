"""How a tagging run turns answers into results: attempts counted truthfully, cut-off answers told apart,
control characters never stored or written. Real catalogs, real image files, the stand-in engine of
tests/fakes (the real engines' finish reasons are tested in their own files), exiftool reading back."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from captioneer.desktop.cli import main
from captioneer.desktop.library.catalog import Catalog, open_catalog
from captioneer.desktop.library.runs import RunSpec, execute_run, failed_items, plan_run
from captioneer.desktop.library.scanner import scan_library
from tests.fakes.tagging_engine import BatchingFakeEngine, FakeEngine, fake_config

CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")


def colour(i: int) -> tuple[int, int, int]:
    return ((i * 53) % 256, (i * 97) % 256, (i * 29) % 256)


def key(i: int) -> str:
    return ",".join(str(v) for v in colour(i))


def make_library(root: Path, count: int, suffix: str = ".png") -> Path:
    root.mkdir(parents=True)
    for i in range(count):
        Image.new("RGB", (64, 64), colour(i)).save(root / f"photo_{i:03d}{suffix}")
    return root


def run_library(catalog: Catalog, root: Path, engine_class: type[FakeEngine], spec: RunSpec, **extra: object):
    scan_library(catalog, root)
    config = fake_config(**extra)
    plan = plan_run(catalog, str(root), catalog.photos_under(root), spec, config)
    engine = engine_class(config)
    events: list[str] = []
    execute_run(catalog, plan.run_id, engine, on_event=events.append)
    return plan.run_id, engine, events


def stored(catalog: Catalog, run_id: int) -> dict[str, dict[str, object]]:
    rows = catalog.db.execute(
        "SELECT p.path, r.caption, r.keywords, r.title, r.alt_text, r.raw, r.attempts, r.review, "
        "r.review_reason FROM results r JOIN photos p ON p.id = r.photo_id WHERE r.run_id = ?",
        (run_id,),
    ).fetchall()
    names = ("caption", "keywords", "title", "alt_text", "raw", "attempts", "review", "reason")
    return {Path(row[0]).name: dict(zip(names, row[1:], strict=True)) for row in rows}


def generations(engine: FakeEngine, name: str) -> int:
    """Generations the engine really made for one photo: single requests plus its place in batches."""
    single = sum(1 for request in engine.requests if request.images[0].source.endswith(name))
    batched = sum(1 for request in getattr(engine, "batched", []) if request.images[0].source.endswith(name))
    return single + batched


class CountingBatchEngine(BatchingFakeEngine):
    """The batching stand-in, remembering every request it answered in a batch."""

    def __init__(self, config) -> None:
        super().__init__(config)
        self.batched: list = []

    def generate_batch(self, requests, cancel=None):
        self.batched.extend(requests)
        return super().generate_batch(requests, cancel)


def test_a_batched_answer_and_two_retries_are_three_attempts(tmp_path: Path) -> None:
    root = make_library(tmp_path / "lib", 4)
    with open_catalog() as catalog:
        run_id, engine, _ = run_library(
            catalog, root, CountingBatchEngine, RunSpec(image_tokens=16, batch_size=4), invalid_on=[key(1)]
        )
        results = stored(catalog, run_id)
        bad = results["photo_001.png"]
        assert generations(engine, "photo_001.png") == 3  # the batch's answer, then the answer and its retry
        assert bad["attempts"] == 3
        assert "after 3 attempts" in bad["reason"] and bad["review"] == "needs_review"
        assert results["photo_000.png"]["attempts"] == 1 == generations(engine, "photo_000.png")


def test_attempts_match_generations_without_batching(tmp_path: Path) -> None:
    root = make_library(tmp_path / "lib", 3)
    with open_catalog() as catalog:
        run_id, engine, _ = run_library(
            catalog, root, FakeEngine, RunSpec(image_tokens=16), invalid_on=[key(2)]
        )
        results = stored(catalog, run_id)
        for name, result in results.items():
            assert result["attempts"] == generations(engine, name), name
        assert (
            results["photo_002.png"]["attempts"] == 2
            and "after 2 attempts" in results["photo_002.png"]["reason"]
        )


def test_a_cut_off_answer_is_kept_for_review_as_cut_off_not_as_invalid(tmp_path: Path) -> None:
    root = make_library(tmp_path / "lib", 3)
    spec = RunSpec(image_tokens=16, sampling={"max_new_tokens": 300})
    with open_catalog() as catalog:
        run_id, engine, _ = run_library(catalog, root, FakeEngine, spec, cut_off_on=[key(1)])
        cut = stored(catalog, run_id)["photo_001.png"]
        assert cut["review"] == "needs_review" and cut["caption"] == ""
        assert cut["reason"].startswith(
            "Cut-off output after 2 attempts: The answer was cut off at 300 tokens"
        )
        assert "raise the maximum answer length" in cut["reason"] and "invalid" not in cut["reason"].lower()
        assert "“Max answer length” in Settings" in cut["reason"] and "--" not in cut["reason"]
        assert cut["attempts"] == 2 == generations(engine, "photo_001.png")
        assert stored(catalog, run_id)["photo_000.png"]["review"] == "new"


def test_a_cut_off_batched_answer_is_asked_again(tmp_path: Path) -> None:
    root = make_library(tmp_path / "lib", 2)
    with open_catalog() as catalog:
        run_id, engine, events = run_library(
            catalog, root, CountingBatchEngine, RunSpec(image_tokens=16, batch_size=2), cut_off_on=[key(0)]
        )
        assert generations(engine, "photo_000.png") == 3
        assert any("a batched answer was unusable (The answer was cut off" in event for event in events)
        assert stored(catalog, run_id)["photo_000.png"]["attempts"] == 3


def test_control_characters_never_reach_the_catalog(tmp_path: Path) -> None:
    root = make_library(tmp_path / "lib", 2)
    with open_catalog() as catalog:
        run_id, _, _ = run_library(
            catalog, root, FakeEngine, RunSpec(image_tokens=16), control_on=[key(0), key(1)]
        )
        for result in stored(catalog, run_id).values():
            keywords = json.loads(result["keywords"])
            for text in (result["caption"], result["title"], result["raw"], *keywords):
                assert not CONTROL.search(text), repr(text)
            assert result["caption"].endswith("[0m\nSecond line."), "a caption keeps its line break"
            assert "\n" not in result["title"] and result["title"].endswith("square")
            assert result["review"] == "new", result["reason"]


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is the independent reader")
def test_a_babbled_answer_is_written_without_control_characters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_library(tmp_path / "lib", 1, suffix=".jpg")
    with open_catalog() as catalog:
        run_library(catalog, root, FakeEngine, RunSpec(image_tokens=16), control_on=[key(0)])
    assert main(["review", "approve", "--all"]) == 0
    assert main(["write", "--mode", "sidecar"]) == 0
    capsys.readouterr()
    [sidecar] = [path for path in root.iterdir() if path.suffix.lower() == ".xmp"]
    out = subprocess.run(
        ["exiftool", "-j", "-XMP-dc:Description", "-XMP-dc:Title", "-XMP-dc:Subject", str(sidecar)],
        capture_output=True,
        text=True,
        check=True,
    )
    [read] = json.loads(out.stdout)
    description = read["Description"]
    assert description.endswith("[0m\nSecond line.") and not CONTROL.search(description)
    assert not CONTROL.search(str(read["Title"])) and not CONTROL.search(json.dumps(read["Subject"]))


def test_out_of_memory_is_asked_once_more_at_half_the_budget_then_fails(tmp_path: Path) -> None:
    spec = RunSpec(image_tokens=256)
    for limit in (128, 64):  # fits at half the budget; does not fit even there
        root = tmp_path / f"lib{limit}"
        root.mkdir()
        Image.new("RGB", (640, 480), (200, 40, 40)).save(root / "photo.png")
        with open_catalog() as catalog:
            run_id, engine, events = run_library(catalog, root, FakeEngine, spec, out_of_memory_over=limit)
            asked = [request.image_tokens for request in engine.requests]
            assert len(asked) == 2 and asked[0] > 128 >= asked[1]  # the prepared pixels, downscaled
            assert any("Retrying with a 128-token image budget." in event for event in events)
            stored_rows = catalog.db.execute(
                "SELECT image_tokens, attempts, review FROM results WHERE run_id = ?", (run_id,)
            ).fetchall()
            failed = failed_items(catalog, run_id)
        if limit == 128:
            assert stored_rows == [(asked[1], 2, "new")] and failed == []
        else:
            [(_, error, kind)] = failed
            assert stored_rows == [] and kind == "resources" and "Out of memory at" in error
