"""How engines are configured: each engine's own options (checked, typos named), what the registry and the
engine classes declare, settings plus command-line overrides becoming one EngineConfig and the sampling
options, and a global engine flag reaching the subcommand on a real command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from captioneer.backends.base import EngineConfig
from captioneer.backends.errors import ConfigurationError
from captioneer.backends.gguf import GGUFBackend
from captioneer.backends.host import HostedBackend
from captioneer.backends.host_process import FAULT_INJECTION_KEY
from captioneer.backends.ollama_engine import OllamaBackend
from captioneer.backends.openai_engine import OpenAIBackend
from captioneer.backends.registry import ENGINES, create_backend, engine_class, options_class
from captioneer.backends.transformers_engine import TransformersBackend
from captioneer.desktop.cli import build_parser
from captioneer.desktop.commands.engine_args import overrides_from_args
from captioneer.desktop.core.engine_setup import (
    Overrides,
    engine_config,
    remote_destinations,
    sampling_choices,
    sampling_options,
)
from captioneer.desktop.core.settings import Settings
from captioneer.desktop.core.tasks import get_task

ROOT = Path(__file__).resolve().parent.parent


# -- each engine's own options ------------------------------------------------------------------------------


def test_a_typo_names_the_key_the_engine_and_every_key_it_takes() -> None:
    config = EngineConfig(engine="openai", model="m", options={"base_urls": ("127.0.0.1:8080",),
                                                                "request_timout": 30})
    with pytest.raises(ConfigurationError) as caught:
        create_backend(config)
    takes = ", ".join(sorted(OpenAIBackend.Options.model_fields))
    assert str(caught.value) == f"request_timout is not an option of the openai engine; it takes: {takes}."
    assert "api_key, base_urls, connect_timeout" in str(caught.value)


@pytest.mark.parametrize(
    ("engine", "option"),
    [("gguf", {"quant": "nf4"}), ("gguf", {"host": "127.0.0.1"}), ("transformers", {"mmproj": "x.gguf"}),
     ("ollama", {"base_urls": ("x",)}), ("openai", {"keep_alive": "5m"}), ("ollama", {"gpu_layers": 3})],
)
def test_another_engines_option_is_refused(engine: str, option: dict[str, object]) -> None:
    (key,) = option
    refused = f"^{key} is not an option of the {engine} engine; it takes: "
    with pytest.raises(ConfigurationError, match=refused):
        create_backend(EngineConfig(engine=engine, model="m", options=option))


def test_a_bad_value_names_the_option_and_the_engine(tiny_gguf: tuple[Path, Path]) -> None:
    with pytest.raises(ConfigurationError, match="gguf engine's option threads = 0 is not valid"):
        create_backend(EngineConfig(model=str(tiny_gguf[0]), options={"threads": 0}))


def test_engines_read_their_options_typed(tiny_gguf: tuple[Path, Path]) -> None:
    model, mmproj = tiny_gguf
    gguf = create_backend(EngineConfig(model=str(model), options={"mmproj": str(mmproj), "gpu_layers": 0}))
    assert isinstance(gguf, GGUFBackend)
    assert (gguf.options.mmproj, gguf.options.gpu_layers, gguf.options.device) == (str(mmproj), 0, "auto")
    ollama = create_backend(EngineConfig(engine="ollama", model="qwen3-vl:2b-instruct",
                                         options={"keep_alive": "5m", "parallel": 2}))
    assert isinstance(ollama, OllamaBackend)
    assert (ollama.keep_alive, ollama.limits.parallel, ollama.options.allow_cloud) == ("5m", 2, False)


def test_the_host_checks_the_hosted_engines_options_before_it_starts_a_process(tiny_hf_model: Path) -> None:
    with pytest.raises(ConfigurationError, match="^mmproj is not an option of the transformers engine"):
        HostedBackend(EngineConfig(engine="transformers", model=str(tiny_hf_model), options={"mmproj": "x"}))
    hook = {FAULT_INJECTION_KEY: {"abort_on_image": "0" * 64}, "device": "cpu"}
    hosted = HostedBackend(EngineConfig(engine="transformers", model=str(tiny_hf_model), options=hook))
    assert hosted.pid is None, "nothing started yet"
    assert hosted.options.device == "cpu", "the test hook is the host's; the engine gets the rest"


# -- what engines declare -----------------------------------------------------------------------------------


def test_every_engine_declares_its_options_and_the_registry_finds_them() -> None:
    for name in ENGINES:
        assert options_class(name) is engine_class(name).Options
        assert options_class(name).model_config.get("extra") == "forbid", name
    assert {"mmproj", "gpu_layers", "device", "threads", "flash_attention"} <= set(
        GGUFBackend.Options.model_fields
    )
    assert {"quant", "batch_size", "device"} <= set(TransformersBackend.Options.model_fields)
    assert {"host", "keep_alive", "allow_cloud", "parallel"} <= set(OllamaBackend.Options.model_fields)
    assert {"base_urls", "api_key", "request_timeout"} <= set(OpenAIBackend.Options.model_fields)
    assert not set(EngineConfig.model_fields) & {"quant", "mmproj", "host", "base_urls", "extra"}


def test_context_and_destinations_are_asked_of_the_engine() -> None:
    assert GGUFBackend.context_tokens(1024) == 2560
    assert GGUFBackend.context_tokens(1024, 8192) == 8192
    assert OllamaBackend.context_tokens(1024) == 4096
    assert TransformersBackend.context_tokens(1024) is None
    remote = EngineConfig(engine="ollama", model="m", options={"host": "192.168.1.20"})
    assert OllamaBackend.destinations(remote) == ("http://192.168.1.20:11434",)
    servers = EngineConfig(engine="openai", model="m", options={"base_urls": ("127.0.0.1:8080",)})
    assert OpenAIBackend.destinations(servers) == ("http://127.0.0.1:8080/v1",)
    assert GGUFBackend.destinations(EngineConfig(model="x.gguf")) == ()


def test_remote_destinations_are_only_the_addresses_off_this_computer() -> None:
    mixed = EngineConfig(
        engine="openai", model="m", allow_remote=True,
        options={"base_urls": ("127.0.0.1:8080", "http://gpu-box.lan:8000")},
    )
    assert remote_destinations(mixed) == ("http://gpu-box.lan:8000/v1",)
    assert remote_destinations(EngineConfig(engine="ollama", model="m", options={"host": "localhost"})) == ()
    assert remote_destinations(EngineConfig(model="x.gguf")) == ()


# -- settings and overrides -> EngineConfig -----------------------------------------------------------------


def test_settings_give_each_engine_only_the_options_it_takes() -> None:
    settings = Settings(engine="transformers", model="/models/qwen", quant="nf4", device="cpu",
                        server_parallel=4, ollama_host="127.0.0.1:11434")
    config = engine_config(settings)
    assert config.options == {"quant": "nf4", "device": "cpu"}
    ollama = engine_config(settings, Overrides(engine="ollama", model="qwen3-vl:2b-instruct"))
    assert ollama.options["host"] == "127.0.0.1:11434" and ollama.options["parallel"] == 4
    assert "quant" not in ollama.options and "device" not in ollama.options


def test_an_option_given_for_this_run_that_the_engine_does_not_take_is_an_error() -> None:
    settings = Settings(engine="gguf", model="x.gguf")
    with pytest.raises(ConfigurationError, match="^quant is not an option of the gguf engine"):
        engine_config(settings, Overrides(options={"quant": "nf4"}))
    flags = build_parser().parse_args(["--host", "127.0.0.1", "caption", "a.jpg"])
    with pytest.raises(ConfigurationError, match="^host is not an option of the gguf engine"):
        engine_config(settings, overrides_from_args(flags))


def test_no_model_is_one_clear_line() -> None:
    with pytest.raises(ConfigurationError, match="No model chosen for the ollama engine"):
        engine_config(Settings(engine="gguf", model="x.gguf"), Overrides(engine="ollama"))


def test_sampling_overrides_over_settings_over_the_task() -> None:
    task = get_task("caption")
    settings = Settings(temperature=0.5)
    assert sampling_options(settings, task).max_new_tokens == task.max_tokens
    assert sampling_options(settings, task).temperature == 0.5
    longer = settings.model_copy(update={"max_tokens": 77})
    chosen = sampling_options(longer, task, Overrides(temperature=0.0, seed=3))
    assert (chosen.max_new_tokens, chosen.temperature, chosen.seed) == (77, 0.0, 3)
    assert sampling_choices(settings) == {"temperature": 0.5}, "a run applies each task's own length"
    with pytest.raises(ConfigurationError, match="temperature"):
        sampling_options(settings, task, Overrides(temperature=9.0))


# -- the command line ---------------------------------------------------------------------------------------


def test_engine_flags_before_the_subcommand_are_kept() -> None:
    args = build_parser().parse_args(["--model", "X", "--parallel", "2", "caption", "img.jpg"])
    overrides = overrides_from_args(args)
    assert (overrides.model, dict(overrides.options)) == ("X", {"parallel": 2})
    args = build_parser().parse_args(["--model", "X", "caption", "img.jpg", "--model", "Y"])
    assert args.model == "Y", "the flag after the subcommand wins"


def test_a_global_model_flag_captions_on_a_real_command_line(
    tiny_gguf: tuple[Path, Path], tmp_path: Path
) -> None:
    model, mmproj = tiny_gguf
    image = tmp_path / "red.png"
    Image.new("RGB", (96, 64), (200, 30, 30)).save(image)
    done = subprocess.run(
        [sys.executable, "-m", "captioneer.desktop.cli", "--model", str(model), "--mmproj", str(mmproj),
         "caption", str(image), "--engine", "gguf", "--threads", "1", "--in-process", "--temperature", "0",
         "--max-tokens", "4", "--image-tokens", "64", "--json"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] and result["model"] == str(model)
