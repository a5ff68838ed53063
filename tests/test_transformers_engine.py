"""The transformers engine on the real tiny Qwen3-VL: profiles, pixel budget, streaming, cancel, batching."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from captioneer.backends.base import EngineConfig, collect
from captioneer.backends.cancel import CancelToken
from captioneer.backends.errors import Cancelled, ConfigurationError, GenerationError, ModelFileError
from captioneer.backends.request import GenerationRequest, PreparedImage, SamplingOptions
from captioneer.backends.transformers_engine import (
    DEFAULT_BATCH_SIZE,
    TransformersBackend,
    chat_messages,
    finish_reasons,
    processor_size,
)
from captioneer.backends.transformers_loading import (
    choose_attention,
    choose_device,
    choose_profile,
    resolve_model_dir,
)
from captioneer.desktop.cli import main as cli_main
from captioneer.desktop.core.captioning import caption_file
from captioneer.desktop.core.images import prepare_image
from captioneer.desktop.core.tasks import get_task

GREEDY = SamplingOptions(max_new_tokens=24, temperature=0.0)


def picture(width: int, height: int, seed: int) -> PreparedImage:
    """A distinct test picture: coloured shapes on a background that depends on ``seed``."""
    image = Image.new("RGB", (width, height), ((seed * 70) % 256, (seed * 40) % 256, (seed * 90) % 256))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 4, height // 4, width // 2, height // 2), fill=(255 - seed * 30, 20, 200))
    draw.rectangle((width // 2, height // 3, width - 8, height - 8), fill=(10, 200 - seed * 20, 40))
    return PreparedImage(image, source=f"picture-{seed}.png")


def engine(model: Path, quant: str, **extra: object) -> TransformersBackend:
    return TransformersBackend(
        EngineConfig(engine="transformers", model=str(model),
            options={"quant": quant, "device": "cpu", **extra})
    )


@pytest.fixture(scope="module")
def fp32(tiny_hf_model: Path):
    backend = engine(tiny_hf_model, "fp32")
    backend.load()
    yield backend
    backend.unload()


# -- decisions (pure functions) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "cuda", "mps", "expected"),
    [
        ("auto", True, True, "cuda"),
        ("auto", False, True, "mps"),
        ("auto", False, False, "cpu"),
        ("cpu", True, True, "cpu"),
        ("cuda:1", True, False, "cuda:1"),
        ("mps", False, True, "mps"),
    ],
)
def test_choose_device(requested: str, cuda: bool, mps: bool, expected: str) -> None:
    assert choose_device(requested, cuda=cuda, mps=mps) == expected


@pytest.mark.parametrize(
    ("requested", "message"),
    [("cuda", "no NVIDIA GPU"), ("mps", "MPS was requested"), ("tpu", "Unknown device 'tpu'")],
)
def test_choose_device_refuses_what_is_not_there(requested: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        choose_device(requested, cuda=False, mps=False)


@pytest.mark.parametrize(
    ("quant", "device", "bf16", "expected"),
    [
        (None, "cuda", True, "bf16"),
        (None, "cuda", False, "fp16"),
        (None, "mps", False, "fp16"),
        (None, "cpu", False, "fp32"),
        ("NF4", "cuda", True, "nf4"),
        ("int8", "cpu", False, "int8"),
        ("bf16", "cpu", False, "bf16"),
    ],
)
def test_choose_profile(quant: str | None, device: str, bf16: bool, expected: str) -> None:
    assert choose_profile(quant, device, bf16_supported=bf16) == expected


@pytest.mark.parametrize(
    ("quant", "device", "bf16", "message"),
    [
        ("int4", "cpu", False, "Unknown precision 'int4'.*bf16, fp16, fp32, nf4, int8"),
        ("nf4", "mps", False, "does not run on Apple MPS: use --quant fp16, or the gguf engine"),
        ("int8", "mps", False, "does not run on Apple MPS"),
        ("bf16", "cuda", False, "no bfloat16 support: use --quant fp16"),
    ],
)
def test_choose_profile_names_the_alternative(quant: str, device: str, bf16: bool, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        choose_profile(quant, device, bf16_supported=bf16)


@pytest.mark.parametrize(
    ("device", "profile", "wanted", "installed", "expected"),
    [
        ("cuda", "bf16", True, True, "flash_attention_2"),
        ("cuda:0", "nf4", True, True, "flash_attention_2"),
        ("cuda", "bf16", False, True, "sdpa"),
        ("cuda", "bf16", True, False, "sdpa"),
        ("cuda", "fp32", True, True, "sdpa"),
        ("cpu", "bf16", True, True, "sdpa"),
        ("mps", "fp16", True, True, "sdpa"),
    ],
)
def test_choose_attention(device: str, profile: str, wanted: bool, installed: bool, expected: str) -> None:
    assert choose_attention(device, profile, wanted=wanted, flash_installed=installed) == expected


def test_processor_size_is_exactly_the_prepared_areas() -> None:
    assert processor_size([64 * 64, 224 * 128, 96 * 160]) == {"shortest_edge": 4096, "longest_edge": 28672}


def test_chat_messages() -> None:
    image = picture(64, 64, 1)
    plain = chat_messages(GenerationRequest("Caption.", (image, image)))
    assert plain == [{"role": "user", "content": [{"type": "image"}, {"type": "image"},
                                                   {"type": "text", "text": "Caption."}]}]
    schema = {"type": "object", "required": ["keywords"]}
    structured = chat_messages(GenerationRequest("Tags.", (image,), system="Be brief.", json_schema=schema))
    system = structured[0]
    assert system["role"] == "system"
    assert system["content"].startswith("Be brief.\n\nReply with one JSON object")
    assert json.dumps(schema) in system["content"]
    alone = chat_messages(GenerationRequest("Tags.", json_schema=schema))[0]
    assert alone["content"].startswith("Reply with")


def test_engine_options_are_checked(tiny_hf_model: Path) -> None:
    assert engine(tiny_hf_model, "fp32").options.batch_size == DEFAULT_BATCH_SIZE
    assert engine(tiny_hf_model, "fp32", batch_size=3).options.batch_size == 3
    with pytest.raises(ConfigurationError, match="batch_sise is not an option of the transformers engine"):
        engine(tiny_hf_model, "fp32", batch_sise=3)
    with pytest.raises(ConfigurationError, match="batch_size = 0 is not valid"):
        engine(tiny_hf_model, "fp32", batch_size=0)


# -- model folders ------------------------------------------------------------------------------------


def test_model_folder_checks(tmp_path: Path, tiny_hf_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_model_dir(str(tiny_hf_model)) == tiny_hf_model
    with pytest.raises(ModelFileError, match="does not exist"):
        resolve_model_dir(str(tmp_path / "nowhere"))
    weights = tiny_hf_model / "model.safetensors"
    with pytest.raises(ModelFileError, match="is a file"):
        resolve_model_dir(str(weights))

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copy(tiny_hf_model / "config.json", pickled / "config.json")
    (pickled / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelFileError, match="safetensors only"):
        resolve_model_dir(str(pickled))

    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "llava"}))
    (other / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelFileError, match="'llava' model; Captioneer runs Qwen3-VL"):
        resolve_model_dir(str(other))

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ModelFileError, match="Qwen/Qwen3-VL-2B-Instruct is not downloaded yet"):
        resolve_model_dir("Qwen/Qwen3-VL-2B-Instruct")


def test_model_from_the_local_hub_cache(
    tmp_path: Path, tiny_hf_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repo id already in the Hugging Face cache loads offline (the cache layout is built by hand here)."""
    cache = tmp_path / "hub"
    snapshot = cache / "models--someone--tiny-qwen3vl" / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_hf_model, snapshot)
    (cache / "models--someone--tiny-qwen3vl" / "refs").mkdir()
    (cache / "models--someone--tiny-qwen3vl" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    assert resolve_model_dir("someone/tiny-qwen3vl") == snapshot


# -- the real engine ------------------------------------------------------------------------------------


@pytest.mark.parametrize("quant", ["bf16", "fp16", "fp32", "nf4", "int8"])
def test_every_profile_captions_on_cpu(tiny_hf_model: Path, quant: str) -> None:
    backend = engine(tiny_hf_model, quant)
    backend.load()
    try:
        request = GenerationRequest("Describe this image.", (picture(96, 64, 1),), options=GREEDY)
        text = "".join(backend.generate(request))
        info = backend.info()
    finally:
        backend.unload()
    assert text.strip()
    assert info.loaded and info.quant == quant and info.device == "cpu"
    assert info.details["attention"] == "sdpa"
    assert not backend.info().loaded


def test_quantized_profiles_really_quantize_the_language_model_only(tiny_hf_model: Path) -> None:
    import bitsandbytes as bnb

    sizes = {}
    for quant in ("bf16", "nf4", "fp16", "int8"):
        backend = engine(tiny_hf_model, quant)
        backend.load()
        sizes[quant] = backend.info().memory_bytes
        model = backend._model
        kinds = {name: type(module) for name, module in model.named_modules()}
        if quant in ("nf4", "int8"):
            wanted = bnb.nn.Linear4bit if quant == "nf4" else bnb.nn.Linear8bitLt
            assert any(k is wanted for n, k in kinds.items() if n.startswith("model.language_model."))
            assert not any(k is wanted for n, k in kinds.items() if n.startswith("model.visual"))
            assert kinds["lm_head"] is not wanted
        backend.unload()
    assert sizes["nf4"] < sizes["bf16"]
    assert sizes["int8"] < sizes["fp16"]


def test_processor_keeps_the_prepared_size(fp32: TransformersBackend, tmp_path: Path) -> None:
    """Tiny (below the processor's own minimum) and odd-shaped images reach the model at exactly their
    prepared token count; so does a photo prepared with the app's image budget."""
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (1600, 1000), (30, 120, 200)).save(photo)
    prepared = prepare_image(photo, 64)
    for image in (picture(64, 64, 1), picture(224, 128, 2), picture(32, 320, 3), prepared):
        request = GenerationRequest("Caption.", (image,), options=SamplingOptions(max_new_tokens=2))
        "".join(fp32.generate(request))
        assert fp32.info().details["last_image_tokens"] == [image.tokens]
    assert prepared.tokens <= 64


