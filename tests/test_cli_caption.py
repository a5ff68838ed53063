"""`captioneer caption` end to end with the gguf engine on the tiny Qwen3-VL pair: streaming, --json,
pixel budget on a 12-megapixel photo, a bad file among good ones, and configuration errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from captioneer.desktop.cli import main

ROOT = Path(__file__).resolve().parent.parent


def photo(path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> Path:
    image = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.ellipse((w // 4, h // 4, w * 3 // 4, h * 3 // 4), fill=(255 - colour[0], 200, colour[2] // 2))
    image.save(path, quality=90)
    return path


def captioneer(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "captioneer.desktop.cli", *map(str, args)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )


def engine_args(tiny_gguf: tuple[Path, Path]) -> list[str]:
    model, mmproj = tiny_gguf
    return ["--engine", "gguf", "--model", str(model), "--mmproj", str(mmproj), "--threads", "2",
            "--temperature", "0", "--max-tokens", "20"]


def cut_off(path: Path) -> str:
    """The warning for a caption cut off at engine_args' --max-tokens (the tiny model never stops)."""
    return (
        f"captioneer: {path}: The answer was cut off at 20 tokens; raise the maximum answer length "
        "(--max-tokens).\n"
    )


class ChunkRecorder(io.StringIO):
    """Stands in for the terminal: remembers every write separately."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_caption_streams_text(
    tiny_gguf: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = photo(tmp_path / "beach.jpg", (800, 600), (30, 120, 220))
    recorder = ChunkRecorder()
    monkeypatch.setattr(sys, "stdout", recorder)
    assert main(["caption", str(image), *engine_args(tiny_gguf)]) == 0
    pieces = [text for text in recorder.writes if text.strip()]
    assert len(pieces) >= 5, recorder.writes
    streamed = "".join(recorder.writes).strip()
    # The same command in a fresh process prints the same greedy caption.
    done = captioneer("caption", image, *engine_args(tiny_gguf))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == streamed
    assert done.stderr == cut_off(image)


def test_json_output(tiny_gguf: tuple[Path, Path], tmp_path: Path) -> None:
    images = [
        photo(tmp_path / "a.jpg", (640, 480), (200, 30, 30)),
        photo(tmp_path / "b.png", (480, 640), (20, 200, 90)),
    ]
    done = captioneer("caption", *images, "--json", *engine_args(tiny_gguf))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["path"] for line in lines] == [str(image) for image in images]
    for line in lines:
        assert line["ok"] is True
        assert isinstance(line["text"], str) and line["text"]
        assert line["seconds"] > 0
        assert line["image_tokens"] == 300
        assert line["engine"] == "gguf" and line["quant"] == "F16"
        assert "cut off at 20 tokens" in line["warning"]


def test_a_12_megapixel_photo_stays_inside_the_pixel_budget(
    tiny_gguf: tuple[Path, Path], tmp_path: Path
) -> None:
    big = photo(tmp_path / "camera.jpg", (4000, 3000), (120, 90, 60))
    done = captioneer("caption", big, "--json", *engine_args(tiny_gguf))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] is True
    assert 900 <= result["image_tokens"] <= 1024


def test_a_bad_file_among_good_ones(tiny_gguf: tuple[Path, Path], tmp_path: Path) -> None:
    good = photo(tmp_path / "good.jpg", (640, 480), (200, 30, 30))
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this JPEG was cut short")
    other = photo(tmp_path / "other.png", (320, 320), (10, 10, 200))
    done = captioneer("caption", good, bad, other, *engine_args(tiny_gguf))
    assert done.returncode == 1
    warned, failed, warned_too = done.stderr.splitlines(keepends=True)
    assert warned == cut_off(good) and warned_too == cut_off(other)
    assert failed.startswith(f"captioneer: {bad}: ")
    assert "Traceback" not in done.stderr
    assert f"==> {good} <==" in done.stdout and f"==> {other} <==" in done.stdout
    captions = [block.split("\n", 1)[1].strip() for block in done.stdout.split("==> ")[1:]]
    assert captions[0] and captions[2] and not captions[1]

    as_json = captioneer("caption", good, bad, other, "--json", *engine_args(tiny_gguf))
    assert as_json.returncode == 1
    assert [json.loads(line)["ok"] for line in as_json.stdout.splitlines()] == [True, False, True]


def test_missing_mmproj_exits_2_with_one_clear_line(tiny_gguf: tuple[Path, Path], tmp_path: Path) -> None:
    image = photo(tmp_path / "a.jpg", (320, 240), (1, 2, 3))
    done = captioneer("caption", image, "--engine", "gguf", "--model", tiny_gguf[0])
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("captioneer: No vision projector given for model.gguf")
    assert "--mmproj" in done.stderr


@pytest.mark.parametrize("damage", ["truncated", "swapped"])
def test_bad_model_files_exit_2(tiny_gguf: tuple[Path, Path], tmp_path: Path, damage: str) -> None:
    image = photo(tmp_path / "a.jpg", (320, 240), (1, 2, 3))
    model, mmproj = tiny_gguf
    if damage == "truncated":
        model = tmp_path / "model.gguf"
        model.write_bytes(tiny_gguf[0].read_bytes()[:-100])
    else:
        model, mmproj = mmproj, model
    done = captioneer("caption", image, "--engine", "gguf", "--model", model, "--mmproj", mmproj)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert ("truncated" if damage == "truncated" else "is a vision projector") in done.stderr


def test_in_process_and_engine_host_give_the_same_caption(
    tiny_gguf: tuple[Path, Path], tmp_path: Path
) -> None:
    image = photo(tmp_path / "a.jpg", (640, 480), (90, 160, 30))
    hosted = captioneer("caption", image, "--json", *engine_args(tiny_gguf))
    direct = captioneer("caption", image, "--json", "--in-process", *engine_args(tiny_gguf))
    assert hosted.returncode == direct.returncode == 0, hosted.stderr + direct.stderr
    assert direct.stderr == ""
    assert json.loads(hosted.stdout)["text"] == json.loads(direct.stdout)["text"]
