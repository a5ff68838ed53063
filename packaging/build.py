"""Build Captioneer for this computer's OS with PyInstaller, package it, and smoke-test the frozen app.

    python packaging/build.py [--variant base|full] [--label L] [--skip-smoke-test] [--keep-smoke-dir]

Steps: icons from the SVG, PyInstaller with packaging/captioneer.spec, then per OS the thing people download
(macOS: signed/notarized .app in a DMG when credentials are set; Windows: the Inno Setup installer when
ISCC.exe is found; Linux: a tarball of the onedir folder), then the frozen app is copied outside the source
tree and must print its version, caption a test image in its window through the engine host process, caption
it again headless, and (base) explain that the transformers engine is in the Full download or (full) caption
with the transformers engine pack.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import recipe

PACKAGING = Path(__file__).resolve().parent
ROOT = recipe.ROOT
BUILD = ROOT / "build"
DIST = ROOT / "dist"
TINY_MODEL = ROOT / "tests" / "fixtures" / "tiny-qwen3vl-gguf"
TINY_TRANSFORMERS_MODEL = ROOT / "tests" / "fixtures" / "tiny-qwen3vl"
SMOKE_TIMEOUT_S = 900
ISCC_PLACES = (
    Path(os.environ.get("PROGRAMFILES(X86)", r"C:\Program Files (x86)")) / "Inno Setup 6" / "ISCC.exe",
    Path(os.environ.get("LOCALAPPDATA", r"C:\Users\Default\AppData\Local")) / "Programs" / "Inno Setup 6"
    / "ISCC.exe",
)


class BuildError(Exception):
    """A build step failed; the message says which and what to do."""


@dataclass
class Report:
    """What the build made and how long each step took, printed at the end."""

    steps: list[tuple[str, float]] = field(default_factory=list)
    artifacts: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def timed(self, name: str, started: float) -> None:
        self.steps.append((name, time.monotonic() - started))


def arch() -> str:
    machine = platform.machine().lower()
    return {"amd64": "x64", "x86_64": "x64", "aarch64": "arm64"}.get(machine, machine)


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def run(command: Sequence[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    print("+ " + " ".join(str(part) for part in command), flush=True)
    return subprocess.run([str(part) for part in command], text=True, check=False, **kwargs)  # type: ignore[call-overload]


def check_prerequisites(variant: str) -> None:
    """Fail early, with the install command, when the build environment lacks something the app needs."""
    needed = {
        "PyInstaller": "packaging",
        "PySide6": "gui",
        "llama_cpp": "gguf",
        "ollama": "ollama",
        "openai": "openai",
        "huggingface_hub": "hub",
        "psutil": "hardware",  # the smoke test watches the app's processes with it
        "reverse_geocode": "places",  # place names from GPS for the prompt's context
        "av": "video",  # PyAV: video clips are probed and sampled with the FFmpeg inside its wheel
    }
    if variant == "full":
        needed |= {"torch": "transformers", "transformers": "transformers"}
    missing = {module: extra for module, extra in needed.items() if importlib.util.find_spec(module) is None}
    if missing:
        extras = ",".join(sorted(set(missing.values())))
        raise BuildError(
            f"Missing for the build: {', '.join(missing)}. Install with: pip install -e '.[{extras}]'"
        )


def make_icons(out_dir: Path) -> None:
    """The icons come from the SVG in a separate process, so this script never holds a Qt application."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    result = run([sys.executable, PACKAGING / "icons.py", out_dir], env=env)
    if result.returncode != 0:
        raise BuildError("Making the icons from resources/icons/captioneer.svg failed (see above)")


def pyinstaller(variant: str, icons: Path) -> None:
    command = [
        sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean",
        "--distpath", DIST, "--workpath", BUILD / f"pyinstaller-{variant}",
        PACKAGING / "captioneer.spec", "--", "--variant", variant, "--icons", icons,
    ]
    if run(command, cwd=ROOT).returncode != 0:
        raise BuildError("PyInstaller failed (see its log above)")


def bundle_path(variant: str) -> Path:
    """The built app: ``dist/Captioneer.app`` on macOS, the onedir folder elsewhere."""
    names = recipe.names(sys.platform, variant)
    return DIST / (f"{names.folder}.app" if sys.platform == "darwin" else names.folder)