def test_stream_is_the_same_text_as_a_batch_of_one(fp32: TransformersBackend) -> None:
    request = GenerationRequest("Describe this image in detail.", (picture(128, 96, 4),), options=GREEDY)
    chunks = list(fp32.generate(request))
    assert chunks and all(chunks)
    assert "".join(chunks) == fp32.generate_batch([request])[0]


def test_batch_equals_one_by_one_with_greedy_decoding(fp32: TransformersBackend) -> None:
    """Three different images and prompts of different lengths, so the batch is really left-padded."""
    requests = [
        GenerationRequest("Describe.", (picture(64, 64, 1),), options=GREEDY),
        GenerationRequest("What is in this picture? Answer briefly.", (picture(96, 160, 2),), options=GREEDY),
        GenerationRequest("Caption the image please, in one line.", (picture(224, 128, 3),), options=GREEDY),
    ]
    one_by_one = ["".join(fp32.generate(request)) for request in requests]
    assert len(set(one_by_one)) == 3
    assert fp32.generate_batch(requests) == one_by_one


def test_batch_keeps_order_across_option_groups_and_batch_sizes(tiny_hf_model: Path) -> None:
    backend = engine(tiny_hf_model, "fp32", batch_size=2)
    backend.load()
    try:
        short = SamplingOptions(max_new_tokens=3, temperature=0.0)
        requests = [
            GenerationRequest("Describe.", (picture(64, 64, i),), options=GREEDY if i % 2 else short)
            for i in range(5)
        ]
        expected = ["".join(backend.generate(request)) for request in requests]
        assert backend.generate_batch(requests) == expected
        assert backend.info().details["batch_size"] == 2
    finally:
        backend.unload()


