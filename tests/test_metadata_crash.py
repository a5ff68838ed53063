"""Killing the metadata writer at random moments never leaves a truncated file; no temp survives a restart."""

from __future__ import annotations

import hashlib
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from PIL import Image

from captioneer.backends.files import TEMP_PREFIX
from captioneer.desktop.library.journal import read_entries, remove_stale_temps, undo
from captioneer.desktop.library.metadata import exiv2_module, read_metadata

REPO = Path(__file__).resolve().parents[1]
KILLS = 30

WRITER = textwrap.dedent(
    """
    import sys, uuid
    from pathlib import Path
    from captioneer.desktop.library.journal import Journal
    from captioneer.desktop.library.merge import Generated
    from captioneer.desktop.library.sidecars import WriteMode
    from captioneer.desktop.library.writer import WriteOptions, apply, plan_write
    photo, root, journal = Path(sys.argv[1]), Path(sys.argv[2]), Journal(Path(sys.argv[3]))
    options = WriteOptions(mode=WriteMode.BOTH)
    written = 0
    while True:
        generated = Generated(keywords=("k" + uuid.uuid4().hex[:8],), caption="c" + uuid.uuid4().hex)
        apply(plan_write(photo, generated, library_root=root, options=options), journal)
        written += 1
        if written == 1:
            print("ready", flush=True)  # one full write done; the kill lands somewhere in the next ones
    """
)


def _check_consistent(photo: Path, sidecar: Path, original_pixels: bytes) -> None:
    with Image.open(photo) as image:
        image.load()
        assert image.tobytes() == original_pixels
    exiv2 = exiv2_module()
    embedded = exiv2.ImageFactory.open(str(photo))
    embedded.readMetadata()
    assert read_metadata(embedded.xmpData()).keywords[:1] == ("Family",)
    if sidecar.exists():
        data = sidecar.read_bytes()
        parsed = exiv2.ImageFactory.open(data)
        parsed.readMetadata()
        assert read_metadata(parsed.xmpData()).keywords[:1] == ("Family",)


def test_random_kills_never_leave_a_truncated_file(tmp_path: Path):
    library = tmp_path / "library"
    library.mkdir()
    photo = library / "IMG.jpg"
    Image.effect_noise((96, 64), 60).convert("RGB").save(photo, quality=90)
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", "-XMP-dc:Subject=Family", str(photo)], check=True
    )
    original = photo.read_bytes()
    with Image.open(photo) as image:
        original_pixels = image.tobytes()
    sidecar = library / "IMG.jpg.xmp"
    journal_dir = tmp_path / "journal" / "run"
    rng = random.Random(7)
    started = time.monotonic()
    for _ in range(KILLS):
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(photo), str(library), str(journal_dir)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert child.stdout.readline() == b"ready\n", child.stderr.read().decode()
        time.sleep(rng.uniform(0.0, 0.15))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        child.stderr.close()
        _check_consistent(photo, sidecar, original_pixels)
    elapsed = time.monotonic() - started

    assert (
        len(read_entries(journal_dir)) >= 2 * KILLS
    )  # each run wrote the photo and its sidecar at least once
    remove_stale_temps(library)
    assert not [p for p in library.iterdir() if p.name.startswith(TEMP_PREFIX)]
    report = undo(journal_dir)
    assert report.ok, report
    assert hashlib.sha256(photo.read_bytes()).digest() == hashlib.sha256(original).digest()
    assert not sidecar.exists()
    assert elapsed < 60
