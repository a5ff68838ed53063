"""Run several profiles on the same photos and score each: one engine at a time (loaded, timed, unloaded), the
keywords task on every photo (its answer has a caption and keywords, so one generation gives both scores)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from captioneer.backends.base import Backend
from captioneer.backends.cancel import CancelToken, token_or_new
from captioneer.backends.errors import Cancelled, CaptioneerError, EngineCrashedError, marked_text
from captioneer.desktop.core.captioning import caption_file
from captioneer.desktop.core.engine_setup import Overrides, engine_config, open_backend, sampling_options
from captioneer.desktop.core.settings import Settings
from captioneer.desktop.core.tasks import TaskOptions, get_task
from captioneer.desktop.evaluation.caption_metrics import require_metrics, score_captions
from captioneer.desktop.evaluation.keyword_scores import micro_average, photo_counts
from captioneer.desktop.evaluation.memory import PeakMemory
from captioneer.desktop.evaluation.photos import read_keyword_truth
from captioneer.desktop.evaluation.references import References
from captioneer.desktop.evaluation.scores import EvaluationProgress, Profile, ProfileScore
from captioneer.desktop.library.keywords import Vocabulary

TASK = "keywords"
"""The task every profile runs: a caption and keywords in one structured answer."""

ProgressCallback = Callable[[EvaluationProgress], None]


def evaluate_profiles(
    photos: Sequence[Path],
    profiles: Sequence[Profile],
    *,
    settings: Settings,
    references: References | None = None,
    keyword_truth: Mapping[Path, frozenset[str]] | None = None,
    keyword_map: Vocabulary | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    in_process: bool = False,
) -> list[ProfileScore]:
    """Run each profile on ``photos`` and score it.

    A profile that cannot load gets its :attr:`ProfileScore.error` and the others still run. When ``cancel``
    is set (between or within photos) the profile in progress is dropped and the ones finished are returned:
    the caller, who owns the token, knows the list is short.

    Raises:
        ConfigurationError: references were given but the caption metrics are not installed.

    Args:
        photos: the photo files, in order.
        profiles: what to compare.
        settings: the saved settings (language, engine host policy, server addresses).
        references: reference captions; without them no caption metrics.
        keyword_truth: photo → the keywords it already carries; None reads them from the photos
            (:func:`~captioneer.desktop.evaluation.photos.read_keyword_truth`).
        keyword_map: the user's vocabulary, to map synonyms on both sides before comparing.
        progress: called as work advances (from this thread).
        cancel: stops the evaluation.
        in_process: run gguf/transformers in this process rather than the engine host (no memory figure).
    """
    if references is not None:
        require_metrics()  # before hours of captioning, not after
    cancel = token_or_new(cancel)
    photos = list(photos)
    if keyword_truth is None:
        keyword_truth, _notes = read_keyword_truth(photos)
    captions = references.match(photos) if references is not None else {}
    scores: list[ProfileScore] = []
    for index, profile in enumerate(profiles):
        def report(done: int, phase: str, index: int = index, label: str = profile.label) -> None:
            if progress is not None:
                progress(EvaluationProgress(index, len(profiles), label, done, len(photos), phase))

        try:
            cancel.raise_if_cancelled()
            answers, score = _answer_all(photos, profile, settings, report, cancel, in_process)
        except Cancelled:
            break
        if score.error is None:
            report(len(photos), "scoring")
            truth = {photo: keyword_truth[photo] for photo in photos if keyword_truth.get(photo)}
            _score(score, answers, captions, truth, keyword_map)
        scores.append(score)
    return scores


def _answer_all(
    photos: list[Path],
    profile: Profile,
    settings: Settings,
    report: Callable[[int, str], None],
    cancel: CancelToken,
    in_process: bool,
) -> tuple[dict[Path, dict[str, Any]], ProfileScore]:
    """Load the profile's engine, answer every photo, unload; the answers of the photos that got one."""
    score = ProfileScore(profile=profile, photos=len(photos))
    report(0, "loading")
    task = get_task(TASK)
    try:
        config = engine_config(
            settings,
            Overrides(engine=profile.engine, model=profile.model, image_tokens=profile.image_tokens,
                      options=dict(profile.options), in_process=in_process),
        )
        backend = open_backend(settings, config, in_process=in_process)
        sampling = sampling_options(settings, task)
    except CaptioneerError as exc:
        score.error = marked_text(exc)
        return {}, score
    answers: dict[Path, dict[str, Any]] = {}
    seconds: list[float] = []
    with PeakMemory(lambda: _pid(backend)) as memory:
        try:
            started = time.perf_counter()
            try:
                backend.load(cancel=cancel)
            except Cancelled:
                raise
            except CaptioneerError as exc:
                score.error = marked_text(exc)
                return {}, score
            score.load_seconds = time.perf_counter() - started
            memory.sample()
            options = TaskOptions(language=settings.language)
            for done, photo in enumerate(photos):
                cancel.raise_if_cancelled()
                report(done, "captioning")
                try:
                    result = caption_file(backend, photo, task, task_options=options, sampling=sampling,
                                          image_tokens=config.image_tokens, cancel=cancel)
                except EngineCrashedError as exc:
                    # the engine host died on this photo; the next gets a fresh one
                    score.add_failure(str(photo), marked_text(exc))
                    continue
                if result.ok and result.data is not None:
                    answers[photo] = result.data
                    seconds.append(result.seconds)
                else:
                    score.add_failure(str(photo), result.error or "the answer had no caption and keywords")
            memory.sample()
        finally:
            backend.unload()
    score.seconds_per_photo = sum(seconds) / len(seconds) if seconds else None
    score.peak_memory_bytes = memory.peak
    return answers, score


def _pid(backend: Backend) -> int | None:
    """The engine host's process id (None: a server engine, or an engine running in this process)."""
    pid = getattr(backend, "pid", None)
    return pid if isinstance(pid, int) else None


def _score(
    score: ProfileScore,
    answers: Mapping[Path, Mapping[str, Any]],
    captions: Mapping[Path, Sequence[str]],
    keyword_truth: Mapping[Path, frozenset[str]],
    keyword_map: Vocabulary | None,
) -> None:
    """Fill ``score``'s caption metrics and keyword scores from the answers (a photo without one counts as an
    empty caption and no keywords)."""
    if captions:
        candidates = {photo: str(answers.get(photo, {}).get("caption") or "") for photo in captions}
        metrics = score_captions(captions, candidates)
        score.caption_metrics = metrics.scores
        score.unavailable_metrics = metrics.unavailable
        score.caption_photos = metrics.photos
        score.tokenizer = metrics.tokenizer
    counts = micro_average(
        photo_counts(_keywords(answers.get(photo)), truth, keyword_map)
        for photo, truth in keyword_truth.items()
    )
    score.keyword_photos = counts.photos
    if counts.photos:
        score.keyword_precision = counts.precision
        score.keyword_recall = counts.recall
        score.keyword_f1 = counts.f1


def _keywords(answer: Mapping[str, Any] | None) -> list[object]:
    keywords = (answer or {}).get("keywords")
    return list(keywords) if isinstance(keywords, list) else []
