"""Engines behind one interface, plus model catalog, downloads, hardware detection and recommendation."""

from captioneer.backends.base import Backend, BackendInfo, Capabilities, EngineConfig, ProgressCallback
from captioneer.backends.cancel import CancelToken
from captioneer.backends.errors import (
    Cancelled,
    CaptioneerError,
    ConfigurationError,
    EngineCrashedError,
    EngineNotInstalledError,
    EngineUnavailableError,
    GenerationError,
    ImageError,
    InvalidOutputError,
    ModelFileError,
    ModelNotFoundError,
    ResourceExhaustedError,
)
from captioneer.backends.registry import ENGINES, create_backend, engine_installed, installed_engines
from captioneer.backends.request import GenerationRequest, PreparedImage, SamplingOptions

__all__ = [
    "ENGINES",
    "Backend",
    "BackendInfo",
    "CancelToken",
    "Cancelled",
    "Capabilities",
    "CaptioneerError",
    "ConfigurationError",
    "EngineConfig",
    "EngineCrashedError",
    "EngineNotInstalledError",
    "EngineUnavailableError",
    "GenerationError",
    "GenerationRequest",
    "ImageError",
    "InvalidOutputError",
    "ModelFileError",
    "ModelNotFoundError",
    "PreparedImage",
    "ProgressCallback",
    "ResourceExhaustedError",
    "SamplingOptions",
    "create_backend",
    "engine_installed",
    "installed_engines",
]
