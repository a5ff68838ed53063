"""From the user's choices to a ready engine: the saved settings plus what was given for this one run
(command-line flags) become an :class:`EngineConfig`, the sampling options and the backend. Qt-free; the
command line and the windows both use it."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from captioneer.backends.base import Backend, EngineConfig
from captioneer.backends.errors import ConfigurationError, setting
from captioneer.backends.registry import engine_class
from captioneer.backends.request import SamplingOptions
from captioneer.desktop.core.settings import Settings
from captioneer.desktop.core.tasks import Task


@dataclass(frozen=True)
class Overrides:
    """What the user gave for this run, over the saved settings; None (or empty) leaves it to the settings.

    Attributes:
        engine: the engine to use.
        model: the model (a file, folder, tag or server model name).
        image_tokens: the pixel budget in visual tokens.
        context_tokens: the context length.
        allow_remote: allow servers that are not this machine.
        in_process: run an in-process engine here instead of in the engine host process.
        options: engine options given explicitly (``mmproj``, ``quant``, ``host``, ``parallel``…); unlike
            the saved settings, one the engine does not take is an error.
        max_tokens: cap on generated tokens.
        temperature: sampling temperature.
        seed: sampling seed.
    """

    engine: str | None = None
    model: str | None = None
    image_tokens: int | None = None
    context_tokens: int | None = None
    allow_remote: bool = False
    in_process: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    max_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None


def saved_options(settings: Settings, *, same_engine: bool, model_given: bool) -> dict[str, Any]:
    """The engine options the settings hold, for every engine (each engine takes the ones it declares).

    Args:
        settings: the saved settings.
        same_engine: the engine in use is the one the settings were made for; the model-bound choices
            (projector, precision) only apply then.
        model_given: a model was given for this run, so the saved projector (of the saved model) is not used.
    """
    return {
        "mmproj": settings.mmproj if same_engine and not model_given else None,
        "quant": settings.quant if same_engine else None,
        "device": settings.device,
        "host": settings.ollama_host or os.environ.get("OLLAMA_HOST"),
        "base_urls": tuple(settings.openai_base_urls),
        "api_key": settings.openai_api_key or os.environ.get("OPENAI_API_KEY"),
        "parallel": settings.server_parallel,
        "connect_timeout": settings.server_connect_timeout,
        "read_timeout": settings.server_read_timeout,
        "request_timeout": settings.server_request_timeout,
        "retry_down_after": settings.server_retry_down_after,
        "max_answer_kb": settings.server_max_answer_kb,
    }


def engine_config(settings: Settings, overrides: Overrides | None = None) -> EngineConfig:
    """This run's engine configuration: the overrides over the saved settings over the defaults.

    Raises:
        ConfigurationError: no model chosen, an option the engine does not take (given explicitly), or a
            bad value, in one line.
    """
    overrides = overrides or Overrides()
    engine = overrides.engine or settings.engine
    same_engine = engine == settings.engine
    model = overrides.model or (settings.model if same_engine else "")
    if not model:
        raise ConfigurationError(
            f"No model chosen for the {engine} engine: "
            + setting(
                "model_choice",
                "pass --model (and --mmproj for gguf), or run the first-run wizard.",
                "set one up with the set-up wizard, or choose model files you already have.",
            )
        )
    cls = engine_class(engine)
    saved = saved_options(settings, same_engine=same_engine, model_given=bool(overrides.model))
    takes = cls.Options.model_fields
    options = {key: value for key, value in saved.items() if key in takes and value is not None}
    options.update(overrides.options)
    try:
        config = EngineConfig(
            engine=engine,
            model=model,
            image_tokens=overrides.image_tokens or settings.image_tokens,
            context_tokens=overrides.context_tokens,
            allow_remote=overrides.allow_remote,
            options=options,
        )
    except ValueError as exc:
        raise ConfigurationError(f"Invalid engine option: {exc}") from None
    cls.read_options(config)  # an option the engine does not take fails here, before anything starts
    return config


def sampling_choices(settings: Settings, overrides: Overrides | None = None) -> dict[str, Any]:
    """The sampling options the user chose (overrides over settings); what they left open is not in it, so a
    task's own answer length still applies (a run stores these and applies them per task)."""
    overrides = overrides or Overrides()
    chosen: dict[str, Any] = {
        "temperature": settings.temperature if overrides.temperature is None else overrides.temperature
    }
    if overrides.max_tokens or settings.max_tokens:
        chosen["max_new_tokens"] = overrides.max_tokens or settings.max_tokens
    if overrides.seed is not None:
        chosen["seed"] = overrides.seed
    return chosen


def sampling_options(settings: Settings, task: Task, overrides: Overrides | None = None) -> SamplingOptions:
    """The sampling options for ``task``: the user's choices, else the task's answer length.

    Raises:
        ConfigurationError: a value is out of range.
    """
    chosen = sampling_choices(settings, overrides)
    return SamplingOptions.from_user(**{"max_new_tokens": task.max_tokens, **chosen})


def open_backend(settings: Settings, config: EngineConfig, *, in_process: bool = False) -> Backend:
    """The engine for ``config``: an in-process engine runs in the engine host process (recycled per the
    settings) unless ``in_process``; server engines are used directly. Not loaded yet."""
    from captioneer.backends.host import HostPolicy
    from captioneer.backends.host import open_backend as open_hosted

    limit_mb = settings.host_memory_limit_mb
    policy = HostPolicy(
        recycle_every=settings.host_recycle_every,
        memory_limit_bytes=limit_mb * 2**20 if limit_mb else None,
    )
    return open_hosted(config, in_process=in_process, policy=policy)


def remote_destinations(config: EngineConfig) -> tuple[str, ...]:
    """The addresses, not on this computer, that ``config``'s engine would send photos to (empty: none).

    The windows show these in a banner and ask before the first photo leaves; ``allow_remote`` does not hide
    them (it only silences the command line's warning)."""
    from captioneer.backends.http_util import is_loopback_url

    return tuple(url for url in engine_class(config.engine).destinations(config) if not is_loopback_url(url))


def servers_to_ask(destinations: Sequence[str], allowed: Sequence[str]) -> tuple[str, ...]:
    """The servers off this computer that the person has not yet agreed to send photos to, in order."""
    return tuple(server for server in destinations if server not in allowed)


def allowing(settings: Settings, servers: Sequence[str]) -> Settings:
    """``settings`` with ``servers`` added to the ones the person agreed to send photos to."""
    allowed = [*settings.remote_servers_allowed, *servers]
    return settings.model_copy(update={"remote_servers_allowed": allowed})
