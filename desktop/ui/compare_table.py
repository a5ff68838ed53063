"""What Compare Models decides without Qt: the photos of a folder with the keywords they carry, the profiles a
grid of checked models × image details makes, the table's columns and cells, the chart's bars and scale, the
progress line, and the settings a chosen profile becomes."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from captioneer.backends.base import ProgressCallback
from captioneer.backends.cancel import CancelToken
from captioneer.backends.errors import window_text
from captioneer.backends.hub import size_text
from captioneer.desktop.core.settings import Settings
from captioneer.desktop.evaluation.photos import collect_photos, read_keyword_truth
from captioneer.desktop.evaluation.references import References
from captioneer.desktop.evaluation.scores import EvaluationProgress, Profile, ProfileScore
from captioneer.desktop.ui.score_chart_view import Bar

CAPTION_METRICS = ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr", "SPICE")
KEYWORD_METRICS = {"Keyword F1": "keyword_f1", "Keyword precision": "keyword_precision",
                   "Keyword recall": "keyword_recall"}
NO_VALUE = "—"

# ------------------------------------------------------------------------------------------ decisions


def detail_label(profile: Profile, image_tokens: int) -> str:
    """``2B Q4_K_M@256`` from a profile's label and an image detail: the label's own ``@…`` is replaced."""
    return f"{profile.label.rsplit('@', 1)[0]}@{image_tokens}"


def profile_grid(models: Sequence[Profile], details: Sequence[int]) -> list[Profile]:
    """Every checked model at every checked image detail, model by model, least detail first."""
    return [
        dataclasses.replace(model, image_tokens=tokens, label=detail_label(model, tokens))
        for model in models
        for tokens in sorted(set(details))
    ]


def in_use(profile: Profile, settings: Settings) -> bool:
    """Whether ``profile`` runs the model the settings use (any image detail)."""
    return profile.engine == settings.engine and bool(settings.model) and profile.model == settings.model


def settings_for_profile(settings: Settings, profile: Profile) -> Settings:
    """The settings that caption with ``profile``: its engine, model, projector, precision, image detail."""
    options = dict(profile.options)
    mmproj, quant = options.get("mmproj"), options.get("quant")
    return settings.model_copy(update={
        "engine": profile.engine,
        "model": profile.model,
        "mmproj": str(mmproj) if mmproj else None,
        "quant": str(quant) if quant else None,
        "image_tokens": profile.image_tokens,
    })


def error_text(score: ProfileScore) -> str:
    """Why the profile could not run, in the window's words ("" when it ran)."""
    return window_text(score.error) if score.error is not None else ""


def failed_text(score: ProfileScore) -> str:
    """``0 of 20``, or ``3 of 20: <the commonest reason>`` in the window's words."""
    count = f"{score.failed} of {score.photos}"
    commonest = score.commonest_failure()
    return f"{count}: {window_text(commonest[0])}" if commonest else count


def metrics_note(scores: Sequence[ProfileScore]) -> str:
    """Under the table: the caption metrics that could not be computed and why, and how captions were
    tokenised, so a missing column is never a mystery."""
    unavailable: dict[str, str] = {}
    tokenizers: list[str] = []
    for score in scores:
        unavailable.update(score.unavailable_metrics)
        if score.tokenizer and score.tokenizer not in tokenizers:
            tokenizers.append(score.tokenizer)
    parts = [f"{name} not computed: {reason}" for name, reason in unavailable.items()]
    if tokenizers:
        parts.append(f"Captions tokenised with {', '.join(tokenizers)}.")
    return " ".join(part if part.endswith(".") else part + "." for part in parts)


def _label_key(profile: Profile) -> str:
    """Sorts profiles by name, then by image detail as a number (``@256`` before ``@1024``)."""
    return f"{profile.label.rsplit('@', 1)[0]}@{profile.image_tokens:09d}"


def _number(value: float | None, digits: int = 3) -> tuple[str, float | None]:
    return (NO_VALUE, None) if value is None else (f"{value:.{digits}f}", value)


def table_columns(scores: Sequence[ProfileScore]) -> list[str]:
    """Profile, the caption metrics any profile has, the keyword scores, speed, memory, failures."""
    metrics = [name for name in CAPTION_METRICS if any(name in s.caption_metrics for s in scores)]
    return ["Profile", *metrics, "KW-P", "KW-R", "KW-F1", "s/photo", "Load s", "Peak memory", "Failed"]