def executables(bundle: Path, variant: str) -> tuple[Path, Path]:
    """(windowed app, executable that prints to the terminal) inside ``bundle``; the same file except on
    Windows, where a windowed .exe has no console."""
    names = recipe.names(sys.platform, variant)
    if sys.platform == "darwin":
        app = bundle / "Contents" / "MacOS" / names.executable
        return app, app
    if sys.platform == "win32":
        return bundle / f"{names.executable}.exe", bundle / f"{names.console_executable}.exe"
    app = bundle / names.executable
    return app, app


def artifact_stem(bundle: Path, version: str, system: str, label: str | None) -> str:
    """``Captioneer-0.1.0-windows-x64-cuda``: app, version, OS, processor and the optional build label."""
    parts = [bundle.stem, version, system, arch()] + ([label] if label else [])
    return "-".join(parts)


def package_macos(bundle: Path, version: str, label: str | None, report: Report) -> None:
    dmg = DIST / f"{artifact_stem(bundle, version, 'macos', label)}.dmg"
    result = run(["bash", PACKAGING / "macos" / "sign_and_notarize.sh", bundle, dmg])
    if result.returncode != 0:
        raise BuildError("Signing, the DMG or notarization failed (see above)")
    report.artifacts.append(dmg)


def find_iscc() -> Path | None:
    on_path = shutil.which("iscc") or shutil.which("ISCC.exe")
    if on_path:
        return Path(on_path)
    return next((place for place in ISCC_PLACES if place.is_file()), None)


def package_windows(bundle: Path, version: str, label: str | None, icons: Path, report: Report) -> None:
    iscc = find_iscc()
    if iscc is None:
        report.notes.append(
            "No installer: Inno Setup 6 (ISCC.exe) was not found. Install it from "
            "https://jrsoftware.org/isdl.php (or `choco install innosetup`) and build again."
        )
        return
    name = f"{artifact_stem(bundle, version, 'windows', label)}-setup"
    numeric = ".".join(str(number) for number in recipe.windows_version_tuple(version))
    result = run([
        iscc, f"/DAppVersion={version}", f"/DAppVersionNumeric={numeric}",
        f"/DSourceDir={bundle}", f"/DOutputDir={DIST}",
        f"/DOutputName={name}", f"/DIconFile={icons / 'captioneer.ico'}",
        PACKAGING / "windows" / "captioneer.iss",
    ])
    if result.returncode != 0:
        raise BuildError("Inno Setup could not build the installer (see above)")
    report.artifacts.append(DIST / f"{name}.exe")


def package_linux(bundle: Path, version: str, label: str | None, icons: Path, report: Report) -> None:
    """A tarball of the onedir folder with the icon and a desktop entry people can copy to their menu."""
    archive = DIST / f"{artifact_stem(bundle, version, 'linux', label)}.tar.gz"
    shutil.copy2(icons / "captioneer.png", bundle / "captioneer.png")
    shutil.copy2(PACKAGING / "linux" / "captioneer.desktop", bundle / "captioneer.desktop")
    with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
        tar.add(bundle, arcname=bundle.name)
    report.artifacts.append(archive)


@dataclass(frozen=True)
class SmokeOutcome:
    ok: bool
    seconds: float
    output: str
    children: tuple[tuple[str, str], ...]  # (executable, command line) of each process the app started


def smoke_environment(home: Path) -> dict[str, str]:
    """The frozen app's environment: a fresh data home, no display needed, nothing pointing at the source
    tree or this virtual environment."""
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("PYTHON", "VIRTUAL_ENV", "CAPTIONEER_", "QT_", "CONDA"))
    }
    env.update({"CAPTIONEER_HOME": str(home), "QT_QPA_PLATFORM": "offscreen"})
    return env


