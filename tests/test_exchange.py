"""CSV/JSON export of every result with its path, and importing edited files back (all-or-nothing)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from captioneer.desktop.cli import main
from captioneer.desktop.library.catalog import Catalog, open_catalog
from captioneer.desktop.library.exchange import ImportFileError, export_csv, export_json, import_file
from captioneer.desktop.library.runs import RunSpec, execute_run, plan_run
from captioneer.desktop.library.scanner import scan_library
from tests.fakes.tagging_engine import FakeEngine, fake_config


@pytest.fixture
def catalog(tmp_path: Path):
    root = tmp_path / "lib"
    root.mkdir()
    for i in range(4):
        Image.new("RGB", (32, 32), (i * 60, 10, 10)).save(root / f"p{i}.png")
    with open_catalog() as catalog:
        scan_library(catalog, root)
        config = fake_config()
        plan = plan_run(catalog, str(root), catalog.photos_under(root), RunSpec(image_tokens=16), config)
        execute_run(catalog, plan.run_id, FakeEngine(config))
        yield catalog


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_export_has_every_result_with_path(catalog: Catalog) -> None:
    results = catalog.results()
    exported = rows(export_csv(results))
    assert [row["path"] for row in exported] == [r.path for r in results]
    assert exported[0]["keywords"] == "; ".join(results[0].keywords)
    assert exported[0]["status"] == "new" and exported[0]["model"] == "fake-model.gguf"
    data = json.loads(export_json(results))
    assert data[0]["keywords"] == list(results[0].keywords) and data[0]["result_id"] == results[0].id


def test_formula_cells_are_defused_and_round_trip(catalog: Catalog, tmp_path: Path) -> None:
    first = catalog.results()[0]
    catalog.edit_result(first.id, caption='=HYPERLINK("http://x")', keywords=["+1 idea", "ok"])
    text = export_csv(catalog.results())
    assert "'=HYPERLINK" in text and "'+1 idea" in text
    path = tmp_path / "edited.csv"
    path.write_text(text, encoding="utf-8")
    report = import_file(catalog, path)
    assert report.updated == 0 and report.unchanged == 4
    assert catalog.result(first.id).caption == '=HYPERLINK("http://x")'


def test_import_applies_edits_and_status(catalog: Catalog, tmp_path: Path) -> None:
    results = catalog.results()
    exported = rows(export_csv(results))
    exported[0]["caption"] = "Grandma's red kitchen."
    exported[0]["keywords"] = "kitchen; red;  ; Grandma"
    exported[0]["status"] = "approved"
    exported[1]["status"] = "Rejected"
    path = tmp_path / "edited.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as fh:  # spreadsheets add a BOM
        writer = csv.DictWriter(fh, fieldnames=list(exported[0]))
        writer.writeheader()
        writer.writerows(exported)
    report = import_file(catalog, path)
    assert (report.updated, report.unchanged) == (2, 2)
    edited = catalog.result(results[0].id)
    assert edited.caption == "Grandma's red kitchen." and edited.keywords == ("kitchen", "red", "Grandma")
    assert edited.review == "approved" and edited.edited
    assert catalog.result(results[1].id).review == "rejected"


def test_written_result_edited_goes_back_to_approved(catalog: Catalog, tmp_path: Path) -> None:
    result = catalog.results()[0]
    catalog.set_review([result.id], "written")
    path = tmp_path / "e.json"
    path.write_text(json.dumps([{"path": result.path, "caption": "New words."}]), encoding="utf-8")
    import_file(catalog, path)
    assert catalog.result(result.id).review == "approved"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("result_id,caption\n999,x\n", "no result 999"),
        ("result_id,caption\nabc,x\n", "not a number"),
        ("result_id,status\n1,written\n", "status 'written'"),
        ("path,caption\n/nowhere.jpg,x\n", "no result for /nowhere.jpg"),
        ("name,caption\nx,y\n", "needs a result_id or path column"),
    ],
)
def test_bad_rows_change_nothing(catalog: Catalog, tmp_path: Path, content: str, message: str) -> None:
    before = [r.caption for r in catalog.results()]
    good = f"result_id,caption\n{catalog.results()[0].id},changed\n"
    path = tmp_path / "bad.csv"
    path.write_text(good + content.split("\n", 1)[1] if content.startswith("result_id,caption") else content)
    with pytest.raises(ImportFileError, match=message):
        import_file(catalog, path)
    assert [r.caption for r in catalog.results()] == before


def test_result_id_and_path_must_agree(catalog: Catalog, tmp_path: Path) -> None:
    first, second = catalog.results()[:2]
    path = tmp_path / "x.csv"
    path.write_text(f"result_id,path,caption\n{first.id},{second.path},x\n")
    with pytest.raises(ImportFileError, match="belongs to"):
        import_file(catalog, path)


def test_cli_export_and_import(catalog: Catalog, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "all.csv"
    assert main(["export", "--format", "csv", "--output", str(out)]) == 0
    lines = rows(out.read_text(encoding="utf-8"))
    assert len(lines) == 4
    lines[2]["title"] = "Edited title"
    with out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(lines[0]))
        writer.writeheader()
        writer.writerows(lines)
    catalog.close()  # the CLI takes the writer lock itself
    assert main(["import", str(out)]) == 0
    assert "1 results updated" in capsys.readouterr().err
    assert main(["export", "--format", "json", "--query", "title:edited"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert [item["title"] for item in exported] == ["Edited title"]


TRICKY_CAPTIONS = [
    "a bare\rCR inside",
    "CRLF\r\nand LF\nlines",
    "\ttab first, and a tab\tinside ",
    "\"quotes\", commas, ;semicolons; and 'apostrophes'",
    "'=not a formula, an apostrophe first",
    "''two apostrophes",
    "=SUM(A1:A2)",
    "+1, -1, @home",
    "\rCR first",
    "unicode: 日本 🌅 café e\u0301 \u2028 line separator",
    "  spaces around  ",
]


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_export_then_import_round_trips_exactly(
    catalog: Catalog, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    results = catalog.results()
    for result, caption in zip(results * 3, TRICKY_CAPTIONS, strict=False):
        catalog.edit_result(result.id, caption=caption, title=caption[::-1], alt_text=caption + "!")
    catalog.edit_result(results[1].id, keywords=["=formula", "'quoted", "日本", "tab\there"])
    before = [(r.caption, r.title, r.alt_text, r.keywords, r.review, r.edited) for r in catalog.results()]
    out = tmp_path / f"all.{fmt}"
    catalog.close()
    assert main(["export", "--format", fmt, "--output", str(out)]) == 0
    assert main(["import", str(out)]) == 0
    assert f"0 results updated, {len(results)} unchanged" in capsys.readouterr().err
    with open_catalog() as again:
        after = [(r.caption, r.title, r.alt_text, r.keywords, r.review, r.edited) for r in again.results()]
    assert after == before


def _deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "huge.csv",
            "result_id,caption\n{id},{big}\n",
            "row 2 cannot be read .a cell is longer than 131,072",
        ),
        ("huge.json", '[{{"result_id": {id}, "caption": "{big}"}}]', "row 2: caption is longer than 131,072"),
        (
            "id.csv",
            "result_id,caption\n{id},x\n99999999999999999999999,y\n",
            "row 3: result_id 9+ is out of range",
        ),
        (
            "id.json",
            '[{{"result_id": 18446744073709551616, "caption": "x"}}]',
            "row 2: result_id .* out of range",
        ),
        (
            "digits.csv",
            "result_id,caption\n\u0661\u0662,x\n",
            "row 2: result_id '\u0661\u0662' is not a number",
        ),
        ("deep.json", _deep_json(100_000), "nested too deeply"),
        (
            "kw.json",
            '[{{"result_id": {id}, "keywords": ["ok", 7]}}]',
            "row 2: keywords must be text, not int 7",
        ),
        (
            "kw2.json",
            '[{{"result_id": {id}, "keywords": [{{"a": 1}}]}}]',
            "row 2: keywords must be text, not dict",
        ),
        ("cap.json", '[{{"result_id": {id}, "caption": ["a"]}}]', "row 2: caption must be text, not list"),
    ],
)
def test_hostile_imports_are_one_clear_line_and_change_nothing(
    catalog: Catalog,
    tmp_path: Path,
    name: str,
    content: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = catalog.results()[0]
    before = [(r.caption, r.keywords) for r in catalog.results()]
    path = tmp_path / name
    path.write_text(content.format(id=first.id, big="x" * 131_073), encoding="utf-8")
    with pytest.raises(ImportFileError, match=message):
        import_file(catalog, path)
    catalog.close()
    assert main(["import", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    with open_catalog() as again:
        assert [(r.caption, r.keywords) for r in again.results()] == before
