"""The error tree every engine raises: messages are written for the person using the app."""

from __future__ import annotations

import re
from dataclasses import dataclass

_MARK, _SEP = "\x1e", "\x1f"
_PLACE = re.compile(f"{_MARK}([^{_SEP}]*){_SEP}([^{_SEP}]*){_SEP}([^{_MARK}]*){_MARK}")


@dataclass(frozen=True)
class SettingName:
    """How each front end names one setting: the command line by its flag, the window by its label (as the
    Settings dialog shows it) and the place that fixes it (a :mod:`captioneer.desktop.core.fixes` id)."""

    flag: str
    label: str
    fix: str | None


SETTING_NAMES: dict[str, SettingName] = {
    "model": SettingName("--model", "Model", "model_manager"),
    "model_choice": SettingName("--model", "Model", "wizard"),  # none chosen yet: the wizard picks one
    "mmproj": SettingName("--mmproj", "Vision projector", "choose_mmproj"),
    "quant": SettingName("--quant", "Precision", "settings"),
    "device": SettingName("--device", "Device", "settings"),
    "image_tokens": SettingName("--image-tokens", "Image detail", "settings"),
    "video_tokens": SettingName("--video-tokens", "Video detail", None),
    "context": SettingName("--context", "context length", None),
    "max_tokens": SettingName("--max-tokens", "Max answer length", "settings"),
    "host": SettingName("--host", "Ollama address", "settings"),
    "base_url": SettingName("--base-url", "OpenAI-compatible servers", "settings"),
    "api_key": SettingName("--api-key", "API key", "settings"),
    "max_answer_kb": SettingName("--max-answer-kb", "Longest answer", "settings"),
    "allow_cloud": SettingName("--allow-cloud", "Model", "settings"),
}


def setting(name: str, cli: str | None = None, window: str | None = None) -> str:
    """A place in an error message that names a setting, rendered per front end.

    The command line shows ``cli`` (default: the flag, ``--mmproj``); the window shows ``window`` (default:
    the setting's label in quotes, ``“Vision projector”``). The error remembers the setting, so the window
    can offer the button that fixes it. Use it inside the message given to any :class:`CaptioneerError`.
    """
    names = SETTING_NAMES[name]
    cli = names.flag if cli is None else cli
    window = f"“{names.label}”" if window is None else window
    return f"{_MARK}{name}{_SEP}{cli}{_SEP}{window}{_MARK}"


def _render(message: str, part: int) -> str:
    return _PLACE.sub(lambda match: match.group(part), message)


class CaptioneerError(Exception):
    """Base of every expected failure. Its message is shown to the user as it is.

    ``exit_code`` is what the command line exits with when this error ends a command. A message built with
    :func:`setting` reads as the command line's text (``str(exc)``); ``window_text`` is the same message
    for the window (setting labels instead of flags) and ``settings`` the settings it names, in order.
    ``marked`` keeps the message as built, for an error that wraps this one (:func:`marked_text`).
    """

    exit_code = 1
    marked: str | None = None

    def __init__(self, message: str = "", *args: object) -> None:
        if isinstance(message, str) and _MARK in message:
            self.marked = message
            message = cli_text(message)
        super().__init__(message, *args)

    @property
    def window_text(self) -> str:
        return window_text(marked_text(self))

    @property
    def settings(self) -> tuple[str, ...]:
        return () if self.marked is None else tuple(m.group(1) for m in _PLACE.finditer(self.marked))


def cli_text(text: str) -> str:
    """``text`` (maybe built with :func:`setting`) as the command line and the logs show it."""
    return _render(text, 2)


def window_text(text: str) -> str:
    """``text`` (maybe built with :func:`setting`) as the window shows it: setting labels, no flags."""
    return _render(text, 3)


def marked_text(exc: BaseException) -> str:
    """``exc``'s message with its setting names still unrendered, to build another error's message from."""
    marked = getattr(exc, "marked", None)
    return marked if isinstance(marked, str) else str(exc)


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
