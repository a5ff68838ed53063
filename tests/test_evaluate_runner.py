"""The evaluation runner on the real tiny models: one engine host per profile, timed and measured; a profile
that cannot load does not stop the others; progress; cancel keeps the profiles finished."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from PIL import Image

from captioneer.backends.cancel import CancelToken
from captioneer.desktop.core.settings import Settings
from captioneer.desktop.evaluation.profiles import parse_profile
from captioneer.desktop.evaluation.references import parse_references
from captioneer.desktop.evaluation.runner import evaluate_profiles
from captioneer.desktop.evaluation.scores import EvaluationProgress, Profile


def _photos(folder: Path, count: int) -> list[Path]:
    photos = []
    for index in range(count):
        path = folder / f"photo{index}.jpg"
        Image.new("RGB", (96, 64), (40 * index, 120, 200)).save(path)
        photos.append(path)
    return photos


def test_each_profile_is_loaded_timed_measured_and_scored(tmp_path: Path, tiny_gguf) -> None:
    photos = _photos(tmp_path, 2)
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-dc:Subject=sky", "-XMP-dc:Subject=blue",
                    str(photos[0])], check=True)
    references = parse_references(
        {"images": [{"id": 7, "file_name": "photo1.jpg"}],
         "annotations": [{"image_id": 7, "caption": "A blue square."}]},
        "refs.json",
    )
    settings = Settings()
    good = parse_profile(f"{tiny_gguf[0]}@64", settings)
    mmproj = (("mmproj", str(tiny_gguf[1])),)
    broken = Profile("broken@64", "gguf", str(tmp_path / "missing.gguf"), 64, mmproj)
    w96 = Path(tiny_gguf[1]).parents[1] / "tiny-qwen3vl-w96-gguf" / "mmproj.gguf"  # another model's projector
    mismatched = Profile("mismatched@64", "gguf", str(tiny_gguf[0]), 64, (("mmproj", str(w96)),))
    events: list[EvaluationProgress] = []
    scores = evaluate_profiles(photos, [good, broken, mismatched], settings=settings, references=references,
                               progress=events.append)
    first, second, third = scores
    assert first.profile == good and first.error is None and first.photos == 2
    assert first.failed == 0 and first.seconds_per_photo is not None and first.seconds_per_photo > 0
    assert first.load_seconds is not None and first.load_seconds > 0
    assert first.peak_memory_bytes is not None and first.peak_memory_bytes > 10 * 2**20  # a Python process
    assert first.caption_photos == 1 and set(first.caption_metrics) >= {"BLEU-4", "ROUGE-L", "CIDEr"}
    assert "SPICE" in first.caption_metrics or "SPICE" in first.unavailable_metrics
    assert first.keyword_photos == 1 and first.keyword_recall is not None and first.keyword_f1 is not None
    assert second.error is not None and "missing.gguf" in second.error and second.seconds_per_photo is None
    assert third.error is not None and "does not match" in third.error and third.load_seconds is None
    phases = [(e.profile_index, e.phase, e.done) for e in events]
    assert phases[:4] == [(0, "loading", 0), (0, "captioning", 0), (0, "captioning", 1), (0, "scoring", 2)]
    assert phases[4:] == [(1, "loading", 0), (2, "loading", 0)]
    assert all(e.profiles == 3 and e.photos == 2 for e in events)


def test_without_references_or_keywords_there_are_no_quality_scores(tmp_path: Path, tiny_gguf) -> None:
    [score] = evaluate_profiles(_photos(tmp_path, 1), [parse_profile(f"{tiny_gguf[0]}@64", Settings())],
                                settings=Settings())
    assert score.caption_metrics == {} and score.caption_photos == 0 and score.tokenizer is None
    assert score.keyword_photos == 0 and score.keyword_f1 is None and score.keyword_precision is None


@pytest.mark.parametrize("stop_at", [("captioning", 1), ("loading", 0)])
def test_cancel_returns_the_profiles_finished(tmp_path: Path, tiny_gguf, stop_at: tuple[str, int]) -> None:
    photos = _photos(tmp_path, 3)
    profiles = [parse_profile(f"{tiny_gguf[0]}@{tokens}", Settings()) for tokens in (64, 96)]
    cancel = CancelToken()

    def progress(event: EvaluationProgress) -> None:
        if event.profile_index == 1 and (event.phase, event.done) == stop_at:
            cancel.cancel()

    scores = evaluate_profiles(photos, profiles, settings=Settings(), progress=progress, cancel=cancel)
    assert [score.profile for score in scores] == profiles[:1]
    assert scores[0].failed == 0 and scores[0].photos == 3


def test_without_pycocoevalcap_references_are_refused_before_any_model(tmp_path: Path, monkeypatch) -> None:
    import sys

    from captioneer.backends.errors import ConfigurationError

    for name in [name for name in sys.modules if name.startswith("pycocoevalcap")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pycocoevalcap", None)  # as if the `evaluate` extra were not installed
    references = parse_references({"images": [{"id": 1, "file_name": "photo0.jpg"}],
                                   "annotations": [{"image_id": 1, "caption": "x"}]}, "refs.json")
    events: list[EvaluationProgress] = []
    profile = Profile("never@64", "gguf", str(tmp_path / "never.gguf"), 64)
    with pytest.raises(ConfigurationError, match=r"pip install 'captioneer\[evaluate\]'"):
        evaluate_profiles(_photos(tmp_path, 1), [profile], settings=Settings(), references=references,
                          progress=events.append)
    assert events == []
