"""What an engine is asked to do: prepared images, prompts, a JSON schema and validated sampling options."""

from __future__ import annotations

import base64
import hashlib
import io
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from captioneer.backends.errors import ConfigurationError

TOKEN_PIXELS = 32
"""One Qwen3-VL LLM token covers a 32×32 pixel square (16-pixel patches, 2×2 spatial merge)."""


@dataclass(frozen=True, eq=False)
class PreparedImage:
    """An RGB image already oriented and resized to the pixel budget; every engine sees exactly this.

    Both sides are multiples of 32, so ``tokens`` is the number of visual tokens the model will get.
    """

    image: Image.Image
    source: str = ""
    original_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.image.mode != "RGB":
            raise ValueError(f"prepared images are RGB, got {self.image.mode}")
        w, h = self.image.size
        if w % TOKEN_PIXELS or h % TOKEN_PIXELS:
            raise ValueError(f"prepared image sides must be multiples of {TOKEN_PIXELS}, got {w}×{h}")

    @property
    def width(self) -> int:
        return self.image.size[0]

    @property
    def height(self) -> int:
        return self.image.size[1]

    @property
    def tokens(self) -> int:
        return (self.width // TOKEN_PIXELS) * (self.height // TOKEN_PIXELS)

    @cached_property
    def png_bytes(self) -> bytes:
        """Lossless encoding, so an engine that decodes bytes sees the same pixels."""
        buf = io.BytesIO()
        self.image.save(buf, format="PNG", compress_level=1)
        return buf.getvalue()

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.image.tobytes()).hexdigest()

    def data_url(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png_bytes).decode("ascii")

    def downscaled(self, size: tuple[int, int]) -> PreparedImage:
        """The same picture at ``size`` (sides multiples of 32, neither larger than now), made from these
        pixels rather than by reading the file again: what an engine that ran out of memory is asked next."""
        width, height = size
        if width > self.width or height > self.height:
            raise ValueError(f"{width}×{height} is not smaller than {self.width}×{self.height}")
        return PreparedImage(
            image=self.image.resize(size, Image.Resampling.BICUBIC),
            source=self.source,
            original_size=self.original_size,
        )

    def __getstate__(self) -> dict[str, Any]:
        # Send PNG bytes across process boundaries: smaller than raw pixels and exact.
        return {"png": self.png_bytes, "source": self.source, "original_size": self.original_size}

    def __setstate__(self, state: dict[str, Any]) -> None:
        image = Image.open(io.BytesIO(state["png"]))
        image.load()
        object.__setattr__(self, "image", image)
        object.__setattr__(self, "source", state["source"])
        object.__setattr__(self, "original_size", state["original_size"])


CLIP_AS_VIDEO = "video"
"""A clip sent as true video input (two frames to a temporal patch; the model's processor writes times)."""
CLIP_AS_IMAGES = "images"
"""A clip sent as its frames, each an image, with their times in the prompt text."""


