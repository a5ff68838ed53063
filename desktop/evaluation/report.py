"""An evaluation's results as people and programs read them: the table with its footnotes, one JSON object,
CSV rows. Pure functions over :class:`ProfileScore`; the command line prints them, the window may show the
same cells."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from captioneer.backends.errors import cli_text
from captioneer.backends.hub import size_text
from captioneer.desktop.evaluation.scores import ProfileScore

CAPTION_COLUMNS = ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr")
COLUMNS = ("Profile", *CAPTION_COLUMNS, "KW-P", "KW-R", "KW-F1", "s/photo", "load s", "peak memory", "failed")
MISSING = "–"


@dataclass
class Context:
    """What was measured on, for the footnotes and the JSON.

    Attributes:
        photos: photos evaluated.
        reference_file: the reference captions' file (None: none given).
        with_references: photos that had reference captions.
        with_keywords: photos that carry keywords of their own.
        interrupted: the user stopped the evaluation; only the profiles finished are reported.
        notes: anything else people should know (photos skipped, metadata that could not be read).
    """

    photos: int = 0
    reference_file: str | None = None
    with_references: int = 0
    with_keywords: int = 0
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)


def _photos(count: int) -> str:
    return f"{count} photo{'' if count == 1 else 's'}"


def _number(value: float | None, digits: int = 3) -> str:
    return MISSING if value is None else f"{value:.{digits}f}"


def columns(scores: Sequence[ProfileScore]) -> tuple[str, ...]:
    """The table's columns: :data:`COLUMNS`, and SPICE after CIDEr where a profile has it."""
    if any("SPICE" in score.caption_metrics for score in scores):
        at = COLUMNS.index("CIDEr") + 1
        return (*COLUMNS[:at], "SPICE", *COLUMNS[at:])
    return COLUMNS


def cells(score: ProfileScore) -> dict[str, str]:
    """One profile's row as text, by column name."""
    row = {"Profile": score.profile.label}
    for name in (*CAPTION_COLUMNS, "SPICE"):
        row[name] = _number(score.caption_metrics.get(name))
    row["KW-P"] = _number(score.keyword_precision)
    row["KW-R"] = _number(score.keyword_recall)
    row["KW-F1"] = _number(score.keyword_f1)
    row["s/photo"] = _number(score.seconds_per_photo, 2)
    row["load s"] = _number(score.load_seconds, 1)
    row["peak memory"] = MISSING if score.peak_memory_bytes is None else size_text(score.peak_memory_bytes)
    row["failed"] = "error" if score.error is not None else f"{score.failed}/{score.photos}"
    return row


def footnotes(scores: Sequence[ProfileScore], context: Context) -> list[str]:
    """What the table's numbers are over, what could not be measured and why, and the profiles that failed."""
    lines: list[str] = []
    without = context.photos - context.with_references
    if context.reference_file is None:
        lines.append("Caption metrics: no reference captions given (--references FILE).")
    else:
        tokenizers = sorted({score.tokenizer for score in scores if score.tokenizer})
        how = f"; tokenised with {', '.join(tokenizers)}" if tokenizers else ""
        lines.append(
            f"Caption metrics over the {_photos(context.with_references)} with reference captions ({without} "
            f"without){how}; a failed photo counts as an empty caption; CIDEr is over the whole set."
        )
    unavailable: dict[str, str] = {}
    for score in scores:
        unavailable.update(score.unavailable_metrics)
    lines.extend(f"{name}: not computed: {reason}." for name, reason in sorted(unavailable.items()))
    if context.with_keywords:
        one = context.with_keywords == 1
        lines.append(
            f"Keyword scores over the {_photos(context.with_keywords)} that "
            f"{'carries keywords of its' if one else 'carry keywords of their'} own "
            "(micro-averaged; a failed photo counts as no keywords)."
        )
    else:
        lines.append("Keyword scores: none of the photos carries keywords of its own.")
    if any(s.peak_memory_bytes is None and s.error is None for s in scores):
        lines.append("Peak memory: not visible for server engines (Ollama, OpenAI-compatible).")
    lines.append("s/photo excludes the model load; peak memory is the engine process's resident memory.")
    shown = columns(scores)
    if any(cells(score)[name] == MISSING for score in scores if score.error is None for name in shown):
        lines.append(f"{MISSING}: not measured (KW-P: no keyword suggested; s/photo: no photo answered).")
    lines.extend(f"{s.profile.label}: could not run: {cli_text(s.error)}" for s in scores if s.error)
    lines.extend(failure_note(s) for s in scores if s.failures)
    if context.interrupted:
        lines.append("Interrupted: only the profiles that finished are shown.")
    lines.extend(context.notes)
    return lines


