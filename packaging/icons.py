"""Platform icons made at build time from resources/icons/captioneer.svg: PNG, Windows .ico, macOS .icns.

Run as ``python packaging/icons.py OUT_DIR``; it renders the SVG with Qt (offscreen) and writes the icon
formats with Pillow, so the repository holds one reviewable vector file instead of binary icons.
"""

from __future__ import annotations

import os
import sys
from io import BytesIO
from pathlib import Path

from PIL import Image

SVG = Path(__file__).resolve().parent.parent / "resources" / "icons" / "captioneer.svg"
MASTER_SIZE = 1024
ICO_SIZES = [(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)]


def render_svg(svg: Path, size: int) -> Image.Image:
    """The SVG drawn on a transparent square of ``size`` pixels, as an RGBA Pillow image."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication.instance() or QGuiApplication(["captioneer-icons"])
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise ValueError(f"{svg} is not an SVG that Qt can draw")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    renderer.render(painter)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    buffer.close()
    del app
    return Image.open(BytesIO(bytes(data))).convert("RGBA")


def write_icons(out_dir: Path, svg: Path = SVG) -> dict[str, Path]:
    """Write ``captioneer.png`` (1024 px), ``captioneer.ico`` and ``captioneer.icns`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    master = render_svg(svg, MASTER_SIZE)
    paths = {
        "png": out_dir / "captioneer.png",
        "ico": out_dir / "captioneer.ico",
        "icns": out_dir / "captioneer.icns",
    }
    master.save(paths["png"])
    master.save(paths["ico"], sizes=ICO_SIZES)
    master.save(paths["icns"])
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python packaging/icons.py OUT_DIR")
    for kind, path in write_icons(Path(sys.argv[1])).items():
        print(f"{kind}: {path}")
