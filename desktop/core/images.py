"""Image preparation for every engine: decode safely, orient, convert to RGB, resize to the pixel budget."""

from __future__ import annotations

import errno
import io
import logging
import math
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from captioneer.backends.base import DEFAULT_IMAGE_TOKENS, Capabilities
from captioneer.backends.errors import ImageError
from captioneer.backends.files import TEMP_PREFIX, open_regular
from captioneer.backends.request import TOKEN_PIXELS, PreparedImage

log = logging.getLogger(__name__)

MIN_IMAGE_TOKENS = 4

# What a person reads when a photo cannot be used; the decoder's own text goes to the log and to ``detail``.
TOO_LARGE = "image is too large to open safely"
CUT_SHORT = "file is cut short: copy it again from the original"
NOT_AN_IMAGE = "not an image file"
DAMAGED = "image is damaged"
NOT_FOUND = "file not found"
NO_PERMISSION = "no permission to read this file"
EMPTY = "empty file (0 bytes)"
A_FOLDER = "this is a folder, not an image file"
RAW_NEEDS_DECODER = "this RAW photo needs the RAW decoder (rawpy)"
RAW_DAMAGED = "this RAW file is damaged or of a kind the decoder does not know"

# Pillow plugins we let decode user files. PostScript/EPS and PDF are never decoded (EPS runs Ghostscript).
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF", "ICO", "TGA", "PPM")

RAW_SUFFIXES = frozenset(
    [
        ".cr2",
        ".cr3",
        ".crw",
        ".nef",
        ".nrw",
        ".arw",
        ".srf",
        ".sr2",
        ".raf",
        ".orf",
        ".rw2",
        ".pef",
        ".srw",
        ".dng",
        ".3fr",
        ".erf",
        ".kdc",
        ".mrw",
        ".x3f",
        ".iiq",
    ]
)
IMAGE_SUFFIXES = (
    frozenset(
        [
            ".jpg",
            ".jpeg",
            ".jpe",
            ".jfif",
            ".png",
            ".webp",
            ".gif",
            ".bmp",
            ".tif",
            ".tiff",
            ".heic",
            ".heif",
            ".hif",
            ".avif",
            ".mpo",
            ".tga",
            ".ppm",
        ]
    )
    | RAW_SUFFIXES
)

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a cut-off file is an error, not a grey half-photo


