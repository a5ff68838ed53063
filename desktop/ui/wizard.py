"""The first-run wizard's behaviour: probe the hardware, rank the profiles, download the chosen model (with
progress, cancel and resume), run one test caption through the engine host, and hand back the settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from PIL import Image, ImageDraw
from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QTableWidgetItem, QWidget

from captioneer.backends.base import BackendInfo, EngineConfig, ProgressCallback
from captioneer.backends.cancel import CancelToken
from captioneer.backends.download import InstalledModel, installed_model, pull
from captioneer.backends.errors import Cancelled, CaptioneerError, window_text
from captioneer.backends.hardware import HardwareFacts
from captioneer.backends.hardware_probes import probe_hardware
from captioneer.backends.recommend import Profile, recommend
from captioneer.desktop.core.captioning import CaptionResult, caption_file
from captioneer.desktop.core.clip_costs import clip_budget_estimate
from captioneer.desktop.core.engine_setup import engine_config
from captioneer.desktop.core.fixes import FIX_BUTTONS, WindowError, window_error
from captioneer.desktop.core.paths import cache_dir, models_dir
from captioneer.desktop.core.settings import Settings
from captioneer.desktop.core.tasks import get_task
from captioneer.desktop.ui.own_files import OwnFiles
from captioneer.desktop.ui.wizard_view import SetupWizardView
from captioneer.desktop.ui.workers import BackendOpener, Call, host_opener

Prober = Callable[[Settings], HardwareFacts]
TestOutcome = tuple[CaptionResult, BackendInfo] | WindowError


def probe_this_computer(settings: Settings) -> HardwareFacts:
    return probe_hardware(models_dir(), ollama=settings.ollama_host)


def hardware_lines(facts: HardwareFacts) -> list[tuple[str, str]]:
    """The probed facts as short lines for people; a fact that could not be probed says why."""
    gpu = facts.gpu
    if gpu is None:
        graphics = "No graphics processor found — models run on the processor (slower, but it works)."
    else:
        usable = gpu.usable_gb.value
        graphics = f"{gpu.name.value or gpu.vendor}" + (f", {usable:.1f} GB usable" if usable else "")
    ram, cores, disk = facts.ram_gb.value, facts.cores.value, facts.disk_free_gb.value
    engines = facts.engines.value or []
    ollama = facts.ollama
    return [
        ("Graphics", graphics),
        ("Memory", f"{ram:.0f} GB" if ram else f"unknown ({facts.ram_gb.source})"),
        ("Processor", f"{cores} cores" if cores else f"unknown ({facts.cores.source})"),
        ("Free disk space", f"{disk:.0f} GB for models" if disk is not None else "unknown"),
        ("Engines installed", ", ".join(engines) if engines else "none"),
        (
            "Ollama",
            f"running (version {ollama.version}) at {ollama.host}" if ollama.running
            else f"not running at {ollama.host}",
        ),
    ]


def profile_cells(profile: Profile) -> tuple[str, ...]:
    """One table row: model, engine, precision, image detail, memory and speed; with a clip estimate, a
    clip's memory and time too (``photos only`` where a clip does not fit)."""
    memory, speed = f"{profile.memory_gb:.1f} GB", f"≈ {profile.seconds_per_photo:.0f} s / photo"
    clip = profile.clip
    if clip is not None and clip.fits:
        memory += f" · clip {clip.memory.total_gb:.1f} GB"
        speed += f" · {clip.seconds:.0f} s / clip"
    elif clip is not None:
        memory += " · photos only"
    image = f"{profile.image_tokens} tokens"
    return (profile.variant.model.name, profile.engine, profile.quant, image, memory, speed)


@dataclass(frozen=True)
class ModelReady:
    """Where the chosen model is, once downloaded (or pulled into Ollama)."""

    model: str
    mmproj: str | None = None


def ready_from_installed(installed: InstalledModel) -> ModelReady:
    mmproj = str(installed.mmproj_path) if installed.mmproj_path is not None else None
    return ModelReady(str(installed.model_path), mmproj)


def profile_settings(settings: Settings, profile: Profile, ready: ModelReady) -> Settings:
    """The settings after choosing ``profile``: engine, model files, precision and image budget."""
    return settings.model_copy(
        update={
            "engine": profile.engine,
            "model": ready.model,
            "mmproj": ready.mmproj,
            "quant": profile.quant if profile.variant.entry.quant_choice else None,
            "image_tokens": profile.image_tokens,
            "first_run_done": True,
        }
    )


