"""The backend interface: one shape for every engine (gguf, transformers, ollama, openai)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from captioneer.backends.cancel import CancelToken, token_or_new
from captioneer.backends.errors import CaptioneerError
from captioneer.backends.request import GenerationRequest

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


class EngineConfig(BaseModel):
    """Everything needed to build an engine. Each engine reads the fields it uses and checks them.

    Attributes:
        engine: registry name: ``gguf``, ``transformers``, ``ollama`` or ``openai``.
        model: a GGUF file, a model folder or cached repo id, an Ollama tag, or a server's model name.
        mmproj: the GGUF vision projector that belongs to ``model`` (gguf only).
        quant: precision/quantization profile (transformers: bf16, fp16, fp32, nf4, int8).
        device: ``auto``, ``cpu``, ``cuda``, ``mps``.
        host: Ollama's address.
        base_urls: OpenAI-compatible servers (several spread a job over them).
        api_key: for OpenAI-compatible servers that want one.
        image_tokens: the pixel budget in visual tokens; engines size their context for it.
        context_tokens: context length override; by default derived from the image budget.
        threads: CPU threads for in-process engines; default: physical cores.
        gpu_layers: layers to offload (gguf); -1 offloads all where a GPU backend exists.
        flash_attention: use flash attention where the engine has it.
        keep_alive: how long Ollama keeps the model loaded.
        allow_cloud: permit Ollama ``*-cloud`` models (photos leave the machine).
        allow_remote: permit non-loopback servers without a warning.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: str = "gguf"
    model: str = ""
    mmproj: str | None = None
    quant: str | None = None
    device: str = "auto"
    host: str | None = None
    base_urls: tuple[str, ...] = ()
    api_key: str | None = None
    image_tokens: int = Field(default=1024, ge=16, le=16384)
    context_tokens: int | None = Field(default=None, ge=512)
    threads: int | None = Field(default=None, ge=1)
    gpu_layers: int = -1
    flash_attention: bool = True
    keep_alive: str | None = None
    allow_cloud: bool = False
    allow_remote: bool = False
    extra: dict[str, Any] = Field(default_factory=dict)


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

    def __init__(self, config: EngineConfig) -> None:
        self.config = config

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
