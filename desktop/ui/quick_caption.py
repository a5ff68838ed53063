"""Qt-free decisions for the quick-caption window: which files to take, what each copy button copies,
how "copy all" is written, and how a follow-up question carries the earlier answer."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from captioneer.backends.errors import window_text
from captioneer.desktop.core.captioning import CaptionResult
from captioneer.desktop.core.images import is_image_path
from captioneer.desktop.core.tasks import get_task

MAX_QUICK_IMAGES = 200
"""Quick caption is for a handful of photos; whole libraries belong in the album tagger."""


@dataclass(frozen=True)
class Collected:
    """Image files found in what the user dropped or opened, and what was left out and why."""

    files: tuple[Path, ...]
    not_images: int = 0
    over_limit: int = 0


def file_key(path: Path) -> str:
    """One key per file, whatever the spelling: relative or absolute, through symlinks and ``..``, letter
    case where the file system ignores it."""
    return os.path.normcase(os.path.realpath(path))


def collect_images(paths: Iterable[Path], limit: int = MAX_QUICK_IMAGES) -> Collected:
    """Expand folders (recursively, sorted, hidden entries skipped, symlinked folders not followed) into
    image files, keep files in the order given, drop duplicates (one file under two spellings included), and
    stop at ``limit``."""
    found: list[Path] = []
    seen: set[str] = set()
    not_images = over = 0

    def take(path: Path) -> None:
        nonlocal not_images, over
        if not is_image_path(path):
            not_images += 1
            return
        key = file_key(path)
        if key in seen:
            return
        if len(found) >= limit:
            over += 1
            return
        seen.add(key)
        found.append(path)

    for path in paths:
        if path.is_dir():
            for root, dirs, names in os.walk(path, followlinks=False):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    if not name.startswith("."):
                        take(Path(root) / name)
        else:
            take(path)
    return Collected(tuple(found), not_images, over)


@dataclass(frozen=True)
class CopyValues:
    """What each of a card's copy buttons copies; ``None`` means the task did not produce it."""

    text: str | None
    alt_text: str | None
    keywords: str | None


def copy_values(result: CaptionResult) -> CopyValues:
    """The main text, alt text and keywords of a finished result, ready for the clipboard."""
    if not result.ok:
        return CopyValues(None, None, None)
    fields = get_task(result.task).fields(result)
    keywords = ", ".join(fields.keywords) or None
    return CopyValues(fields.caption or None, fields.alt_text, keywords)


def display_text(result: CaptionResult) -> str:
    """A finished answer as a person reads it: structured answers are laid out as labelled lines."""
    if not result.ok:
        return window_text(result.error) if result.error else "Failed."
    if result.data is None:
        return result.text
    task = get_task(result.task)
    fields = task.fields(result)
    # Keywords are labelled by what the task calls them (a social post's "hashtags").
    keywords_label = (task.answer_key("keywords") or "keywords").replace("_", " ").capitalize()
    lines = [
        f"{label}: {value}"
        for label, value in (
            ("Title", fields.title),
            ("Caption", fields.caption),
            ("Alt text", fields.alt_text),
        )
        if value
    ]
    if fields.keywords:
        lines.append(f"{keywords_label}: {', '.join(fields.keywords)}")
    return "\n".join(lines) if lines else result.text


def all_as_text(results: Sequence[CaptionResult]) -> str:
    """Every finished answer, one block per image headed by its file name."""
    blocks = []
    for result in results:
        name = Path(result.path).name or result.path
        body = display_text(result) if result.ok else f"(failed: {window_text(result.error or '')})"
        blocks.append(f"{name}\n{body}")
    return "\n\n".join(blocks) + ("\n" if blocks else "")


def all_as_json(results: Sequence[CaptionResult]) -> str:
    """Every result as a JSON list, the same objects `captioneer caption --json` prints."""
    return json.dumps([result.to_json() for result in results], ensure_ascii=False, indent=2) + "\n"


def follow_up_question(previous_answer: str, question: str) -> str:
    """A follow-up asks about the same image again; the earlier answer travels along as context."""
    question = question.strip()
    if not question:
        raise ValueError("a follow-up needs a question")
    previous = previous_answer.strip()
    if not previous:
        return question
    return f'Earlier you said about this image: "{previous}"\nNow answer this follow-up question: {question}'


def seconds_per_image(durations: Sequence[float]) -> float | None:
    """The mean of the recent successful timings (the last ten), or None before the first one."""
    recent = list(durations)[-10:]
    return sum(recent) / len(recent) if recent else None


def format_bytes(count: int) -> str:
    """Sizes as people read them: 512 B, 18 KB, 3.4 MB, 1.2 GB."""
    value = float(count)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit != "MB" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"
