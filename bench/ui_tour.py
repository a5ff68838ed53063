"""The screenshot tour: drives the windows through every state, first start to written metadata, and saves
each state as numbered PNGs in the light and the dark theme (switched live, as a user would).

Run under a real X server so fonts and styles are the user's:

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python bench/ui_tour.py /tmp/tour

It uses the real gguf engine on the tiny model in tests/fixtures/tiny-qwen3vl-gguf (made by
tests/fixtures/make_tiny_models.py; its words are noise, its timing and streaming are real) through the engine
host process, a fresh CAPTIONEER_HOME in a temporary folder, photos it draws itself, and exiftool to show what
was written. Each state is a small step function in STEPS: add a new state by writing one and listing it.
``--only NAME[,NAME…]`` runs the steps up to and including those named, shooting only those.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TINY_GGUF = ROOT / "tests" / "fixtures" / "tiny-qwen3vl-gguf"


@dataclass
class Tour:
    """What the steps share: the output folder, the app, the windows opened so far, the photos."""

    out: Path
    home: Path
    app: Any = None
    shots: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    main: Any = None  # MainWindow
    library: Any = None  # LibraryWindow
    dialog: Any = None  # the dialog a step left open
    photos: Path | None = None
    shooting: bool = True
    _number: int = 0

    def pump(self, seconds: float = 0.15) -> None:
        """Let Qt paint and deliver queued signals for ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.app.processEvents()
            time.sleep(0.01)

    def wait(self, what: str, done: Callable[[], bool], timeout: float = 120.0) -> bool:
        """Process events until ``done()``; a timeout is recorded as a problem, not an exception."""
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                self.problems.append(f"timed out after {timeout:.0f} s waiting for {what}")
                return False
            self.app.processEvents()
            time.sleep(0.01)
        return True

    def show(self, name: str, widget: Any, settle: float = 0.4) -> None:
        """Show ``widget`` (a window or a dialog), let it settle, and shoot it."""
        widget.show()
        self.pump(settle)
        self.shot(name, widget)

    def shot(self, name: str, widget: Any) -> None:
        """Save ``widget`` as NN-name-light.png and NN-name-dark.png, switching the theme live between."""
        from captioneer.desktop.ui.theme import apply_theme

        if not self.shooting:
            return
        self._number += 1
        for theme in ("light", "dark"):
            apply_theme(self.app, theme)
            self.pump(0.3)
            path = self.out / f"{self._number:02d}-{name}-{theme}.png"
            if not widget.grab().save(str(path)):
                self.problems.append(f"could not save {path}")
            self.shots.append(path)
        apply_theme(self.app, "light")
        self.pump(0.1)


def shoot_modal(tour: Tour, name: str, open_modal: Callable[[], object]) -> None:
    """Shoot the modal dialog ``open_modal`` shows (it blocks in ``exec``), then close it as Cancel would."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    def shoot() -> None:
        dialog = QApplication.activeModalWidget()
        if dialog is None:
            tour.problems.append(f"{name}: no dialog opened")
            return
        tour.pump(0.3)
        tour.shot(name, dialog)
        dialog.reject()  # type: ignore[attr-defined]

    QTimer.singleShot(300, shoot)
    open_modal()


def tiny_overrides() -> Any:
    from captioneer.desktop.core.engine_setup import Overrides

    return Overrides(
        engine="gguf",
        model=str(TINY_GGUF / "model.gguf"),
        image_tokens=64,
        options={"mmproj": str(TINY_GGUF / "mmproj.gguf"), "threads": 2},
    )


def draw_photos(folder: Path) -> list[Path]:
    """Three small JPEGs of coloured shapes and one file cut short, for the failed card."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (sky, thing) in enumerate(
        (("skyblue", "tomato"), ("khaki", "seagreen"), ("lavender", "royalblue"))
    ):
        image = Image.new("RGB", (480, 360), sky)
        draw = ImageDraw.Draw(image)
        draw.rectangle((0, 250, 480, 360), fill="olivedrab")
        draw.ellipse((140 + 20 * i, 90, 340, 290), fill=thing)
        path = folder / f"DSC_{i:04d}.jpg"
        image.save(path, quality=90)
        paths.append(path)
    return paths


