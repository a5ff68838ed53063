"""The OCR task end to end: the real gguf engine on the tiny model reads "text" (nonsense, but the model's own
answer), the catalog keeps it as the photo's OCR text, and `captioneer search ocr:WORD` finds the photo with a
snippet around the word."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from captioneer.desktop.cli import main
from captioneer.desktop.library.catalog import open_catalog

pytestmark = pytest.mark.slow


def test_ocr_text_is_stored_and_found_with_ocr_field(
    tmp_path: Path, tiny_gguf: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model, mmproj = tiny_gguf
    root = tmp_path / "Scans"
    (root / "sky").mkdir(parents=True)
    Image.new("RGB", (320, 240), (240, 240, 230)).save(root / "receipt.jpg")
    Image.new("RGB", (320, 240), (20, 90, 200)).save(root / "sky" / "sky.jpg")
    engine = [
        "--engine",
        "gguf",
        "--model",
        str(model),
        "--mmproj",
        str(mmproj),
        "--image-tokens",
        "16",
        "--max-tokens",
        "24",
        "--temperature",
        "0",
        "--threads",
        "1",
        "--in-process",
    ]
    assert main(["tag", str(root), "--task", "ocr", *engine]) == 0
    assert main(["tag", str(root / "sky"), "--task", "caption", *engine]) == 0
    capsys.readouterr()
    with open_catalog() as catalog:
        by_task = {(Path(r.path).name, r.task): r for r in catalog.results()}
        texts = dict(catalog.db.execute("SELECT id, ocr_text FROM results"))
    receipt = by_task["receipt.jpg", "ocr"]
    # The ocr task's field table says its answer is text read in the image; a caption task reads none.
    assert texts[receipt.id] == receipt.caption
    assert texts[by_task["sky.jpg", "caption"].id] is None
    words = re.findall(r"[^\W_]{3,}", receipt.caption)
    if not words:
        pytest.fail(f"the tiny model's OCR answer has no word to search for: {receipt.caption!r}")
    word = words[0]
    assert main(["search", "--json", f"ocr:{word}"]) == 0
    found = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {Path(record["path"]).name for record in found} >= {"receipt.jpg"}
    assert all(record["task"] == "ocr" for record in found)  # only results whose OCR text has the word
    receipt_record = next(record for record in found if record["path"].endswith("receipt.jpg"))
    assert f"[{word.casefold()}]" in receipt_record["snippet"].casefold()
    # The same word in the caption task's answer is not OCR text: ocr: leaves it out, text: finds it.
    sky_caption = by_task["sky.jpg", "caption"].caption
    if word.casefold() in sky_caption.casefold():
        assert main(["search", "--paths", f"text:{word}"]) == 0
        assert str(root / "sky" / "sky.jpg") in capsys.readouterr().out