def draw_test_picture(path: Path) -> Path:
    """A small scene (sky, sun, hills, a house) that every model can describe."""
    image = Image.new("RGB", (640, 480), "#8ec5ff")
    draw = ImageDraw.Draw(image)
    draw.ellipse((470, 50, 570, 150), fill="#ffd34d")
    draw.polygon([(0, 330), (200, 240), (420, 320), (640, 250), (640, 480), (0, 480)], fill="#4f9d4a")
    draw.rectangle((250, 270, 390, 380), fill="#c0392b")
    draw.polygon([(235, 275), (320, 205), (405, 275)], fill="#6d3b1f")
    draw.rectangle((305, 320, 335, 380), fill="#4a2c12")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


class SetupWizard(SetupWizardView):
    """Launch → a working model, without reading anything else. ``chosen_settings()`` after ``exec()``."""

    def __init__(
        self,
        settings: Settings,
        parent: QWidget | None = None,
        *,
        prober: Prober = probe_this_computer,
        endpoint: str | None = None,
        opener: BackendOpener | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        self.endpoint = endpoint
        self.opener = opener or host_opener(settings)
        self.facts: HardwareFacts | None = None
        self.profiles: list[Profile] = []
        self.ready: ModelReady | None = None
        self.test_result: CaptionResult | None = None
        self.test_info: BackendInfo | None = None
        self._calls: list[Call] = []
        self._download: Call | None = None
        self._test: Call | None = None

        self.own_files = OwnFiles(self.hardware_page.own_files, self, lambda: self.profiles)
        self.own_files.changed.connect(self._own_files_changed)
        self.hardware_page.complete_when = lambda: (
            self.selected_profile() is not None or self.own_files.ready()
        )
        self.download_page.complete_when = lambda: self.ready is not None
        self.test_page.complete_when = lambda: self.test_result is not None and self.test_result.ok
        self.hardware_page.table.itemSelectionChanged.connect(self._selection_changed)
        self.hardware_page.videos.toggled.connect(lambda _on: self._show_profiles())
        self.download_page.download_button.clicked.connect(self.start_download)
        self.download_page.cancel_button.clicked.connect(self.cancel_download)
        self.test_page.retry_button.clicked.connect(self.start_test)
        self.test_page.fix_button.clicked.connect(self._fix_test)
        self._test_fix: str | None = None
        self.currentIdChanged.connect(self._page_entered)
        self._run(lambda progress, cancel: prober(settings), self._probed, self._probe_failed)

    # -- threads -----------------------------------------------------------------------------------------

    def _run(
        self,
        work: Callable[[ProgressCallback, CancelToken], object],
        on_success: Callable[[object], None],
        on_failure: Callable[[str], None],
        on_progress: Callable[[float, str], None] | None = None,
        on_cancel: Callable[[], None] | None = None,
    ) -> Call:
        call = Call(work, self)
        call.succeeded.connect(on_success)
        call.failed.connect(on_failure)
        if on_progress is not None:
            call.progress.connect(on_progress)
        if on_cancel is not None:
            call.cancelled.connect(on_cancel)
        self._calls.append(call)
        return call.start()

    def done(self, result: int) -> None:  # Qt override: closing mid-download or mid-test stops it first
        for call in self._calls:
            if call.running:
                call.wait()
        super().done(result)

    # -- page 1: this computer ---------------------------------------------------------------------------

    def _probed(self, facts: object) -> None:
        assert isinstance(facts, HardwareFacts)
        self.facts = facts
        page = self.hardware_page
        page.checking.hide()
        for label, value in hardware_lines(facts):
            page.add_fact(label, value)
        self._show_profiles()

    def _show_profiles(self) -> None:
        """Rank the profiles for the probed computer (for clips too when the library has videos)."""
        if self.facts is None:
            return
        page = self.hardware_page
        videos = page.videos.isChecked()
        clips = clip_budget_estimate(self.settings.video_tokens) if videos else None
        self.profiles = recommend(self.facts, clips=clips)
        table = page.table
        table.clearSelection()
        table.setRowCount(len(self.profiles))
        for row, profile in enumerate(self.profiles):
            for column, text in enumerate(profile_cells(profile)):
                if row == 0 and column == 0:
                    text = f"★ {text}"
                item = QTableWidgetItem(text)
                item.setToolTip(profile.reason)
                table.setItem(row, column, item)
        if self.profiles:
            table.selectRow(0)
        else:
            page.reason.setText(
                "No model fits this computer's memory. Close other programs, or use Ollama or an "
                "OpenAI-compatible server on another computer (Settings ▸ Engine)."
            )
        page.completeChanged.emit()

    def _probe_failed(self, message: str) -> None:
        self.hardware_page.checking.setText(f"Checking this computer failed: {message}")

    def selected_profile(self) -> Profile | None:
        rows = self.hardware_page.table.selectionModel().selectedRows()
        return self.profiles[rows[0].row()] if rows and rows[0].row() < len(self.profiles) else None

    def _selection_changed(self) -> None:
        profile = self.selected_profile()
        if profile is not None:
            self.own_files.clear()
        self.hardware_page.reason.setText(f"Why: {profile.reason}" if profile else "")
        self.ready = None
        self.test_result = None
        self.hardware_page.completeChanged.emit()

    def _own_files_changed(self, own: object) -> None:
        """Picked files replace the recommended download (and a row picked later replaces them)."""
        if own is not None:
            self.hardware_page.table.clearSelection()
            self.hardware_page.reason.setText("Using your own model files (below) instead of a download.")
        self.ready = None
        self.test_result = None
        self.hardware_page.completeChanged.emit()

    # -- page 2: download --------------------------------------------------------------------------------

    def _page_entered(self, page_id: int) -> None:
        page = self.page(page_id)
        if page is self.download_page:
            self._prepare_download()
        elif page is self.test_page and self.test_result is None:
            own = self.own_files.own
            if self.own_files.ready() and own is not None:  # used where they are
                self.ready = ModelReady(str(own.model), str(own.mmproj) if own.mmproj else None)
            self.start_test()

    def nextId(self) -> int:  # Qt override: the user's own files need no download page
        if self.currentPage() is self.hardware_page and self.own_files.ready():
            return next(page_id for page_id in self.pageIds() if self.page(page_id) is self.test_page)
        return super().nextId()

    def _prepare_download(self) -> None:
        page = self.download_page
        profile = self.selected_profile()
        assert profile is not None
        variant = profile.variant
        if variant.entry.server_pulls_models:
            page.what.setText(f"{variant.model.name}, {variant.quant}, pulled by Ollama as {variant.tag} "
                              f"({variant.download_gb:.1f} GB).")
            page.where.setText("Ollama keeps its own copy of the model.")
            page.download_button.setText("Pull with Ollama")
        else:
            page.what.setText(f"{variant.model.name}, {variant.quant} for the {variant.engine} engine: "
                              f"{variant.download_gb:.1f} GB from {variant.repo} on Hugging Face.")
            page.where.setText(f"Saved in {models_dir()}")
            installed = installed_model(variant, models_dir())
            if installed is not None:
                self._downloaded(installed)
                return
            page.download_button.setText("Download")
        page.progress.setValue(0)
        page.status.setText("")
        page.download_button.setEnabled(True)
        page.completeChanged.emit()

    def start_download(self) -> None:
        profile = self.selected_profile()
        assert profile is not None
        variant = profile.variant
        page = self.download_page
        page.download_button.setEnabled(False)
        page.cancel_button.setEnabled(True)
        page.status.setText("Starting…")
        if variant.entry.server_pulls_models:
            host, tag = self.settings.ollama_host, variant.tag or ""

            def work(progress: ProgressCallback, cancel: CancelToken) -> ModelReady:
                from captioneer.backends.ollama_engine import pull_model

                pull_model(host, tag, progress, cancel)
                return ModelReady(tag)
        else:
            endpoint = self.endpoint

            def work(progress: ProgressCallback, cancel: CancelToken) -> ModelReady:
                return ready_from_installed(
                    pull(variant, models_dir(), endpoint=endpoint, progress=progress, cancel=cancel)
                )

        self._download = self._run(work, self._download_done, self._download_failed,
                                   self._download_progress, self._download_cancelled)

    def cancel_download(self) -> None:
        if self._download is not None:
            self._download.cancel()
            self.download_page.status.setText("Stopping…")

    def _download_progress(self, fraction: float, message: str) -> None:
        page = self.download_page
        page.progress.setValue(round(max(0.0, min(1.0, fraction)) * 1000))
        page.progress.setFormat(f"{fraction:.0%}")
        page.status.setText(message)

    def _downloaded(self, installed: InstalledModel) -> None:
        self._download_done(ready_from_installed(installed), "Already downloaded and complete ✓")

    def _download_done(self, ready: object, message: str = "Downloaded and checked ✓") -> None:
        assert isinstance(ready, ModelReady)
        self.ready = ready
        page = self.download_page
        page.progress.setValue(1000)
        page.progress.setFormat("100%")
        page.status.setText(message)
        page.download_button.setEnabled(False)
        page.cancel_button.setEnabled(False)
        page.completeChanged.emit()

    def _download_failed(self, message: str) -> None:
        page = self.download_page
        page.status.setText(f"The download failed: {message}")
        page.download_button.setText("Try again")
        page.download_button.setEnabled(True)
        page.cancel_button.setEnabled(False)

    def _download_cancelled(self) -> None:
        page = self.download_page
        page.status.setText("Paused. What was downloaded is kept: Resume continues where it stopped.")
        page.download_button.setText("Resume")
        page.download_button.setEnabled(True)
        page.cancel_button.setEnabled(False)

    # -- page 3: test caption ----------------------------------------------------------------------------

    def engine_config(self) -> EngineConfig:
        return engine_config(self.chosen_settings())

    def start_test(self) -> None:
        page = self.test_page
        picture = draw_test_picture(cache_dir() / "wizard-test.png")
        pixmap = QPixmap(str(picture)).scaled(page.picture.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                              Qt.TransformationMode.SmoothTransformation)
        page.picture.setPixmap(pixmap)
        page.caption.setText("Loading the model and captioning the test picture…")
        page.measured.setText("")
        page.progress.show()
        page.retry_button.hide()
        page.fix_button.hide()
        self.test_result = None
        page.completeChanged.emit()
        config, opener = self.engine_config(), self.opener

        def work(progress: ProgressCallback, cancel: CancelToken) -> TestOutcome:
            backend = opener(config)
            try:
                backend.load(progress, cancel)
                result = caption_file(backend, picture, get_task("caption"),
                                      image_tokens=config.image_tokens, cancel=cancel)
                info = backend.info()
            except Cancelled:
                raise
            except CaptioneerError as exc:
                return window_error(exc)  # the window's wording and its fix, not the command line's
            finally:
                backend.unload()
            return result, info

        self._test = self._run(work, self._tested, self._test_failed,
                               lambda _f, message: page.caption.setText(message))

    def _tested(self, value: object) -> None:
        page = self.test_page
        if isinstance(value, WindowError):
            self._test_failed(value.text, value.fix)
            return
        result, info = cast(tuple[CaptionResult, BackendInfo], value)
        page.progress.hide()
        page.retry_button.show()
        if not result.ok:
            self._test_failed(window_text(result.error) if result.error else "no answer")
            return
        self.test_result, self.test_info = result, info
        profile = self.selected_profile()
        memory = f"{info.memory_bytes / 1024**3:.1f} GB" if info.memory_bytes else "not reported"
        estimate = (f" (estimated ≈ {profile.seconds_per_photo:.0f} s and {profile.memory_gb:.1f} GB)"
                    if profile else "")
        page.caption.setText(f"“{result.text}”")
        page.measured.setText(f"Measured here: {result.seconds:.1f} s per image, memory {memory}{estimate}. "
                              "Press “Save and start” to use this model.")
        page.completeChanged.emit()

    def _test_failed(self, message: str, fix: str | None = None) -> None:
        page = self.test_page
        page.progress.hide()
        page.retry_button.show()
        page.caption.setText(f"The test caption failed: {message}")
        page.measured.setText("Go back to pick another profile, or run the test again.")
        self._test_fix = fix
        if fix is not None:
            # Inside the wizard every other fix is made by picking again on its first page.
            page.fix_button.setText(
                FIX_BUTTONS[fix] if fix == "choose_mmproj" else "Back to the Model Choice"
            )
            page.fix_button.show()

    def _fix_test(self) -> None:
        """The test's fix, inside the wizard: choose the projector and test again, or go back to page one."""
        own = self.own_files.own
        if self._test_fix == "choose_mmproj" and own is not None:
            self.own_files.choose_mmproj()
            own = self.own_files.own
            if self.own_files.ready() and own is not None:
                self.ready = ModelReady(str(own.model), str(own.mmproj))
                self.start_test()
            return
        self.restart()

    # -- result ------------------------------------------------------------------------------------------

    def chosen_settings(self) -> Settings:
        """The settings to save: the chosen profile with its downloaded files, or the user's own files with
        the image detail recommended for them."""
        profile = self.selected_profile()
        if self.ready is None or (profile is None and not self.own_files.ready()):
            raise RuntimeError("the wizard has not finished")
        if profile is None:
            return self.own_files.settings(self.settings)
        return profile_settings(self.settings, profile, self.ready)
