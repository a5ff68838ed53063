"""The evaluation's table, JSON and CSV (pure functions over scores), and the peak-memory sampler on real
processes."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys

import pytest

from captioneer.desktop.evaluation.memory import PeakMemory, high_water_mark, resident_bytes
from captioneer.desktop.evaluation.report import COLUMNS, Context, cells, report_csv, report_json, table
from captioneer.desktop.evaluation.scores import Profile, ProfileScore

GOOD = ProfileScore(
    profile=Profile("2B Q4_K_M@256", "gguf", "/m/2b.gguf", 256, (("mmproj", "/m/mmproj.gguf"),)),
    photos=10, failed=1, seconds_per_photo=1.234, load_seconds=3.21, peak_memory_bytes=2_500_000_000,
    caption_metrics={"BLEU-4": 0.21234, "METEOR": 0.2, "ROUGE-L": 0.45, "CIDEr": 0.812},
    caption_photos=8, unavailable_metrics={"SPICE": "SPICE needs the Stanford CoreNLP 3.6.0 models"},
    tokenizer="PTBTokenizer (Java)", keyword_precision=0.5, keyword_recall=0.25, keyword_f1=1 / 3,
    keyword_photos=6,
)
SERVER = ProfileScore(profile=Profile("qwen3-vl:4b@512", "ollama", "qwen3-vl:4b", 512), photos=10,
                      seconds_per_photo=2.0, load_seconds=0.1, keyword_photos=6, keyword_recall=0.0,
                      keyword_f1=0.0)
BROKEN = ProfileScore(profile=Profile("8B Q8_0@1024", "gguf", "/m/8b.gguf", 1024), photos=10,
                      error="The model file /m/8b.gguf does not exist.")
CONTEXT = Context(photos=10, reference_file="refs.json", with_references=8, with_keywords=6)


def test_cells_format_every_column_and_mark_what_was_not_measured() -> None:
    assert cells(GOOD) == {
        "Profile": "2B Q4_K_M@256", "BLEU-4": "0.212", "METEOR": "0.200", "ROUGE-L": "0.450",
        "CIDEr": "0.812", "SPICE": "–", "KW-P": "0.500", "KW-R": "0.250", "KW-F1": "0.333",
        "s/photo": "1.23", "load s": "3.2", "peak memory": "2.5 GB", "failed": "1/10",
    }
    assert cells(SERVER)["peak memory"] == "–" and cells(SERVER)["KW-P"] == "–"
    assert cells(BROKEN)["failed"] == "error"


def test_the_table_lines_up_and_its_footnotes_say_what_each_number_is_over() -> None:
    text = table([GOOD, SERVER, BROKEN], CONTEXT)
    lines = text.splitlines()
    assert lines[0].split()[:5] == ["Profile", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"]
    assert len({len(line) for line in lines[:4]}) <= 2  # right-aligned cells: rows as wide as the header
    assert lines[1].split()[0] == "2B" and lines[1].endswith("1/10")
    assert "over the 8 photos with reference captions (2 without); tokenised with PTBTokenizer (Java)" in text
    assert "SPICE: not computed: SPICE needs the Stanford CoreNLP 3.6.0 models." in text
    assert "Keyword scores over the 6 photos that carry keywords of their own" in text
    assert "Peak memory: not visible for server engines" in text
    assert "8B Q8_0@1024: could not run: The model file /m/8b.gguf does not exist." in text
    assert "Interrupted" not in text
    assert "–: not measured (KW-P: no keyword suggested; s/photo: no photo answered)." in text  # KW-P
    assert "not measured" not in table([GOOD], CONTEXT)
    stopped = table([GOOD], Context(photos=10, interrupted=True))
    assert "Interrupted: only the profiles that finished are shown." in stopped
    assert "no reference captions given" in stopped and "none of the photos carries keywords" in stopped


def test_spice_gets_a_column_only_where_it_was_computed() -> None:
    with_spice = ProfileScore(profile=GOOD.profile, caption_metrics={**GOOD.caption_metrics, "SPICE": 0.18})
    header = table([with_spice], CONTEXT).splitlines()[0].split()
    assert header[:6] == ["Profile", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr", "SPICE"]
    assert "SPICE" not in table([GOOD], CONTEXT).splitlines()[0]
    assert "SPICE" not in COLUMNS


def test_json_and_csv_carry_the_raw_numbers() -> None:
    report = report_json([GOOD, BROKEN], CONTEXT)
    assert (report["photos"], report["photos_with_references"], report["photos_with_keywords"]) == (10, 8, 6)
    first, second = report["profiles"]
    assert first["caption_metrics"]["BLEU-4"] == 0.21234 and first["options"] == {"mmproj": "/m/mmproj.gguf"}
    assert first["unavailable_metrics"] == {"SPICE": "SPICE needs the Stanford CoreNLP 3.6.0 models"}
    assert second["error"] == "The model file /m/8b.gguf does not exist."
    assert second["seconds_per_photo"] is None
    rows = list(csv.DictReader(io.StringIO(report_csv([GOOD, BROKEN]))))
    picked = [rows[0][name] for name in ("BLEU-4", "SPICE", "peak_memory_bytes")]
    assert picked == ["0.21234", "", "2500000000"]
    assert rows[1]["error"].startswith("The model file") and rows[1]["CIDEr"] == ""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM is Linux's")
def test_the_high_water_mark_is_at_least_the_resident_memory() -> None:
    now = resident_bytes(os.getpid())
    peak = high_water_mark(os.getpid())
    assert now is not None and peak is not None and peak >= now > 0
    assert high_water_mark(2**22 + 12345) is None and resident_bytes(2**22 + 12345) is None


def test_peak_memory_follows_the_process_even_when_it_is_replaced() -> None:
    # A child that holds ~200 MB, then one that holds little: the peak is the first one's.
    hold = ("import time; b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); "
            "print('ready', flush=True); time.sleep(60)")  # every page touched, so resident
    big = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
    small = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    current = {"pid": big.pid}
    try:
        assert big.stdout is not None and big.stdout.readline().strip() == "ready"
        with PeakMemory(lambda: current["pid"], interval=0.05) as memory:
            memory.sample()
            current["pid"] = small.pid
            memory.sample()
            current["pid"] = None  # between two engine processes
            memory.sample()
        assert memory.peak is not None and memory.peak > 200 * 2**20
    finally:
        big.kill()
        small.kill()
        big.wait()
        small.wait()
    with PeakMemory(lambda: None) as nobody:
        nobody.sample()
    assert nobody.peak is None  # a server engine: nothing to see


def test_failed_photos_say_why_in_the_notes_json_csv_and_the_window() -> None:
    from captioneer.backends.errors import setting, window_text
    from captioneer.desktop.evaluation.report import failure_note
    from captioneer.desktop.ui.compare_table import failed_text

    cut = "Cut-off output after 2 attempts: raise " + setting("max_tokens") + "."
    score = ProfileScore(profile=Profile("2B Q4_K_M@256", "gguf", "/m/2b.gguf", 256), photos=5)
    score.add_failure("/p/a.jpg", "Invalid output after 2 attempts: not JSON.")
    score.add_failure("/p/b.jpg", cut)
    score.add_failure("/p/c.jpg", cut)
    assert score.failed == 3 and score.commonest_failure() == (cut, 2)
    assert failure_note(score) == ("2B Q4_K_M@256: 3 of 5 photos failed (the commonest reason, 2 of them): "
                                   "Cut-off output after 2 attempts: raise --max-tokens.")
    assert failure_note(score, window_text).endswith("raise “Max answer length”.")
    assert failed_text(score) == "3 of 5: Cut-off output after 2 attempts: raise “Max answer length”."
    assert failure_note(score) in table([score], CONTEXT)
    report = report_json([score], CONTEXT)["profiles"][0]
    invalid = "Invalid output after 2 attempts: not JSON."
    assert report["failures"][0] == {"photo": "/p/a.jpg", "reason": invalid}
    assert report["failures"][1]["reason"].endswith("raise --max-tokens.")
    row = next(csv.DictReader(io.StringIO(report_csv([score]))))
    assert row["failure_reason"] == "Cut-off output after 2 attempts: raise --max-tokens."
    one = ProfileScore(profile=Profile("x@64", "gguf", "/m/x.gguf", 64), photos=2)
    one.add_failure("/p/a.jpg", "Invalid output after 2 attempts: not JSON.")
    assert failure_note(one) == "x@64: 1 of 2 photos failed: Invalid output after 2 attempts: not JSON."
    assert failed_text(ProfileScore(profile=one.profile, photos=2)) == "0 of 2"
    single = table([one], Context(photos=2, reference_file="r.json", with_references=1, with_keywords=1))
    assert "Caption metrics over the 1 photo with reference captions (1 without)" in single
    assert "Keyword scores over the 1 photo that carries keywords of its own" in single
