"""User settings, saved as JSON in the config dir; every field has a default so a new user needs none."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from captioneer.backends.base import DEFAULT_IMAGE_TOKENS
from captioneer.backends.errors import ConfigurationError
from captioneer.backends.files import write_atomically
from captioneer.backends.http_util import (
    CONNECT_TIMEOUT,
    MAX_ANSWER_KB,
    READ_TIMEOUT,
    REQUEST_TIMEOUT,
    RETRY_DOWN_AFTER,
)
from captioneer.desktop.core.paths import config_dir
from captioneer.desktop.core.tasks import DEFAULT_LANGUAGE
from captioneer.desktop.core.video_budget import (
    DEFAULT_MAX_FRAME_TOKENS,
    DEFAULT_MAX_FRAMES,
    DEFAULT_MIN_FRAME_TOKENS,
    DEFAULT_VIDEO_TOKENS,
)

MIN_VIDEO_TOKENS = DEFAULT_MIN_FRAME_TOKENS
"""The smallest clip budget: one small frame (256×256 pixels); less shows the model nothing useful."""
MAX_VIDEO_TOKENS = DEFAULT_MAX_FRAMES * DEFAULT_MAX_FRAME_TOKENS
"""The largest clip budget worth choosing: all the frames a clip can get, each at full size."""


class Settings(BaseModel):
    """Everything the user chooses once and keeps. Unknown keys in the file are an error, not ignored."""

    model_config = ConfigDict(extra="forbid")

    engine: str = "gguf"
    model: str = ""
    mmproj: str | None = None
    quant: str | None = None
    device: str = "auto"
    ollama_host: str | None = None
    openai_base_urls: list[str] = Field(default_factory=list)
    openai_api_key: str | None = None
    image_tokens: int = Field(default=DEFAULT_IMAGE_TOKENS, ge=16, le=16384)
    video_tokens: int = Field(default=DEFAULT_VIDEO_TOKENS, ge=MIN_VIDEO_TOKENS, le=MAX_VIDEO_TOKENS)
    """A video clip's whole visual budget, spread over its sampled frames (tag's and Tag Photos' default)."""
    max_tokens: int | None = Field(default=None, ge=1, le=32768)
    temperature: float = Field(default=0.2, ge=0.0, le=2.0)
    language: str = DEFAULT_LANGUAGE
    task: str = "caption"
    metadata_mode: str = "sidecar"
    first_run_done: bool = False
    theme: str = Field(default="system", pattern="^(system|light|dark)$")
    host_recycle_every: int | None = Field(default=None, ge=1)
    host_memory_limit_mb: int | None = Field(default=None, ge=64)
    # Server engines (ollama, openai): how hard each server is used and how long a hung one is waited for.
    server_parallel: int = Field(default=1, ge=1, le=64)
    server_connect_timeout: float = Field(default=CONNECT_TIMEOUT, gt=0, le=600)
    server_read_timeout: float = Field(default=READ_TIMEOUT, gt=0, le=3600)
    server_request_timeout: float = Field(default=REQUEST_TIMEOUT, gt=0, le=86400)
    server_retry_down_after: float = Field(default=RETRY_DOWN_AFTER, gt=0, le=86400)
    server_max_answer_kb: int = Field(default=MAX_ANSWER_KB, ge=1, le=1_048_576)
    # Servers off this computer the user agreed to send photos to (asked once per address, by the windows).
    remote_servers_allowed: list[str] = Field(default_factory=list)


def settings_path() -> Path:
    return config_dir() / "settings.json"


def load_settings() -> Settings:
    path = settings_path()
    if not path.exists():
        return Settings()
    try:
        return Settings.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, ValueError) as exc:
        raise ConfigurationError(
            f"The settings file {path} is not valid ({exc}). Fix or delete it."
        ) from None


def save_settings(settings: Settings) -> None:
    """Write atomically: a crash mid-save leaves the old settings, never half a file."""
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(settings.model_dump(), indent=2).encode("utf-8"))


def clip_budget(settings: Settings, requested: int | None = None) -> int:
    """A run's clip budget: ``requested`` (``tag --video-tokens``, the Tag Photos dialog) where given, else
    the settings' default. The one place the command line and the window read it.

    Raises:
        ConfigurationError: ``requested`` is outside what a clip can use.
    """
    if requested is None:
        return settings.video_tokens
    if not MIN_VIDEO_TOKENS <= requested <= MAX_VIDEO_TOKENS:
        raise ConfigurationError(
            f"A clip budget of {requested:,} tokens cannot be used: choose {MIN_VIDEO_TOKENS} to "
            f"{MAX_VIDEO_TOKENS:,} tokens (the default is {DEFAULT_VIDEO_TOKENS:,})."
        )
    return requested
