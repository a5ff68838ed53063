"""Where Captioneer keeps its files: platformdirs, or everything under $CAPTIONEER_HOME (tests use it)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import platformdirs

APP_NAME = "Captioneer"


def _base(kind: str) -> Path:
    home = os.environ.get("CAPTIONEER_HOME")
    if home:
        return Path(home) / kind
    dirs = platformdirs.PlatformDirs(APP_NAME, appauthor=False)
    return Path(
        {
            "config": dirs.user_config_dir,
            "data": dirs.user_data_dir,
            "cache": dirs.user_cache_dir,
            "logs": dirs.user_log_dir,
        }[kind]
    )


def config_dir() -> Path:
    return _base("config")


def data_dir() -> Path:
    """Catalog and downloaded models: a place OS cleaners leave alone (not the cache)."""
    return _base("data")


def models_dir() -> Path:
    return data_dir() / "models"


def cache_dir() -> Path:
    return _base("cache")


def logs_dir() -> Path:
    return _base("logs")


def resource_path(name: str) -> Path:
    """A file shipped in ``resources/`` (installed as the package ``captioneer.resources``)."""
    try:
        root = resources.files("captioneer.resources")
    except ModuleNotFoundError:
        root = Path(__file__).resolve().parents[2] / "resources"
    return Path(str(root / name))
