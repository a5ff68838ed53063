"""The error tree every engine raises: messages are written for the person using the app."""

from __future__ import annotations


class CaptioneerError(Exception):
    """Base of every expected failure. Its message is shown to the user as it is.

    ``exit_code`` is what the command line exits with when this error ends a command.
    """

    exit_code = 1


class ConfigurationError(CaptioneerError):
    """The setup is wrong: a missing or mismatched model, an unknown option, an engine not installed."""

    exit_code = 2


class EngineNotInstalledError(ConfigurationError):
    """The engine's Python library is not installed."""


class ModelFileError(ConfigurationError):
    """A model file (GGUF, mmproj, folder) is missing, truncated, of the wrong kind, or does not match."""


class EngineUnavailableError(ConfigurationError):
    """A server engine cannot be reached (not running, wrong address)."""


class ModelNotFoundError(ConfigurationError):
    """The server is running but does not have the requested model."""


class ResourceExhaustedError(CaptioneerError):
    """The engine ran out of memory or context for this request."""


class GenerationError(CaptioneerError):
    """The engine failed while generating."""


class InvalidOutputError(GenerationError):
    """The model's output did not match what the task asked for (for example broken JSON).

    ``raw`` is the last answer as the model gave it; ``attempts`` how many generations were made for it.
    """

    def __init__(self, message: str, raw: str = "", attempts: int = 1) -> None:
        super().__init__(message)
        self.raw = raw
        self.attempts = attempts


class TruncatedOutputError(InvalidOutputError):
    """The engine cut the answer off at the answer-length limit (or the end of the context)."""


class EngineCrashedError(GenerationError):
    """The engine process died (segfault, abort, out of memory)."""


class ImageError(CaptioneerError):
    """An input image cannot be used. ``kind`` says why, for catalogs and reports:
    ``missing``, ``unreadable``, ``empty``, ``not-an-image``, ``unsupported``, ``needs-plugin``,
    ``corrupt`` or ``too-large``. ``detail`` keeps the technical text (the decoder's own words) for logs and
    a "details" tooltip; the message itself is what a person reads."""

    def __init__(self, message: str, kind: str = "corrupt", detail: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.detail = detail


class Cancelled(CaptioneerError):
    """The user cancelled the work."""

    def __init__(self, message: str = "Cancelled.") -> None:
        super().__init__(message)
