"""What an evaluation reports: one :class:`ProfileScore` per profile, and the progress it sends meanwhile."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Profile:
    """One way to run a model that is compared with others on the same photos.

    Attributes:
        label: what the table shows, e.g. ``2B Q4_K_M@256``.
        engine: registry name (``gguf``, ``transformers``, ``ollama``, ``openai``).
        model: the GGUF file, model folder, Ollama tag or server model name.
        image_tokens: the pixel budget in visual tokens.
        options: the engine's own options (``mmproj``, ``quant``…), as ``EngineConfig.options`` takes them.
    """

    label: str
    engine: str
    model: str
    image_tokens: int
    options: tuple[tuple[str, object], ...] = ()


@dataclass
class ProfileScore:
    """How one profile did.

    Attributes:
        profile: the profile measured.
        photos: photos asked; ``failed`` of them gave no usable answer.
        seconds_per_photo: mean wall time per answered photo, the model load excluded (None: none answered).
        load_seconds: time to load the model.
        peak_memory_bytes: the engine process's peak resident memory (None: the engine runs in a server
            whose memory this machine cannot see).
        caption_metrics: metric name → score (``BLEU-4``, ``METEOR``, ``ROUGE-L``, ``CIDEr``, ``SPICE``); only
            the metrics that could be computed; empty without reference captions.
        caption_photos: how many photos the caption metrics are over (those with reference captions; a photo
            that failed counts as an empty caption).
        unavailable_metrics: metric name → why it could not be computed (no Java, SPICE models missing).
        tokenizer: how captions were tokenised for the metrics (None: no metrics).
        keyword_precision, keyword_recall, keyword_f1: micro-averaged over the photos that carry keywords of
            their own (None without any).
        keyword_photos: how many photos the keyword scores are over.
        error: why the profile could not run at all (model missing, engine not installed), for people, with
            its setting names unrendered: show it with ``errors.cli_text`` or ``errors.window_text``.
        failures: the photos that gave no usable answer and why (the reason unrendered, as ``error``), in
            order; ``failed`` counts them.
    """

    profile: Profile
    photos: int = 0
    failed: int = 0
    seconds_per_photo: float | None = None
    load_seconds: float | None = None
    peak_memory_bytes: int | None = None
    caption_metrics: dict[str, float] = field(default_factory=dict)
    caption_photos: int = 0
    unavailable_metrics: dict[str, str] = field(default_factory=dict)
    tokenizer: str | None = None
    keyword_precision: float | None = None
    keyword_recall: float | None = None
    keyword_f1: float | None = None
    keyword_photos: int = 0
    error: str | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)

    def add_failure(self, photo: str, reason: str) -> None:
        """Count ``photo`` as failed for ``reason``."""
        self.failures.append((photo, reason))
        self.failed += 1

    def commonest_failure(self) -> tuple[str, int] | None:
        """The reason most photos failed for and how many (the first seen wins a tie); None: none failed."""
        if not self.failures:
            return None
        reasons = Counter(reason for _, reason in self.failures)
        return reasons.most_common(1)[0]


@dataclass(frozen=True)
class EvaluationProgress:
    """Where a running evaluation is: profile ``profile_index`` of ``profiles`` (0-based, its label), photo
    ``done`` of ``photos`` in it; ``phase`` is ``loading``, ``captioning`` or ``scoring``."""

    profile_index: int
    profiles: int
    label: str
    done: int
    photos: int
    phase: str
