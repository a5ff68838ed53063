"""Thumbnails for the library grid: made in a thread pool, cached on disk under the cache folder's ``thumbs``
and in memory, newest request first, so scrolling never waits for a decoder. A video clip's thumbnail is its
poster frame and brings the clip's facts (length, size, codec) with it, kept in the cached JPEG."""

from __future__ import annotations

import hashlib
import itertools
import os
from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, Signal, Slot
from PySide6.QtGui import QImage, QPixmap

from captioneer.backends.errors import ImageError
from captioneer.desktop.core.paths import cache_dir
from captioneer.desktop.library.browse import ClipFacts
from captioneer.desktop.ui.workers import CLIP_TEXT, make_thumbnail

MEMORY_LIMIT = 1500
"""Thumbnails kept in memory (a few screens of a large grid); the disk cache holds the rest."""


def thumbs_dir() -> Path:
    return cache_dir() / "thumbs"


def thumb_key(path: str, size: int, mtime_ns: int, edge: int) -> str:
    """Names a thumbnail by the file's path, size and modification time, so an edited photo gets a new one."""
    return hashlib.sha1(f"{path}\0{size}\0{mtime_ns}\0{edge}".encode()).hexdigest()


def thumb_file(key: str) -> Path:
    return thumbs_dir() / key[:2] / f"{key}.jpg"


def clip_facts(image: QImage) -> ClipFacts | None:
    """The clip facts a video thumbnail carries (see :func:`make_thumbnail`); None for a photo's."""
    duration, size, codec = (image.text(CLIP_TEXT[name]) for name in ("duration", "size", "codec"))
    width, _, height = size.partition("x")
    try:
        return ClipFacts(float(duration), int(width), int(height), codec)
    except ValueError:  # no text (a photo), or not ours
        return None


def load_or_make(path: str, key: str, edge: int) -> QImage:
    """The cached thumbnail, or a new one made from the photo and saved to the cache.

    Raises:
        ImageError: the photo cannot be read.
    """
    cached = thumb_file(key)
    if cached.exists():
        image = QImage(str(cached))
        if not image.isNull():
            return image
    image = make_thumbnail(Path(path), edge)
    cached.parent.mkdir(parents=True, exist_ok=True)
    temp = cached.with_suffix(f".{os.getpid()}.tmp")
    # A thumbnail the cache cannot keep is still shown; it is made again next time.
    if image.save(str(temp), "JPG", 85):
        os.replace(temp, cached)
    return image


class _Relay(QObject):
    loaded = Signal(str, QImage)
    failed = Signal(str, str)


class _Job(QRunnable):
    def __init__(self, relay: _Relay, path: str, key: str, edge: int) -> None:
        super().__init__()
        self.relay, self.path, self.key, self.edge = relay, path, key, edge

    def run(self) -> None:
        try:
            image = load_or_make(self.path, self.key, self.edge)
        except ImageError as exc:
            self.relay.failed.emit(self.key, str(exc))
            return
        except OSError as exc:
            self.relay.failed.emit(self.key, f"Cannot cache the thumbnail: {exc.strerror}")
            return
        self.relay.loaded.emit(self.key, image)


class ThumbnailCache(QObject):
    """Asks for thumbnails without blocking: :meth:`get` answers from memory or queues the work and says
    ``ready(key)`` when it lands (``failed(key)`` when the photo cannot be read)."""

    ready = Signal(str)
    failed = Signal(str)

    def __init__(self, edge: int, threads: int | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.edge = edge
        self.pool = QThreadPool(self)
        # Leave a core for the interface (and the engine): decoding is CPU-bound.
        self.pool.setMaxThreadCount(threads or max(1, min(4, QThread.idealThreadCount() - 1)))
        self._memory: OrderedDict[str, QPixmap] = OrderedDict()
        self._clips: dict[str, ClipFacts] = {}
        self._errors: dict[str, str] = {}
        self._pending: set[str] = set()
        self._order = itertools.count()
        self._relay = _Relay(self)
        self._relay.loaded.connect(self._loaded)
        self._relay.failed.connect(self._failed)

    def key(self, path: str, size: int, mtime_ns: int) -> str:
        return thumb_key(path, size, mtime_ns, self.edge)

    def get(self, path: str, size: int, mtime_ns: int) -> QPixmap | None:
        """The thumbnail if it is ready; otherwise None, and it is on its way."""
        return self.get_by_key(self.key(path, size, mtime_ns), path)

    def get_by_key(self, key: str, path: str) -> QPixmap | None:
        """:meth:`get` for a caller that already has the key (the grid, on every paint)."""
        pixmap = self._memory.get(key)
        if pixmap is not None:
            self._memory.move_to_end(key)
            return pixmap
        if key not in self._pending and key not in self._errors:
            self._pending.add(key)
            # Later requests first: what the user scrolled to now matters more than what flew past.
            self.pool.start(_Job(self._relay, path, key, self.edge), next(self._order) % 1_000_000)
        return None

    def clip(self, key: str) -> ClipFacts | None:
        """The facts of the video clip whose thumbnail has this key, once it has been loaded."""
        return self._clips.get(key)

    def error(self, path: str, size: int, mtime_ns: int) -> str | None:
        """Why the photo has no thumbnail, if it could not be read."""
        return self._errors.get(self.key(path, size, mtime_ns))

    def forget_queued(self) -> None:
        """Drop requests not started yet (after a jump through the grid); visible ones are asked again."""
        self.pool.clear()
        self._pending.clear()

    def wait(self, msecs: int = 10_000) -> bool:
        self.pool.clear()
        return self.pool.waitForDone(msecs)

    @Slot(str, QImage)
    def _loaded(self, key: str, image: QImage) -> None:
        self._pending.discard(key)
        self._memory[key] = QPixmap.fromImage(image)
        facts = clip_facts(image)
        if facts is not None:
            self._clips[key] = facts
        while len(self._memory) > MEMORY_LIMIT:
            self._memory.popitem(last=False)
        self.ready.emit(key)

    @Slot(str, str)
    def _failed(self, key: str, message: str) -> None:
        self._pending.discard(key)
        self._errors[key] = message
        self.failed.emit(key)
