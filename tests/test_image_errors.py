"""Why a photo cannot be used, in plain words: real bad files made here, through the real decode path, the
quick window's cards (tiny gguf engine) and the tagger's catalog; Pillow's own text only in ``detail``."""

from __future__ import annotations

import io
import os
import random
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

from captioneer.backends.errors import ImageError
from captioneer.desktop.core import images
from captioneer.desktop.core.captioning import caption_file
from captioneer.desktop.core.images import decode_failure, is_cut_short, looks_like_image, prepare_image

# Words Pillow uses that a person should never have to read in a card or the library.
PILLOW_WORDS = (
    "cannot identify",
    "BytesIO",
    "bytes not processed",
    "exceeds limit",
    "decompression bomb",
    "decoder object",
    "Truncated File Read",
    "OSError",
    "broken data stream",
    "LibRaw",
    "pip install",
)


def _noise(size: int = 192) -> Image.Image:
    rng = random.Random(17)
    return Image.frombytes("RGB", (size, size), bytes(rng.randrange(256) for _ in range(size * size * 3)))


def _encoded(fmt: str) -> bytes:
    buf = io.BytesIO()
    _noise().save(buf, format=fmt)
    return buf.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def bomb_png(side: int = 30_000) -> bytes:
    """A 200-byte PNG whose header claims ``side``×``side`` pixels: a decompression bomb."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _png_chunk(b"IEND", b"")
    )


def damaged_png() -> bytes:
    data = bytearray(_encoded("PNG"))
    data[40] ^= 0xFF  # inside the first data chunk: its checksum no longer matches
    return bytes(data)


def make_bad_files(folder: Path) -> dict[str, str]:
    """Bad files of every kind, by name, with the words a person should read for each."""
    cases = {
        "cut.jpg": (_encoded("JPEG")[: len(_encoded("JPEG")) // 2], "file is cut short"),
        "cut.png": (_encoded("PNG")[: len(_encoded("PNG")) * 9 // 10], "file is cut short"),
        "cut.webp": (_encoded("WEBP")[: len(_encoded("WEBP")) // 2], "file is cut short"),
        "bomb.png": (bomb_png(), "image is too large to open safely"),
        "warning-bomb.png": (bomb_png(12_000), "image is too large to open safely"),
        "empty.jpg": (b"", "empty file"),
        "notes.jpg": (b"These are my holiday notes, not a photo.\n" * 20, "not an image file"),
        "damaged.png": (damaged_png(), "image is damaged"),
        "DSC_0001.NEF": (bytes(range(256)) * 40, "this RAW file is damaged"),
    }
    for name, (content, _words) in cases.items():
        (folder / name).write_bytes(content)
    (folder / "x.jpg").mkdir()
    words = {name: words for name, (_content, words) in cases.items()}
    words["x.jpg"] = "this is a folder, not an image file"
    return words


def _assert_plain(error: ImageError | str) -> None:
    text = str(error)
    assert not any(word.lower() in text.lower() for word in PILLOW_WORDS), text
    assert "\n" not in text and len(text) < 80, text


@pytest.mark.parametrize("refuse_links", [False, True])
def test_every_bad_file_reads_plainly_through_the_decode_path(tmp_path: Path, refuse_links: bool) -> None:
    expected = make_bad_files(tmp_path)
    if refuse_links:  # the tagger's path refuses folders as special files, with its own words
        expected["x.jpg"] = "not a regular file"
    for name, words in expected.items():
        with pytest.raises(ImageError) as info:
            prepare_image(tmp_path / name, 16, refuse_links=refuse_links)
        assert words in str(info.value), name
        if name != "x.jpg" or not refuse_links:
            _assert_plain(info.value)
    with pytest.raises(ImageError) as info:
        prepare_image(tmp_path / "gone.jpg", 16, refuse_links=refuse_links)
    assert (str(info.value), info.value.kind) == ("file not found", "missing")


def test_the_technical_text_is_kept_in_detail_and_the_log(tmp_path: Path, caplog) -> None:
    make_bad_files(tmp_path)
    caplog.set_level("INFO", logger=images.__name__)
    with pytest.raises(ImageError) as bomb:
        prepare_image(tmp_path / "bomb.png")
    assert bomb.value.kind == "too-large" and "exceeds limit" in bomb.value.detail
    with pytest.raises(ImageError) as cut:
        prepare_image(tmp_path / "cut.jpg")
    assert cut.value.kind == "corrupt" and "truncated" in cut.value.detail
    assert "exceeds limit" in caplog.text and "image file is truncated" in caplog.text


def test_a_heic_photo_without_its_plugin_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "IMG_0001.HEIC"
    path.write_bytes(b"\0\0\0\x18ftypheic" + bytes(64))
    monkeypatch.setattr(images, "_register_heif", lambda: False)  # as on a machine without pillow-heif
    with pytest.raises(ImageError) as info:
        prepare_image(path)
    assert (str(info.value), info.value.kind) == ("this HEIC photo needs pillow-heif", "needs-plugin")
    assert "pip install pillow-heif" in info.value.detail


def test_an_unreadable_file_says_no_permission(tmp_path: Path) -> None:
    path = tmp_path / "locked.jpg"
    _noise().save(path)
    path.chmod(0)
    probe = (
        "from pathlib import Path\n"
        "from captioneer.desktop.core.images import prepare_image\n"
        "from captioneer.desktop.library.identity import image_content_key\n"
        "from captioneer.backends.errors import ImageError\n"
        f"for read in (lambda: prepare_image({str(path)!r}, 16), lambda: prepare_image({str(path)!r}, 16,"
        f" refuse_links=True), lambda: image_content_key(Path({str(path)!r}))):\n"
        "    try:\n        read()\n"
        "    except ImageError as exc:\n        print(exc.kind, '|', exc)\n"
    )
    command = [sys.executable, "-c", probe]
    if os.geteuid() == 0:
        # root reads any file; without the two "bypass file permissions" capabilities it cannot.
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv to drop the permission override")
        command = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", *command]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout
    # The quick window's path, the tagger's (no links) and the scanner's content key all say the same.
    assert out.splitlines() == ["unreadable | no permission to read this file"] * 3


@pytest.mark.parametrize(
    ("head", "tail", "size", "cut"),
    [
        (b"\x89PNG\r\n\x1a\n", b"...IEND\xaeB`\x82", 100, False),
        (b"\x89PNG\r\n\x1a\n", b"...IDAT", 100, True),
        (b"\xff\xd8\xff\xe0", b"..\xff\xd9", 100, False),
        (b"\xff\xd8\xff\xe0", b"..\x00\x00", 100, True),
        (b"RIFF" + (92).to_bytes(4, "little") + b"WEBP", b"", 100, False),
        (b"RIFF" + (192).to_bytes(4, "little") + b"WEBP", b"", 100, True),
        (b"GIF89a", b"\x00;", 50, False),
        (b"GIF89a", b"\x00\x01", 50, True),
        (b"BM", b"", 50, False),
    ],
)
def test_cut_short_is_told_by_the_formats_own_ending(head: bytes, tail: bytes, size: int, cut: bool) -> None:
    assert is_cut_short(head, tail, size) is cut


def test_decode_failure_wording_table() -> None:
    assert str(decode_failure("", b"hello", b"", 5)) == "not an image file"
    assert looks_like_image(b"\0\0\0\x18ftypheic") and not looks_like_image(b"%PDF-1.4")
    png = b"\x89PNG\r\n\x1a\n"
    assert str(decode_failure("OSError: image file is truncated", png, b"IEND\xaeB`\x82", 9)).startswith(
        "file is cut short"
    )
    assert (
        str(decode_failure("SyntaxError: broken PNG file", png, b"IEND\xaeB`\x82", 9)) == "image is damaged"
    )


def test_caption_file_keeps_the_plain_reason_and_the_detail(tmp_path: Path) -> None:
    make_bad_files(tmp_path)

    class NeverCalled:  # preparing the image fails first: no engine is reached
        capabilities = None

    from captioneer.backends.base import Capabilities
    from captioneer.desktop.core.tasks import get_task

    NeverCalled.capabilities = Capabilities()
    result = caption_file(NeverCalled(), tmp_path / "bomb.png", get_task("caption"))  # type: ignore[arg-type]
    assert (result.ok, result.error, result.error_kind) == (
        False,
        "image is too large to open safely",
        "too-large",
    )
    assert "exceeds limit" in (result.error_detail or "")
    assert result.to_json()["error_detail"] == result.error_detail


def test_the_quick_windows_cards_say_it_plainly_with_details_in_a_tooltip(qtbot, tiny_gguf, tmp_path) -> None:
    from captioneer.desktop.core.engine_setup import Overrides
    from captioneer.desktop.core.settings import Settings, save_settings
    from captioneer.desktop.ui.card_view import CardState
    from captioneer.desktop.ui.main_window import MainWindow

    expected = make_bad_files(tmp_path)
    del expected["x.jpg"]  # a dropped folder is opened as a folder of photos, whatever its name
    save_settings(Settings(max_tokens=8))
    model, mmproj = tiny_gguf
    window = MainWindow(
        Overrides(engine="gguf", model=str(model), options={"mmproj": str(mmproj), "threads": 2})
    )
    qtbot.addWidget(window.view)
    results = []
    window.resultReady.connect(results.append)
    try:
        window.add_paths([tmp_path / name for name in expected])
        qtbot.waitUntil(lambda: len(results) >= len(expected), timeout=90_000)
        cards = {card.path.name: card.view for card in window.card_list.cards.values()}
        for name, words in expected.items():
            card = cards[name]
            assert card.state is CardState.FAILED, name
            assert words in card.text.text(), name
            _assert_plain(card.text.text())
            qtbot.waitUntil(lambda card=card: card.thumbnail.text() == "No preview", timeout=10_000)
            _assert_plain(card.thumbnail.toolTip())
        assert "exceeds limit" in cards["bomb.png"].text.toolTip()
        assert cards["cut.jpg"].text.toolTip().startswith("Details: ")
    finally:
        window.shutdown()


def test_the_library_stores_and_reports_the_plain_reasons(tmp_path: Path) -> None:
    """Scan then tag a folder of bad files: what the scan reports unreadable and what the run records as
    failed (what the library window shows) is each file's plain reason."""
    from captioneer.desktop.library.catalog import open_catalog
    from captioneer.desktop.library.runs import RunSpec, execute_run, failed_items, plan_run
    from captioneer.desktop.library.scanner import scan_library
    from tests.fakes.tagging_engine import FakeEngine, fake_config

    library = tmp_path / "lib"
    library.mkdir()
    expected = make_bad_files(library)
    del expected["x.jpg"]  # a folder in a library is a folder of photos
    _noise().save(library / "good.jpg")
    with open_catalog() as catalog:
        report = scan_library(catalog, library)
        config = fake_config()
        plan = plan_run(
            catalog, str(library), catalog.photos_under(library), RunSpec(image_tokens=16), config
        )
        counts = execute_run(catalog, plan.run_id, FakeEngine(config))
        reasons = {Path(path).name: error for path, error in report.unreadable_files}
        reasons.update({Path(path).name: error for path, error, _kind in failed_items(catalog, plan.run_id)})
    assert counts.done == 1
    assert set(reasons) == set(expected)
    for name, words in expected.items():
        assert words in reasons[name], name
        _assert_plain(reasons[name])
