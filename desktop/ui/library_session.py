"""What the library window's controllers share instead of the window: the catalog, the person's settings and
remembered choices, and how to tell the person something."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from captioneer.desktop.core.settings import Settings
from captioneer.desktop.library.browse import LibraryPrefs
from captioneer.desktop.library.catalog import Catalog


@dataclass
class LibrarySession:
    """One open library window's state that every controller reads.

    Attributes:
        settings: the saved settings; replaced when Settings are saved in either window (a run reads them
            when it starts).
        prefs: the window's remembered choices; controllers update them, the window saves them on close.
        notify: shows one line in the status bar (and tells anyone listening to the window).
        is_closed: whether the window was closed (its catalog released); late signals check it.
    """

    catalog: Catalog
    settings: Settings
    prefs: LibraryPrefs
    notify: Callable[[str], None]
    is_closed: Callable[[], bool]
