"""Video clips in the library window, offscreen on real clips made with PyAV: an upright poster-frame
thumbnail that brings the clip's facts through the disk cache, a broken clip's reason, the play mark and
length on the grid's tile, and the details panel's length, size and codec."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QImage

from captioneer.backends.errors import ImageError
from captioneer.desktop.core.video import PROTECTED, probe
from captioneer.desktop.library.browse import ClipFacts, clip_length
from captioneer.desktop.library.catalog import open_catalog
from captioneer.desktop.library.scanner import scan_library
from captioneer.desktop.ui.library_model import FAILED_ROLE
from captioneer.desktop.ui.library_thumbs import clip_facts, load_or_make, thumb_file
from captioneer.desktop.ui.library_window import LibraryWindow
from captioneer.desktop.ui.workers import make_thumbnail
from tests.video_clips import BAR, KINDS, frame_level, make_clip, make_encrypted

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore(
        "OpenType support missing", "propagateSizeHints", "does not support raise", "grabbing the keyboard"
    ),
]


def grey(image: QImage, x: int, y: int) -> int:
    colour = image.pixelColor(x, y)
    return (colour.red() + colour.green() + colour.blue()) // 3


def test_a_rotated_clips_thumbnail_is_upright_and_carries_its_facts(qapp, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "portrait.mov", "mov", seconds=2.0, fps=12, rotation=90)
    image = make_thumbnail(clip, 80)
    # Stored 160×96 with a white bar down its left edge, black at the bar's top: turned 90° clockwise, the
    # bar runs along the top and its black end is at the top right.
    assert (image.width(), image.height()) == (48, 80)
    assert grey(image, 24, 1) > 230  # the bar, now across the top
    assert grey(image, 46, 1) < 30  # its black corner, top right
    # The poster frame is the one shown at 2/3 s (frame 8 at 12 fps): its grey fills the rest.
    assert abs(grey(image, 24, 60) - frame_level(8)) < 8
    assert clip_facts(image) == ClipFacts(2.0, 96, 160, "h264")
    # Through the disk cache and back: the facts travel in the cached JPEG.
    first = load_or_make(str(clip), "k" * 40, 80)
    assert thumb_file("k" * 40).exists()
    again = load_or_make(str(clip), "k" * 40, 80)
    assert clip_facts(first) == clip_facts(again) == ClipFacts(2.0, 96, 160, "h264")


@pytest.mark.parametrize(
    ("kind", "codec"),
    [
        ("mp4", "h264"),
        ("m4v", "h264"),
        ("mkv", "h264"),
        ("avi", "mpeg4"),
        ("3gp", "h263"),
        ("hevc", "hevc"),
        ("hdr", "hevc"),
        ("vp9", "vp9"),
        ("av1", "av1"),
    ],
)
def test_every_container_and_what_phones_record_today_gets_a_thumbnail(
    qapp, tmp_path: Path, kind: str, codec: str
) -> None:
    clip = make_clip(tmp_path / f"clip{KINDS[kind].suffix}", kind, seconds=1.0)
    info = probe(clip)  # sizes as shown: H.263's 176×144 has wide pixels, shown 192×144
    image = make_thumbnail(clip, 64)
    assert (image.width(), image.height()) == (64, round(64 * info.height / info.width))
    assert grey(image, 2, image.height() - 2) > 200  # the white bar down the left edge
    assert clip_facts(image) == ClipFacts(1.0, info.width, info.height, codec)


def test_a_photos_thumbnail_has_no_clip_facts(qapp, tmp_path: Path) -> None:
    photo = tmp_path / "p.jpg"
    Image.new("RGB", (60, 40), "blue").save(photo)
    assert clip_facts(make_thumbnail(photo, 32)) is None


def test_a_protected_clip_has_no_thumbnail_and_says_why(qapp, tmp_path: Path) -> None:
    with pytest.raises(ImageError) as caught:
        make_thumbnail(make_encrypted(tmp_path / "drm.mp4"), 64)
    assert str(caught.value) == PROTECTED


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0.2, "0:01"), (2.0, "0:02"), (12.4, "0:12"), (61, "1:01"), (3725, "1:02:05")]
)
def test_clip_length(seconds: float, shown: str) -> None:
    assert clip_length(seconds) == shown


@pytest.fixture
def window(qtbot, tmp_path: Path):
    root = tmp_path / "Library"
    root.mkdir()
    Image.new("RGB", (160, 120), (40, 90, 160)).save(root / "a_photo.jpg")
    make_clip(root / "b_clip.mp4", "mp4", seconds=2.0)
    make_encrypted(root / "c_drm.mp4")
    with open_catalog() as catalog:
        scan_library(catalog, root)
    window = LibraryWindow()
    with qtbot.waitSignal(window.browse.filtered, timeout=10_000):
        window.view.show()
    qtbot.waitExposed(window.view)
    yield window
    window.shutdown()
    window.view.close()
    window.view.deleteLater()


def test_the_grid_marks_clips_with_their_length_and_the_panel_tells_their_facts(qtbot, window) -> None:
    model = window.model
    names = [model.photo_row(row).name for row in range(model.rowCount())]
    assert names == ["a_photo.jpg", "b_clip.mp4", "c_drm.mp4"]
    clip_row, photo_row = model.photo_row(1), model.photo_row(0)
    qtbot.waitUntil(lambda: model.clip(clip_row) is not None, timeout=20_000)
    assert model.clip(clip_row) == ClipFacts(2.0, 160, 96, "h264") and model.clip(photo_row) is None
    index = model.index(1)
    assert model.data(index, Qt.ItemDataRole.AccessibleTextRole) == "b_clip.mp4, video 0:02, untagged"
    assert "Video 0:02 · 160×96 · h264" in model.data(index, Qt.ItemDataRole.ToolTipRole)
    assert model.data(model.index(0), Qt.ItemDataRole.AccessibleTextRole) == "a_photo.jpg, untagged"
    qtbot.waitUntil(lambda: model.data(model.index(2), FAILED_ROLE) == PROTECTED, timeout=20_000)

    # The tile: a dark pill with white marks (the triangle, "0:02") on the frame's bottom left, where the
    # clip itself is only its white bar and grey; the photo's tile has none of it.
    window.view.grid.viewport().repaint()
    shot = window.view.grid.viewport().grab().toImage()

    def mark_pixels(row: int) -> tuple[int, int]:
        tile = window.view.grid.visualRect(model.index(row))
        # Right of the clip's bar, in the bottom band of the picture where the pill sits.
        edge = window.delegate.edge
        area = QRect(tile.left() + 8 + BAR, tile.top() + edge * 96 // 160 + 10, 40, 30)
        area = area.intersected(tile)
        values = [
            grey(shot, x, y)
            for x in range(area.left(), area.right())
            for y in range(area.top(), area.bottom())
        ]
        return sum(v >= 235 for v in values), sum(v <= 40 for v in values)

    white, dark = mark_pixels(1)
    assert white > 5 and dark > 50
    assert mark_pixels(0) == (0, 0)

    window.view.grid.setCurrentIndex(index)
    qtbot.waitUntil(lambda: "video 0:02 · 160×96 · h264" in window.view.detail.info.text(), timeout=20_000)
    window.view.grid.setCurrentIndex(model.index(2))
    qtbot.waitUntil(
        lambda: window.view.detail.preview.text() == f"Cannot show this video:\n{PROTECTED}", timeout=20_000
    )


def shown(window) -> list[str]:  # noqa: ANN001 - a LibraryWindow
    return [window.model.photo_row(row).name for row in range(window.model.rowCount())]


def test_the_window_shows_photos_videos_or_both(qtbot, window) -> None:
    view = window.view
    qtbot.waitUntil(lambda: view.folders.topLevelItemCount() == 2, timeout=10_000)
    assert view.folders.topLevelItem(0).text(0) == "All photos and videos"
    qtbot.waitUntil(lambda: view.count.text().startswith("3 photos and videos · all photos"), timeout=10_000)

    with qtbot.waitSignal(window.browse.filtered, timeout=10_000):
        view.kinds.setCurrentIndex(view.kinds.findText("Videos"))
    assert shown(window) == ["b_clip.mp4", "c_drm.mp4"]
    assert view.count.text() == "2 videos · videos only"
    assert window.browse.status_counts["failed"] == 1  # the statuses count within the clips
    qtbot.waitUntil(lambda: window.browse.status_counts.get("all") == 2, timeout=10_000)

    with qtbot.waitSignal(window.browse.filtered, timeout=10_000):
        view.kinds.setCurrentIndex(view.kinds.findText("Photos"))
    assert shown(window) == ["a_photo.jpg"] and view.count.text() == "1 photo · photos only"

    # The search language says the same: type:video in the search box.
    with qtbot.waitSignal(window.browse.filtered, timeout=10_000):
        assert window.browse.apply_filter(kind="all", query="type:video")
    assert shown(window) == ["b_clip.mp4", "c_drm.mp4"]
    assert view.kinds.currentText() == "Photos and videos"
    assert not window.browse.apply_filter(query="type:gif")
    assert view.search_error.text() == "Unknown type 'gif'. Use type:photo or type:video."
