"""What context in the prompt costs a tagging run per photo: reading the facts (catalog, the photo's EXIF/XMP
and sidecar, the offline place lookup) before the photo is asked, next to a run without context.

    .venv/bin/python bench/context_cost.py [PHOTOS]

Makes PHOTOS (default 200) camera-like JPEGs with GPS, date, camera, caption and keywords written by exiftool
in a temporary library, scans it into a temporary catalog and prints the figures. Needs exiftool.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    exiftool = shutil.which("exiftool")
    if exiftool is None:
        print("exiftool is needed to write the photos' metadata", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="captioneer-context-bench-") as tmp:
        os.environ["CAPTIONEER_HOME"] = str(Path(tmp) / "home")
        from captioneer.desktop.core import places
        from captioneer.desktop.core.context import PHOTO_VARIABLES, ContextSpec, render_context
        from captioneer.desktop.core.tasks import get_task
        from captioneer.desktop.library.catalog import open_catalog
        from captioneer.desktop.library.photo_context import PhotoContexts
        from captioneer.desktop.library.scanner import scan_library

        root = Path(tmp) / "Photos" / "Wedding 2024"
        root.mkdir(parents=True)
        first = root / "IMG_0000.jpg"
        Image.effect_noise((1600, 1200), 40).convert("RGB").save(first, quality=90)
        subprocess.run(
            [exiftool, "-q", "-overwrite_original", "-GPSLatitude=48.8566", "-GPSLatitudeRef=N",
             "-GPSLongitude=2.3522", "-GPSLongitudeRef=E", "-DateTimeOriginal=2024:05:01 14:03:22",
             "-Make=Canon", "-Model=Canon EOS R5", "-XMP-dc:Description=At the town hall",
             "-XMP-dc:Subject=Family", str(first)],
            check=True,
        )
        for i in range(1, count):
            shutil.copyfile(first, root / f"IMG_{i:04d}.jpg")
        task = get_task("keywords")
        with open_catalog() as catalog:
            scan_library(catalog, root.parent)
            photos = catalog.photos_under(root.parent)
            started = time.perf_counter()
            places.place_at(48.8566, 2.3522)
            load = time.perf_counter() - started
            rows = []
            for label, spec in (
                ("no context", ContextSpec()),
                ("folder, path, keywords (catalog only)", ContextSpec(("folder", "path", "keywords"))),
                ("date, camera, caption (the files)", ContextSpec(("date", "camera", "caption"))),
                ("all, event typed", ContextSpec(PHOTO_VARIABLES, event="Anna's wedding")),
            ):
                contexts = PhotoContexts(catalog, task, spec)
                started = time.perf_counter()
                for photo in photos:
                    contexts.gather(photo)
                seconds = time.perf_counter() - started
                sample = render_context(contexts.pop(photos[0].path)) if spec.on else ""
                rows.append((label, seconds / len(photos) * 1000, len(sample)))
    print(f"{count} photos of 1600x1200; place names loaded once in {load:.2f} s (first lookup)")
    print(f"{'context':<40} {'ms/photo':>9} {'block chars':>12}")
    for label, per_photo, chars in rows:
        print(f"{label:<40} {per_photo:>9.2f} {chars:>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
