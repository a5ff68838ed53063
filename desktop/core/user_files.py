"""The text files a user hands Captioneer (a vocabulary, reference captions), read as UTF-8 with one-line
errors that say which file and what to do."""

from __future__ import annotations

from pathlib import Path

from captioneer.backends.errors import ConfigurationError


def read_user_text(path: Path, what: str) -> str:
    """The text of ``path``, ``what`` naming it in errors (``the reference file``); a BOM is dropped.

    Raises:
        ConfigurationError: it cannot be read or is not UTF-8.
    """
    try:
        return path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigurationError(f"Cannot read {what} {path}: {exc.strerror or exc}.") from None
    except UnicodeDecodeError:
        raise ConfigurationError(
            f"{what[0].upper()}{what[1:]} {path} is not UTF-8 text: save it as UTF-8."
        ) from None
