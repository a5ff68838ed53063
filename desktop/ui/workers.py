"""Workers that keep the window responsive: captioning on a QThread through the engine host process, and
thumbnails, folder scans and pasted images in a thread pool. Nothing here runs a model on the GUI thread."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps
from PySide6.QtCore import QObject, QRunnable, Qt, QThread, QThreadPool, Signal, Slot
from PySide6.QtGui import QImage

from captioneer.backends.base import Backend, EngineConfig, ProgressCallback
from captioneer.backends.cancel import CancelToken
from captioneer.backends.errors import (
    Cancelled,
    CaptioneerError,
    EngineCrashedError,
    ImageError,
    marked_text,
)
from captioneer.backends.request import SamplingOptions
from captioneer.desktop.core.captioning import CaptionResult, caption_file
from captioneer.desktop.core.engine_setup import open_backend
from captioneer.desktop.core.images import decode_image, to_rgb
from captioneer.desktop.core.paths import cache_dir
from captioneer.desktop.core.settings import Settings
from captioneer.desktop.core.tasks import TaskOptions, get_task
from captioneer.desktop.core.video import is_video_path, poster_frame, probe
from captioneer.desktop.ui.quick_caption import Collected, collect_images

BackendOpener = Callable[[EngineConfig], Backend]


def host_opener(settings: Settings) -> BackendOpener:
    """The window's way to an engine: always through the engine host process, recycled per the settings."""

    def open_hosted(config: EngineConfig) -> Backend:
        return open_backend(settings, config)

    return open_hosted


@dataclass(frozen=True)
class CaptionJob:
    """One image to answer for one card."""

    card_id: int
    path: Path
    task_id: str
    task_options: TaskOptions
    sampling: SamplingOptions
    image_tokens: int


