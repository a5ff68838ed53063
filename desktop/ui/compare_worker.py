"""Compare Models' worker: runs the evaluation runner profile by profile on its own thread and reports each
profile's score as it ends, so the dialog's table fills row by row and a cancel keeps the finished rows."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from captioneer.backends.cancel import CancelToken
from captioneer.backends.errors import Cancelled, CaptioneerError
from captioneer.desktop.core.fixes import window_error
from captioneer.desktop.core.settings import Settings
from captioneer.desktop.evaluation.references import References
from captioneer.desktop.evaluation.runner import evaluate_profiles
from captioneer.desktop.evaluation.scores import EvaluationProgress, Profile
from captioneer.desktop.library.keywords import Vocabulary


@dataclass(frozen=True)
class CompareJob:
    """What one comparison runs: these photos under each profile, scored against what was given."""

    photos: list[Path]
    profiles: list[Profile]
    settings: Settings
    truth: dict[Path, frozenset[str]]
    references: References | None
    vocabulary: Vocabulary | None


class CompareWorker(QObject):
    """Runs the profiles one after another on its thread, so each row shows as soon as its profile ends and a
    cancel keeps the rows already finished (the profile cut short is left out, never shown half-measured)."""

    progressed = Signal(object)  # EvaluationProgress over the whole comparison
    scored = Signal(object)  # ProfileScore
    failed = Signal(object)  # WindowError: the comparison could not go on
    finished = Signal(bool)  # cancelled

    @Slot(object, object)
    def run(self, job: CompareJob, cancel: CancelToken) -> None:
        try:
            self._run(job, cancel)
        except Cancelled:
            pass
        except CaptioneerError as exc:
            self.failed.emit(window_error(exc))
        finally:
            self.finished.emit(cancel.cancelled)  # even after a bug, so the dialog never stays busy

    def _run(self, job: CompareJob, cancel: CancelToken) -> None:
        count = len(job.profiles)
        for index, profile in enumerate(job.profiles):
            def report(event: EvaluationProgress, index: int = index) -> None:
                self.progressed.emit(dataclasses.replace(event, profile_index=index, profiles=count))

            scores = evaluate_profiles(
                job.photos, [profile], settings=job.settings, references=job.references,
                keyword_truth=job.truth, keyword_map=job.vocabulary, progress=report, cancel=cancel,
            )
            if cancel.cancelled:
                return
            for score in scores:
                self.scored.emit(score)
