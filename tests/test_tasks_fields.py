"""Task presets name their result fields in tasks.toml: a preset with answer keys nobody has seen before is
tagged, stored and written with no code change. The real gguf engine on the tiny model answers the preset's
schema (grammar-constrained); exiftool reads back what was written."""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

import captioneer.desktop.core.tasks as tasks_module
from captioneer.backends.base import EngineConfig
from captioneer.backends.host import open_backend
from captioneer.desktop.cli import main
from captioneer.desktop.core.answering import Answer
from captioneer.desktop.core.captioning import CaptionResult
from captioneer.desktop.core.paths import resource_path
from captioneer.desktop.core.tasks import ResultFields, TaskOptions, all_tasks, get_task, task_schema
from captioneer.desktop.library.catalog import open_catalog
from captioneer.desktop.library.runs import RunSpec, execute_run, plan_run
from captioneer.desktop.library.scanner import scan_library
from captioneer.desktop.ui.quick_caption import copy_values, display_text

CATALOGUE_PRESET = """
[tasks.catalogue]
label = "Catalogue card"
summary = "A museum catalogue card: a summary, a heading and tags."
prompt = "Reply with JSON only: summary, heading and tags for this image. Write in {language}.{vocabulary}"
schema = "catalogue"
max_tokens = 300
fields = { caption = "summary", title = "heading", keywords = "tags" }

[schemas.catalogue]
type = "object"
required = ["summary", "heading", "tags"]
additionalProperties = false

[schemas.catalogue.properties.summary]
type = "string"
minLength = 8
maxLength = 30

[schemas.catalogue.properties.heading]
type = "string"
minLength = 1
maxLength = 12

[schemas.catalogue.properties.tags]
type = "array"
minItems = 1
maxItems = 2

[schemas.catalogue.properties.tags.items]
type = "string"
"""


def _clear_task_caches() -> None:
    tasks_module._catalog.cache_clear()
    all_tasks.cache_clear()


@pytest.fixture
def catalogue_preset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The shipped tasks.toml plus one preset whose answer keys (summary, heading, tags) are new."""
    presets = tmp_path / "tasks.toml"
    presets.write_text(resource_path("tasks.toml").read_text(encoding="utf-8") + CATALOGUE_PRESET, "utf-8")
    monkeypatch.setattr(tasks_module, "resource_path", lambda name: presets if name == "tasks.toml" else None)
    _clear_task_caches()
    yield "catalogue"
    monkeypatch.undo()
    _clear_task_caches()


def test_every_shipped_preset_names_a_caption_and_only_keys_its_answer_has() -> None:
    with resource_path("tasks.toml").open("rb") as fh:
        data = tomllib.load(fh)
    for task in all_tasks().values():
        properties = data["schemas"][task.schema_name]["properties"] if task.structured else {}
        assert task.answer_key("caption"), task.id
        assert {key for _, key in task.field_keys} <= {"text", *properties}, task.id


@pytest.mark.parametrize(
    ("task_id", "text", "data", "fields"),
    [
        ("caption", " A dog\x00 on a beach.\n", None, ResultFields(caption="A dog on a beach.")),
        ("alt_text", "Dog running\non sand", None,
         ResultFields(caption="Dog running\non sand", alt_text="Dog running on sand")),
        ("keywords", "{}", {"caption": "A dog.", "title": "Beach\ndog", "keywords": ["dog", " sea\t"]},
         ResultFields(caption="A dog.", keywords=("dog", "sea"), title="Beach dog")),
        ("social", "{}", {"caption": "Beach day!", "hashtags": ["#dog", "#sea"], "alt_text": "A dog"},
         ResultFields(caption="Beach day!", keywords=("#dog", "#sea"), alt_text="A dog")),
        ("keywords", "{}", {"caption": "A dog.", "keywords": "dog"}, ResultFields(caption="A dog.")),
    ],
)
def test_fields_read_what_the_preset_declares(task_id: str, text: str, data: dict | None,
                                              fields: ResultFields) -> None:
    assert get_task(task_id).fields(Answer(text=text, data=data)) == fields


def test_a_new_preset_needs_no_code_to_be_shown_and_copied(catalogue_preset: str) -> None:
    task = get_task(catalogue_preset)
    assert task.single_line_keys == {"heading", "tags"}
    schema = task_schema(task, TaskOptions(max_keywords=1, vocabulary=("boat", "harbour")))
    assert schema["properties"]["tags"]["items"]["enum"] == ["boat", "harbour"]
    assert schema["properties"]["tags"]["maxItems"] == 1
    data = {"summary": "Boats at dawn.", "heading": "Harbour", "tags": ["boat", "harbour"]}
    result = CaptionResult(path="/photos/a.jpg", task=task.id, ok=True, text=json.dumps(data), data=data)
    values = copy_values(result)
    assert (values.text, values.alt_text, values.keywords) == ("Boats at dawn.", None, "boat, harbour")
    assert display_text(result) == "Title: Harbour\nCaption: Boats at dawn.\nTags: boat, harbour"


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is the independent reader")
def test_a_new_preset_is_tagged_stored_and_written(
    catalogue_preset: str, tmp_path: Path, tiny_gguf: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "Photos"
    root.mkdir()
    for i in range(2):
        Image.new("RGB", (96, 64), (40 + i * 100, 90, 160)).save(root / f"photo_{i}.jpg")
    model, mmproj = tiny_gguf
    config = EngineConfig(engine="gguf", model=str(model), image_tokens=16,
                          options={"mmproj": str(mmproj), "device": "cpu", "threads": 1})
    vocabulary = ("boat", "harbour", "sea")
    spec = RunSpec(task=catalogue_preset, image_tokens=16, vocabulary=vocabulary,
                   sampling={"temperature": 0.0})
    backend = open_backend(config, in_process=True)
    backend.load()
    try:
        with open_catalog() as catalog:
            scan_library(catalog, root)
            plan = plan_run(catalog, str(root), catalog.photos_under(root), spec, config)
            counts = execute_run(catalog, plan.run_id, backend)
            results = catalog.results(run_id=plan.run_id)
            raws = dict(catalog.db.execute("SELECT id, raw FROM results WHERE run_id = ?", (plan.run_id,)))
    finally:
        backend.unload()
    assert (counts.done, counts.failed) == (2, 0)
    for result in results:
        raw = json.loads(raws[result.id])  # the model's own answer, in the preset's keys
        assert result.task == "catalogue" and set(raw) == {"summary", "heading", "tags"}
        assert result.caption == raw["summary"].strip() and result.caption
        assert result.title == (" ".join(raw["heading"].split()) or None)
        assert result.keywords and set(result.keywords) <= set(vocabulary)
    assert main(["review", "approve", "--all"]) == 0
    assert main(["write", "--mode", "sidecar"]) == 0
    capsys.readouterr()
    for result in results:
        sidecar = Path(f"{result.path}.xmp")
        out = subprocess.run(
            ["exiftool", "-j", "-XMP-dc:Description", "-XMP-dc:Title", "-XMP-dc:Subject", str(sidecar)],
            capture_output=True, text=True, check=True,
        )
        [read] = json.loads(out.stdout)
        subjects = read["Subject"] if isinstance(read["Subject"], list) else [read["Subject"]]
        assert set(subjects) == set(result.keywords)
        assert str(read["Description"]) == result.caption
        assert str(read.get("Title", "")) == (result.title or "")
