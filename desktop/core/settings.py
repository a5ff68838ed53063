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
    # Servers on other computers the person agreed to send photos to (asked once per address, in the window).
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
