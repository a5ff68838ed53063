"""What a tagging run shows the engine for one catalog entry: a photo's prepared image, or a video's
prepared clip (probed, planned by the run's clip budget and sampled), and which failures are final."""

from __future__ import annotations

from pathlib import Path

from captioneer.backends.base import Capabilities, EngineConfig
from captioneer.backends.cancel import CancelToken
from captioneer.backends.registry import engine_class
from captioneer.backends.request import PreparedClip
from captioneer.desktop.core.answering import Media
from captioneer.desktop.core.clips import prepare_clip
from captioneer.desktop.core.images import engine_budget, prepare_image
from captioneer.desktop.core.video import UNUSABLE_VIDEO_KINDS, is_video_path
from captioneer.desktop.library.run_spec import RunSpec

UNUSABLE_IMAGE_KINDS = frozenset(
    {"empty", "not-an-image", "unsupported", "needs-plugin", "corrupt", "too-large"}
)
"""Image failures that will not go away by trying again: the photo is marked unreadable until it changes."""
UNUSABLE_KINDS = UNUSABLE_IMAGE_KINDS | UNUSABLE_VIDEO_KINDS
"""Photo and clip failures that are final until the file changes: never retried, marked unreadable."""


def prepare_media(
    path: str, spec: RunSpec, capabilities: Capabilities, cancel: CancelToken | None = None
) -> Media:
    """The photo at ``path`` prepared at the run's image budget, or, for a video, its clip sampled within the
    run's clip budget as the engine takes clips (links refused either way).

    Raises:
        ImageError: the photo or clip cannot be used (a :class:`~captioneer.desktop.core.video.VideoError`
            for a clip), in one line, with its ``kind``.
        Cancelled: ``cancel`` was set while a clip was being sampled.
    """
    if is_video_path(Path(path)):
        return prepare_clip(path, spec.video_tokens, capabilities, refuse_links=True, cancel=cancel)
    return prepare_image(path, engine_budget(spec.image_tokens, capabilities), refuse_links=True)


def media_budget(media: Media, spec: RunSpec) -> int:
    """The budget ``media`` was prepared within: what an out-of-memory retry halves."""
    return spec.video_tokens if isinstance(media, PreparedClip) else spec.image_tokens


def clip_context(config: EngineConfig, video_tokens: int) -> EngineConfig:
    """``config`` with a context that holds a clip too: an engine that takes a clip's frames as images sizes
    its context for one photo at the image budget, and a clip's frames cost up to ``video_tokens``. An
    explicit context (``--context``) is kept as it is: a clip that does not fit then fails with a line
    saying so (and the run goes on)."""
    engine = engine_class(config.engine)
    if config.context_tokens is not None or engine.capabilities.video_input:
        return config
    photo = engine.context_tokens(config.image_tokens)
    clip = engine.context_tokens(video_tokens)
    if photo is None or clip is None or clip <= photo:
        return config
    return config.model_copy(update={"context_tokens": clip})