@dataclass(frozen=True, eq=False)
class PreparedClip:
    """A video clip sampled for the model: its frames (PreparedImages, all at the plan's size, upright), the
    time of each in seconds from the clip's start, the clip's duration, and how it is sent (``mode``:
    :data:`CLIP_AS_VIDEO` or :data:`CLIP_AS_IMAGES`, the values of core/video_budget.SamplingMode).

    In video mode the frame count is even (a pair shares one set of tokens); a pair may repeat one frame.
    Pickles frame by frame as PNG (see :class:`PreparedImage`), so it crosses the engine host's pipe.
    """

    frames: tuple[PreparedImage, ...]
    times: tuple[float, ...]
    duration: float
    mode: str = CLIP_AS_IMAGES
    source: str = ""

    def __post_init__(self) -> None:
        if self.mode not in (CLIP_AS_VIDEO, CLIP_AS_IMAGES):
            raise ValueError(f"a clip is sent as {CLIP_AS_VIDEO} or {CLIP_AS_IMAGES}, not {self.mode!r}")
        if not self.frames or len(self.frames) != len(self.times):
            raise ValueError(f"a clip needs one time per frame: {len(self.frames)} frames, {len(self.times)}")
        if self.mode == CLIP_AS_VIDEO and len(self.frames) % 2:
            raise ValueError(f"video input takes frames in pairs, got {len(self.frames)}")
        if len({frame.image.size for frame in self.frames}) != 1:
            raise ValueError("every frame of a clip has the same size")

    @property
    def width(self) -> int:
        return self.frames[0].width

    @property
    def height(self) -> int:
        return self.frames[0].height

    @property
    def as_video(self) -> bool:
        return self.mode == CLIP_AS_VIDEO

    @property
    def tokens(self) -> int:
        """What the clip costs in its mode: every frame as an image, or one frame's grid per pair."""
        per_frame = self.frames[0].tokens
        return per_frame * (len(self.frames) // 2 if self.as_video else len(self.frames))

    @cached_property
    def sha256(self) -> str:
        """The clip's pixels, for the engine host's quarantine of requests that crash it."""
        digest = hashlib.sha256()
        for frame in self.frames:
            digest.update(frame.sha256.encode("ascii"))
        return digest.hexdigest()


class SamplingOptions(BaseModel):
    """Sampling options shared by every engine. An unknown option is an error, never ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_new_tokens: int = Field(default=512, ge=1, le=32768)
    temperature: float = Field(default=0.2, ge=0.0, le=2.0)
    top_p: float = Field(default=0.8, gt=0.0, le=1.0)
    top_k: int = Field(default=20, ge=0, le=1000)
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    seed: int | None = Field(default=None, ge=0)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @classmethod
    def from_user(cls, **values: Any) -> SamplingOptions:
        """Validate options given by a person (CLI, settings) and say clearly what is wrong."""
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'options'}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigurationError(f"Invalid generation option — {problems}") from None


@dataclass(frozen=True)
class GenerationRequest:
    """One generation: images (possibly none) or a video clip, the user prompt, an optional system prompt
    and JSON schema.

    ``video`` is set only for an engine whose capabilities say ``video_input`` (transformers), and only with
    a clip in video mode and no ``images``. Every other engine gets a clip as its frames in ``images`` with
    their times written into ``prompt`` (core/tasks.build_request decides which), so an engine without video
    input never needs to know about clips.
    """

    prompt: str
    images: tuple[PreparedImage, ...] = ()
    system: str | None = None
    json_schema: dict[str, Any] | None = None
    options: SamplingOptions = field(default_factory=SamplingOptions)
    video: PreparedClip | None = None

    def __post_init__(self) -> None:
        if self.video is not None and (self.images or not self.video.as_video):
            raise ValueError("a request carries a clip as video input alone, and only in video mode")

    @property
    def image_tokens(self) -> int:
        """The visual tokens the request costs: its images, or its clip."""
        clip = self.video.tokens if self.video is not None else 0
        return clip + sum(image.tokens for image in self.images)

    @property
    def media(self) -> tuple[PreparedImage | PreparedClip, ...]:
        """What the request shows the model, each with a ``source`` and a ``sha256``: its images, or its
        clip as one item (the engine host counts crashes against these)."""
        return self.images if self.video is None else (self.video,)

    def openai_messages(self) -> list[dict[str, Any]]:
        """OpenAI-style chat messages: the system prompt (if any), then one user message with the images as
        PNG data URLs before the instruction (Qwen3-VL's recommended order). llama.cpp and every
        OpenAI-compatible server take this shape; none of them takes true video input."""
        if self.video is not None:
            raise ValueError("a clip as video input goes only to an engine with video input (transformers)")
        messages: list[dict[str, Any]] = []
        if self.system:
            messages.append({"role": "system", "content": self.system})
        content: list[dict[str, Any]] = [
            {"type": "image_url", "image_url": {"url": image.data_url()}} for image in self.images
        ]
        content.append({"type": "text", "text": self.prompt})
        messages.append({"role": "user", "content": content})
        return messages
