"""A clip's scene list: the scenes task's answer read, checked against the clip and written as timed lines.

The scenes task answers ``{"scenes": [{"start": 7, "description": "A dog runs into the sea."}, …]}``, a
start in seconds or as ``"m:ss"``. :func:`clean_scenes` keeps the scenes a person can use: a readable start
inside the clip, a description, in time order, at most :data:`MAX_SCENES`; :func:`scene_lines` makes them the
result's caption, one line per scene (``0:07 A dog runs into the sea.``), so review shows and edits it as text
and the write puts it in ``dc:description``, where Lightroom, digiKam and Immich show it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from captioneer.desktop.core.answer_text import clean_text

MAX_SCENES = 8
END_SLACK = 1.0
"""Seconds past the clip's end a start may be and still count (a model rounding up the last frame's time):
such a start is clamped to the end; one further out is a scene the model invented, and dropped."""

_CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")
_SECONDS = re.compile(r"^(\d+(?:\.\d+)?)\s*s?$")


@dataclass(frozen=True)
class Scene:
    """One scene: when it starts (seconds from the clip's start) and what happens in it."""

    start: float
    description: str


def parse_time(value: Any) -> float | None:
    """Seconds from a number, ``"7"``, ``"7.5s"``, ``"m:ss"`` or ``"h:mm:ss"``; None when it is none of them
    (minutes or seconds of 60 and more, text, a boolean, not a finite number)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if match := _SECONDS.match(text):
        return float(match.group(1))
    match = _CLOCK.match(text)
    if match is None:
        return None
    hours, minutes, seconds = int(match.group(1) or 0), int(match.group(2)), float(match.group(3))
    if seconds >= 60 or (match.group(1) is not None and minutes >= 60):
        return None
    return hours * 3600 + minutes * 60 + seconds


def format_time(seconds: float) -> str:
    """``m:ss`` (``0:07``, ``12:30``), or ``h:mm:ss`` from an hour on; fractions of a second are dropped."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def clean_scenes(items: Iterable[Any], duration: float | None = None) -> tuple[Scene, ...]:
    """The usable scenes of an answer's ``scenes`` list, in time order, at most :data:`MAX_SCENES`.

    An item without a readable start or without a description is dropped. A start before the clip is the
    clip's start; one past its end (``duration``, when known) is clamped to the end within
    :data:`END_SLACK` and dropped beyond it. Scenes keep the model's order where their starts are equal.
    """
    scenes: list[Scene] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        start = parse_time(item.get("start"))
        text = item.get("description")
        description = clean_text(text, multiline=False) if isinstance(text, str) else ""
        if start is None or not description:
            continue
        start = max(0.0, start)
        if duration is not None and start > duration:
            if start - duration > END_SLACK:
                continue
            start = duration
        scenes.append(Scene(start, description))
    return tuple(sorted(scenes, key=lambda scene: scene.start)[:MAX_SCENES])


def scene_lines(scenes: Iterable[Scene]) -> str:
    """The scenes as the result's caption: ``m:ss description``, one scene a line."""
    return "\n".join(f"{format_time(scene.start)} {scene.description}" for scene in scenes)