class CaptionWorker(QObject):
    """Owns the backend and runs batches of jobs, one image at a time, on its own thread.

    Every signal carries the card id it is about. A batch stops at once when its cancel token is set; the
    images it did not reach are reported as cancelled. A failing image never stops the others.
    """

    jobStarted = Signal(int)
    chunk = Signal(int, str)
    retrying = Signal(int, str)
    finished = Signal(int, object)  # card id, CaptionResult (ok or failed)
    cancelled = Signal(int)
    engineLoading = Signal(str)
    engineReady = Signal(object)  # BackendInfo
    engineFailed = Signal(str)
    engineError = Signal(object)  # the exception behind engineFailed, for the window's fix-it banner
    batchDone = Signal()
    stopped = Signal()

    def __init__(self, opener: BackendOpener) -> None:
        super().__init__()
        self._opener = opener
        self._backend: Backend | None = None
        self._config: EngineConfig | None = None

    @Slot(object, object, object)
    def run_batch(self, config: EngineConfig, jobs: Sequence[CaptionJob], cancel: CancelToken) -> None:
        try:
            self._run_batch(config, jobs, cancel)
        finally:
            self.batchDone.emit()  # even after a bug, so the window never stays "busy"

    def _run_batch(self, config: EngineConfig, jobs: Sequence[CaptionJob], cancel: CancelToken) -> None:
        for index, job in enumerate(jobs):
            if cancel.cancelled:
                self._cancel_rest(jobs[index:])
                break
            self.jobStarted.emit(job.card_id)
            try:
                backend = self._ensure_backend(config, cancel)
            except Cancelled:
                self._cancel_rest(jobs[index:])
                break
            except CaptioneerError as exc:
                self.engineFailed.emit(str(exc))
                self.engineError.emit(exc)
                for rest in jobs[index:]:
                    self.finished.emit(rest.card_id, _failed(rest, str(exc), "engine"))
                break
            try:
                result = self._run_one(backend, job, cancel)
            except Cancelled:
                self._cancel_rest(jobs[index:])
                break
            self.finished.emit(job.card_id, result)

    def _run_one(self, backend: Backend, job: CaptionJob, cancel: CancelToken) -> CaptionResult:
        started = time.perf_counter()
        try:
            result = caption_file(
                backend,
                job.path,
                get_task(job.task_id),
                task_options=job.task_options,
                sampling=job.sampling,
                image_tokens=job.image_tokens,
                on_chunk=lambda text: self.chunk.emit(job.card_id, text),
                on_retry=lambda reason: self.retrying.emit(job.card_id, reason),
                cancel=cancel,
            )
        except Cancelled:
            raise
        except EngineCrashedError as exc:
            self._drop_backend()  # the host restarts on the next image
            result = _failed(job, marked_text(exc), "engine-crashed")
        except CaptioneerError as exc:
            result = _failed(job, marked_text(exc), type(exc).__name__)
        except Exception:
            # A bug, not a bad photo: mark the card, then let the crash handler show the details.
            self.finished.emit(job.card_id, _failed(job, "Unexpected error — see the crash report.", "bug"))
            raise
        if result.seconds == 0.0:
            result.seconds = time.perf_counter() - started
        info = backend.info()
        result.extra.update({"engine": info.engine, "model": info.model, "quant": info.quant})
        self.engineReady.emit(info)
        return result

    def _ensure_backend(self, config: EngineConfig, cancel: CancelToken) -> Backend:
        if self._backend is not None and self._config == config:
            return self._backend
        self._drop_backend()
        self.engineLoading.emit(f"Loading {Path(config.model).name or config.model} ({config.engine})…")
        backend = self._opener(config)
        try:
            backend.load(
                progress=lambda fraction, message: self.engineLoading.emit(f"{message} ({fraction:.0%})"),
                cancel=cancel,
            )
        except BaseException:
            backend.unload()
            raise
        self._backend, self._config = backend, config
        self.engineReady.emit(backend.info())
        return backend

    def _drop_backend(self) -> None:
        backend, self._backend, self._config = self._backend, None, None
        if backend is not None:
            backend.unload()

    def _cancel_rest(self, jobs: Sequence[CaptionJob]) -> None:
        for job in jobs:
            self.cancelled.emit(job.card_id)

    @Slot()
    def release(self) -> None:
        """Free the engine until the next batch needs it (Compare Models runs its own meanwhile)."""
        self._drop_backend()

    @Slot()
    def shutdown(self) -> None:
        """Free the engine (the host process exits), then say so."""
        self._drop_backend()
        self.stopped.emit()


def _failed(job: CaptionJob, message: str, kind: str) -> CaptionResult:
    return CaptionResult(path=str(job.path), task=job.task_id, ok=False, error=message, error_kind=kind)


CLIP_TEXT = {"duration": "Captioneer-Duration", "size": "Captioneer-Size", "codec": "Captioneer-Codec"}
"""The image text keys a video thumbnail carries its clip's facts under (JPEG comments in the disk cache)."""


def make_thumbnail(path: Path, edge: int) -> QImage:
    """A small, EXIF-oriented preview of any file the engines can read (HEIC and RAW included); for a video
    clip its poster frame, upright, with the clip's length, size and codec as image text (:data:`CLIP_TEXT`).

    Raises:
        ImageError: the file cannot be read; the message says why (a VideoError for a clip).
    """
    if is_video_path(path):
        info = probe(path)
        thumbnail = _qimage(poster_frame(path, edge))
        thumbnail.setText(CLIP_TEXT["duration"], f"{info.duration:.3f}")
        thumbnail.setText(CLIP_TEXT["size"], f"{info.width}x{info.height}")
        thumbnail.setText(CLIP_TEXT["codec"], info.codec)
        return thumbnail
    image = decode_image(path)
    try:
        oriented = ImageOps.exif_transpose(image) or image
        oriented.thumbnail((edge, edge))
        rgb = to_rgb(oriented)
    finally:
        image.close()
    return _qimage(rgb)


def _qimage(image: Image.Image) -> QImage:
    rgba = image.convert("RGBA")
    data = rgba.tobytes()
    return QImage(data, rgba.width, rgba.height, rgba.width * 4, QImage.Format.Format_RGBA8888).copy()


