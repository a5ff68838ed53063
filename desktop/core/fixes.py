"""What the window says about an error: plain text without command-line options, and which fix to offer.

Engine errors name the setting at fault (:func:`captioneer.backends.errors.setting`); the command line shows
it as its flag, and :func:`window_error` as the setting's label plus a fix id the window turns into a button:

- ``"settings"``: open Settings (an address, a key, the image detail, the device, the precision);
- ``"model_manager"``: open the Model Manager (a model file that is missing, damaged or of the wrong kind);
- ``"choose_mmproj"``: choose the vision projector file that goes with the model;
- ``"wizard"``: no model is set up yet: run the set-up wizard;
- None: nothing in Captioneer fixes it (the photo, the engine's crash, a cancel).
"""

from __future__ import annotations

from dataclasses import dataclass

from captioneer.backends.errors import (
    SETTING_NAMES,
    CaptioneerError,
    EngineNotInstalledError,
    EngineUnavailableError,
    ModelFileError,
    ModelNotFoundError,
    ResourceExhaustedError,
)

FIX_BUTTONS: dict[str, str] = {
    "settings": "Open Settings…",
    "model_manager": "Open Model Manager…",
    "choose_mmproj": "Choose Vision Projector…",
    "wizard": "Set Up a Model…",
}
"""What the button offering each fix says, the same in every window."""

FIXES = tuple(FIX_BUTTONS)

# Errors that name no setting but have one obvious place to fix them, most specific first.
_FIX_BY_TYPE: tuple[tuple[type[CaptioneerError], str], ...] = (
    (EngineNotInstalledError, "settings"),
    (ModelFileError, "model_manager"),
    (EngineUnavailableError, "settings"),
    (ModelNotFoundError, "settings"),
    (ResourceExhaustedError, "settings"),
)


@dataclass(frozen=True)
class WindowError:
    """An error as the window shows it: one plain message and the id of the fix to offer (or None)."""

    text: str
    fix: str | None = None


def fix_for(exc: CaptioneerError) -> str | None:
    """The fix for an error: the first named setting's, else its kind's."""
    for name in exc.settings:
        fix = SETTING_NAMES[name].fix
        if fix is not None:
            return fix
    for kind, fix in _FIX_BY_TYPE:
        if isinstance(exc, kind):
            return fix
    return None


def window_error(exc: BaseException) -> WindowError:
    """How the window shows ``exc``: the message with setting labels instead of flags, and its fix."""
    if isinstance(exc, CaptioneerError):
        return WindowError(exc.window_text or str(exc), fix_for(exc))
    return WindowError(f"Something unexpected went wrong ({type(exc).__name__}: {exc}).", None)