def run_frozen(command: Sequence[str | Path], cwd: Path, env: dict[str, str], log: Path) -> SmokeOutcome:
    """Run the frozen app, noting every process it starts (the engine host must be one of them).

    Output is stdout and stderr, plus ``log``, where a windowed .exe writes since it has no console.
    """
    import psutil

    print("+ " + " ".join(str(part) for part in command), flush=True)
    started = time.monotonic()
    children: dict[int, tuple[str, str]] = {}
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as captured:
        process = subprocess.Popen(
            [str(part) for part in command], cwd=cwd, env=env, stdout=captured, stderr=subprocess.STDOUT,
            text=True,
        )
        watched = psutil.Process(process.pid)
        while process.poll() is None:
            if time.monotonic() - started > SMOKE_TIMEOUT_S:
                process.kill()
                process.wait()
                return SmokeOutcome(False, SMOKE_TIMEOUT_S, f"no answer within {SMOKE_TIMEOUT_S} s", ())
            try:
                found = watched.children(recursive=True)
            except psutil.Error:  # the app itself is ending
                found = []
            for child in found:
                try:
                    # Overwrite: right after fork a child still shows its parent's command line.
                    children[child.pid] = (child.exe(), " ".join(child.cmdline()))
                except psutil.Error:  # it ended while we looked
                    continue
            time.sleep(0.02)
        captured.seek(0)
        output = captured.read()
    if log.is_file():
        output += log.read_text(encoding="utf-8", errors="replace")
        log.unlink()
    seconds = time.monotonic() - started
    print(output.rstrip(), flush=True)
    return SmokeOutcome(process.returncode == 0, seconds, output, tuple(children.values()))


def started_engine_host(outcome: SmokeOutcome, bundle: Path) -> bool:
    """Whether one of the app's child processes was a multiprocessing spawn child run from the bundle."""
    return any(
        "--multiprocessing-fork" in line and inside(exe, bundle) for exe, line in outcome.children
    )


def inside(path: str, folder: Path) -> bool:
    """Whether ``path`` lies in ``folder``, compared after resolving links and short names (macOS's /var is
    /private/var; Windows' temp folder may come as RUNNER~1)."""
    return bool(path) and Path(path).resolve().is_relative_to(folder.resolve())


def leftover_processes(bundle: Path, wait_s: float = 10.0) -> list[str]:
    """Processes still running from inside ``bundle`` after the app exited (waits for them to go first)."""
    import psutil

    deadline = time.monotonic() + wait_s
    while True:
        left = []
        for process in psutil.process_iter(["exe", "cmdline"]):
            exe = process.info["exe"] or ""
            if inside(exe, bundle):
                left.append(f"{process.pid}: {' '.join(process.info['cmdline'] or [exe])}")
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def make_test_image(path: Path) -> None:
    """A small photo-like picture: sky, sun and a hill, so the test image is made here, not shipped."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (320, 240), (120, 170, 230))
    draw = ImageDraw.Draw(image)
    draw.ellipse((230, 30, 290, 90), fill=(255, 220, 90))
    draw.polygon([(0, 240), (140, 110), (320, 240)], fill=(60, 140, 70))
    image.save(path, quality=90)


def smoke_test(bundle: Path, variant: str, version: str, keep: bool, report: Report) -> None:
    """Copy the app outside the source tree and check it: --version, the window's smoke test (engine host
    child started from the bundle), a headless caption, and the left-out engine's message."""
    with tempfile.TemporaryDirectory(prefix="captioneer-smoke-") as tmp_name:
        tmp = Path(tmp_name).resolve()
        if tmp.resolve().is_relative_to(ROOT):
            raise BuildError(f"The smoke test must run outside the source tree, but {tmp} is inside {ROOT}")
        started = time.monotonic()
        copy = tmp / bundle.name
        shutil.copytree(bundle, copy, symlinks=True)
        model_dir = tmp / "model"
        shutil.copytree(TINY_MODEL, model_dir)
        image = tmp / "test-photo.jpg"
        make_test_image(image)
        report.timed("copy the app outside the source tree", started)
        app, cli = executables(copy, variant)
        home = tmp / "home"
        env = smoke_environment(home)
        log = home / "logs" / "output.log"
        model = [
            "--engine", "gguf", "--model", model_dir / "model.gguf", "--mmproj", model_dir / "mmproj.gguf",
        ]
        failures: list[str] = []

        outcome = run_frozen([cli, "--version"], tmp, env, log)
        report.steps.append(("frozen --version", outcome.seconds))
        if not outcome.ok or f"captioneer {version}" not in outcome.output:
            failures.append(f"--version did not print 'captioneer {version}'")

        outcome = run_frozen([app, "--smoke-test", image, *model], tmp, env, log)
        report.steps.append(("frozen window smoke test (engine host)", outcome.seconds))
        if not outcome.ok or "smoke test: ok" not in outcome.output:
            failures.append("the window's smoke test did not caption the image")
        if not started_engine_host(outcome, copy):
            failures.append("the window did not start its engine host process from the bundle")

        outcome = run_frozen([cli, "caption", image, *model], tmp, env, log)
        report.steps.append(("frozen headless caption (engine host)", outcome.seconds))
        if not outcome.ok or not outcome.output.strip():
            failures.append("the headless caption command failed")
        if not started_engine_host(outcome, copy):
            failures.append("the caption command did not start its engine host process from the bundle")

        if variant == "full":
            shutil.copytree(TINY_TRANSFORMERS_MODEL, tmp / "transformers-model")
            pack = ["--engine", "transformers", "--model", tmp / "transformers-model", "--quant", "fp32",
                    "--device", "cpu"]
            outcome = run_frozen([cli, "caption", image, *pack], tmp, env, log)
            report.steps.append(("frozen headless caption (transformers pack)", outcome.seconds))
            if not outcome.ok or not started_engine_host(outcome, copy):
                failures.append("the transformers engine pack did not caption through its engine host")
        if variant == "base":
            missing_engine = ["--engine", "transformers", "--model", "x"]
            outcome = run_frozen([cli, "caption", image, *missing_engine], tmp, env, log)
            report.steps.append(("frozen: transformers is in the Full download", outcome.seconds))
            if outcome.ok or "Captioneer Full" not in outcome.output:
                failures.append("asking for the transformers engine did not say it is in the Full download")

        left = leftover_processes(copy)
        if left:
            failures.append("processes were left running: " + "; ".join(left))

        if keep:
            kept = Path(tempfile.mkdtemp(prefix="captioneer-smoke-kept-"))
            shutil.copytree(tmp, kept, symlinks=True, dirs_exist_ok=True)
            report.notes.append(f"Smoke-test folder kept at {kept}")
        if failures:
            raise BuildError("The frozen app failed its smoke test: " + "; ".join(failures))
        report.notes.append(f"Smoke test passed from {copy} (outside the source tree)")


