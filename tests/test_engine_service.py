"""The engine both windows share (EngineService), with the real gguf engine on the tiny model in this process:
one engine per configuration, reference-counted, requests taking turns, and a cancel that reaches only its
own request."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from captioneer.backends.base import Backend, EngineConfig
from captioneer.backends.cancel import CancelToken
from captioneer.backends.errors import Cancelled
from captioneer.backends.host import open_backend
from captioneer.backends.request import GenerationRequest, PreparedImage, SamplingOptions
from captioneer.desktop.ui.engine_service import EngineService


def config(tiny_gguf: tuple[Path, Path], image_tokens: int = 64) -> EngineConfig:
    model, mmproj = tiny_gguf
    return EngineConfig(engine="gguf", model=str(model), image_tokens=image_tokens,
                        options={"mmproj": str(mmproj), "threads": 2})


def ask(max_tokens: int = 8) -> GenerationRequest:
    image = PreparedImage(Image.new("RGB", (256, 192), (200, 40, 40)), source="red.png")
    return GenerationRequest("Describe this image.", (image,),
                             options=SamplingOptions(temperature=0.0, max_new_tokens=max_tokens))


@pytest.fixture
def service():
    """A service whose engines run in this process (the app's run in the engine host; the sharing is the
    same), and the engines it opened."""
    opened: list[Backend] = []

    def open_engine(engine_config: EngineConfig) -> Backend:
        backend = open_backend(engine_config, in_process=True)
        opened.append(backend)
        return backend

    shared = EngineService(open_engine)
    yield shared, opened
    shared.close()


def test_one_engine_per_configuration_until_the_last_user_leaves(service, tiny_gguf) -> None:
    shared, opened = service
    quick, library = shared.opener(config(tiny_gguf)), shared.opener(config(tiny_gguf))
    quick.load()
    library.load()
    assert len(opened) == 1 and shared.users(config(tiny_gguf)) == 2
    assert "".join(quick.generate(ask())) == "".join(library.generate(ask()))
    other = shared.opener(config(tiny_gguf, image_tokens=128))
    other.load()
    assert len(opened) == 2  # another configuration (another context size) is another engine
    other.unload()
    assert not opened[1].info().loaded
    library.unload()
    assert opened[0].info().loaded  # the quick window still holds it
    library.unload()  # leaving twice changes nothing
    assert shared.users(config(tiny_gguf)) == 1
    quick.unload()
    assert not opened[0].info().loaded and shared.users(config(tiny_gguf)) == 0


def test_requests_take_turns_and_a_cancel_reaches_only_its_own(service, tiny_gguf) -> None:
    shared, opened = service
    quick, library = shared.opener(config(tiny_gguf)), shared.opener(config(tiny_gguf))
    quick.load()
    library.load()
    expected = "".join(quick.generate(ask()))
    stream = quick.generate(ask())
    first = next(stream)  # the quick window's request holds the engine, mid-answer
    library_cancel = CancelToken()
    outcome: dict[str, object] = {}

    def library_request() -> None:
        try:
            outcome["answer"] = "".join(library.generate(ask(), library_cancel))
        except Cancelled:
            outcome["cancelled"] = time.perf_counter()

    waiting = threading.Thread(target=library_request)
    waiting.start()
    time.sleep(0.3)
    assert waiting.is_alive() and not outcome  # it waits for its turn, nothing interleaves
    cancelled_at = time.perf_counter()
    library_cancel.cancel()
    waiting.join(5)
    assert float(outcome["cancelled"]) - cancelled_at < 1.0  # gave up while waiting, at once
    assert first + "".join(stream) == expected  # the quick window's answer went on, whole
    assert "".join(library.generate(ask())) == expected  # and the engine takes the next turn
    assert len(opened) == 1
