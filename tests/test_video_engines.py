"""A clip on the engines that take it differently: transformers gets true video input (Qwen3-VL's video
processor, frames unresized, ``<t seconds>`` at the sampled times, photos and clips in one batch), also
across the engine host's pipe, where a clip that crashes the host is quarantined like a photo; an
OpenAI-compatible server gets the frames as image parts of one message (the real llama-cpp-python server
decodes every one) and Ollama gets them as the images of one message."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from captioneer.backends.base import EngineConfig, collect
from captioneer.backends.errors import EngineCrashedError
from captioneer.backends.host import QuarantinedImageError
from captioneer.backends.host_process import FAULT_INJECTION_KEY
from captioneer.backends.ollama_engine import OllamaBackend
from captioneer.backends.request import SamplingOptions
from captioneer.backends.transformers_engine import TransformersBackend
from captioneer.desktop.core.clips import prepare_clip
from captioneer.desktop.core.images import PixelBudget, prepare_image
from captioneer.desktop.core.tasks import build_request, get_task
from tests.fakes.ollama_server import FakeOllama
from tests.fakes.openai_server import FakeOpenAI
from tests.test_host import fast_start, hf_config, host_factory  # noqa: F401
from tests.test_openai_engine import REAL_MODEL, LlamaServer, backend_for, llama_server  # noqa: F401
from tests.video_clips import make_clip

GREEDY = SamplingOptions(max_new_tokens=8, temperature=0.0)


def video_task():
    return replace(get_task("caption"), video_prompt="Describe this video clip in {language}.")


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "walk.mp4", "mp4", seconds=3.0, fps=12)


@pytest.fixture(scope="module")
def transformers_engine(tiny_hf_model: Path) -> Iterator[TransformersBackend]:
    backend = TransformersBackend(
        EngineConfig(
            engine="transformers", model=str(tiny_hf_model), options={"quant": "fp32", "device": "cpu"}
        )
    )
    backend.load()
    yield backend
    backend.unload()


@pytest.mark.slow
def test_transformers_sees_the_clip_as_video_with_its_sampled_times(
    transformers_engine: TransformersBackend, clip_file: Path
) -> None:
    clip = prepare_clip(clip_file, 256, transformers_engine.capabilities)
    request = build_request(video_task(), clip, sampling=GREEDY)
    inputs = transformers_engine._inputs([request])
    temporal, rows, columns = (int(n) for n in inputs["video_grid_thw"][0])
    assert temporal == len(clip.frames) // 2
    assert (columns * 16, rows * 16) == (clip.width, clip.height)  # not resized by the processor
    text = transformers_engine._processor.tokenizer.decode(inputs["input_ids"][0])
    pairs = [(clip.times[i] + clip.times[i + 1]) / 2 for i in range(0, len(clip.times), 2)]
    assert [f"<{time:.1f} seconds>" in text for time in pairs] == [True] * len(pairs)
    assert text.count("<|video_pad|>") == clip.tokens == request.image_tokens
    assert "pixel_values" not in inputs  # no frame went in as an image
    assert collect(transformers_engine.generate(request))


@pytest.mark.slow
def test_transformers_batches_photos_and_clips_together_as_it_answers_them_alone(
    transformers_engine: TransformersBackend, clip_file: Path, tmp_path: Path
) -> None:
    from PIL import Image

    photo = tmp_path / "photo.png"
    Image.new("RGB", (128, 96), (40, 160, 90)).save(photo)
    task = video_task()
    photo_request = build_request(task, [prepare_image(photo, PixelBudget(max_tokens=16))], sampling=GREEDY)
    clip_request = build_request(
        task, prepare_clip(clip_file, 128, transformers_engine.capabilities), sampling=GREEDY
    )
    alone = [collect(transformers_engine.generate(r)) for r in (photo_request, clip_request)]
    together = transformers_engine.generate_batch([photo_request, clip_request])
    assert [str(answer) for answer in together] == [str(answer) for answer in alone]


def test_openai_gets_the_frames_as_image_parts_of_one_message(clip_file: Path) -> None:
    with FakeOpenAI(responder=lambda body: "A walk.") as server:
        backend = backend_for(server.url)
        backend.load()
        clip = prepare_clip(clip_file, 256, backend.capabilities)
        request = build_request(video_task(), clip, sampling=GREEDY)
        assert collect(backend.generate(request)) == "A walk."
        (chat,) = server.chats()
    (user,) = [message for message in chat["messages"] if message["role"] == "user"]
    parts = user["content"]
    assert [part["type"] for part in parts] == ["image_url"] * len(clip.frames) + ["text"]
    assert parts[-1]["text"].startswith(f"These are {len(clip.frames)} frames from a 3.0-second video clip")


@pytest.mark.slow
def test_a_real_openai_compatible_server_decodes_every_frame(
    llama_server: LlamaServer, clip_file: Path  # noqa: F811
) -> None:
    backend = backend_for(llama_server.url, model=REAL_MODEL)
    backend.load()
    clip = prepare_clip(clip_file, 256, backend.capabilities)
    request = build_request(video_task(), clip, sampling=GREEDY)
    before = llama_server.log.read_text(errors="replace").count("image decoded")
    assert collect(backend.generate(request))
    decoded = llama_server.log.read_text(errors="replace").count("image decoded") - before
    assert decoded == len(clip.frames) >= 4


def test_ollama_gets_the_frames_as_the_images_of_one_message(clip_file: Path) -> None:
    with FakeOllama() as server:
        server.responder = lambda body: "A walk."
        backend = OllamaBackend(
            EngineConfig(engine="ollama", model="qwen3-vl:2b-instruct", options={"host": server.url})
        )
        backend.load()
        clip = prepare_clip(clip_file, 256, backend.capabilities)
        request = build_request(video_task(), clip, sampling=GREEDY)
        assert collect(backend.generate(request)) == "A walk."
        user = server.last_chat()["messages"][-1]
    assert user["images"] == [base64.b64encode(frame.png_bytes).decode() for frame in clip.frames]
    assert user["content"].startswith(f"These are {len(clip.frames)} frames from a 3.0-second video clip")


@pytest.mark.slow
def test_a_clip_crosses_the_engine_host_and_is_quarantined_when_it_crashes_it(
    tiny_hf_model: Path, clip_file: Path, transformers_engine: TransformersBackend, host_factory,  # noqa: F811
    tmp_path: Path,
) -> None:
    clip = prepare_clip(clip_file, 128, transformers_engine.capabilities)
    request = build_request(video_task(), clip, sampling=GREEDY)
    expected = collect(transformers_engine.generate(request))
    poison_file = make_clip(tmp_path / "poison.mkv", "mkv", seconds=1.0)
    poison_clip = prepare_clip(poison_file, 64, transformers_engine.capabilities)
    poison = build_request(video_task(), poison_clip, sampling=GREEDY)
    fault = {FAULT_INJECTION_KEY: {"abort_on_image": poison_clip.sha256}}
    host = host_factory(hf_config(tiny_hf_model, **fault))
    host.load()
    assert collect(host.generate(request)) == expected  # pickled across the pipe, the same answer
    for _ in range(2):
        with pytest.raises(EngineCrashedError, match=re.escape(f"SIGABRT while captioning {poison_file} (")):
            list(host.generate(poison))
    with pytest.raises(QuarantinedImageError, match=re.escape(f"Skipped {poison_file}: it crashed the")):
        list(host.generate(poison))
    assert collect(host.generate(request)) == expected  # the healthy clip is still answered