def build(variant: str, label: str | None, skip_smoke_test: bool, keep_smoke_dir: bool) -> Report:
    report = Report()
    version = recipe.project_version()
    check_prerequisites(variant)
    print(f"Building Captioneer {version} ({variant}) for {sys.platform}/{arch()}", flush=True)

    started = time.monotonic()
    icons = BUILD / "icons"
    make_icons(icons)
    report.timed("icons", started)

    started = time.monotonic()
    pyinstaller(variant, icons)
    report.timed("PyInstaller", started)
    bundle = bundle_path(variant)
    if not bundle.exists():
        raise BuildError(f"PyInstaller finished but {bundle} is missing")
    report.artifacts.append(bundle)

    # Package first, so on macOS the smoke test runs the signed app people get.
    started = time.monotonic()
    if sys.platform == "darwin":
        package_macos(bundle, version, label, report)
    elif sys.platform == "win32":
        package_windows(bundle, version, label, icons, report)
    else:
        package_linux(bundle, version, label, icons, report)
    report.timed("package", started)

    if not skip_smoke_test:
        smoke_test(bundle, variant, version, keep_smoke_dir, report)
    return report


def print_report(report: Report) -> None:
    print("\nCaptioneer build finished")
    for name, seconds in report.steps:
        print(f"  {name:<45} {seconds:7.1f} s")
    for artifact in report.artifacts:
        size = folder_size(artifact) if artifact.is_dir() else artifact.stat().st_size
        print(f"  {artifact}  ({size / 1e6:.0f} MB)")
    for note in report.notes:
        print(f"  {note}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--variant", choices=recipe.VARIANTS, default="base",
        help="base: gguf, Ollama and OpenAI engines; full: also the transformers engine (PyTorch, GBs)",
    )
    parser.add_argument(
        "--label", help="added to the file names of what people download, e.g. cuda or cpu (default: none)",
    )
    parser.add_argument("--skip-smoke-test", action="store_true", help="build and package only")
    parser.add_argument("--keep-smoke-dir", action="store_true", help="keep the smoke test's folder")
    args = parser.parse_args(argv)
    try:
        report = build(args.variant, args.label, args.skip_smoke_test, args.keep_smoke_dir)
    except BuildError as exc:
        print(f"build: {exc}", file=sys.stderr)
        return 1
    print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
