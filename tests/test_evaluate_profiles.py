"""Profile specs for `captioneer evaluate` and the window's Compare Models: the grammar, catalog names
resolved to downloaded files, model files and folders, Ollama tags, the configured model, installs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from captioneer.backends.errors import ConfigurationError
from captioneer.desktop.core.engine_setup import Overrides
from captioneer.desktop.core.paths import models_dir
from captioneer.desktop.core.settings import Settings
from captioneer.desktop.evaluation.profiles import (
    configured_profile,
    installed_profiles,
    parse_profile,
    split_spec,
)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("2B Q4_K_M@256", (None, "2B Q4_K_M", 256)),
        ("2B Q4_K_M", (None, "2B Q4_K_M", None)),
        ("gguf:2B Q8_0@512", ("gguf", "2B Q8_0", 512)),
        (r"C:\models\qwen.gguf@512", (None, r"C:\models\qwen.gguf", 512)),
        (r"gguf:C:\models\qwen.gguf", ("gguf", r"C:\models\qwen.gguf", None)),
        ("qwen3-vl:2b-instruct@256", (None, "qwen3-vl:2b-instruct", 256)),
        ("ollama:qwen3-vl:2b", ("ollama", "qwen3-vl:2b", None)),
        ("OpenAI:my-model@1024", ("openai", "my-model", 1024)),
        ("/photos/me@home/model.gguf", (None, "/photos/me@home/model.gguf", None)),
    ],
)
def test_a_spec_splits_into_engine_model_and_image_detail(spec: str, expected: tuple) -> None:
    assert split_spec(spec) == expected


@pytest.mark.parametrize("spec", ["", "@256", "gguf:", "2B Q4_K_M@8", "2B Q4_K_M@99999"])
def test_a_spec_without_a_model_or_with_a_bad_detail_is_refused_in_one_line(spec: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        split_spec(spec)
    assert "\n" not in str(caught.value)


def _install(variant_id: str, tiny_gguf: tuple[Path, Path]) -> Path:
    """Put a catalog variant into the models folder as a finished download (the tiny model's files)."""
    from captioneer.backends.catalog import load_catalog
    from captioneer.backends.download import MANIFEST_NAME, Manifest
    from captioneer.backends.hub import RemoteFile

    variant = load_catalog().find(variant_id)
    folder = models_dir() / (variant.store or "")
    folder.mkdir(parents=True)
    files = []
    for source, role in zip(tiny_gguf, ("model", "mmproj"), strict=True):
        target = folder / f"{role}-{variant.quant}.gguf"
        shutil.copyfile(source, target)
        files.append(RemoteFile(target.name, target.stat().st_size, None, None, role))
    manifest = Manifest(store=variant.store or "", engine="gguf", repo=variant.repo or "", revision="a" * 40,
                        files=files, complete=True)
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest.to_json()))
    return folder


def test_a_catalog_name_resolves_to_the_downloaded_files(tiny_gguf) -> None:
    folder = _install("qwen3-vl-2b-gguf-q4_k_m", tiny_gguf)
    profile = parse_profile("2b q4_k_m@256", Settings())
    assert (profile.label, profile.engine, profile.image_tokens) == ("2B Q4_K_M@256", "gguf", 256)
    assert profile.model == str(folder / "model-Q4_K_M.gguf")
    assert dict(profile.options) == {"mmproj": str(folder / "mmproj-Q4_K_M.gguf")}
    assert parse_profile("qwen3-vl-2b-gguf-q4_k_m", Settings(image_tokens=512)).image_tokens == 512


def test_a_catalog_model_not_downloaded_says_how_to_get_it() -> None:
    with pytest.raises(ConfigurationError, match="captioneer models pull qwen3-vl-4b-gguf-q8_0"):
        parse_profile("4B Q8_0@512", Settings())