def failure_note(score: ProfileScore, render: Callable[[str], str] = cli_text) -> str:
    """Why a profile's photos failed: how many, and the commonest reason (``render`` is the front end's)."""
    reason, count = score.commonest_failure() or ("", 0)
    photos = f"{score.failed} of {_photos(score.photos)} failed"
    commonest = "" if count == score.failed else f" (the commonest reason, {count} of them)"
    return f"{score.profile.label}: {photos}{commonest}: {render(reason)}"


def table(scores: Sequence[ProfileScore], context: Context) -> str:
    """The plain-text table, one profile a line, with its footnotes."""
    names = columns(scores)
    rows = [dict(zip(names, names, strict=True))] + [cells(score) for score in scores]
    widths = {name: max(len(row[name]) for row in rows) for name in names}
    lines = []
    for row in rows:
        text = [row[name].ljust(widths[name]) if name == "Profile" else row[name].rjust(widths[name])
                for name in names]
        lines.append("  ".join(text).rstrip())
    return "\n".join([*lines, "", *footnotes(scores, context)])


def profile_json(score: ProfileScore) -> dict[str, Any]:
    """One profile's results as plain JSON values (numbers unrounded; None for what was not measured)."""
    profile = score.profile
    return {
        "profile": profile.label,
        "engine": profile.engine,
        "model": profile.model,
        "image_tokens": profile.image_tokens,
        "options": {key: value for key, value in profile.options},
        "photos": score.photos,
        "failed": score.failed,
        "seconds_per_photo": score.seconds_per_photo,
        "load_seconds": score.load_seconds,
        "peak_memory_bytes": score.peak_memory_bytes,
        "caption_metrics": dict(score.caption_metrics),
        "caption_photos": score.caption_photos,
        "unavailable_metrics": dict(score.unavailable_metrics),
        "tokenizer": score.tokenizer,
        "keyword_precision": score.keyword_precision,
        "keyword_recall": score.keyword_recall,
        "keyword_f1": score.keyword_f1,
        "keyword_photos": score.keyword_photos,
        "error": cli_text(score.error) if score.error is not None else None,
        "failures": [{"photo": photo, "reason": cli_text(reason)} for photo, reason in score.failures],
    }


def report_json(scores: Sequence[ProfileScore], context: Context) -> dict[str, Any]:
    """The whole evaluation as one JSON object."""
    return {
        "photos": context.photos,
        "references": context.reference_file,
        "photos_with_references": context.with_references,
        "photos_with_keywords": context.with_keywords,
        "interrupted": context.interrupted,
        "profiles": [profile_json(score) for score in scores],
        "notes": footnotes(scores, context),
    }


CSV_FIELDS = (
    "profile", "engine", "model", "image_tokens", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr", "SPICE",
    "keyword_precision", "keyword_recall", "keyword_f1", "seconds_per_photo", "load_seconds",
    "peak_memory_bytes", "photos", "failed", "caption_photos", "keyword_photos", "error", "failure_reason",
)


def report_csv(scores: Sequence[ProfileScore]) -> str:
    """One CSV row per profile with the raw numbers (empty where not measured), after a header row."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for score in scores:
        row = profile_json(score)
        row.update(score.caption_metrics)
        commonest = score.commonest_failure()
        row["failure_reason"] = cli_text(commonest[0]) if commonest else None
        writer.writerow({name: "" if row.get(name) is None else row.get(name) for name in CSV_FIELDS})
    return out.getvalue()
