"""Generates the benchmark's fixed set of camera-like photos: JPEGs of real camera sizes with smooth light,
shapes and sensor noise, the same bytes on every run (seeded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

PHOTO_SIZES = ((1600, 1200), (2048, 1536), (3000, 2000), (4000, 3000))
"""2 MP (the seed documents' example), 3 MP, a 6 MP 3:2 sensor and a 12 MP phone."""
SEED = 20261122


def make_photo(width: int, height: int, seed: int) -> Image.Image:
    """One synthetic photo: a lit gradient "sky and ground", a few filled shapes, Gaussian noise."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    zero = np.zeros((height, width), dtype=np.float32)
    sky = np.stack([90 + 80 * y + 30 * x, 140 + 60 * y + zero, 200 - 60 * y + zero], axis=-1)
    image = Image.fromarray(np.clip(sky, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = rng.integers(0, width), rng.integers(height // 3, height)
        size = int(rng.integers(min(width, height) // 20, min(width, height) // 4))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        box = (int(x0), int(y0), int(x0) + size, int(y0) + size)
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    pixels = np.asarray(image, dtype=np.int16)
    noise = rng.normal(0.0, 6.0, pixels.shape).astype(np.int16)
    return Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8), "RGB")


def ensure_photos(folder: Path, sizes: tuple[tuple[int, int], ...] = PHOTO_SIZES) -> list[Path]:
    """Write the photos of ``sizes`` into ``folder`` (once) and return their paths, smallest first."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, (width, height) in enumerate(sizes):
        path = folder / f"photo-{width}x{height}.jpg"
        if not path.is_file():
            make_photo(width, height, SEED + index).save(path, quality=90)
        paths.append(path)
    return paths
