"""A stand-in engine for tagging-run tests (a real model takes seconds per photo; runs need hundreds).

``FakeEngine`` is a real :class:`~captioneer.backends.base.Backend`: it receives the prepared images and the
task's
request, and answers the keywords task's JSON from the image's colour, so each photo gets its own caption.
Tests script its failures per image colour: invalid JSON, a cut-off answer, a hang, or the same caption for
all. (Crashes are the engine host's: tests crash the real host.)
It is not a model: the captions are made up from pixel statistics.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

from captioneer.backends.base import (
    Backend,
    BackendInfo,
    Capabilities,
    Completion,
    EngineConfig,
    EngineOptions,
    ProgressCallback,
)
from captioneer.backends.cancel import CancelToken, token_or_new
from captioneer.backends.errors import ResourceExhaustedError
from captioneer.backends.request import GenerationRequest

COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "grey", "teal")


def colour_name(rgb: tuple[int, int, int]) -> str:
    return COLOURS[(rgb[0] // 32 + rgb[1] // 16 + rgb[2] // 8) % len(COLOURS)]


class FakeEngine(Backend):
    """Answers from pixel statistics. Its options (``config.options``) script it:

    - ``delay``: seconds per answer; ``log``: a file that gets one line per generation (survives a kill);
    - ``invalid_on``: pixel colours (as ``"r,g,b"``) that get broken JSON;
    - ``cut_off_on``: colours whose answer ends with finish reason ``length`` (cut off at the token limit);
    - ``out_of_memory_over``: images of more visual tokens than this run the engine out of memory;
    - ``control_on``: colours whose answer has control characters in its strings (JSON escapes);
    - ``same_caption``: every photo gets the same caption; ``language``: ``"german"`` answers in German.

    Like a grammar-constrained engine, it keeps keywords inside the schema's vocabulary ``enum``.
    """

    name: ClassVar[str] = "fake"
    capabilities: ClassVar[Capabilities] = Capabilities(json_schema=True, batching=False)

    class Options(EngineOptions):
        """The script (see the class docstring)."""

        delay: float | None = None
        log: str | None = None
        out_of_memory_over: int | None = None
        invalid_on: tuple[str, ...] = ()
        cut_off_on: tuple[str, ...] = ()
        control_on: tuple[str, ...] = ()
        same_caption: bool = False
        language: str | None = None

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        self.loaded = False
        self.requests: list[GenerationRequest] = []

    def load(self, progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> None:
        self.loaded = True

    def _answer(self, request: GenerationRequest) -> Completion:
        extra = self.options.model_dump()
        image = request.images[0].image
        rgb = image.getpixel((image.width // 2, image.height // 2))
        key = ",".join(str(v) for v in rgb)
        if extra.get("log"):
            with open(extra["log"], "a", encoding="utf-8") as fh:
                fh.write(f"{request.images[0].source}\n")
                fh.flush()
                os.fsync(fh.fileno())
        if extra.get("delay"):
            time.sleep(float(extra["delay"]))
        limit = extra["out_of_memory_over"]
        if limit is not None and request.image_tokens > limit:
            raise ResourceExhaustedError(f"Out of memory at {request.image_tokens} image tokens.")
        if key in extra.get("invalid_on", ()):
            return Completion('{"caption": "A broken answ', "stop")
        if key in extra.get("cut_off_on", ()):
            return Completion('{"caption": "A cut-off answ', "length")
        colour = colour_name(rgb)
        if extra.get("same_caption"):
            caption = "A photo of something."
        elif extra.get("language") == "german":
            caption = f"Ein {colour} Quadrat auf dem Tisch mit einer Lampe und der Wand."
        else:
            caption = f"A {colour} square with a tint of {rgb[0]} red and {rgb[2]} blue."
        keywords = [colour, f"{colour}s", "Square", "square", "2024", "keywords", f"tint {rgb[1] % 7}"]
        allowed = (
            (request.json_schema or {}).get("properties", {}).get("keywords", {}).get("items", {}).get("enum")
        )
        if allowed:  # like an engine that constrains decoding with the schema's grammar
            keywords = [k for k in keywords if k in allowed] or allowed[:1]
        title = f"{colour.title()} square"
        if key in extra.get("control_on", ()):
            caption, title = f"{caption}\x00\x1b[0m\r\nSecond line.", f"{title}\n\x07"
            keywords = [f"{keywords[0]}\x08", *keywords[1:]]
        return Completion(json.dumps({"caption": caption, "title": title, "keywords": keywords}), "stop")

    def generate(self, request: GenerationRequest, cancel: CancelToken | None = None) -> Iterator[str]:
        cancel = token_or_new(cancel)
        self.requests.append(request)
        text = self._answer(request)
        for start in range(0, len(text), 16):
            cancel.raise_if_cancelled()
            yield text[start : start + 16]
        return text.finish_reason

    def unload(self) -> None:
        self.loaded = False

    def info(self) -> BackendInfo:
        return BackendInfo(engine="fake", model=self.config.model, loaded=self.loaded)


class BatchingFakeEngine(FakeEngine):
    """The stand-in with real batching: ``generate_batch`` answers a list at once and counts the calls."""

    capabilities: ClassVar[Capabilities] = Capabilities(json_schema=True, batching=True)

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        self.batches: list[int] = []

    def generate_batch(
        self, requests: Sequence[GenerationRequest], cancel: CancelToken | None = None
    ) -> list[str]:
        self.batches.append(len(requests))
        return [self._answer(request) for request in requests]


def fake_config(**script: object) -> EngineConfig:
    return EngineConfig(engine="gguf", model="fake-model.gguf", options=dict(script))


def read_log(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []
