"""Caption metrics: published values reproduced through our metric path, our numbers equal to pycocoevalcap's
own scorers called directly on a fixed set, and the documented fallback without Java."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from captioneer.desktop.evaluation import caption_metrics
from captioneer.desktop.evaluation.caption_metrics import (
    PTB,
    PYTHON,
    java_problem,
    ptb_tokenize,
    python_tokenize,
    score_captions,
)

needs_java = pytest.mark.skipif(java_problem() is not None, reason="Java is not installed here")

# A fixed set: 5 photos with 2 to 5 reference captions each, and one candidate caption per photo.
REFERENCES = {
    "beach.jpg": [
        "A dog runs along the beach at sunset.",
        "A brown dog running on the sand near the sea.",
        "Dog playing on a beach in the evening.",
    ],
    "kitchen.jpg": [
        "A kitchen with white cabinets and a wooden table.",
        "A bright kitchen, table and chairs.",
    ],
    "street.jpg": [
        "People crossing a busy city street.",
        "Pedestrians walk across a crosswalk downtown.",
        "A crowd crossing the road between tall buildings.",
        "Many people on a zebra crossing in a city.",
        "City street with people and cars.",
    ],
    "cat.jpg": ["A cat sleeping on a sofa.", "A grey cat curled up asleep on the couch.",
                "The cat's nap on a sofa."],
    "mountain.jpg": ["Snow-covered mountains under a blue sky.", "A mountain range with snow on the peaks."],
}
CANDIDATES = {
    "beach.jpg": "A dog running on the beach at sunset.",
    "kitchen.jpg": "A white kitchen with a table.",
    "street.jpg": "People walking across a city street.",
    "cat.jpg": "A cat asleep on a couch.",
    "mountain.jpg": "",  # a photo that got no answer scores as an empty caption
}


@needs_java
def test_bleu_reproduces_papinenis_modified_unigram_precision() -> None:
    """Papineni et al. 2002, §2.1, Example 2: candidate "the the the the the the the" against "The cat is on
    the mat." and "There is a cat on the mat." has modified unigram precision 2/7. The candidate is longer
    than both references, so there is no brevity penalty and BLEU-1 is that precision."""
    metrics = score_captions(
        {"mat": ["The cat is on the mat.", "There is a cat on the mat."]},
        {"mat": "the the the the the the the"},
    )
    assert metrics.bleu[0] == pytest.approx(2 / 7, abs=1e-8)


@needs_java
@pytest.mark.parametrize(("candidate", "published"), [("police kill the gunman", 3 / 4),
                                                      ("the gunman kill police", 2 / 4)])
def test_rouge_l_reproduces_lins_example(candidate: str, published: float) -> None:
    """Lin 2004, §3.1: against the reference "police killed the gunman", "police kill the gunman" has
    ROUGE-L 3/4 and "the gunman kill police" 2/4 (their longest common subsequences are 3 and 2 of 4 words;
    precision equals recall, so the F-measure is that value whatever β)."""
    metrics = score_captions({"s1": ["police killed the gunman"]}, {"s2": "", "s1": candidate})
    assert metrics.scores["ROUGE-L"] == pytest.approx(published)


def _pycocoevalcap_directly() -> dict[str, float]:
    """The COCO evaluation's own recipe: PTBTokenizer, then each scorer, called as its example does."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    ids = {name: index for index, name in enumerate(REFERENCES)}
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({ids[n]: [{"caption": c} for c in refs] for n, refs in REFERENCES.items()})
    res = tokenizer.tokenize({ids[n]: [{"caption": CANDIDATES[n]}] for n in REFERENCES})
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    meteor, _ = Meteor().compute_score(gts, res)
    return {
        "BLEU-4": bleu[3],
        "METEOR": meteor,
        "ROUGE-L": Rouge().compute_score(gts, res)[0],
        "CIDEr": Cider().compute_score(gts, res)[0],
    }


@needs_java
def test_our_scores_equal_pycocoevalcaps_own_on_a_fixed_set() -> None:
    ours = score_captions(REFERENCES, CANDIDATES)
    theirs = _pycocoevalcap_directly()
    assert ours.tokenizer == PTB and ours.photos == 5
    assert set(ours.scores) - {"SPICE"} == set(theirs)
    for name, value in theirs.items():
        assert ours.scores[name] == pytest.approx(value, abs=1e-12), name
    assert 0 < ours.scores["BLEU-4"] < 1 and ours.scores["CIDEr"] > 0  # a real, non-trivial set
    # CIDEr's IDF is over the whole set: scoring a subset gives another value, not the same mean.
    subset = {name: REFERENCES[name] for name in ("beach.jpg", "kitchen.jpg")}
    assert score_captions(subset, CANDIDATES).scores["CIDEr"] != pytest.approx(ours.scores["CIDEr"])


@needs_java
def test_the_python_tokenisation_equals_ptb_on_plain_sentences() -> None:
    sentences = [text for texts in REFERENCES.values() for text in texts] + [
        "Two children don't like the dog's toys.",
        "A black-and-white photo, taken at night!",
    ]
    assert [python_tokenize(text) for text in sentences] == ptb_tokenize(sentences)


@needs_java
def test_line_breaks_inside_a_caption_do_not_shift_the_others() -> None:
    texts = ["A dog\ron a beach.", "A cat\u2028on a sofa.", "Two\r\nboats.", "", "A red car."]
    assert ptb_tokenize(texts) == ["a dog on a beach", "a cat on a sofa", "two boats", "", "a red car"]


def test_without_java_metrics_use_python_tokens_and_say_what_is_missing(monkeypatch) -> None:
    monkeypatch.setattr(caption_metrics.shutil, "which", lambda _name: None)
    caption_metrics.java_problem.cache_clear()
    try:
        metrics = score_captions(REFERENCES, CANDIDATES)
    finally:
        caption_metrics.java_problem.cache_clear()
    assert metrics.tokenizer == PYTHON
    assert set(metrics.scores) == {"BLEU-4", "ROUGE-L", "CIDEr"}
    assert set(metrics.unavailable) == {"METEOR", "SPICE"}
    assert all("Java is not installed" in reason for reason in metrics.unavailable.values())
    if java_problem() is None:  # the same numbers as with Java on these plain sentences
        with_java = score_captions(REFERENCES, CANDIDATES)
        for name, value in metrics.scores.items():
            assert value == pytest.approx(with_java.scores[name], abs=1e-12)


def test_spice_is_unavailable_without_its_stanford_models_and_nothing_is_downloaded(tmp_path: Path) -> None:
    lib = Path(caption_metrics._package_dir("pycocoevalcap.spice.spice")) / "lib"
    before = sorted(p.name for p in lib.iterdir())
    metrics = score_captions({"a": ["a red square"]}, {"a": "a red square"}, java=False)
    assert "SPICE" in metrics.unavailable and "SPICE" not in metrics.scores
    if java_problem() is None and "stanford-corenlp-3.6.0-models.jar" not in before:
        reason = caption_metrics.spice_problem()
        assert reason is not None and "Stanford CoreNLP 3.6.0 models" in reason
    assert sorted(p.name for p in lib.iterdir()) == before


def test_no_references_no_scores() -> None:
    metrics = score_captions({}, {"a": "a caption"})
    assert (metrics.scores, metrics.photos) == ({}, 0)
    assert not math.isnan(score_captions({"a": ["x y"]}, {}, java=False).scores["BLEU-4"])
