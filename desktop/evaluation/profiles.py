"""Profiles to compare: what a ``--profile`` spec names (a catalog model, a model file or folder, an Ollama
tag, at an image detail), the configured model, and the models installed on this computer.

A spec reads ``[ENGINE:]MODEL[@TOKENS]``:

- ``ENGINE:`` is taken as an engine only when it names one (``gguf``, ``transformers``, ``ollama``,
  ``openai``), so a Windows path (``C:\\models\\x.gguf``) and an Ollama tag (``qwen3-vl:2b``) stay whole;
- ``@TOKENS`` is taken as the image detail only when it is all digits (default: the configured detail);
- ``MODEL`` is a catalog size and precision (``2B Q4_K_M``, ``4B bf16``) or a catalog profile id
  (``qwen3-vl-2b-gguf-q4_k_m``), resolved to its downloaded files; else an existing GGUF file or model
  folder; else an Ollama tag (or, after ``openai:``, a server's model name).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from captioneer.backends.catalog import Variant, load_catalog
from captioneer.backends.download import installed_model
from captioneer.backends.errors import ConfigurationError
from captioneer.backends.registry import ENGINES, engine_entry
from captioneer.desktop.core.engine_setup import Overrides, engine_config
from captioneer.desktop.core.model_files import own_model
from captioneer.desktop.core.paths import models_dir
from captioneer.desktop.core.settings import Settings
from captioneer.desktop.evaluation.scores import Profile

SPEC_HELP = (
    "[ENGINE:]MODEL[@TOKENS]: MODEL is a catalog size and precision ('2B Q4_K_M', '4B bf16'), a GGUF file, a "
    "model folder or an Ollama tag; TOKENS the image detail in visual tokens (default: your setting); "
    "ENGINE (gguf, transformers, ollama, openai) only where MODEL alone is ambiguous, e.g. openai:NAME; a "
    "drive letter (C:\\Models\\x.gguf) or a tag's colon (qwen3-vl:4b) is never taken for ENGINE"
)
"""The spec grammar in one line, for ``--help`` and error messages."""

MODEL_OPTIONS = ("mmproj", "quant")
"""The engine options that belong to the model (its projector, its precision) and so to a profile."""

_CATALOG_NAME = re.compile(r"^\s*(\d+(?:\.\d+)?B)\s+(\S+)\s*$", re.IGNORECASE)


def split_spec(spec: str) -> tuple[str | None, str, int | None]:
    """``(engine, model, image_tokens)`` of a spec; engine and tokens are None where it gives none.

    Raises:
        ConfigurationError: the spec names no model, or its image detail is out of range.
    """
    text = spec.strip()
    engine: str | None = None
    head, colon, rest = text.partition(":")
    if colon and head.lower() in ENGINES:
        engine, text = head.lower(), rest.strip()
    tokens: int | None = None
    model, at, suffix = text.rpartition("@")
    if at and suffix.strip().isdigit():
        text, tokens = model.strip(), int(suffix)
        if not 16 <= tokens <= 16384:
            raise ConfigurationError(
                f"The profile '{spec}' asks for {tokens} image tokens: use 16 to 16384 (256, 512, 1024…)."
            )
    if not text:
        raise ConfigurationError(f"The profile '{spec}' names no model. A profile reads {SPEC_HELP}.")
    return engine, text, tokens


def _catalog_variant(name: str, engine: str | None) -> Variant | None:
    """The catalog variant ``name`` means (``2B Q4_K_M`` or a profile id), preferring a downloaded one when
    the precision exists for several engines; None when ``name`` is not a catalog name."""
    catalog = load_catalog()
    match = _CATALOG_NAME.match(name)
    if match:
        size, quant = match.group(1).upper(), match.group(2).lower()
        found = [
            v for v in catalog.variants
            if v.model.size_label == size and v.quant.lower() == quant and engine in (None, v.engine)
        ]
    else:
        found = [
            v for v in catalog.variants
            if name.lower() in (v.id, (v.tag or "").lower()) and engine in (None, v.engine)
        ]
    if not found:
        return None
    downloaded = [v for v in found if installed_model(v, models_dir()) is not None]
    return (downloaded or found)[0]


def _variant_profile(variant: Variant, image_tokens: int) -> Profile:
    if variant.entry.server_pulls_models:
        tag = variant.tag or ""
        return Profile(f"{tag}@{image_tokens}", variant.engine, tag, image_tokens)
    installed = installed_model(variant, models_dir())
    if installed is None:
        raise ConfigurationError(
            f"{variant.model.size_label} {variant.quant} ({variant.engine}) is not downloaded: run "
            f"`captioneer models pull {variant.id}`, or name a model file you have."
        )
    options: tuple[tuple[str, object], ...] = ()
    if installed.mmproj_path is not None:
        options = (("mmproj", str(installed.mmproj_path)),)
    elif variant.entry.quant_choice:
        options = (("quant", variant.quant),)
    label = f"{variant.model.size_label} {variant.quant}@{image_tokens}"
    return Profile(label, variant.engine, str(installed.model_path), image_tokens, options)


def _file_profile(path: Path, engine: str | None, image_tokens: int) -> Profile:
    own = own_model(path)
    if engine is not None and engine != own.engine:
        raise ConfigurationError(
            f"{path} is a model for the {own.engine} engine, not {engine}: drop the '{engine}:' prefix."
        )
    if own.needs_projector:
        raise ConfigurationError(f"{path.name}: no vision projector: {own.projector_note}.")
    options: tuple[tuple[str, object], ...] = ()
    if own.mmproj is not None:
        options = (("mmproj", str(own.mmproj)),)
    name = path.name if path.name not in ("", "config.json") else path.resolve().name
    return Profile(f"{name}@{image_tokens}", own.engine, str(own.model), image_tokens, options)


def _looks_like_path(name: str) -> bool:
    return "/" in name or "\\" in name or name.lower().endswith(".gguf") or name.startswith(("~", "."))


def parse_profile(spec: str, settings: Settings) -> Profile:
    """The profile a ``--profile`` spec names (see the module's grammar), resolved to files on this computer.

    Raises:
        ConfigurationError: a catalog model that is not downloaded, a missing file, a GGUF without its
            projector, a bad image detail, in one line that says what to do.
    """
    engine, model, tokens = split_spec(spec)
    image_tokens = tokens or settings.image_tokens
    variant = _catalog_variant(model, engine)
    if variant is not None:
        return _variant_profile(variant, image_tokens)
    path = Path(model).expanduser()
    if path.exists():
        return _file_profile(path, engine, image_tokens)
    if engine is None and _looks_like_path(model):
        raise ConfigurationError(
            f"The profile '{spec}' names {model}, which does not exist: check the path, or see "
            "`captioneer models list` for catalog names such as '2B Q4_K_M'."
        )
    engine = engine or "ollama"
    if engine_entry(engine).local_files:
        raise ConfigurationError(
            f"The profile '{spec}' names {model}, which is neither a downloaded catalog model nor a file "
            "here: see `captioneer models list`."
        )
    return Profile(f"{model}@{image_tokens}", engine, model, image_tokens)


def configured_profile(settings: Settings, overrides: Overrides | None = None) -> Profile:
    """The model the settings use (with the command line's ``--model``, ``--mmproj``, ``--image-tokens``…
    over them), at the configured image detail: what runs without ``--profile``.

    Raises:
        ConfigurationError: no model is configured yet, or a flag the engine does not take.
    """
    config = engine_config(settings, overrides)
    options = tuple((key, config.options[key]) for key in MODEL_OPTIONS if config.options.get(key))
    profile = Profile("", config.engine, config.model, config.image_tokens, options)
    name = Path(config.model).name if engine_entry(config.engine).local_files else config.model
    for variant in load_catalog().variants:  # a catalog download goes by its catalog name
        if variant.engine == profile.engine and installed_model(variant, models_dir()) is not None:
            named = _variant_profile(variant, profile.image_tokens)
            if (named.model, named.options) == (profile.model, profile.options):
                return named
    return dataclasses.replace(profile, label=f"{name}@{config.image_tokens}")


def installed_profiles(settings: Settings) -> list[Profile]:
    """What could be compared here: every downloaded catalog model and the configured one, at the configured
    image detail, configured model first. Ollama models are not listed (asking Ollama needs it running);
    name them with :func:`parse_profile`."""
    profiles: list[Profile] = []
    if settings.model:
        profiles.append(configured_profile(settings))
    for variant in load_catalog().variants:
        if variant.entry.server_pulls_models or installed_model(variant, models_dir()) is None:
            continue
        profile = _variant_profile(variant, settings.image_tokens)
        if not any(p.engine == profile.engine and p.model == profile.model and p.options == profile.options
                   for p in profiles):
            profiles.append(profile)
    return profiles
