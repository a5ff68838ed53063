"""The backend interface: one shape for every engine (gguf, transformers, ollama, openai)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from captioneer.backends.cancel import CancelToken, token_or_new
from captioneer.backends.errors import CaptioneerError, ConfigurationError
from captioneer.backends.request import GenerationRequest

DEFAULT_IMAGE_TOKENS = 1024
"""The pixel budget, in visual tokens (one token = 32×32 pixels), when nobody chose one."""

ProgressCallback = Callable[[float, str], None]
"""Called with a fraction in [0, 1] and a short human-readable message."""

FINISH_STOP = "stop"
"""The model ended its answer itself (end of sequence, or a grammar that completed)."""
FINISH_LENGTH = "length"
"""The engine stopped the answer at ``max_new_tokens`` or at the end of the context: it is cut off."""


class Completion(str):
    """A whole answer: the text itself, plus why the engine ended it.

    ``finish_reason`` is :data:`FINISH_STOP`, :data:`FINISH_LENGTH`, or None where the engine did not say.
    A ``str`` subclass, so code that only wants the text keeps working with it (and it crosses the engine
    host's pipe as it is).
    """

    finish_reason: str | None

    def __new__(cls, text: str = "", finish_reason: str | None = None) -> Completion:
        completion = super().__new__(cls, text)
        completion.finish_reason = finish_reason
        return completion

    @property
    def truncated(self) -> bool:
        return self.finish_reason == FINISH_LENGTH


def finish_reason_of(text: str) -> str | None:
    """The finish reason an answer carries (a :class:`Completion`), or None for a plain string."""
    return getattr(text, "finish_reason", None)


class Stream:
    """A ``generate`` stream to iterate as usual that keeps the finish reason its generator returned."""

    def __init__(self, stream: Iterator[str]) -> None:
        self._stream = stream
        self.finish_reason: str | None = None

    def __iter__(self) -> Iterator[str]:
        self.finish_reason = yield from self._stream


def collect(stream: Iterator[str], on_chunk: Callable[[str], None] | None = None) -> Completion:
    """Read a ``generate`` stream to its end: the whole text, and why the engine ended it."""
    chunks: list[str] = []
    reader = Stream(stream)
    for chunk in reader:
        chunks.append(chunk)
        if on_chunk is not None:
            on_chunk(chunk)
    return Completion("".join(chunks), reader.finish_reason)


@dataclass(frozen=True)
class Capabilities:
    """What an engine can do; the app adapts to these flags instead of checking engine names."""

    vision: bool = True
    streaming: bool = True
    json_schema: bool = False
    batching: bool = False
    in_process: bool = False
    quantizations: tuple[str, ...] = ()
    min_image_tokens: int = 1
    """Images smaller than this many visual tokens get enlarged by the engine's image processor."""
    video_input: bool = False
    """The engine takes a clip's frames as true video input (two frames to a temporal patch, timestamps by
    the model's own processor); otherwise a clip is sent as frames, each an image, with their times in the
    prompt (see core/video_budget.SamplingMode)."""


class EngineOptions(BaseModel):
    """The settings one engine reads, declared by that engine as its ``Options`` (a subclass of this).

    Unknown keys are an error, so a typo (``request_timout``) or a setting of another engine (``quant`` on
    gguf) fails loudly instead of being ignored.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalOptions(EngineOptions):
    """The options every engine that runs the model on this machine takes.

    Attributes:
        device: ``auto``, ``cpu``, ``cuda``, ``mps``.
        threads: CPU threads; default: the engine's own choice (physical cores).
        flash_attention: use flash attention where the engine has it.
    """

    device: str = "auto"
    threads: int | None = Field(default=None, ge=1)
    flash_attention: bool = True


class EngineConfig(BaseModel):
    """Everything needed to build an engine: what every engine shares, plus the engine's own ``options``.

    Attributes:
        engine: registry name: ``gguf``, ``transformers``, ``ollama`` or ``openai``.
        model: a GGUF file, a model folder or cached repo id, an Ollama tag, or a server's model name.
        image_tokens: the pixel budget in visual tokens; engines size their context for it.
        context_tokens: context length override; by default each engine derives it from the image budget
            (:meth:`Backend.context_tokens`).
        allow_remote: permit non-loopback servers without a warning.
        options: the engine's own settings, checked against its :attr:`Backend.Options` when it is built
            (:func:`~captioneer.backends.registry.create_backend`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: str = "gguf"
    model: str = ""
    image_tokens: int = Field(default=DEFAULT_IMAGE_TOKENS, ge=16, le=16384)
    context_tokens: int | None = Field(default=None, ge=512)
    allow_remote: bool = False
    options: dict[str, Any] = Field(default_factory=dict)


def options_error(
    engine: str, options_class: type[EngineOptions], exc: ValidationError
) -> ConfigurationError:
    """One line naming the first bad key: an unknown one with the keys the engine takes, or a bad value."""
    error = exc.errors()[0]
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        takes = ", ".join(sorted(options_class.model_fields)) or "no options"
        return ConfigurationError(f"{key} is not an option of the {engine} engine; it takes: {takes}.")
    return ConfigurationError(
        f"The {engine} engine's option {key} = {error.get('input')!r} is not valid: {error['msg']}."
    )


@dataclass
class BackendInfo:
    """What is loaded and how, for the status bar, logs and result provenance."""

    engine: str
    model: str
    quant: str | None = None
    device: str | None = None
    loaded: bool = False
    memory_bytes: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Backend(ABC):
    """An engine. Construct with an :class:`EngineConfig`, then ``load``, ``generate``…, ``unload``.

    ``generate`` yields text chunks as the model produces them; the concatenation is the answer. The generator
    returns (as its ``StopIteration`` value, see :func:`collect`) why the answer ended: :data:`FINISH_STOP`,
    :data:`FINISH_LENGTH`, or None where the engine cannot tell.
    It checks ``cancel`` between tokens and raises :class:`~captioneer.backends.errors.Cancelled` when set.
    Structured requests (``json_schema``) are constrained where the engine can; validating the
    result is the caller's job (see :mod:`captioneer.backends.structured`).
    """

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    Options: ClassVar[type[EngineOptions]] = EngineOptions
    """The engine's own settings (``EngineConfig.options``); each engine declares its subclass."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.options = self.read_options(config)

    @classmethod
    def read_options(cls, config: EngineConfig) -> Any:
        """``config.options`` checked against :attr:`Options`.

        Raises:
            ConfigurationError: an unknown key or a bad value, in one line.
        """
        try:
            return cls.Options.model_validate(config.options)
        except ValidationError as exc:
            raise options_error(cls.name, cls.Options, exc) from None

    @classmethod
    def context_tokens(cls, image_tokens: int, override: int | None = None) -> int | None:
        """The context the engine allocates for one image of ``image_tokens`` (``override`` where given);
        None where the engine does not size it itself (the server or the model decides)."""
        return override

    @classmethod
    def destinations(cls, config: EngineConfig) -> tuple[str, ...]:
        """The addresses the engine sends photos to; none for an engine that runs on this machine."""
        return ()

    @abstractmethod
    def load(self, progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> None:
        """Check the configuration and make the model ready. Idempotent."""

    @abstractmethod
    def generate(self, request: GenerationRequest, cancel: CancelToken | None = None) -> Iterator[str]:
        """Stream the answer to one request as text chunks."""

    def generate_batch(
        self, requests: Sequence[GenerationRequest], cancel: CancelToken | None = None
    ) -> list[str | CaptioneerError]:
        """Answer several requests; engines with real batching override this. Greedy results equal
        running the requests one by one. Each answer is a :class:`Completion` where the engine knows why it
        ended. An engine may put a request's error in place of its answer (the server engines do, so one
        failed request does not cost the batch its other answers)."""
        cancel = token_or_new(cancel)
        return [collect(self.generate(request, cancel)) for request in requests]

    def concurrency(self) -> int:
        """How many requests the engine answers at once when asked from several threads; a tagging run
        keeps that many in flight. In-process engines answer one at a time."""
        return 1

    @abstractmethod
    def unload(self) -> None:
        """Free the model. Idempotent."""

    @abstractmethod
    def info(self) -> BackendInfo:
        """Describe the engine and its current state."""

    def __enter__(self) -> Backend:
        self.load()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unload()
