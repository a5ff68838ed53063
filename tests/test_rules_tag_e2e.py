"""`captioneer tag` with keyword control and folder rules, end to end: the real gguf engine on the tiny model,
the real catalog, and exiftool reading back what was written. The tiny model answers nonsense, so the tests
assert what the rules decide (required first, banned words gone, too few flagged, one run per rule with its
task), not the model's words."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
EXIFTOOL = shutil.which("exiftool")

pytestmark = pytest.mark.skipif(EXIFTOOL is None, reason="exiftool is the independent reader")


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "captioneer.desktop.cli", *args],
        env={**os.environ, "CAPTIONEER_HOME": str(home)},
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done


def engine(tiny_gguf: tuple[Path, Path]) -> list[str]:
    model, mmproj = tiny_gguf
    return ["--engine", "gguf", "--model", str(model), "--mmproj", str(mmproj), "--image-tokens", "16",
            "--max-keywords", "6", "--temperature", "0", "--threads", "1", "--in-process"]  # fmt: skip


def photos(root: Path, names: list[str]) -> None:
    for index, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (320, 240), (index * 70 % 255, 100, 200 - index * 30)).save(root / name)


def results(home: Path) -> list[dict]:
    done = cli(home, "review", "list", "--json")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def words(keyword: str) -> list[str]:
    return re.findall(r"\w+", keyword.casefold())


def test_required_banned_and_too_few_keywords(tmp_path: Path, tiny_gguf: tuple[Path, Path]) -> None:
    root = tmp_path / "Photos"
    photos(root, ["a.jpg", "b.jpg", "c.jpg"])
    # What the model says without keyword control (greedy decoding: it says the same again).
    plain = cli(tmp_path / "plain", "tag", str(root), *engine(tiny_gguf))
    assert plain.returncode == 0, plain.stderr
    said = [keyword for result in results(tmp_path / "plain") for keyword in result["keywords"]]
    banned = next(word for keyword in said for word in words(keyword) if word.isalpha() and len(word) > 2)
    assert any(banned in words(keyword) for keyword in said)

    home = tmp_path / "home"
    chosen = ["--require", "Client X, Summer Party", "--exclude", banned, "--min-keywords", "6"]
    done = cli(home, "tag", str(root), *engine(tiny_gguf), *chosen)
    assert done.returncode == 0, done.stderr
    tagged = results(home)
    assert len(tagged) == 3
    for result in tagged:
        assert result["keywords"][:2] == ["Client X", "Summer Party"]
        assert not any(banned in words(keyword) for keyword in result["keywords"])
        if len(result["keywords"]) < 6:
            assert result["status"] == "needs_review"
            reason = f"only {len(result['keywords'])} keywords, fewer than the 6 asked for"
            assert reason in result["review_reason"]
    assert any(result["status"] == "needs_review" for result in tagged)  # the tiny model never says enough
    written = cli(home, "write", "--mode", "sidecar", "--unreviewed")
    assert written.returncode == 0, written.stderr
    read = subprocess.run(
        [EXIFTOOL, "-j", "-XMP-dc:Subject", *sorted(str(path) for path in root.glob("*.xmp"))],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    for tags in json.loads(read.stdout):
        subject = tags["Subject"] if isinstance(tags["Subject"], list) else [tags["Subject"]]
        assert {"Client X", "Summer Party"} <= set(map(str, subject))
        assert not any(banned in words(str(keyword)) for keyword in subject)


def test_an_answer_kept_for_review_as_invalid_still_has_the_required_keywords(
    tmp_path: Path, tiny_gguf: tuple[Path, Path]
) -> None:
    root = tmp_path / "Photos"
    photos(root, ["a.jpg"])
    home = tmp_path / "home"
    # Cut at 24 tokens the keywords JSON is invalid: the result keeps the model's text for review.
    done = cli(
        home,
        "tag",
        str(root),
        *engine(tiny_gguf),
        "--max-tokens",
        "24",
        "--no-retry",
        "--require",
        "Client X",
    )
    assert done.returncode == 0, done.stderr
    [result] = results(home)
    assert result["status"] == "needs_review" and "cut off" in result["review_reason"]
    assert result["keywords"] == ["Client X"]


def test_contradictory_flags_are_one_line_and_status_2(tmp_path: Path, tiny_gguf: tuple[Path, Path]) -> None:
    root = tmp_path / "Photos"
    photos(root, ["a.jpg"])
    done = cli(
        tmp_path / "home", "tag", str(root), *engine(tiny_gguf), "--require", "dogs", "--exclude", "dog"
    )
    assert done.returncode == 2
    assert "'dogs' is both required and banned" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_rules_file_makes_one_run_per_rule(tmp_path: Path, tiny_gguf: tuple[Path, Path]) -> None:
    root = tmp_path / "Photos"
    photos(root, ["Shop/Products/shoe.jpg", "Shop/Products/bag.jpg", "Trips/beach.jpg", "other.jpg"])
    (tmp_path / "words.txt").write_text("shoe\nbag\n", encoding="utf-8")
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[[rule]]\nname = "Products"\nfolder = "*/Products/*"\ntask = "product"\nvocabulary = "words.txt"\n\n'
        '[[rule]]\nname = "Trips"\nfolder = "Trips/"\ntask = "caption"\n',
        encoding="utf-8",
    )
    home = tmp_path / "home"
    done = cli(home, "tag", str(root), *engine(tiny_gguf), "--max-tokens", "40", "--rules", str(rules))
    assert done.returncode == 0, done.stderr
    ruled = "2 rules: Products → product (2 photos), Trips → caption (1 photo); 1 photo by your choices"
    assert f"folder rules: {ruled}" in done.stderr
    assert done.stderr.count("loading the gguf model") == 1  # one model load for all the runs
    tasks = {Path(result["path"]).name: (result["task"], result["run_id"]) for result in results(home)}
    assert {name: task for name, (task, _run) in tasks.items()} == {
        "shoe.jpg": "product",
        "bag.jpg": "product",
        "beach.jpg": "caption",
        "other.jpg": "keywords",
    }
    assert len({run for _task, run in tasks.values()}) == 3
    db = sqlite3.connect(home / "data" / "catalog.sqlite")
    try:
        specs = {scope: json.loads(spec) for scope, spec in db.execute("SELECT scope, options FROM runs")}
    finally:
        db.close()
    assert specs[f"{root} · rule Products"]["vocabulary"] == ["shoe", "bag"]
    assert specs[f"{root} · rule Trips"]["rule"] == "Trips"
    assert specs[str(root)]["rule"] == ""
    # The same command again resumes nothing and tags nothing: every group is done.
    again = cli(home, "tag", str(root), *engine(tiny_gguf), "--max-tokens", "40", "--rules", str(rules))
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("nothing to tag") == 3


def test_vocabulary_top_asks_the_librarys_most_used_keywords(
    tmp_path: Path, tiny_gguf: tuple[Path, Path]
) -> None:
    root = tmp_path / "Photos"
    photos(root, ["a.jpg", "b.jpg"])
    (root / "a.jpg.xmp").write_text(SIDECAR.format("<rdf:li>Grandma</rdf:li><rdf:li>Lisbon</rdf:li>"))
    (root / "b.jpg.xmp").write_text(SIDECAR.format("<rdf:li>grandma</rdf:li>"))
    home = tmp_path / "home"
    done = cli(home, "tag", str(root), *engine(tiny_gguf), "--vocabulary-top", "1")
    assert done.returncode == 0, done.stderr
    db = sqlite3.connect(home / "data" / "catalog.sqlite")
    try:
        [(options,)] = db.execute("SELECT options FROM runs").fetchall()
        keywords = [json.loads(text) for (text,) in db.execute("SELECT keywords FROM results")]
    finally:
        db.close()
    spec = json.loads(options)
    assert (spec["vocabulary"], spec["vocabulary_top"], spec["vocabulary_only"]) == (["Grandma"], 1, True)
    assert all(set(words) <= {"Grandma"} for words in keywords)  # only the vocabulary's words are kept
    photos(tmp_path / "Bare", ["c.jpg"])  # a library with no keywords anywhere
    empty = cli(
        tmp_path / "empty", "tag", str(tmp_path / "Bare"), *engine(tiny_gguf), "--vocabulary-top", "5"
    )
    assert empty.returncode == 2
    assert "The library has no keywords yet" in empty.stderr


SIDECAR = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:subject><rdf:Bag>'
    "{}</rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>"
)