def table_row(score: ProfileScore, columns: Sequence[str]) -> list[tuple[str, float | str | None]]:
    """One profile's cells as (text shown, sort key). A profile that could not run has no scores: the cell
    after its name says why (the window spans it over the rest), and it sorts last in every column."""
    if score.error is not None:
        blank: tuple[str, float | str | None] = ("", None)
        return [(score.profile.label, _label_key(score.profile)), (error_text(score), None),
                *[blank] * (len(columns) - 2)]
    cells: dict[str, tuple[str, float | str | None]] = {
        "Profile": (score.profile.label, _label_key(score.profile)),
        "KW-P": _number(score.keyword_precision),
        "KW-R": _number(score.keyword_recall),
        "KW-F1": _number(score.keyword_f1),
        "s/photo": _number(score.seconds_per_photo, 2),
        "Load s": _number(score.load_seconds, 1),
        "Peak memory": (size_text(score.peak_memory_bytes), float(score.peak_memory_bytes))
        if score.peak_memory_bytes else (NO_VALUE, None),
        "Failed": (failed_text(score), float(score.failed)),
    }
    for name in CAPTION_METRICS:
        cells[name] = _number(score.caption_metrics.get(name))
    return [cells[column] for column in columns]


def chart_metrics(scores: Sequence[ProfileScore]) -> list[str]:
    """What the chart can show, the default first: keyword F1 when photos carry keywords, else CIDEr."""
    captions = [name for name in CAPTION_METRICS if any(name in s.caption_metrics for s in scores)]
    keywords = list(KEYWORD_METRICS) if any(s.keyword_f1 is not None for s in scores) else []
    first = ["CIDEr"] if "CIDEr" in captions and not keywords else []
    return first + keywords + [name for name in captions if name not in first]


def metric_value(score: ProfileScore, metric: str) -> float | None:
    field = KEYWORD_METRICS.get(metric)
    return cast(float | None, getattr(score, field)) if field else score.caption_metrics.get(metric)


def chart_bars(scores: Sequence[ProfileScore], metric: str) -> tuple[list[Bar], float]:
    """The chart's bars of ``metric`` and the value at full width (1 for scores in 0–1; the best CIDEr,
    which runs past 1)."""
    bars = []
    for score in scores:
        value = None if score.error is not None else metric_value(score, metric)
        speed = f"{score.seconds_per_photo:.2f} s" if score.seconds_per_photo is not None else NO_VALUE
        note = error_text(score) or (f"no {metric}" if value is None else "")
        bars.append(Bar(score.profile.label, value, "" if value is None else f"{value:.3f}", speed, note))
    values = [bar.value for bar in bars if bar.value is not None]
    top = max([*values, 1.0]) if metric == "CIDEr" else 1.0
    return bars, top


def progress_text(event: EvaluationProgress) -> str:
    """``2B Q8_0@512 · photo 14 of 20``, or what the profile is doing before its photos."""
    if event.phase == "loading":
        return f"{event.label} · loading the model"
    if event.phase == "scoring":
        return f"{event.label} · scoring"
    return f"{event.label} · photo {min(event.done + 1, event.photos)} of {event.photos}"


def progress_steps(event: EvaluationProgress) -> tuple[int, int]:
    """(done, total) over all profiles × photos, for the progress bar."""
    return event.profile_index * event.photos + event.done, max(event.profiles * event.photos, 1)


TRUTH_BATCH = 25  # photos whose keywords are read between two looks at Cancel


@dataclass(frozen=True)
class PhotoSet:
    """The photos of a folder, the keywords they already carry (the keyword answer key), and notes about
    metadata that could not be read."""

    folder: Path
    photos: list[Path]
    truth: dict[Path, frozenset[str]]
    notes: tuple[str, ...] = ()

    def compared(self, limit: int) -> list[Path]:
        """The photos a comparison runs on: the first ``limit`` (0: all)."""
        return self.photos[:limit] if limit else list(self.photos)

    def describe(self, limit: int, references: References | None) -> str:
        """How many photos there are, and how many of those compared can be scored, and on what."""
        used = self.compared(limit)
        keyworded = sum(1 for photo in used if self.truth.get(photo))
        scope = f"; the first {len(used)} are compared" if len(used) < len(self.photos) else ""
        count = f"{len(self.photos)} photo{'s' if len(self.photos) != 1 else ''}"
        text = (f"{count}{scope}. {keyworded} of {len(used)} carry keywords of their own: "
                "the answer key for keyword precision and recall.")
        if references is not None:
            text += f" {len(references.match(used))} of {len(used)} have reference captions."
        if self.notes:
            text += f" The metadata of {len(self.notes)} could not be read ({self.notes[0]})."
        return text


def read_photo_set(folder: Path, progress: ProgressCallback, cancel: CancelToken) -> PhotoSet:
    """Every photo under ``folder`` and its own keywords, read only (nothing is ever written to them).

    Raises:
        ConfigurationError: the folder holds no photos (the message says which kinds count).
        Cancelled: another folder was chosen, or the dialog closed, meanwhile.
    """
    photos = collect_photos([folder]).photos
    truth: dict[Path, frozenset[str]] = {}
    notes: list[str] = []
    for start in range(0, len(photos), TRUTH_BATCH):
        cancel.raise_if_cancelled()
        progress(start / len(photos), f"Reading the keywords of photo {start + 1} of {len(photos)}…")
        found, batch_notes = read_keyword_truth(photos[start:start + TRUTH_BATCH])
        truth.update(found)
        notes.extend(batch_notes)
    return PhotoSet(folder, photos, truth, tuple(notes))