class BackgroundRelay(QObject):
    """Lives on the GUI thread; pool tasks emit through it so results arrive as queued signals."""

    thumbnailReady = Signal(int, QImage)
    thumbnailFailed = Signal(int, str)
    collected = Signal(object)  # Collected
    pasteSaved = Signal(object)  # Path
    pasteFailed = Signal(str)


class _Task(QRunnable):
    def __init__(self, work: Callable[[], None]) -> None:
        super().__init__()
        self._work = work

    def run(self) -> None:
        self._work()


_paste_counter = itertools.count(1)


class Background(QObject):
    """Small jobs off the GUI thread: thumbnails, folder expansion and saving pasted images."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.relay = BackgroundRelay(self)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(2)

    def thumbnail(self, card_id: int, path: Path, edge: int) -> None:
        relay = self.relay

        def work() -> None:
            try:
                image = make_thumbnail(path, edge)
            except ImageError as exc:
                relay.thumbnailFailed.emit(card_id, str(exc))
                return
            relay.thumbnailReady.emit(card_id, image)

        self.pool.start(_Task(work))

    def collect(self, paths: Sequence[Path]) -> None:
        relay, paths = self.relay, list(paths)

        def work() -> None:
            collected: Collected = collect_images(paths)
            relay.collected.emit(collected)

        self.pool.start(_Task(work))

    def save_pasted(self, image: QImage) -> None:
        """Pasted pixels become a PNG in the cache folder, so they are captioned like any file."""
        relay = self.relay
        folder = cache_dir() / "pasted"
        path = folder / f"pasted-{time.strftime('%Y%m%d-%H%M%S')}-{next(_paste_counter)}.png"

        def work() -> None:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                relay.pasteFailed.emit(f"Cannot save the pasted image in {folder}: {exc.strerror}")
                return
            if image.save(str(path), "PNG"):
                relay.pasteSaved.emit(path)
            else:
                relay.pasteFailed.emit(f"Cannot save the pasted image as {path}.")

        self.pool.start(_Task(work))

    def wait(self, msecs: int = 5000) -> bool:
        return self.pool.waitForDone(msecs)


Work = Callable[[ProgressCallback, CancelToken], object]


class _CallWorker(QObject):
    progress = Signal(float, str)
    succeeded = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    done = Signal()

    def __init__(self, work: Work, token: CancelToken) -> None:
        super().__init__()
        self._work = work
        self._token = token

    @Slot()
    def run(self) -> None:
        try:
            value = self._work(lambda fraction, message: self.progress.emit(fraction, message), self._token)
        except Cancelled:
            self.cancelled.emit()
        except CaptioneerError as exc:
            self.failed.emit(str(exc))
        else:
            self.succeeded.emit(value)
        finally:
            self.done.emit()


class Call(QObject):
    """One long action (probe, download, verify, test caption) on its own thread, with progress and cancel.

    ``work(progress, cancel)`` runs off the GUI thread; exactly one of ``succeeded``, ``failed`` or
    ``cancelled`` follows, then ``finished``.
    """

    progress = Signal(float, str)
    succeeded = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    finished = Signal()

    def __init__(self, work: Work, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.token = CancelToken()
        self.running = False
        self._thread = QThread(self)
        self._worker = _CallWorker(work, self.token)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.progress.connect(self.progress)
        self._worker.succeeded.connect(self.succeeded)
        self._worker.failed.connect(self.failed)
        self._worker.cancelled.connect(self.cancelled)
        self._worker.done.connect(self._thread.quit, Qt.ConnectionType.DirectConnection)
        self._worker.done.connect(self._finish)

    def start(self) -> Call:
        self.running = True
        self._thread.start()
        return self

    def cancel(self) -> None:
        self.token.cancel()

    def wait(self, msecs: int = 30_000) -> bool:
        """Cancel and wait for the thread (used when a dialog closes mid-action)."""
        self.token.cancel()
        return self._thread.wait(msecs)

    @Slot()
    def _finish(self) -> None:
        self.running = False
        self.finished.emit()
