"""Caption metrics against reference captions, computed by ``pycocoevalcap``'s own scorers: BLEU-4 (from
``Bleu(4)``), METEOR, ROUGE-L, CIDEr, and SPICE where its Stanford models are installed (never downloaded).

Captions are tokenised as the COCO evaluation does: Stanford PTBTokenizer (Java), lower-cased, punctuation
dropped. Without Java a Python tokenisation stands in (:func:`python_tokenize`: lower-case; words of letters
and digits, hyphenated words whole, ``n't``/``'s`` split off as PTB does; punctuation dropped), and METEOR and
SPICE, which are Java programs, are reported unavailable with the reason.

CIDEr weighs n-grams by their document frequency over all the images scored together, so a profile's CIDEr
is over all its photos, not a mean of per-photo values; the other metrics are corpus BLEU and means over
photos, as pycocoevalcap computes them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TypeVar

from captioneer.backends.errors import ConfigurationError

K = TypeVar("K")

METRICS = ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr", "SPICE")
PTB = "PTBTokenizer (Java)"
PYTHON = "Python tokenisation (no Java)"
_JAVA_TIMEOUT = 600


@dataclass
class CaptionMetrics:
    """Scores over a set of photos.

    Attributes:
        scores: metric name → score, only for the metrics that could be computed.
        unavailable: metric name → why it was not computed, for people.
        tokenizer: how the captions were tokenised (:data:`PTB` or :data:`PYTHON`).
        photos: how many photos were scored.
        bleu: BLEU-1 to BLEU-4 (``scores`` keeps BLEU-4, the one reported).
    """

    scores: dict[str, float] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    tokenizer: str = PTB
    photos: int = 0
    bleu: tuple[float, ...] = ()


def _package_dir(module: str) -> Path:
    import importlib

    return Path(importlib.import_module(module).__file__ or "").parent


def require_metrics() -> None:
    """Check that the caption metrics can be computed at all, before any model runs.

    Raises:
        ConfigurationError: pycocoevalcap (the ``evaluate`` extra) is not installed.
    """
    try:
        import pycocoevalcap.bleu.bleu  # noqa: F401  (the package has no __init__ to import)
    except ImportError:
        raise ConfigurationError(
            "Caption metrics need pycocoevalcap, which is not installed: pip install 'captioneer[evaluate]', "
            "or leave out --references."
        ) from None


@cache
def java_problem() -> str | None:
    """Why Java cannot run here, or None when it can (``java -version`` succeeds)."""
    java = shutil.which("java")
    if java is None:
        return "Java is not installed (install a Java runtime, 8 or newer)"
    try:
        done = subprocess.run([java, "-version"], capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"Java does not start ({exc})"
    return None if done.returncode == 0 else "Java does not start (`java -version` fails)"


def spice_problem() -> str | None:
    """Why SPICE cannot run here, or None when it can. Its Stanford CoreNLP models are a separate download
    of several hundred MB that Captioneer never makes itself."""
    if java_problem():
        return f"SPICE needs Java: {java_problem()}"
    lib = _package_dir("pycocoevalcap.spice.spice") / "lib"
    jars = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")
    if not all((lib / jar).is_file() for jar in jars):
        return f"SPICE needs the Stanford CoreNLP 3.6.0 models in {lib} (not installed)"
    return None


def ptb_tokenize(texts: Sequence[str]) -> list[str]:
    """Tokenise as ``pycocoevalcap.tokenizer.ptbtokenizer.PTBTokenizer`` does (same jar, options and
    punctuation list), without writing into the installed package (read-only in an app bundle) or printing
    on the terminal.

    Raises:
        OSError: the tokenizer did not run or answered a different number of lines.
    """
    from pycocoevalcap.tokenizer import ptbtokenizer

    jar = _package_dir("pycocoevalcap.tokenizer.ptbtokenizer") / ptbtokenizer.STANFORD_CORENLP_3_4_1_JAR
    with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as handle:
        # One caption a line: any line break inside one (CR, U+2028…) would shift every caption after it.
        handle.write("\n".join(" ".join(text.split()) for text in texts).encode("utf-8"))
    try:
        done = subprocess.run(
            # UTF-8 out whatever the system's default charset (Windows: cp1252), so no word is mangled.
            ["java", "-Dfile.encoding=UTF-8", "-Dstdout.encoding=UTF-8", "-cp", str(jar),
             "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines", "-lowerCase", handle.name],
            capture_output=True, timeout=_JAVA_TIMEOUT, check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise OSError(f"the PTB tokenizer took over {_JAVA_TIMEOUT} s") from exc
    finally:
        os.unlink(handle.name)
    lines = done.stdout.decode("utf-8", errors="replace").split("\n")
    if done.returncode != 0 or len(lines) < len(texts):
        raise OSError(f"the PTB tokenizer failed: {done.stderr.decode(errors='replace').strip()[-200:]}")
    drop = set(ptbtokenizer.PUNCTUATIONS)
    kept = ([word for word in line.rstrip().split(" ") if word not in drop] for line in lines[: len(texts)])
    return [" ".join(words) for words in kept]


_WORD = re.compile(r"[^\W_]+(?:-[^\W_]+)*")
_CLITIC = re.compile(r"(n't|'s|'re|'ve|'ll|'d|'m)\b")


def python_tokenize(text: str) -> str:
    """The tokenisation used without Java: lower-case; clitics split off as PTB does (``dog's`` →
    ``dog 's``, ``don't`` → ``do n't``); words of letters and digits, hyphenated words whole; punctuation
    dropped. Equal to PTB's on plain sentences; it may differ on abbreviations, numbers and symbols."""
    text = text.lower().replace("’", "'")
    out: list[str] = []
    for chunk in text.split():
        pieces = _CLITIC.split(chunk)
        for piece in pieces:
            if _CLITIC.fullmatch(piece):
                out.append(piece)
            else:
                out.extend(_WORD.findall(piece))
    return " ".join(out)


def _tokenized(
    references: Sequence[Sequence[str]], candidates: Sequence[str], java: bool
) -> tuple[dict[int, list[str]], dict[int, list[str]], str, str | None]:
    """Tokenised ``gts`` and ``res`` dicts keyed 0…n-1, the tokeniser used and why PTB was not."""
    why_not = java_problem() if java else "Java use was turned off"
    if why_not is None:
        flat = [text for texts in references for text in texts] + list(candidates)
        try:
            tokens = ptb_tokenize(flat)
        except OSError as exc:
            why_not = str(exc)
        else:
            gts: dict[int, list[str]] = {}
            position = 0
            for index, texts in enumerate(references):
                gts[index] = tokens[position: position + len(texts)]
                position += len(texts)
            res = {index: [tokens[position + index]] for index in range(len(candidates))}
            return gts, res, PTB, None
    gts = {index: [python_tokenize(text) for text in texts] for index, texts in enumerate(references)}
    res = {index: [python_tokenize(text)] for index, text in enumerate(candidates)}
    return gts, res, PYTHON, why_not


def _meteor(gts: dict[int, list[str]], res: dict[int, list[str]]) -> float:
    """pycocoevalcap's METEOR; its Java process is stopped whatever happens."""
    from pycocoevalcap.meteor.meteor import Meteor

    meteor = Meteor()
    try:
        score, _ = meteor.compute_score(gts, res)
    except (OSError, ValueError) as exc:
        meteor.meteor_p.kill()
        if meteor.lock.locked():
            meteor.lock.release()
        raise OSError(f"METEOR failed ({exc})") from exc
    finally:
        meteor.meteor_p.stdin.close()
        meteor.meteor_p.kill()
        meteor.meteor_p.wait()
        meteor.meteor_p.stderr.close()
        meteor.meteor_p.stdout.close()
    return float(score)


def score_captions(
    references: Mapping[K, Sequence[str]], candidates: Mapping[K, str], *, java: bool = True
) -> CaptionMetrics:
    """Score ``candidates`` (one caption per photo; a photo without one scores as an empty caption) against
    ``references`` (one or more per photo), over the photos that have references.

    Args:
        references: photo → its reference captions.
        candidates: photo → the caption to score.
        java: use Java (PTBTokenizer, METEOR, SPICE) when it is installed; False forces the Python path.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    keys = [key for key, texts in references.items() if texts]
    result = CaptionMetrics(photos=len(keys))
    if not keys:
        return result
    gts, res, result.tokenizer, no_ptb = _tokenized(
        [list(references[key]) for key in keys], [candidates.get(key) or "" for key in keys], java
    )
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    result.bleu = tuple(float(value) for value in bleu)
    result.scores["BLEU-4"] = result.bleu[3]
    if no_ptb is not None:
        result.unavailable["METEOR"] = f"METEOR needs Java: {no_ptb}"
    else:
        try:
            result.scores["METEOR"] = _meteor(gts, res)
        except OSError as exc:
            result.unavailable["METEOR"] = str(exc)
    result.scores["ROUGE-L"] = float(Rouge().compute_score(gts, res)[0])
    result.scores["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    spice = spice_problem() if no_ptb is None else f"SPICE needs Java: {no_ptb}"
    if spice is None:
        try:
            result.scores["SPICE"] = _spice(gts, res)
        except (OSError, ValueError, subprocess.CalledProcessError) as exc:
            result.unavailable["SPICE"] = f"SPICE failed ({exc})"
    else:
        result.unavailable["SPICE"] = spice
    return result


def _spice(gts: dict[int, list[str]], res: dict[int, list[str]]) -> float:
    from pycocoevalcap.spice.spice import Spice

    return float(Spice().compute_score(gts, res)[0])