def test_text_only_request(fp32: TransformersBackend) -> None:
    assert "".join(fp32.generate(GenerationRequest("Say hello.", options=GREEDY)))


def compute_thread_is_idle(backend: TransformersBackend) -> bool:
    """Whether the backend's compute thread takes a new job at once (it is not still generating)."""
    backend._compute.submit(lambda: None).result(timeout=1.0)
    return True


def test_all_torch_work_runs_on_one_thread(tiny_hf_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading, preprocessing and generation (streamed and batched) share one thread, so PyTorch keeps one
    OpenMP team (a second one slowed CPU decoding by 17 %); unloading ends that thread."""
    import transformers

    threads: dict[str, set[threading.Thread]] = {}

    def note(name: str) -> None:
        threads.setdefault(name, set()).add(threading.current_thread())

    original_load = transformers.AutoModelForImageTextToText.from_pretrained.__func__

    def load(cls, *args, **kwargs):
        note("load")
        return original_load(cls, *args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForImageTextToText, "from_pretrained", classmethod(load))
    backend = engine(tiny_hf_model, "fp32")
    backend.load()
    original_inputs, original_generate = backend._inputs, backend._model.generate
    monkeypatch.setattr(backend, "_inputs", lambda *a, **k: (note("inputs"), original_inputs(*a, **k))[1])
    monkeypatch.setattr(backend._model, "generate",
                        lambda *a, **k: (note("generate"), original_generate(*a, **k))[1])
    request = GenerationRequest("Describe.", (picture(64, 64, 3),), options=GREEDY)
    try:
        assert "".join(backend.generate(request)) and backend.generate_batch([request, request])
    finally:
        backend.unload()
    assert set(threads) == {"load", "inputs", "generate"}
    used = set().union(*threads.values())
    assert len(used) == 1 and threading.current_thread() not in used
    compute = used.pop()
    compute.join(timeout=5.0)
    assert not compute.is_alive()


def test_cancel_between_tokens_returns_within_a_second(fp32: TransformersBackend) -> None:
    cancel = CancelToken()
    request = GenerationRequest("Describe.", (picture(64, 64, 5),), options=SamplingOptions(
        max_new_tokens=4000, temperature=0.0))
    started = None
    with pytest.raises(Cancelled):
        for _ in fp32.generate(request, cancel):
            if started is None:
                started = time.monotonic()
                threading.Timer(0.05, cancel.cancel).start()
    assert started is not None and time.monotonic() - started < 1.0
    assert compute_thread_is_idle(fp32)


def big_request(image_tokens: int = 4096, words: int = 3) -> GenerationRequest:
    """A request whose first token takes seconds on the tiny model: the vision tower encodes a huge image
    (~13 s here) or the language model reads a long prompt."""
    side = int((image_tokens * 1024) ** 0.5)
    image = PreparedImage(Image.new("RGB", (side, side), (40, 120, 200)), source="big.png")
    return GenerationRequest("word " * words, (image,), options=SamplingOptions(max_new_tokens=8,
        temperature=0.0))


@pytest.mark.parametrize("how", ["stream", "batch"])
@pytest.mark.parametrize(("image_tokens", "words"), [(4096, 3), (64, 3000)],
                         ids=["image-encoding", "prompt-prefill"])
def test_cancel_stops_inside_image_encoding_and_prompt_reading(
    fp32: TransformersBackend, how: str, image_tokens: int, words: int
) -> None:
    """The stopping criterion runs only between tokens; the layer hooks stop the forward pass that encodes
    the image and reads the prompt, so a cancel lands within a fraction of a second, not after it."""
    request = big_request(image_tokens, words)
    cancel = CancelToken()
    fired: list[float] = []
    timer = threading.Timer(1.0, lambda: (fired.append(time.monotonic()), cancel.cancel()))
    timer.start()
    with pytest.raises(Cancelled):
        if how == "stream":
            list(fp32.generate(request, cancel))
        else:
            fp32.generate_batch([request], cancel)
    timer.join()
    # At most one layer: the tiny vision tower has two, ~2 s each on this image here (a real one has 24+
    # short ones); 7-15 s before the layer hooks.
    assert time.monotonic() - fired[0] < 4.0
    assert compute_thread_is_idle(fp32)
    small = GenerationRequest("Describe.", (picture(64, 64, 5),), options=SamplingOptions(max_new_tokens=6,
        temperature=0.0))
    assert "".join(fp32.generate(small)) == "".join(fp32.generate(small))


def test_cancel_before_start_and_an_abandoned_stream(fp32: TransformersBackend) -> None:
    cancel = CancelToken()
    cancel.cancel()
    request = GenerationRequest("Describe.", (picture(64, 64, 6),), options=SamplingOptions(
        max_new_tokens=4000, temperature=0.0))
    with pytest.raises(Cancelled):
        list(fp32.generate(request, cancel))
    with pytest.raises(Cancelled):
        fp32.generate_batch([request], cancel)
    stream = fp32.generate(request)
    next(stream)
    stream.close()  # the consumer walks away: the compute thread must stop, not generate 4,000 tokens
    assert compute_thread_is_idle(fp32)
    assert "".join(fp32.generate(GenerationRequest("Describe.", (picture(64, 64, 6),), options=GREEDY)))


def test_sampling_options_are_used(fp32: TransformersBackend) -> None:
    image = (picture(96, 96, 7),)
    greedy = "".join(fp32.generate(GenerationRequest("Describe.", image, options=GREEDY)))
    penalised = "".join(fp32.generate(GenerationRequest(
        "Describe.", image, options=GREEDY.model_copy(update={"presence_penalty": 2.0}))))
    assert penalised != greedy
    hot = SamplingOptions(max_new_tokens=24, temperature=1.5, top_p=1.0, top_k=0, seed=11)
    first = "".join(fp32.generate(GenerationRequest("Describe.", image, options=hot)))
    again = "".join(fp32.generate(GenerationRequest("Describe.", image, options=hot)))
    other = "".join(fp32.generate(GenerationRequest(
        "Describe.", image, options=hot.model_copy(update={"seed": 12}))))
    assert first == again
    assert first != other


def test_structured_task_ends_in_a_clear_cut_off_output(fp32: TransformersBackend, tmp_path: Path) -> None:
    """The tiny random model babbles until the limit: one retry, then a 'cut off' result (not 'invalid JSON',
    not a crash) that says how to fix it."""
    photo = tmp_path / "beach.png"
    Image.new("RGB", (200, 150), (240, 220, 160)).save(photo)
    retries: list[str] = []
    result = caption_file(
        fp32, photo, get_task("keywords"), image_tokens=64,
        sampling=SamplingOptions(max_new_tokens=12, temperature=0.0), on_retry=retries.append,
    )
    assert not result.ok
    assert result.error_kind == "truncated" and result.attempts == 2
    assert result.error.startswith("Cut-off output after 2 attempts: The answer was cut off at 12 tokens")
    assert "not valid JSON" not in result.error
    assert len(retries) == 1


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([[5, 6, 2]], ["stop"]),  # ended with an end-of-sequence token
        ([[5, 2, 0, 0]], ["stop"]),  # ended, then padded in a batch
        ([[5, 6, 7, 8]], ["length"]),  # ran to max_new_tokens without ending
        ([[5, 6]], [None]),  # stopped early from outside (cancel)
        ([[5, 6, 7, 8], [5, 3, 0, 0]], ["length", "stop"]),
    ],
)
def test_finish_reasons(rows: list[list[int]], expected: list[str | None]) -> None:
    assert finish_reasons(rows, frozenset({2, 3}), max_new_tokens=4) == expected


def test_stream_and_batch_say_when_the_answer_was_cut_off(fp32: TransformersBackend) -> None:
    request = GenerationRequest("Describe.", (picture(64, 64, 5),), options=GREEDY)
    streamed = collect(fp32.generate(request))
    assert streamed.finish_reason == "length" and streamed.truncated
    [batched] = fp32.generate_batch([request])
    assert batched == streamed and batched.finish_reason == "length"


def test_an_answer_that_reaches_end_of_sequence_is_not_cut_off(
    fp32: TransformersBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The random model never ends by itself; with every token counted as end-of-sequence it ends at once."""
    vocabulary = list(range(fp32._model.config.get_text_config().vocab_size))
    monkeypatch.setattr(fp32._model.generation_config, "eos_token_id", vocabulary)
    request = GenerationRequest("Describe.", (picture(64, 64, 5),), options=GREEDY)
    assert collect(fp32.generate(request)).finish_reason == "stop"
    assert [answer.finish_reason for answer in fp32.generate_batch([request, request])] == ["stop", "stop"]


def test_not_loaded_and_unknown_settings(tiny_hf_model: Path) -> None:
    backend = engine(tiny_hf_model, "fp32")
    with pytest.raises(GenerationError, match="not loaded"):
        list(backend.generate(GenerationRequest("Hi")))
    assert backend.info().loaded is False
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        backend.load(cancel=cancel)
    assert backend.info().loaded is False
    with pytest.raises(ConfigurationError, match="batch_sise"):
        engine(tiny_hf_model, "fp32", batch_sise=2)
    with pytest.raises(ConfigurationError, match="Unknown precision"):
        engine(tiny_hf_model, "q4").load()


def test_cli_caption_in_process_with_nf4(
    tiny_hf_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = tmp_path / "red.png"
    Image.new("RGB", (300, 200), (220, 30, 30)).save(photo)
    code = cli_main([
        "caption", str(photo), "--engine", "transformers", "--model", str(tiny_hf_model), "--quant", "nf4",
        "--device", "cpu", "--temperature", "0", "--max-tokens", "8", "--image-tokens", "64", "--json",
        "--in-process",
    ])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["ok"] and out["text"]
    assert (out["engine"], out["quant"], out["image_tokens"]) == ("transformers", "nf4", 54)