@dataclass(frozen=True)
class PixelBudget:
    """How many visual tokens an image may cost. One token is a 32×32 pixel square."""

    max_tokens: int = DEFAULT_IMAGE_TOKENS
    min_tokens: int = MIN_IMAGE_TOKENS

    def __post_init__(self) -> None:
        if self.max_tokens < self.min_tokens or self.min_tokens < 1:
            raise ValueError(f"invalid pixel budget {self.min_tokens}…{self.max_tokens} tokens")

    def fit(self, width: int, height: int) -> tuple[int, int]:
        """The size to resize ``width``×``height`` to: sides multiples of 32, aspect ratio kept as well as
        the grid allows, token count within [min_tokens, max_tokens]."""
        if width < 1 or height < 1:
            raise ValueError("image has no pixels")
        unit = TOKEN_PIXELS
        w = max(unit, round(width / unit) * unit)
        h = max(unit, round(height / unit) * unit)
        if (w // unit) * (h // unit) > self.max_tokens:
            beta = math.sqrt(width * height / (self.max_tokens * unit * unit))
            w = max(unit, math.floor(width / beta / unit) * unit)
            h = max(unit, math.floor(height / beta / unit) * unit)
            # Very elongated images can still be over budget once a side is clamped to one token.
            while (w // unit) * (h // unit) > self.max_tokens:
                if w >= h:
                    w -= unit
                else:
                    h -= unit
        elif (w // unit) * (h // unit) < self.min_tokens:
            beta = math.sqrt(self.min_tokens * unit * unit / (width * height))
            w = math.ceil(width * beta / unit) * unit
            h = math.ceil(height * beta / unit) * unit
        if not self.min_tokens <= (w // unit) * (h // unit) <= self.max_tokens:
            # A narrow range (e.g. a server's minimum close to the budget) that scaling overshot.
            columns, rows = closest_grid(width / height, self.min_tokens, self.max_tokens)
            w, h = columns * unit, rows * unit
        return w, h

    def tokens_for(self, width: int, height: int) -> int:
        w, h = self.fit(width, height)
        return (w // TOKEN_PIXELS) * (h // TOKEN_PIXELS)


def engine_budget(max_tokens: int, capabilities: Capabilities) -> PixelBudget:
    """The pixel budget for an engine: at most ``max_tokens``, never below the smallest image the engine's
    processor takes as it is (it would enlarge a smaller one, costing tokens nobody counted)."""
    floor = max(MIN_IMAGE_TOKENS, capabilities.min_image_tokens)
    return PixelBudget(max_tokens=max_tokens, min_tokens=min(floor, max_tokens))


def closest_grid(aspect: float, min_tokens: int, max_tokens: int) -> tuple[int, int]:
    """The grid of ``columns × rows`` tokens, ``min_tokens ≤ columns·rows ≤ max_tokens``, whose shape is
    closest to ``aspect`` (width / height); of equally close ones the larger."""
    best: tuple[float, int, int, int] | None = None
    for rows in range(1, max_tokens + 1):
        low, high = max(1, -(-min_tokens // rows)), max_tokens // rows
        if low > high:
            continue
        ideal = aspect * rows
        nearest = (math.floor(ideal), math.ceil(ideal))
        for columns in {low, high, *(min(high, max(low, value)) for value in nearest)}:
            error = abs(math.log(columns / rows / aspect))
            key = (error, -columns * rows, columns, rows)
            if best is None or key < best:
                best = key
    assert best is not None, "min_tokens ≤ max_tokens always leaves a grid"
    return best[2], best[3]


_heif_registered = False


def _register_heif() -> bool:
    global _heif_registered
    if not _heif_registered:
        try:
            import pillow_heif
        except ImportError:
            return False
        pillow_heif.register_heif_opener()
        _heif_registered = True
    return True


def is_image_path(path: Path) -> bool:
    """Whether the file's name says it is a photo we can read (content is checked when decoding)."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def _decode_raw_preview(source: Path | io.BytesIO) -> Image.Image:
    try:
        import rawpy
    except ImportError:
        raise image_error(RAW_NEEDS_DECODER, "needs-plugin", "pip install 'captioneer[raw]'") from None
    try:
        with rawpy.imread(source if isinstance(source, io.BytesIO) else str(source)) as raw:
            try:
                thumb = raw.extract_thumb()
            except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
                return Image.fromarray(raw.postprocess(half_size=True, use_camera_wb=True))
    except rawpy.LibRawError as exc:
        raise image_error(RAW_DAMAGED, "corrupt", str(exc)) from None
    if thumb.format == rawpy.ThumbFormat.JPEG:
        return _open_allowed(io.BytesIO(thumb.data))
    return Image.fromarray(thumb.data)


_LINK_REFUSED = (
    "is now a symbolic link (it was a file when scanned): links are never followed; replace it with the "
    "photo itself and rescan"
)


def read_photo_no_links(path: Path) -> bytes:
    """The bytes of ``path``, refusing a symbolic link or a special file put there since the scan.

    The check and the read use one file descriptor opened without following links (``O_NOFOLLOW``), so a
    link swapped in between them is refused too, as the metadata writer refuses links.

    Raises:
        ImageError: ``refused`` for a link, a special file or a leftover Captioneer temp file; otherwise
            why the file cannot be read.
    """
    if path.name.startswith(TEMP_PREFIX):
        raise ImageError(
            "a leftover Captioneer temp file from an interrupted write, not a photo: not tagged",
            kind="refused",
        )
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise file_error(exc) from None
    if stat.S_ISLNK(info.st_mode):
        raise ImageError(_LINK_REFUSED, kind="refused")
    try:
        fd = open_regular(path)  # no link followed; a FIFO swapped in is refused, never waited on
    except OSError as exc:
        if os.path.islink(path):  # swapped in between the lstat and the open (ELOOP)
            raise ImageError(_LINK_REFUSED, kind="refused") from None
        if exc.errno == errno.EINVAL:
            raise ImageError(
                "is not a regular file (a device, pipe or folder): not tagged", kind="refused"
            ) from None
        raise file_error(exc) from None
    with os.fdopen(fd, "rb") as fh:
        try:
            return fh.read()
        except OSError as exc:
            raise file_error(exc) from None


def _openable_formats() -> list[str]:
    """The allowed formats that have a decoder here (HEIF/AVIF only once their plugin is registered)."""
    Image.init()
    return [name for name in ALLOWED_FORMATS if name in Image.OPEN]


def image_error(message: str, kind: str, detail: str = "") -> ImageError:
    """An :class:`ImageError` in plain words; the technical ``detail`` is logged and kept on the error."""
    if detail:
        log.info("image cannot be used: %s (%s)", message, detail)
    return ImageError(message, kind=kind, detail=detail)


def file_error(exc: OSError) -> ImageError:
    """Why the operating system would not let us read a file, as a person would say it."""
    detail = f"{exc.strerror or exc} ({exc.filename})" if exc.filename else str(exc)
    if isinstance(exc, FileNotFoundError):
        return image_error(NOT_FOUND, "missing", detail)
    if isinstance(exc, PermissionError):
        return image_error(NO_PERMISSION, "unreadable", detail)
    if isinstance(exc, IsADirectoryError):
        return image_error(A_FOLDER, "unreadable", detail)
    return image_error(f"cannot read this file ({(exc.strerror or str(exc)).lower()})", "unreadable", detail)


# Leading bytes of the formats we decode: a file that starts like one of them and still fails is damaged
# (or cut short), not "not an image".
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


def looks_like_image(head: bytes) -> bool:
    """Whether ``head`` (a file's first bytes) starts like a format Captioneer decodes."""
    if head.startswith(_SIGNATURES):
        return True
    return (head[:4] == b"RIFF" and head[8:12] == b"WEBP") or head[4:8] == b"ftyp"


def is_cut_short(head: bytes, tail: bytes, size: int) -> bool:
    """Whether a file of ``size`` bytes lacks the ending its own format promises (``tail``: its last bytes):
    a PNG without IEND, a JPEG without its end marker, a WebP shorter than its RIFF header says, a GIF
    without its trailer."""
    if head.startswith(b"\x89PNG"):
        return not tail.endswith(b"IEND\xaeB`\x82")
    if head.startswith(b"\xff\xd8"):
        return b"\xff\xd9" not in tail[-64:]
    if head[:4] == b"RIFF" and len(head) >= 8:
        return int.from_bytes(head[4:8], "little") + 8 > size
    if head.startswith((b"GIF87a", b"GIF89a")):
        return not tail.endswith(b";")
    return False


def _ends(source: io.BytesIO | Path) -> tuple[bytes, bytes, int]:
    """The first and last 64 bytes of ``source`` and its size (empty when it can no longer be read)."""
    if isinstance(source, io.BytesIO):
        with source.getbuffer() as data:
            return bytes(data[:64]), bytes(data[-64:]), len(data)
    try:
        with open(source, "rb") as fh:
            head = fh.read(64)
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - 64))
            return head, fh.read(), size
    except OSError:
        return b"", b"", 0


def decode_failure(detail: str, head: bytes, tail: bytes, size: int) -> ImageError:
    """The plain reason a file that Pillow would not decode cannot be used (``detail``: Pillow's text)."""
    if not looks_like_image(head):
        return image_error(NOT_AN_IMAGE, "not-an-image", detail or "no decoder recognises the file")
    if "truncated" in detail.lower() or is_cut_short(head, tail, size):
        return image_error(CUT_SHORT, "corrupt", detail)
    return image_error(DAMAGED, "corrupt", detail)


def _open_allowed(source: io.BytesIO | Path) -> Image.Image:
    _register_heif()
    ends = _ends(source)  # read first: Pillow may close the source when decoding fails
    image: Image.Image | None = None
    try:
        image = Image.open(source, formats=_openable_formats())
        image.load()  # decode now, inside the guards, not later in an engine
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        if image is not None:
            image.close()
        raise image_error(TOO_LARGE, "too-large", str(exc)) from None
    except PermissionError as exc:
        raise file_error(exc) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # UnidentifiedImageError is an OSError
        if image is not None:
            image.close()
        detail = "" if isinstance(exc, UnidentifiedImageError) else f"{type(exc).__name__}: {exc}"
        raise decode_failure(detail, *ends) from None
    return image


def decode_image(source: str | os.PathLike[str] | bytes, *, refuse_links: bool = False) -> Image.Image:
    """Open a file (or bytes) as a fully decoded Pillow image, with every safety guard on.

    ``refuse_links`` reads the file through :func:`read_photo_no_links` (the tagger's photos: a link swapped
    in after the scan is refused); without it a link given on purpose (``captioneer caption link.jpg``) is
    followed.

    Raises:
        ImageError: with a reason a person understands and a ``kind`` for reports.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        if isinstance(source, bytes):
            if not source:
                raise image_error(EMPTY, "empty")
            return _open_allowed(io.BytesIO(source))
        path = Path(source)
        data: Path | io.BytesIO = path
        if refuse_links:
            data = io.BytesIO(read_photo_no_links(path))
            size = len(data.getbuffer())
        else:
            try:
                info = path.stat()
            except OSError as exc:
                raise file_error(exc) from None
            if stat.S_ISDIR(info.st_mode):
                raise image_error(A_FOLDER, "unreadable", f"{path} is a directory")
            if not stat.S_ISREG(info.st_mode):
                raise image_error("not a regular file (a device or pipe)", "unreadable", f"{path}")
            size = info.st_size
        if size == 0:
            raise image_error(EMPTY, "empty")
        suffix = path.suffix.lower()
        if suffix in {".heic", ".heif", ".hif", ".avif"} and not _register_heif():
            kind_name = "AVIF" if suffix == ".avif" else "HEIC"
            raise image_error(
                f"this {kind_name} photo needs pillow-heif", "needs-plugin", "pip install pillow-heif"
            )
        if suffix in RAW_SUFFIXES:
            return _decode_raw_preview(data)
        return _open_allowed(data)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB: transparency onto white, 16-bit and float scaled, CMYK converted."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        image = image.convert("I")
        mode = "I"
    if mode == "I":
        # 16-bit data stored in 32-bit ints; scale to 8 bits instead of clipping everything to white.
        hi = image.getextrema()[1]
        scale = 1 / 256 if hi > 255 else 1
        return image.point(lambda v: v * scale).convert("L").convert("RGB")
    if mode == "F":
        lo, hi = image.getextrema()
        span = (hi - lo) or 1.0
        return image.point(lambda v: (v - lo) * 255.0 / span).convert("L").convert("RGB")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "RGB":
        return image
    return image.convert("RGB")


def prepare_image(
    source: str | os.PathLike[str] | bytes,
    budget: PixelBudget | int = DEFAULT_IMAGE_TOKENS,
    *,
    refuse_links: bool = False,
) -> PreparedImage:
    """The one way every engine gets an image: decoded, EXIF-oriented, RGB, resized to ``budget``.

    The original file is never modified. ``refuse_links``: see :func:`decode_image`.
    """
    if isinstance(budget, int):
        budget = PixelBudget(max_tokens=budget)
    image = decode_image(source, refuse_links=refuse_links)
    try:
        if getattr(image, "n_frames", 1) > 1:
            image.seek(0)
        try:
            oriented = ImageOps.exif_transpose(image)
        except (ValueError, TypeError, SyntaxError, OSError):
            oriented = image  # a malformed EXIF block must not lose the photo
        original_size = oriented.size
        rgb = to_rgb(oriented)
        target = budget.fit(*rgb.size)
        if rgb.size != target:
            rgb = rgb.resize(target, Image.Resampling.BICUBIC, reducing_gap=3.0)
        elif rgb is image:
            rgb = rgb.copy()
    finally:
        image.close()
    source_name = "" if isinstance(source, bytes) else os.fspath(source)
    return PreparedImage(image=rgb, source=source_name, original_size=original_size)
