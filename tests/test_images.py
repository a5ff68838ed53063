"""Image preparation: bad inputs from reliability.md (I), colour modes, EXIF orientation, pixel budget."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import pytest
from PIL import Image

from captioneer.backends.errors import ImageError
from captioneer.backends.request import PreparedImage
from captioneer.desktop.core.images import PixelBudget, decode_image, prepare_image

RED = (255, 0, 0)
WHITE = (255, 255, 255)


def _marker_image(width: int = 128, height: int = 64) -> Image.Image:
    """White image with a 32×32 red block in the stored top-left corner."""
    image = Image.new("RGB", (width, height), WHITE)
    image.paste(RED, (0, 0, 32, 32))
    return image


def _is_red(pixel: tuple[int, int, int]) -> bool:
    r, g, b = pixel
    return r > 200 and g < 80 and b < 80


def _red_corner(image: Image.Image) -> str:
    w, h = image.size
    corners = {
        "top-left": (8, 8),
        "top-right": (w - 9, 8),
        "bottom-left": (8, h - 9),
        "bottom-right": (w - 9, h - 9),
    }
    red = [name for name, xy in corners.items() if _is_red(image.getpixel(xy))]
    assert len(red) == 1, f"expected one red corner, got {red}"
    return red[0]


# EXIF orientation → where the stored top-left corner appears when displayed, and whether sides swap.
ORIENTATIONS = {
    1: ("top-left", False),
    2: ("top-right", False),
    3: ("bottom-right", False),
    4: ("bottom-left", False),
    5: ("top-left", True),
    6: ("top-right", True),
    7: ("bottom-right", True),
    8: ("bottom-left", True),
}


@pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int) -> None:
    path = tmp_path / f"o{orientation}.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    _marker_image().save(path, quality=95, exif=exif.tobytes())
    before = path.read_bytes()

    prepared = prepare_image(path, PixelBudget(max_tokens=1024))

    corner, swapped = ORIENTATIONS[orientation]
    assert prepared.image.size == ((64, 128) if swapped else (128, 64))
    assert _red_corner(prepared.image) == corner
    assert path.read_bytes() == before, "the original file must never be modified"


def test_invalid_orientation_value_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "o9.jpg"
    exif = Image.Exif()
    exif[0x0112] = 9
    _marker_image().save(path, quality=95, exif=exif.tobytes())
    prepared = prepare_image(path)
    assert prepared.image.size == (128, 64)
    assert _red_corner(prepared.image) == "top-left"


def test_png_with_alpha_goes_onto_white(tmp_path: Path) -> None:
    path = tmp_path / "alpha.png"
    image = Image.new("RGBA", (64, 64), (0, 0, 255, 0))  # fully transparent blue
    image.paste((255, 0, 0, 255), (0, 0, 32, 64))  # opaque red left half
    image.save(path)
    prepared = prepare_image(path)
    assert prepared.image.mode == "RGB"
    assert prepared.image.getpixel((10, 10)) == RED
    assert prepared.image.getpixel((50, 10)) == WHITE


def test_la_and_palette_with_transparency(tmp_path: Path) -> None:
    la = tmp_path / "la.png"
    Image.new("LA", (64, 64), (0, 0)).save(la)  # black but fully transparent
    assert prepare_image(la).image.getpixel((5, 5)) == WHITE

    pal = tmp_path / "pal.png"
    p_image = Image.new("P", (64, 64), 1)
    p_image.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    p_image.info["transparency"] = 0
    p_image.paste(0, (0, 0, 32, 64))  # left half uses the transparent index
    p_image.save(pal, transparency=0)
    prepared = prepare_image(pal).image
    assert prepared.getpixel((5, 5)) == WHITE
    assert prepared.getpixel((50, 5)) == (0, 255, 0)


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (64, 64), (0, 255, 255, 0)).save(path, quality=95)  # pure red in CMYK
    prepared = prepare_image(path).image
    assert prepared.mode == "RGB"
    assert _is_red(prepared.getpixel((32, 32)))


def test_16_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    path = tmp_path / "sixteen.png"
    image = Image.new("I;16", (64, 64), 32768)  # mid grey in 16 bits
    image.save(path)
    assert Image.open(path).mode.startswith("I")
    r, g, b = prepare_image(path).image.getpixel((10, 10))
    assert r == g == b
    assert 120 <= r <= 136, f"16-bit mid grey should map near 128, got {r}"


def test_animated_gif_uses_first_frame(tmp_path: Path) -> None:
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (64, 64), colour) for colour in (RED, (0, 255, 0), (0, 0, 255))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(path).n_frames == 3
    assert _is_red(prepare_image(path).image.getpixel((32, 32)))


def test_heic_is_read(tmp_path: Path) -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()
    path = tmp_path / "photo.heic"
    Image.new("RGB", (128, 96), RED).save(path)
    prepared = prepare_image(path)
    assert prepared.image.size == (128, 96)
    assert _is_red(prepared.image.getpixel((64, 48)))


def test_content_not_matching_extension_is_decoded_by_content(tmp_path: Path) -> None:
    path = tmp_path / "really-a-png.jpg"
    Image.new("RGB", (64, 64), RED).save(path, format="PNG")
    assert prepare_image(path).image.getpixel((1, 1)) == RED


@pytest.mark.parametrize(
    ("name", "content", "kind", "words"),
    [
        ("empty.jpg", b"", "empty", "empty file"),
        ("notes.jpg", b"These are my holiday notes, not a photo.\n" * 20, "not-an-image", "not an image"),
        ("random.jpg", bytes(range(256)) * 64, "not-an-image", "not an image"),
        (
            "drawing.eps",
            b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n",
            "not-an-image",
            "not an image",
        ),
        (
            "doc.pdf",
            b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n",
            "not-an-image",
            "not an image",
        ),
    ],
)
def test_bad_files_give_clear_reasons(
    tmp_path: Path, name: str, content: bytes, kind: str, words: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageError) as info:
        prepare_image(path)
    assert info.value.kind == kind
    assert words in str(info.value)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_truncated_jpeg_is_corrupt(tmp_path: Path, fraction: float) -> None:
    import random

    rng = random.Random(7)
    noise = Image.frombytes("RGB", (256, 256), bytes(rng.randrange(256) for _ in range(256 * 256 * 3)))
    buf = io.BytesIO()
    noise.save(buf, format="JPEG", quality=90)
    data = buf.getvalue()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ImageError) as info:
        prepare_image(path)
    assert info.value.kind in {"corrupt", "not-an-image"}


def test_png_with_bad_crc_is_corrupt(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), RED).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    idat = data.index(b"IDAT")
    data[idat + 6] ^= 0xFF  # flip a byte of compressed data: the chunk's CRC no longer matches
    path = tmp_path / "badcrc.png"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageError) as info:
        prepare_image(path)
    assert info.value.kind == "corrupt"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageError) as info:
        prepare_image(tmp_path / "nope.jpg")
    assert info.value.kind == "missing"


def test_directory_and_fifo_are_not_read(tmp_path: Path) -> None:
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    with pytest.raises(ImageError):
        prepare_image(folder)
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ImageError) as info:
        prepare_image(fifo)  # must not block waiting for a writer
    assert info.value.kind == "unreadable"


def test_decompression_bomb_warning_is_an_error(tmp_path: Path) -> None:
    # Between Pillow's limit and twice the limit Pillow only warns; we refuse.
    path = tmp_path / "bomb-warning.png"
    Image.new("1", (10_000, 10_000)).save(path)
    assert path.stat().st_size < 200_000
    with pytest.raises(ImageError) as info:
        prepare_image(path)
    assert info.value.kind == "too-large"
    assert "too large" in str(info.value)


def test_decompression_bomb_error(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    Image.new("1", (14_000, 14_000)).save(path)
    with pytest.raises(ImageError) as info:
        prepare_image(path)
    assert info.value.kind == "too-large"


def test_twelve_megapixel_photo_reaches_the_budget(tmp_path: Path) -> None:
    path = tmp_path / "12mp.jpg"
    Image.new("RGB", (4000, 3000), (30, 120, 200)).save(path, quality=80)
    prepared = prepare_image(path, 1024)
    assert prepared.original_size == (4000, 3000)
    assert prepared.tokens <= 1024
    assert prepared.tokens > 900, "the budget should be used, not wasted"
    assert prepared.width % 32 == 0 and prepared.height % 32 == 0
    assert abs(prepared.width / prepared.height - 4 / 3) < 0.05


def test_bytes_input_for_clipboard_paste() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (100, 70), RED).save(buf, format="PNG")
    prepared = prepare_image(buf.getvalue())
    assert prepared.source == ""
    assert prepared.image.size == (96, 64)


def test_prepared_image_pickles_exactly() -> None:
    image = _marker_image()
    prepared = PreparedImage(image=image, source="x.jpg", original_size=(1280, 640))
    copy = pickle.loads(pickle.dumps(prepared))
    assert copy.image.tobytes() == image.tobytes()
    assert (copy.source, copy.original_size, copy.tokens) == ("x.jpg", (1280, 640), 8)


def test_prepared_image_rejects_off_grid_sizes() -> None:
    with pytest.raises(ValueError):
        PreparedImage(image=Image.new("RGB", (100, 64)))


# Pixel budget maths, checked against the token table in reference/models.md.
@pytest.mark.parametrize(
    ("size", "budget", "tokens"),
    [
        ((1024, 768), 1024, 768),
        ((1920, 1080), 1024, 1008),
        ((4000, 3000), 1024, 972),
        ((1600, 1200), 1024, 972),
        ((1024, 768), 256, 234),
        ((1920, 1080), 256, 252),
        ((4000, 3000), 256, 234),
        ((10, 10), 1024, 4),
        ((20_000, 40), 1024, 625),
        ((40, 100_000), 64, 64),
    ],
)
def test_pixel_budget_table(size: tuple[int, int], budget: int, tokens: int) -> None:
    fitted = PixelBudget(max_tokens=budget).fit(*size)
    assert fitted[0] % 32 == 0 and fitted[1] % 32 == 0
    assert PixelBudget(max_tokens=budget).tokens_for(*size) == tokens
    assert tokens <= budget


def test_decode_image_rejects_empty_bytes() -> None:
    with pytest.raises(ImageError):
        decode_image(b"")


@pytest.mark.skipif(os.name == "nt", reason="POSIX symbolic links")
def test_link_swapped_in_after_the_scan_is_refused_at_tagging_time(tmp_path: Path) -> None:
    from captioneer.desktop.library.catalog import open_catalog
    from captioneer.desktop.library.runs import RunSpec, execute_run, failed_items, plan_run
    from captioneer.desktop.library.scanner import scan_library
    from tests.fakes.tagging_engine import FakeEngine, fake_config

    library = tmp_path / "lib"
    library.mkdir()
    for i in range(3):
        _marker_image().save(library / f"p{i}.jpg")
    secret = tmp_path / "outside" / "private.png"
    secret.parent.mkdir()
    _marker_image().save(secret)
    with open_catalog() as catalog:
        scan_library(catalog, library)
        # After the scan, p1.jpg becomes a link to a file outside the library.
        (library / "p1.jpg").unlink()
        (library / "p1.jpg").symlink_to(secret)
        config = fake_config(invalid_on=[])
        plan = plan_run(
            catalog, str(library), catalog.photos_under(library), RunSpec(image_tokens=16), config
        )
        counts = execute_run(catalog, plan.run_id, FakeEngine(config))
        failed = failed_items(catalog, plan.run_id)
        assert counts.done == 2
        assert [(Path(path).name, kind) for path, _error, kind in failed] == [("p1.jpg", "refused")]
        assert "symbolic link" in (failed[0][1] or "")
        assert not catalog.results(path=str(library / "p1.jpg"))
    # A link given on purpose to `captioneer caption` is still followed.
    assert prepare_image(library / "p1.jpg", 16).image.size[0] > 0


@pytest.mark.skipif(os.name == "nt", reason="POSIX special files")
def test_no_links_read_refuses_fifos_and_captioneer_temp_files(tmp_path: Path) -> None:
    from captioneer.desktop.core.images import read_photo_no_links

    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match="not a regular file") as info:
        prepare_image(fifo, 16, refuse_links=True)  # returns at once: never blocks on the pipe
    assert info.value.kind == "refused"
    temp = tmp_path / ".captioneer-tmp-0123456789ab-p.jpg"
    _marker_image().save(temp, format="JPEG")
    with pytest.raises(ImageError, match="temp file") as info:
        prepare_image(temp, 16, refuse_links=True)
    assert info.value.kind == "refused"
    photo = tmp_path / "p.jpg"
    _marker_image().save(photo)
    assert read_photo_no_links(photo) == photo.read_bytes()
    assert prepare_image(photo, 16, refuse_links=True).image.size == prepare_image(photo, 16).image.size
