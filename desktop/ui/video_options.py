"""The Tag Photos dialog's Videos group: the clip budget (the settings' default, remembered there when
changed) and the line saying what it buys for the chosen clips, from a few clips probed off the GUI thread."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel

from captioneer.backends.base import EngineConfig
from captioneer.backends.registry import engine_class
from captioneer.desktop.core.clip_costs import clips_to_probe, plan_line
from captioneer.desktop.core.video import VideoError, VideoInfo, is_video_path, probe
from captioneer.desktop.library.catalog import Photo
from captioneer.desktop.library.run_media import clip_context
from captioneer.desktop.ui.video_options_view import VideoOptionsView


def _unsized(_tokens: int) -> int | None:
    return None


@dataclass(frozen=True)
class ClipEngine:
    """What the plan line needs of the engine that will tag: how it takes a clip and how much it holds."""

    name: str
    video_input: bool = False
    min_image_tokens: int = 1
    context_for: Callable[[int], int | None] = _unsized
    """The context the engine will have for a clip budget (None: it does not size one; a server decides)."""

    @classmethod
    def of(cls, config: EngineConfig) -> ClipEngine:
        """The engine ``config`` sets up. A run with clips sizes an engine's context for the clip budget as it
        does for the image budget (the runner's clip context), unless a context length is set by hand: only
        then can a clip be too big for it."""
        engine = engine_class(config.engine)

        def context_for(tokens: int) -> int | None:
            sized = clip_context(config, tokens)  # what the run will do (run_media), not a copy of its rule
            return engine.context_tokens(sized.image_tokens, sized.context_tokens)

        return cls(
            name=config.engine,
            video_input=engine.capabilities.video_input,
            min_image_tokens=engine.capabilities.min_image_tokens,
            context_for=context_for,
        )


def probe_some(paths: Sequence[str]) -> tuple[list[VideoInfo], int]:
    """The clips at ``paths`` probed (links refused, as the run refuses them), and how many could not be."""
    infos: list[VideoInfo] = []
    for path in paths:
        try:
            infos.append(probe(path, refuse_links=True))
        except VideoError:  # the run records why, clip by clip; here it only counts
            continue
    return infos, len(paths) - len(infos)


class _Probed(QObject):
    """Carries a probe thread's result to the GUI thread."""

    done = Signal(int, object, int)  # generation, [VideoInfo], unreadable


class VideoOptions:
    """Wires a :class:`VideoOptionsView`: the budget in and out, the plan line kept up to date, and the
    ``warning`` label (next to the model) shown while the engine's context cannot hold a clip."""

    def __init__(self, view: VideoOptionsView, warning: QLabel, tokens: int, engine: ClipEngine) -> None:
        self.view = view
        self.warning = warning
        self.engine = engine
        self.count = 0
        self.clips: list[VideoInfo] = []
        self.unreadable = 0
        self._generation = 0
        self._probed = _Probed()
        self._probed.done.connect(self._show_probed)
        view.budget.setValue(tokens)
        view.budget.valueChanged.connect(lambda _tokens: self.refresh())

    def tokens(self) -> int:
        return self.view.budget.value()

    def show_photos(self, photos: Sequence[Photo]) -> None:
        """The photos the run would tag changed: count their clips and probe a few in the background."""
        videos = [(photo.path, photo.size) for photo in photos if is_video_path(Path(photo.path))]
        self._generation += 1
        self.count, self.clips, self.unreadable = len(videos), [], 0
        self.view.budget.setEnabled(bool(videos))
        if not videos:
            self.refresh()
            return
        self.view.plan.setText(f"{len(videos):,} clips · reading a few to plan their frames…")
        self.warning.hide()
        generation, paths = self._generation, clips_to_probe(videos)
        done = self._probed.done
        threading.Thread(
            target=lambda: done.emit(generation, *probe_some(paths)), name="clip-probe", daemon=True
        ).start()

    def _show_probed(self, generation: int, clips: list[VideoInfo], unreadable: int) -> None:
        if generation != self._generation:  # the photos changed since, or the dialog closed
            return
        self.clips, self.unreadable = clips, unreadable
        self.refresh()

    def refresh(self) -> None:
        """Say what the budget buys for the clips probed, as the engine takes them."""
        if self.count and not self.clips and not self.unreadable:
            return  # still probing
        engine = self.engine
        line = plan_line(
            self.count,
            self.clips,
            self.tokens(),
            video_input=engine.video_input,
            engine=engine.name,
            min_image_tokens=engine.min_image_tokens,
            context=engine.context_for(self.tokens()),
            unreadable=self.unreadable,
        )
        self.view.plan.setText(line.text)
        self.warning.setText(line.warning or "")
        self.warning.setVisible(line.warning is not None)

    def close(self) -> None:
        """The dialog closed: a probe still running is ignored when it ends."""
        self._generation += 1
