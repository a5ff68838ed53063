"""Before the window opens on Linux: are the system libraries Qt's xcb platform plugin needs installed?

Without them Qt aborts with "could not load the Qt platform plugin xcb", which names no package. This
check asks the dynamic linker (``ldd`` on the plugin PySide6 would load) and names the Debian/Ubuntu
packages to install. It imports no Qt, so it runs before the QApplication exists.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

# What PySide6 6.x's libqxcb.so (and the Qt libraries it pulls in) links against, by Debian/Ubuntu package.
# From `ldd` on PySide6 6.11's plugins/platforms/libqxcb.so; xcb-cursor is required since Qt 6.5.
XCB_PACKAGES: dict[str, str] = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libdbus-1.so.3": "libdbus-1-3",
}

_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found\s*$", re.MULTILINE)


def missing_from_ldd(output: str) -> list[str]:
    """The system libraries ``ldd`` reported as "not found", in its order, each once. Qt's own libraries
    are left out: PySide6 ships them and loads them itself."""
    found = _NOT_FOUND.findall(output)
    return list(dict.fromkeys(name for name in found if not name.startswith(("libQt6", "libpyside6"))))


def uses_xcb(platform: str, environ: Mapping[str, str]) -> bool:
    """Whether Qt will load the xcb plugin here: on Linux, asked for by ``QT_QPA_PLATFORM``, or by default
    outside a Wayland session (Qt 6 prefers its Wayland plugin there)."""
    if not platform.startswith("linux"):
        return False
    asked = environ.get("QT_QPA_PLATFORM", "")
    if asked:
        return asked.split(";")[0].split(":")[0] == "xcb"
    wayland = environ.get("XDG_SESSION_TYPE") == "wayland" and bool(environ.get("WAYLAND_DISPLAY"))
    return not wayland


def missing_message(missing: Iterable[str]) -> str:
    """What to tell a person whose system lacks ``missing`` (library file names): the packages and the
    one apt command that installs them; files we cannot name a package for are listed as they are."""
    missing = list(missing)
    packages = list(dict.fromkeys(XCB_PACKAGES[name] for name in missing if name in XCB_PACKAGES))
    unknown = [name for name in missing if name not in XCB_PACKAGES]
    lines = [
        "Captioneer's window cannot open: the Qt xcb platform needs system libraries that are missing "
        f"({', '.join(missing)})."
    ]
    if packages:
        lines.append(f"On Debian or Ubuntu install them with:  sudo apt install {' '.join(packages)}")
    if unknown:
        lines.append(f"Install the packages of your distribution that provide {', '.join(unknown)}.")
    lines.append("The command line (captioneer caption …, captioneer tag …) works without them.")
    return "\n".join(lines)


def xcb_plugin(environ: Mapping[str, str]) -> Path | None:
    """PySide6's libqxcb.so, or the file ``CAPTIONEER_XCB_PLUGIN`` names (tests check a copy that needs a
    library this machine lacks); ``None`` when there is none (Qt will say so itself)."""
    if environ.get("CAPTIONEER_XCB_PLUGIN"):
        chosen = Path(environ["CAPTIONEER_XCB_PLUGIN"])
        return chosen if chosen.is_file() else None
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.origin:
        return None
    plugin = Path(spec.origin).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return plugin if plugin.is_file() else None


def check_xcb_libraries(platform: str = sys.platform, environ: Mapping[str, str] = os.environ) -> str | None:
    """The message for a person when the xcb plugin's libraries are missing, else ``None``. Fail-soft: no
    ``ldd`` or no plugin means nothing to say (Qt then reports what it finds)."""
    if not uses_xcb(platform, environ):
        return None
    plugin, ldd = xcb_plugin(environ), shutil.which("ldd")
    if plugin is None or ldd is None:
        return None
    try:
        done = subprocess.run(
            [ldd, str(plugin)], capture_output=True, text=True, timeout=20, env=dict(environ), check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    missing = missing_from_ldd(done.stdout)
    return missing_message(missing) if missing else None
