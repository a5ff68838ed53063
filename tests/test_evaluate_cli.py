"""`captioneer evaluate` end to end on the tiny models: photos carrying keywords written by exiftool, a COCO
reference file, several profiles, the table, --json, --csv, Ctrl-C and the one-line errors."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def _library(root: Path) -> list[Path]:
    """Three photos, two carrying keywords (embedded XMP/IPTC, an XMP sidecar), and COCO references."""
    (root / "trip").mkdir(parents=True)
    photos = [root / "beach.jpg", root / "trip" / "street.jpg", root / "trip" / "cat.png"]
    for index, photo in enumerate(photos):
        Image.new("RGB", (128, 96), (60 * index, 150, 90)).save(photo)
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-dc:Subject=beach", "-XMP-dc:Subject=Dogs",
                    "-IPTC:Keywords=sunset", str(photos[0])], check=True)
    subprocess.run(["exiftool", "-q", "-o", f"{photos[2]}.xmp", "-XMP-dc:Subject=cat", str(photos[2])],
                   check=True)
    coco = {
        "images": [{"id": 1, "file_name": "beach.jpg"}, {"id": 2, "file_name": "trip/street.jpg"}],
        "annotations": [
            {"image_id": 1, "caption": "A dog on the beach at sunset."},
            {"image_id": 1, "caption": "A beach with a dog."},
            {"image_id": 2, "caption": "People crossing a street."},
        ],
    }
    (root / "refs.json").write_text(json.dumps(coco), encoding="utf-8")
    return photos


def _digests(root: Path) -> dict[str, str]:
    files = sorted(path for path in root.rglob("*") if path.is_file())
    return {str(path): hashlib.sha256(path.read_bytes()).hexdigest() for path in files}


def captioneer(home: Path, *args: str | Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "captioneer.desktop.cli", *map(str, args)],
        env={**os.environ, "CAPTIONEER_HOME": str(home)}, cwd=REPO, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=timeout,
    )


def test_evaluate_compares_profiles_on_the_tiny_models(
    tmp_path: Path, captioneer_home: Path, tiny_gguf, tiny_hf_model
) -> None:
    library = tmp_path / "library"
    _library(library)
    before = _digests(library)
    model = tiny_gguf[0]
    out_csv = tmp_path / "scores.csv"
    done = captioneer(
        captioneer_home, "evaluate", library, "--profile", f"{model}@64", "--profile", f"gguf:{model}@256",
        "--profile", f"{tiny_hf_model}@64", "--references", library / "refs.json", "--json", "--csv", out_csv,
    )
    assert done.returncode == 0, done.stderr
    assert "2 of 3 photos have reference captions" in done.stderr
    assert "2 of 3 photos carry keywords of their own" in done.stderr
    assert "[3/3] tiny-qwen3vl@64: loading the model" in done.stderr
    report = json.loads(done.stdout)
    assert (report["photos"], report["photos_with_references"], report["photos_with_keywords"]) == (3, 2, 2)
    labels = [p["profile"] for p in report["profiles"]]
    assert labels == ["model.gguf@64", "model.gguf@256", "tiny-qwen3vl@64"]
    for profile in report["profiles"]:
        assert profile["error"] is None and profile["photos"] == 3
        assert profile["caption_photos"] == 2 and profile["keyword_photos"] == 2
        assert {"BLEU-4", "METEOR", "ROUGE-L", "CIDEr"} <= set(profile["caption_metrics"])
        assert all(value >= 0 for value in profile["caption_metrics"].values())
        assert "SPICE" in profile["caption_metrics"] or "SPICE" in profile["unavailable_metrics"]
        assert profile["keyword_recall"] is not None and 0 <= profile["keyword_recall"] <= 1
        assert profile["load_seconds"] > 0 and profile["peak_memory_bytes"] > 10 * 2**20
    gguf = report["profiles"][0]
    assert gguf["failed"] == 0 and gguf["seconds_per_photo"] > 0  # llama.cpp's grammar keeps the JSON valid
    assert [p["image_tokens"] for p in report["profiles"]] == [64, 256, 64]
    # The tiny transformers model's random weights never write the keywords JSON: each failed photo says why.
    hf = report["profiles"][2]
    assert hf["failed"] > 0 and len(hf["failures"]) == hf["failed"]
    assert all(f["reason"].startswith(("Invalid output", "Cut-off output")) for f in hf["failures"])
    assert f"tiny-qwen3vl@64: {hf['failed']} of 3 photos failed" in done.stdout  # the notes say it too
    with out_csv.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["profile"] for row in rows] == labels
    assert rows[2]["failure_reason"] == hf["failures"][0]["reason"] and rows[0]["failure_reason"] == ""
    assert float(rows[0]["CIDEr"]) == gguf["caption_metrics"]["CIDEr"]
    assert _digests(library) == before  # the photos and sidecars were only read


def test_the_table_has_every_column_and_says_what_it_is_over(tmp_path: Path, captioneer_home: Path,
                                                              tiny_gguf) -> None:
    library = tmp_path / "library"
    _library(library)
    engine = ["--model", tiny_gguf[0], "--mmproj", tiny_gguf[1], "--image-tokens", "64"]
    paths = [library / "beach.jpg", library / "trip"]
    done = captioneer(captioneer_home, *engine, "evaluate", *paths, "--limit", "2")
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.splitlines()[:2]
    assert header.split() == ["Profile", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr", "KW-P", "KW-R", "KW-F1",
                              "s/photo", "load", "s", "peak", "memory", "failed"]
    assert row.startswith("model.gguf@64") and row.endswith("0/2")
    assert "no reference captions given (--references FILE)" in done.stdout
    assert "Keyword scores over the 2 photos" in done.stdout  # beach.jpg, trip/cat.png


def test_a_profile_that_cannot_run_is_reported_and_the_others_still_run(
    tmp_path: Path, captioneer_home: Path, tiny_gguf
) -> None:
    photo = tmp_path / "one.jpg"
    Image.new("RGB", (64, 64), "blue").save(photo)
    done = captioneer(captioneer_home, "evaluate", photo, "--profile", f"{tiny_gguf[0]}@64",
                      "--profile", "openai:qwen3-vl@64")
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1].startswith("model.gguf@64") and lines[2].startswith("qwen3-vl@64")
    assert lines[2].endswith("error")
    assert any(line.startswith("qwen3-vl@64: could not run: ") for line in lines)


def test_bad_inputs_are_one_line_errors(tmp_path: Path, captioneer_home: Path, tiny_gguf) -> None:
    photo = tmp_path / "one.jpg"
    Image.new("RGB", (16, 16)).save(photo)
    bad = tmp_path / "refs.json"
    bad.write_text("{not json", encoding="utf-8")
    cases = [
        (["--profile", f"{tiny_gguf[0]}@64", "--references", bad], "is not valid JSON"),
        ([], "No model chosen"),
        (["--profile", "4B Q8_0"], "captioneer models pull qwen3-vl-4b-gguf-q8_0"),
        (["--profile", f"{tiny_gguf[0]}@5"], "use 16 to 16384"),
        (["--profile", f"{tiny_gguf[0]}", "--keyword-map", tmp_path / "nope.txt"], "Cannot read the keyword"),
    ]
    for extra, message in cases:
        done = captioneer(captioneer_home, "evaluate", photo, *extra)
        assert done.returncode == 2, (extra, done.stderr)
        assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert done.stdout == ""
    missing = captioneer(captioneer_home, "evaluate", tmp_path / "gone", "--profile", f"{tiny_gguf[0]}")
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_ctrl_c_prints_the_profiles_finished_and_exits_130(tmp_path: Path, captioneer_home: Path,
                                                           tiny_gguf) -> None:
    for index in range(4):
        Image.new("RGB", (96, 96), (index * 50, 0, 0)).save(tmp_path / f"p{index}.jpg")
    child = subprocess.Popen(
        [sys.executable, "-m", "captioneer.desktop.cli", "evaluate", str(tmp_path),
         "--profile", f"{tiny_gguf[0]}@64", "--profile", f"{tiny_gguf[0]}@96"],
        env={**os.environ, "CAPTIONEER_HOME": str(captioneer_home)}, cwd=REPO, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    err: list[str] = []
    try:
        assert child.stderr is not None
        deadline = time.monotonic() + 600
        for line in child.stderr:
            err.append(line)
            if "[2/2]" in line or time.monotonic() > deadline:
                break
        child.send_signal(signal.SIGINT)
        out, rest = child.communicate(timeout=300)
    finally:
        if child.poll() is None:
            child.kill()
    err.append(rest)
    assert child.returncode == 130, "".join(err)
    lines = out.splitlines()
    assert lines[1].startswith("model.gguf@64") and lines[1].endswith("0/4")
    assert not any(line.startswith("model.gguf@96") for line in lines)
    assert "Interrupted: only the profiles that finished are shown." in out
    assert "stopping after the current photo" in "".join(err)


def test_several_profiles_may_come_in_one_argument_separated_by_semicolons(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from captioneer.desktop.cli import build_parser

    args = build_parser().parse_args(
        ["evaluate", "photos", "--profile", "a.gguf@64", "--profiles", "2B Q4_K_M@256; C:\\m\\x,y.gguf@512;"]
    )
    assert args.profiles == ["a.gguf@64", "2B Q4_K_M@256", "C:\\m\\x,y.gguf@512"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "photos", "--profiles", " ; "])
    assert "no profile in it: separate profiles with ';'" in capsys.readouterr().err
