"""Errors in the window: the real engines' errors on the tiny models and a dead Ollama address read as plain
text naming the setting (never a command-line option) with the fix to offer, while the command line keeps
its flags."""

from __future__ import annotations

import pickle
import re
import shutil
import socket
from pathlib import Path

import pytest

from captioneer.backends.errors import (
    CaptioneerError,
    ConfigurationError,
    ModelFileError,
    ResourceExhaustedError,
    setting,
)
from captioneer.desktop.core.engine_setup import engine_config, open_backend
from captioneer.desktop.core.fixes import FIX_BUTTONS, FIXES, WindowError, window_error
from captioneer.desktop.core.settings import Settings

FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]+")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_error(settings: Settings) -> CaptioneerError:
    """What loading the engine the window would use (the engine host for gguf) raises."""
    backend = open_backend(settings, engine_config(settings))
    try:
        with pytest.raises(CaptioneerError) as caught:
            backend.load()
    finally:
        backend.unload()
    return caught.value


def assert_plain(shown: WindowError) -> None:
    assert not FLAG.search(shown.text), shown.text
    assert "\x1e" not in shown.text and "\x1f" not in shown.text
    assert shown.fix is None or shown.fix in FIXES


def test_gguf_model_without_projector_offers_to_choose_it(tiny_gguf, tmp_path: Path) -> None:
    alone = tmp_path / "alone"
    alone.mkdir()
    model = Path(shutil.copy(tiny_gguf[0], alone / "Qwen3VL-2B-Instruct-Q4_K_M.gguf"))
    exc = load_error(Settings(engine="gguf", model=str(model)))  # through the engine host's pipe

    assert isinstance(exc, ModelFileError)
    assert "Pass --mmproj with its mmproj .gguf file." in str(exc)  # the command line's text is unchanged
    shown = window_error(exc)
    assert_plain(shown)
    assert shown.fix == "choose_mmproj"
    assert "Choose its mmproj .gguf file." in shown.text and model.name in shown.text


def test_projector_given_as_the_model_is_explained_without_flags(tiny_gguf) -> None:
    exc = load_error(Settings(engine="gguf", model=str(tiny_gguf[1]), mmproj=str(tiny_gguf[1])))
    assert "--mmproj" in str(exc) and "--model" in str(exc)
    shown = window_error(exc)
    assert_plain(shown)
    assert "Choose it as the vision projector" in shown.text


def test_unreachable_ollama_points_at_the_address_setting() -> None:
    host = f"http://127.0.0.1:{free_port()}"
    exc = load_error(Settings(engine="ollama", model="qwen3-vl:2b-instruct", ollama_host=host))

    assert "pass --host" in str(exc)
    shown = window_error(exc)
    assert_plain(shown)
    assert shown == WindowError(
        f"Ollama is not running at {host} — start it (open the Ollama app or run `ollama serve`), "
        "check the Ollama address in Settings, or pick another engine.",
        "settings",
    )


def test_unreachable_openai_server_points_at_the_addresses() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    exc = load_error(Settings(engine="openai", model="qwen3-vl", openai_base_urls=[url]))
    assert "--base-url" in str(exc)
    shown = window_error(exc)
    assert_plain(shown)
    assert shown.fix == "settings" and url in shown.text


def test_no_model_yet_sends_people_to_the_wizard() -> None:
    with pytest.raises(ConfigurationError) as caught:
        engine_config(Settings(engine="gguf", model=""))
    assert "--model" in str(caught.value)
    shown = window_error(caught.value)
    assert_plain(shown)
    assert shown.fix == "wizard" and "set-up wizard" in shown.text


def test_marked_messages_survive_pickling_and_unmarked_ones_pass_through() -> None:
    exc = ResourceExhaustedError("Too big. Lower the image budget (" + setting("image_tokens") + ").")
    assert str(exc) == "Too big. Lower the image budget (--image-tokens)."
    copy = pickle.loads(pickle.dumps(exc))
    assert window_error(copy) == WindowError("Too big. Lower the image budget (“Image detail”).", "settings")
    assert window_error(CaptioneerError("Plain words.")) == WindowError("Plain words.", None)
    assert window_error(ModelFileError("x.gguf is truncated.")).fix == "model_manager"
    assert window_error(ValueError("boom")).text.startswith("Something unexpected went wrong")
    assert FIXES == ("settings", "model_manager", "choose_mmproj", "wizard")
    assert all(label.endswith("…") for label in FIX_BUTTONS.values())


def test_a_server_pools_summary_keeps_the_setting_names(caplog) -> None:
    from captioneer.backends.errors import marked_text
    from captioneer.backends.server_pool import ServerPool

    url = f"http://127.0.0.1:{free_port()}/v1"
    cause = load_error(Settings(engine="openai", model="qwen3-vl", openai_base_urls=[url]))
    pool = ServerPool([url, "http://127.0.0.1:9/v1"])
    first, second = pool.servers
    first.in_flight = 1
    pool.release(first, "fault", marked_text(cause))  # what a failed request records (and logs)
    pool.trip(second, marked_text(cause))
    summary = pool.no_server_left([first, second])
    assert str(summary).count("--base-url") == 2
    shown = window_error(summary)
    assert_plain(shown)
    assert shown.fix == "settings" and shown.text.count("check the server addresses in Settings") == 2
    assert "skipping" in caplog.text and "--base-url" in caplog.text and "\x1e" not in caplog.text


def test_an_ollama_cloud_model_is_refused_in_plain_words() -> None:
    exc = load_error(Settings(engine="ollama", model="qwen3-vl:235b-cloud",
                              ollama_host=f"http://127.0.0.1:{free_port()}"))
    assert "--allow-cloud" in str(exc)
    shown = window_error(exc)
    assert_plain(shown)
    assert shown.fix == "settings" and "runs on this computer" in shown.text