def draw_clip(path: Path, seconds: float, *, rotation: int = 0, thing: str = "tomato") -> Path:
    """A small H.264 clip of a ball rolling across a meadow (PyAV); ``rotation`` stores it turned, as phones
    store portrait clips, so the thumbnail must turn it back."""
    import av
    import numpy as np
    from PIL import Image, ImageDraw

    fps, width, height = 12, 320, 180
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if rotation:
            stream.set_display_rotation(-rotation)  # FFmpeg counts counter-clockwise
        for index in range(round(seconds * fps)):
            image = Image.new("RGB", (width, height), "skyblue")
            draw = ImageDraw.Draw(image)
            draw.rectangle((0, 120, width, height), fill="olivedrab")
            x = 20 + index * (width - 80) // round(seconds * fps)
            draw.ellipse((x, 70, x + 60, 130), fill=thing)
            frame = av.VideoFrame.from_ndarray(np.asarray(image), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


# -- the steps, in order -------------------------------------------------------------------------------------


def first_start(tour: Tour) -> None:
    """A new user's first start: no model set up, the banner offers the wizard."""
    from captioneer.desktop.ui.main_window import MainWindow

    tour.main = MainWindow()
    tour.main.view.resize(1180, 780)
    tour.show("first-start", tour.main.view)


def wizard(tour: Tour) -> None:
    """The setup wizard's first page: this computer and the recommended models."""
    from captioneer.desktop.ui.wizard import SetupWizard

    dialog = SetupWizard(tour.main.settings, tour.main.view)
    dialog.show()
    tour.wait("the wizard's hardware probe", lambda: dialog.hardware_page.table.rowCount() > 0, 60)
    tour.pump(0.3)
    tour.shot("wizard", dialog)
    dialog.reject()


def settings(tour: Tour) -> None:
    from captioneer.desktop.ui.settings_dialog import SettingsDialog

    dialog = SettingsDialog(tour.main.settings, tour.main.view)
    tour.show("settings", dialog)
    dialog.error.setText("Some values are not valid — (an example of the error line)")
    dialog.error.show()
    tour.show("settings-error", dialog)
    dialog.reject()


def model_manager(tour: Tour) -> None:
    from captioneer.desktop.ui.model_manager import ModelManagerDialog

    dialog = ModelManagerDialog(tour.main.settings, tour.main.view)
    tour.show("model-manager", dialog)
    dialog.reject()


def empty_quick_window(tour: Tour) -> None:
    """The quick-caption window with the tiny model set up (as the wizard would leave it), no images yet."""
    from captioneer.desktop.core.settings import load_settings, save_settings
    from captioneer.desktop.ui.main_window import MainWindow

    save_settings(load_settings().model_copy(update={"first_run_done": True, "max_tokens": 160}))
    tour.main.view.close()
    tour.main.shutdown()
    tour.main = MainWindow(tiny_overrides())
    tour.main.view.resize(1180, 780)
    tour.show("empty-quick-window", tour.main.view)


def images_added(tour: Tour) -> None:
    """Photos dropped: cards with thumbnails, waiting while the engine loads."""
    assert tour.photos is not None
    paths = sorted(tour.photos.glob("*.jpg"))
    bad = tour.photos.parent / "damaged" / "IMG_cut.jpg"
    bad.parent.mkdir(exist_ok=True)
    bad.write_bytes(paths[0].read_bytes()[:3000])
    tour.results = []  # type: ignore[attr-defined]
    tour.main.resultReady.connect(tour.results.append)  # type: ignore[attr-defined]
    tour.main.add_paths([*paths, bad])
    tour.wait("the cards", lambda: len(tour.main.card_list.cards) == 4, 20)
    tour.wait(
        "the thumbnails",
        lambda: all(
            card.view.thumbnail.pixmap() is not None
            and not card.view.thumbnail.pixmap().isNull()
            or card.view.thumbnail.text() == "No preview"
            for card in tour.main.card_list.cards.values()
        ),
        20,
    )
    tour.shot("images-added", tour.main.view)


def streaming(tour: Tour) -> None:
    """An answer arriving word by word."""
    cards = list(tour.main.card_list.cards.values())
    tour.wait("the first streamed words", lambda: any(len(card.streamed) >= 3 for card in cards), 180)
    tour.shot("streaming", tour.main.view)


def done(tour: Tour) -> None:
    """Every card answered; the damaged file failed in its own card with a plain reason."""
    tour.wait("every answer", lambda: len(tour.results) >= 4, 300)  # type: ignore[attr-defined]
    tour.pump(0.3)
    tour.shot("done", tour.main.view)


def failed_card(tour: Tour) -> None:
    """The failed card alone, its reason readable in both themes."""
    card = next(c for c in tour.main.card_list.cards.values() if c.path.name == "IMG_cut.jpg")
    tour.main.view.scroll.ensureWidgetVisible(card.view)
    tour.pump(0.2)
    tour.shot("failed-card", card.view)


def follow_up(tour: Tour) -> None:
    """A follow-up question asked on the first card, its answer under the caption."""
    card = next(iter(tour.main.card_list.cards.values()))
    before = len(tour.results)  # type: ignore[attr-defined]
    tour.main.follow_up(card, "What colour is the sky?")
    tour.wait("the follow-up answer", lambda: len(tour.results) > before, 180)  # type: ignore[attr-defined]
    tour.main.view.scroll.ensureWidgetVisible(card.view)
    tour.pump(0.3)
    tour.shot("follow-up", tour.main.view)


def history(tour: Tour) -> None:
    """Re-run on the first card: the new answer is kept beside the old one (browse with ◀ ▶)."""
    card = next(iter(tour.main.card_list.cards.values()))
    before = len(tour.results)  # type: ignore[attr-defined]
    card.view.rerun_button.click()
    tour.wait("the re-run answer", lambda: len(tour.results) > before, 180)  # type: ignore[attr-defined]
    tour.main.view.scroll.ensureWidgetVisible(card.view)
    tour.pump(0.3)
    tour.shot("history", tour.main.view)


def discard_question(tour: Tour) -> None:
    """Clear List with answers nobody copied asks first (shot, then Cancel: the cards stay)."""
    shoot_modal(tour, "discard-question", tour.main.clear)
    if not tour.main.card_list.cards:
        tour.problems.append("Cancel on the discard question cleared the list")


def at_minimum_size(tour: Tour, name: str, view: Any) -> None:
    """Shoot ``view`` at its minimum size, then give it its size back."""
    size = view.size()
    view.resize(view.minimumSize())
    tour.pump(0.5)
    tour.shot(name, view)
    view.resize(size)
    tour.pump(0.3)


def quick_minimum_size(tour: Tour) -> None:
    """The quick-caption window at its minimum size: one column, the run buttons on a second row."""
    at_minimum_size(tour, "quick-minimum-size", tour.main.view)


def library_minimum_size(tour: Tour) -> None:
    """The library window at its minimum size: the sidebar stays readable, the details scroll."""
    at_minimum_size(tour, "library-minimum-size", tour.library.view)

def library_empty(tour: Tour) -> None:
    from captioneer.desktop.ui.library_window import LibraryWindow

    tour.library = LibraryWindow(overrides=tiny_overrides())
    tour.library.view.resize(1400, 900)
    tour.show("library-empty", tour.library.view, settle=1.0)


def folder_added(tour: Tour) -> None:
    assert tour.photos is not None
    before = tour.library.model.rowCount()
    tour.library.files.add_folder(tour.photos)
    tour.wait("the folder's photos", lambda: tour.library.model.rowCount() > before, 30)
    tour.pump(1.0)
    tour.shot("folder-added", tour.library.view)


def tag_photos_dialog(tour: Tour) -> None:
    """Tag Photos…: which photos, the task, the language and the vocabulary."""
    shoot_modal(tour, "tag-photos-dialog", tour.library.runs.open_run_dialog)


def tagging_run(tour: Tour) -> None:
    """A run in progress, stopped after its first photo (the run panel offers Resume), resumed, finished."""
    runs = tour.library.runs
    seen: list[object] = []
    finished: list[Any] = []
    runs.progressed.connect(seen.append)
    runs.finished.connect(finished.append)
    runs.start_run(runs.run_request("folder", runs.run_spec("keywords", "English")))
    tour.wait("the run's first progress", lambda: bool(seen) or bool(finished), 180)
    tour.pump(0.3)
    tour.shot("tagging-run", tour.library.view)
    runs.stop_run()
    tour.wait("the run to stop", lambda: bool(finished), 300)
    tour.pump(1.0)
    if finished[-1].state == "paused":
        tour.shot("run-stopped-resume", tour.library.view)
        tour.library.view.run_panel.resume_button.click()
        tour.wait("the resumed run's end", lambda: len(finished) >= 2, 300)
        tour.pump(1.0)
    tour.shot("run-finished", tour.library.view)


def search_error(tour: Tour) -> None:
    """A search that cannot be read says where; the grid stays as it was."""
    tour.library.browse.apply_filter(query='caption:"open')
    tour.pump(0.3)
    tour.shot("search-error", tour.library.view)
    tour.library.browse.apply_filter(query="")
    tour.pump(0.5)


def review(tour: Tour) -> None:
    """The first photo selected: the detail panel with its caption and keywords."""
    tour.library.view.grid.setFocus()
    tour.library.selection.select_row(0)
    tour.pump(1.0)
    tour.shot("review", tour.library.view)


def detail_edit(tour: Tour) -> None:
    """An edit in progress in the detail panel, saved; then every photo approved."""
    detail = tour.library.view.detail
    detail.caption.setFocus()
    detail.caption.setPlainText("A red ball on the grass under a blue sky.")
    tour.pump(0.3)
    tour.shot("detail-edit", tour.library.view)
    detail.save_button.click()
    tour.pump(0.5)
    tour.library.view.grid.selectAll()
    tour.pump(0.2)
    tour.library.review.approve()
    tour.pump(0.5)


def write_dialog(tour: Tour) -> None:
    """The write preview: what will change in which file, before anything is written."""
    tour.dialog = tour.library.files.open_write_dialog()
    tour.wait("the write preview", lambda: tour.dialog.write_button.isEnabled(), 30)
    tour.pump(0.3)
    tour.shot("write-dialog", tour.dialog)


def written(tour: Tour) -> None:
    """After Write: the sidecars exist and exiftool (an independent reader) sees the text."""
    assert tour.photos is not None
    messages: list[str] = []
    tour.library.message.connect(messages.append)
    tour.dialog.write_button.click()
    tour.wait("the write", lambda: any("written" in m for m in messages), 60)
    tour.pump(0.5)
    tour.shot("written-dialog", tour.dialog)
    tour.dialog.close()
    tour.pump(0.5)
    tour.shot("written", tour.library.view)
    sidecars = sorted(tour.photos.glob("*.xmp"))
    exiftool = shutil.which("exiftool")
    report = tour.out / f"{tour._number:02d}-written-exiftool.txt"
    if exiftool is None:
        report.write_text("exiftool is not installed\n")
    elif not sidecars:
        tour.problems.append("no sidecar was written")
    else:
        out = subprocess.run(
            [exiftool, "-G1", "-XMP-dc:all", *map(str, sidecars)], capture_output=True, text=True, check=False
        )
        report.write_text(out.stdout + out.stderr)


def compare_models(tour: Tour) -> None:
    """Models ▸ Compare Models…: the tiny model at two image details on the photos just written (their
    keywords are the answer key), ready to run, then the results with the chart."""
    from PySide6.QtCore import Qt

    from captioneer.desktop.evaluation.scores import Profile
    from captioneer.desktop.ui.compare_models import open_compare_models

    assert tour.photos is not None
    dialog = open_compare_models(tour.main)
    dialog.resize(1040, 780)
    for row in range(dialog.models.count()):
        dialog.models.item(row).setCheckState(Qt.CheckState.Unchecked)
    for box in dialog.details.values():
        box.setChecked(False)
    tiny = tiny_overrides()
    dialog.add_model(Profile("tiny model.gguf", "gguf", tiny.model, 64, tuple(tiny.options.items())),
                     checked=True)
    for tokens in (64, 256):
        (dialog.details.get(tokens) or dialog.add_detail(tokens)).setChecked(True)
    dialog.open_folder(tour.photos)
    tour.wait("the folder's photos and keywords", lambda: dialog.photo_set is not None, 30)
    tour.show("compare-models", dialog)
    dialog.run()
    tour.wait("the comparison", lambda: not dialog.running, 300)
    tour.show("compare-models-results", dialog)
    dialog.close()


def undo_write(tour: Tour) -> None:
    """Undo the write: the operation is listed, undone, and the sidecars are gone."""
    assert tour.photos is not None
    messages: list[str] = []
    tour.library.message.connect(messages.append)
    dialog = tour.library.files.open_undo_dialog()
    tour.wait("the list of writes", lambda: dialog.operations.count() > 0, 30)
    dialog.operations.setCurrentRow(0)
    tour.pump(0.3)
    tour.shot("undo-dialog", dialog)
    dialog.undo_button.click()
    tour.wait("the undo", lambda: any("Undo write" in m for m in messages), 60)
    tour.pump(0.5)
    tour.shot("undone", dialog)
    if list(tour.photos.glob("*.xmp")):
        tour.problems.append("sidecars remain after undo")
    dialog.close()


def videos_in_library(tour: Tour) -> None:
    """Clips beside the photos after a rescan: poster-frame thumbnails (a portrait clip upright) with a play
    mark and their length, a broken clip's "cannot read", a Live Photo's clip left out, the clip's facts in
    the details panel."""
    assert tour.photos is not None
    draw_clip(tour.photos / "VID_0001.mp4", 12.4)
    draw_clip(tour.photos / "VID_0002.mov", 3.0, rotation=90, thing="royalblue")
    draw_photos(tour.photos.parent / "live")[0].rename(tour.photos / "IMG_0100.jpg")
    draw_clip(tour.photos / "IMG_0100.MOV", 2.0)  # the photo's Live Photo motion: not catalogued
    broken = draw_clip(tour.photos / "VID_0003.mp4", 2.0).read_bytes()
    (tour.photos / "VID_0003.mp4").write_bytes(broken[: len(broken) // 3])
    before = tour.library.model.rowCount()
    tour.library.files.rescan()
    tour.wait("the clips in the grid", lambda: tour.library.model.rowCount() >= before + 4, 60)
    model = tour.library.model
    clip = next(r for r in range(model.rowCount()) if model.photo_row(r).name == "VID_0001.mp4")
    tour.library.selection.select_row(clip)
    tour.wait("the clip's facts", lambda: "video 0:12" in tour.library.view.detail.info.text(), 30)
    tour.pump(1.0)
    tour.shot("videos-in-library", tour.library.view)


def about(tour: Tour) -> None:
    shoot_modal(tour, "about", tour.main.about)


def crash_dialog(tour: Tour) -> None:
    """The crash dialog (what an unexpected error looks like); nothing crashes for it."""
    from captioneer.desktop.ui.crash_view import CrashDialog

    report = (
        "Captioneer crashed at (tour)\n\nTraceback (most recent call last):\n  ...\nRuntimeError: example\n"
    )
    dialog = CrashDialog(report, str(tour.home / "logs" / "crash-example.txt"), tour.main.view)
    tour.show("crash-dialog", dialog)
    dialog.reject()


def make_clips(folder: Path) -> list[Path]:
    """Three short 720p clips, one of them an upright phone clip, written with PyAV by the tests' helper."""
    import dataclasses

    sys.path.insert(0, str(ROOT))
    from tests.video_clips import KINDS, make_clip

    hd = dataclasses.replace(KINDS["mp4"], width=1280, height=720)
    folder.mkdir(parents=True, exist_ok=True)
    return [
        make_clip(folder / "harbour.mp4", hd, seconds=3.0),
        make_clip(folder / "waves.mp4", hd, seconds=1.5),
        make_clip(folder / "IMG_0420.mov", "mov", seconds=6.0, rotation=90),
    ]


def clips_added(tour: Tour) -> None:
    """A folder of video clips added to the library (a scan that takes videos catalogues them)."""
    folder = tour.home / "Photos" / "Clips"
    clips = make_clips(folder)
    tour.library.files.add_folder(folder)  # then shows that folder
    shown = tour.library.browse
    tour.wait(
        "the clips in the library",
        lambda: shown.filter.folder == str(folder) and tour.library.model.rowCount() == len(clips),
        30,
    )
    tour.pump(1.0)


def tag_photos_videos(tour: Tour) -> None:
    """Tag Photos… on a folder of clips, on its Videos tab: the clip budget and what it buys per clip."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    def shoot() -> None:
        dialog = QApplication.activeModalWidget()
        if dialog is None:
            tour.problems.append("tag-photos-videos: no dialog opened")
            return
        dialog.options.setCurrentIndex(dialog.videos_tab)  # type: ignore[attr-defined]
        tour.wait("the clips probed", lambda: "reading a few" not in dialog.videos.plan.text(), 30)  # type: ignore[attr-defined]
        tour.pump(0.3)
        tour.shot("tag-photos-videos", dialog)
        dialog.reject()  # type: ignore[attr-defined]

    QTimer.singleShot(300, shoot)
    tour.library.runs.open_run_dialog()


STEPS: list[Callable[[Tour], None]] = [
    first_start,
    wizard,
    settings,
    model_manager,
    empty_quick_window,
    images_added,
    streaming,
    done,
    failed_card,
    follow_up,
    history,
    discard_question,
    quick_minimum_size,
    library_empty,
    folder_added,
    tag_photos_dialog,
    tagging_run,
    search_error,
    review,
    library_minimum_size,
    detail_edit,
    write_dialog,
    written,
    compare_models,
    undo_write,
    videos_in_library,
    about,
    crash_dialog,
    clips_added,
    tag_photos_videos,
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "out", type=Path, help="folder for the numbered PNGs (created; old PNGs are replaced)"
    )
    parser.add_argument(
        "--only", default="", help="comma-separated step names to shoot (earlier steps still run)"
    )
    args = parser.parse_args(argv)
    if not (TINY_GGUF / "model.gguf").is_file():
        print(f"{TINY_GGUF} is missing: run tests/fixtures/make_tiny_models.py", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("[0-9][0-9]-*"):
        old.unlink()
    home = Path(tempfile.mkdtemp(prefix="captioneer-tour-"))
    os.environ["CAPTIONEER_HOME"] = str(home)  # before any Captioneer module reads its folders
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from captioneer.desktop.ui.app import create_app

    tour = Tour(out=args.out, home=home, app=create_app(["captioneer-tour"]))
    tour.photos = home / "Photos" / "Trip"
    draw_photos(tour.photos)
    only = {name.strip().replace("-", "_") for name in args.only.split(",") if name.strip()}
    last = max((i for i, step in enumerate(STEPS) if step.__name__ in only), default=len(STEPS) - 1)
    status = 0
    try:
        for step in STEPS[: last + 1]:
            tour.shooting = not only or step.__name__ in only
            started = time.monotonic()
            try:
                step(tour)
            except Exception:  # a broken state is reported and the tour goes on where it can
                tour.problems.append(f"{step.__name__} failed:\n{traceback.format_exc()}")
                status = 1
            print(f"{step.__name__:20s} {time.monotonic() - started:6.1f} s", flush=True)
    finally:
        if tour.library is not None:
            tour.library.view.close()
        if tour.main is not None:
            tour.main.shutdown()  # first, so closing does not ask about answers nobody copied
            tour.main.view.close()
        shutil.rmtree(home, ignore_errors=True)
    print(f"{len(tour.shots)} screenshots in {args.out}")
    for problem in tour.problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if tour.problems else status


if __name__ == "__main__":
    sys.exit(main())
