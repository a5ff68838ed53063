"""Captioneer: the desktop app, its Qt-free core, the album tagger and the command line."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("captioneer")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