def test_a_model_file_or_folder_is_a_profile_of_its_engine(tiny_gguf, tiny_hf_model) -> None:
    gguf = parse_profile(f"{tiny_gguf[0]}@64", Settings())
    assert (gguf.engine, gguf.model, gguf.label) == ("gguf", str(tiny_gguf[0]), "model.gguf@64")
    assert dict(gguf.options) == {"mmproj": str(tiny_gguf[1])}  # found next to the model
    folder = parse_profile(f"transformers:{tiny_hf_model}", Settings(image_tokens=128))
    assert (folder.engine, folder.image_tokens, folder.label) == ("transformers", 128, "tiny-qwen3vl@128")
    with pytest.raises(ConfigurationError, match="transformers engine, not gguf"):
        parse_profile(f"gguf:{tiny_hf_model}", Settings())


def test_a_missing_path_is_named_and_a_plain_name_is_an_ollama_tag(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        parse_profile(str(tmp_path / "gone.gguf"), Settings())
    tag = parse_profile("qwen3-vl:2b-instruct@256", Settings())
    assert (tag.engine, tag.model, tag.image_tokens) == ("ollama", "qwen3-vl:2b-instruct", 256)
    server = parse_profile("openai:qwen3-vl", Settings())
    assert (server.engine, server.model) == ("openai", "qwen3-vl")
    with pytest.raises(ConfigurationError, match="neither a downloaded catalog model nor a file"):
        parse_profile("gguf:no-such-model", Settings())


def test_the_configured_model_is_the_default_profile_with_its_projector(tiny_gguf) -> None:
    settings = Settings(model=str(tiny_gguf[0]), mmproj=str(tiny_gguf[1]), image_tokens=320)
    profile = configured_profile(settings)
    assert (profile.engine, profile.model, profile.image_tokens) == ("gguf", str(tiny_gguf[0]), 320)
    assert dict(profile.options) == {"mmproj": str(tiny_gguf[1])}
    with pytest.raises(ConfigurationError, match="No model chosen"):
        configured_profile(Settings())
    flags = Overrides(model=str(tiny_gguf[0]), options={"mmproj": str(tiny_gguf[1])}, image_tokens=64)
    given = configured_profile(Settings(), flags)
    assert (given.model, given.image_tokens, dict(given.options)) == (str(tiny_gguf[0]), 64,
                                                                      {"mmproj": str(tiny_gguf[1])})


def test_installed_profiles_list_the_configured_model_and_each_download_once(tiny_gguf) -> None:
    assert installed_profiles(Settings()) == []
    folder = _install("qwen3-vl-2b-gguf-q8_0", tiny_gguf)
    downloaded = parse_profile("2B Q8_0", Settings())
    assert installed_profiles(Settings()) == [downloaded]
    # The configured model is the same download: listed once, by its catalog name.
    same = Settings(model=str(folder / "model-Q8_0.gguf"), mmproj=str(folder / "mmproj-Q8_0.gguf"))
    assert installed_profiles(same) == [downloaded] and downloaded.label == "2B Q8_0@1024"
    other = Settings(model=str(tiny_gguf[0]), mmproj=str(tiny_gguf[1]))
    assert installed_profiles(other) == [configured_profile(other), downloaded]


def test_a_catalog_precision_of_a_snapshot_runs_its_folder_at_that_precision(tiny_hf_model) -> None:
    from captioneer.backends.catalog import load_catalog
    from captioneer.backends.download import MANIFEST_NAME, Manifest
    from captioneer.backends.hub import RemoteFile

    variant = load_catalog().find("qwen3-vl-2b-transformers-nf4")
    folder = models_dir() / (variant.store or "")
    shutil.copytree(tiny_hf_model, folder)
    files = [RemoteFile(p.name, p.stat().st_size, None, None) for p in folder.iterdir()]
    manifest = Manifest(store=variant.store or "", engine="transformers", repo=variant.repo or "",
                        revision="b" * 40, files=files, complete=True)
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest.to_json()))
    profile = parse_profile("2B nf4@512", Settings())
    assert (profile.label, profile.engine, profile.model) == ("2B nf4@512", "transformers", str(folder))
    assert dict(profile.options) == {"quant": "nf4"}
    assert parse_profile("transformers:2B bf16", Settings()).options == (("quant", "bf16"),)
