"""The gguf engine on the real llama-cpp-python with the tiny Qwen3-VL GGUF pair: streaming, determinism,
cancel, JSON schemas, fresh state per image, context/error handling and the sandboxed chat template."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from jinja2.sandbox import SecurityError
from PIL import Image

from captioneer.backends.base import EngineConfig, collect
from captioneer.backends.cancel import CancelToken
from captioneer.backends.errors import (
    Cancelled,
    ConfigurationError,
    GenerationError,
    ModelFileError,
    ResourceExhaustedError,
    TruncatedOutputError,
)
from captioneer.backends.gguf import (
    STRING_CHAR_RULE,
    GGUFBackend,
    _load_error,
    _plain_cpu_buffers,
    context_size,
    device_name,
    gpu_layers,
    needs_plain_cpu_buffers,
    physical_cores,
    sampling_arguments,
    strict_string_grammar,
    translate_error,
)
from captioneer.backends.registry import create_backend
from captioneer.backends.request import GenerationRequest, PreparedImage, SamplingOptions
from captioneer.desktop.core.captioning import caption_file, generate_answer
from captioneer.desktop.core.tasks import build_request, get_task, task_schema
from tests.test_gguf_files import rewrite_string

GREEDY = SamplingOptions(temperature=0.0, max_new_tokens=24)


def red_square() -> PreparedImage:
    return PreparedImage(Image.new("RGB", (320, 256), (200, 30, 30)), source="red.png")


def noise() -> PreparedImage:
    pixels = np.random.default_rng(7).integers(0, 255, (320, 224, 3), dtype=np.uint8)
    return PreparedImage(Image.fromarray(pixels), source="noise.png")


def describe(image: PreparedImage, options: SamplingOptions = GREEDY) -> GenerationRequest:
    return GenerationRequest(prompt="Describe this image.", images=(image,), options=options)


def make_backend(model: Path, mmproj: Path | None, **overrides) -> GGUFBackend:
    shared = {key: value for key, value in overrides.items() if key in EngineConfig.model_fields}
    options = {"mmproj": str(mmproj) if mmproj else None, "threads": 2,
               **{key: value for key, value in overrides.items() if key not in shared}}
    config = EngineConfig(engine="gguf", model=str(model), **{"image_tokens": 256, **shared}, options=options)
    backend = create_backend(config)
    assert isinstance(backend, GGUFBackend)
    return backend


@pytest.fixture(scope="module")
def engine(tiny_gguf: tuple[Path, Path]) -> Iterator[GGUFBackend]:
    backend = make_backend(*tiny_gguf)
    backend.load()
    yield backend
    backend.unload()


def run(backend: GGUFBackend, request: GenerationRequest) -> str:
    return "".join(backend.generate(request))


def test_streams_several_chunks(engine: GGUFBackend) -> None:
    chunks = list(engine.generate(describe(red_square())))
    assert len(chunks) >= 5
    assert all(isinstance(chunk, str) and chunk for chunk in chunks)
    assert "".join(chunks).strip()


def test_greedy_is_deterministic_and_sees_the_image(engine: GGUFBackend) -> None:
    first = run(engine, describe(red_square()))
    assert run(engine, describe(red_square())) == first
    assert run(engine, describe(noise())) != first


def test_no_state_bleed_between_alternating_images(tiny_gguf: tuple[Path, Path], engine: GGUFBackend) -> None:
    alone = {}
    for name, image in (("red", red_square()), ("noise", noise())):
        with make_backend(*tiny_gguf) as fresh:
            alone[name] = run(fresh, describe(image))
    assert alone["red"] != alone["noise"]
    for _ in range(3):
        assert run(engine, describe(noise())) == alone["noise"]
        assert run(engine, describe(red_square())) == alone["red"]


def test_seeded_sampling_is_reproducible(engine: GGUFBackend) -> None:
    def sampled(seed: int) -> str:
        options = SamplingOptions(temperature=1.0, seed=seed, max_new_tokens=10)
        return run(engine, describe(red_square(), options))

    assert sampled(11) == sampled(11)
    assert len({sampled(seed) for seed in (1, 2, 3)}) > 1


def test_max_new_tokens_caps_the_answer(engine: GGUFBackend) -> None:
    chunks = list(engine.generate(describe(red_square(), SamplingOptions(temperature=0.0, max_new_tokens=3))))
    assert 1 <= len(chunks) <= 3


def test_cancel_from_another_thread_stops_promptly(engine: GGUFBackend) -> None:
    cancel = CancelToken()
    started = threading.Event()
    outcome: dict[str, object] = {"chunks": 0}
    long_answer = describe(noise(), SamplingOptions(temperature=0.0, max_new_tokens=1500))

    def consume() -> None:
        try:
            for _ in engine.generate(long_answer, cancel):
                outcome["chunks"] = int(outcome["chunks"]) + 1
                started.set()
                time.sleep(0.002)
        except Cancelled as exc:
            outcome["error"] = exc
            outcome["stopped"] = time.perf_counter()

    worker = threading.Thread(target=consume)
    worker.start()
    assert started.wait(10)
    cancelled_at = time.perf_counter()
    cancel.cancel()
    worker.join(5)
    assert not worker.is_alive()
    assert isinstance(outcome.get("error"), Cancelled)
    assert float(outcome["stopped"]) - cancelled_at < 0.5
    assert int(outcome["chunks"]) < 1000
    # The engine is usable right after a cancel, from a clean state.
    assert run(engine, describe(red_square())) == run(engine, describe(red_square()))


def slow_to_start(image_tokens: int, words: int) -> GenerationRequest:
    """A request whose first token takes seconds on the tiny model: a huge image (the vision encoder's
    work) or a long prompt (the language model's prefill)."""
    side = int((image_tokens * 1024) ** 0.5)
    image = PreparedImage(Image.new("RGB", (side, side), (40, 120, 200)), source="big.png")
    return GenerationRequest("word " * words, (image,), options=SamplingOptions(temperature=0.0,
        max_new_tokens=8))


def cancelled_after(backend, request: GenerationRequest, delay: float = 0.5) -> float:
    """Cancel ``request`` ``delay`` seconds after it starts; seconds from the cancel to Cancelled."""
    cancel = CancelToken()
    fired: list[float] = []
    timer = threading.Timer(delay, lambda: (fired.append(time.perf_counter()), cancel.cancel()))
    timer.start()
    with pytest.raises(Cancelled):
        for _ in backend.generate(request, cancel):
            pass
    timer.join()
    return time.perf_counter() - fired[0]


@pytest.mark.parametrize(("image_tokens", "words"), [(4096, 3), (256, 2500)],
                         ids=["image-encoding", "prompt-prefill"])
def test_cancel_stops_inside_image_encoding_and_prompt_reading(
    tiny_gguf: tuple[Path, Path], image_tokens: int, words: int
) -> None:
    """Before the first token llama.cpp encodes the image and reads the prompt in native calls (8-12 s
    here for these requests); a cancel used to wait for them all. The abort hooks stop them within a
    fraction of a second (mtmd's image preprocessing before them cannot be stopped), and the engine
    answers the next request as before."""
    with make_backend(*tiny_gguf, image_tokens=image_tokens, context_tokens=8192) as backend:
        expected = run(backend, describe(red_square()))
        assert cancelled_after(backend, slow_to_start(image_tokens, words)) < 3.0  # measured: 0.03 s
        assert run(backend, describe(red_square())) == expected


def test_cancelled_before_start_raises_at_once(engine: GGUFBackend) -> None:
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        next(engine.generate(describe(red_square()), cancel))


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_keywords_task_returns_schema_valid_json(engine: GGUFBackend, seed: int) -> None:
    task = get_task("keywords")
    request = build_request(task, [noise() if seed % 2 else red_square()],
                            sampling=SamplingOptions(temperature=0.8, seed=seed, max_new_tokens=1024))
    answer = generate_answer(engine, request, retries=0)
    jsonschema.validate(answer.data, request.json_schema)
    assert answer.data["caption"] and answer.data["keywords"]


def test_json_schema_with_a_vocabulary_is_obeyed(engine: GGUFBackend) -> None:
    schema = {
        "type": "object", "required": ["keywords"], "additionalProperties": False,
        "properties": {"keywords": {"type": "array", "minItems": 1, "maxItems": 3,
                                    "items": {"type": "string", "enum": ["beach", "dog", "sunset"]}}},
    }
    request = GenerationRequest(prompt="Keywords as JSON.", images=(noise(),), json_schema=schema,
                                options=SamplingOptions(temperature=0.0, max_new_tokens=200))
    answer = generate_answer(engine, request, retries=0)
    assert set(answer.data["keywords"]) <= {"beach", "dog", "sunset"}


def test_image_larger_than_the_context_is_a_resource_error(tiny_gguf: tuple[Path, Path]) -> None:
    big = PreparedImage(Image.new("RGB", (1024, 1024), (10, 120, 40)), original_size=(4096, 4096))
    with make_backend(*tiny_gguf, context_tokens=768) as backend, \
            pytest.raises(ResourceExhaustedError, match="do not fit"):
        run(backend, describe(big))


def test_caption_retries_at_a_lower_budget_after_a_context_overflow(
    tiny_gguf: tuple[Path, Path], tmp_path: Path
) -> None:
    photo = tmp_path / "wide.png"
    Image.new("RGB", (2048, 1536), (90, 60, 200)).save(photo)
    retries: list[str] = []
    with make_backend(*tiny_gguf, context_tokens=1024) as backend:
        result = caption_file(backend, photo, get_task("caption"), image_tokens=1024,
                              sampling=GREEDY, on_retry=retries.append)
    assert result.ok, result.error
    assert result.image_tokens <= 512
    assert len(retries) == 1 and "context" in retries[0]


def _template_model(tiny_gguf: tuple[Path, Path], tmp_path: Path, template: str) -> Path:
    return rewrite_string(tiny_gguf[0], "tokenizer.chat_template", template, tmp_path / "templated.gguf")


def test_the_models_own_template_is_used(tiny_gguf: tuple[Path, Path], tmp_path: Path) -> None:
    # A different (harmless) template changes the prompt the model sees, so the answer changes:
    # proof that the GGUF's template is what renders the chat.
    odd = ("{% for m in messages %}<|im_start|>{{ m.role }}\nPlease, {% for p in m.content %}"
           "{{ p.text }}{% endfor %}<|im_end|>\n{% endfor %}<|im_start|>assistant\n")
    with make_backend(*tiny_gguf) as normal:
        expected = run(normal, describe(red_square()))
    with make_backend(_template_model(tiny_gguf, tmp_path, odd), tiny_gguf[1]) as backend:
        assert run(backend, describe(red_square())) != expected


@pytest.mark.parametrize(
    "payload",
    [
        "{{ cycler.__init__.__globals__.os.system('touch {marker}') }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}"
        "{{ lipsum.__globals__['os'].system('touch {marker}') }}",
        "{% for c in [].__class__.__base__.__subclasses__() %}"
        "{{ c('touch {marker}', shell=True) }}{% endfor %}",
    ],
    ids=["cycler-globals", "mro-subclasses", "subclass-loop"],
)
def test_a_malicious_chat_template_runs_no_code(
    tiny_gguf: tuple[Path, Path], tmp_path: Path, payload: str
) -> None:
    marker = tmp_path / "pwned"
    model = _template_model(tiny_gguf, tmp_path, payload.replace("{marker}", str(marker)))
    blocked = "chat template inside the model file was blocked"
    with make_backend(model, tiny_gguf[1]) as backend, pytest.raises(ModelFileError, match=blocked) as caught:
        run(backend, describe(red_square()))
    assert isinstance(caught.value.__cause__, SecurityError)
    assert not marker.exists()


def test_info_reports_what_is_loaded(engine: GGUFBackend, tiny_gguf: tuple[Path, Path]) -> None:
    info = engine.info()
    assert info.engine == "gguf" and info.loaded
    assert info.model == str(tiny_gguf[0])
    assert info.quant == "F16"
    assert info.device == "cpu"
    assert info.details["threads"] == 2
    assert info.details["context"] == context_size(256)
    assert info.details["mmproj"] == str(tiny_gguf[1])
    assert info.memory_bytes is None or info.memory_bytes > 10_000_000


def test_threads_default_to_physical_cores(tiny_gguf: tuple[Path, Path]) -> None:
    config = EngineConfig(model=str(tiny_gguf[0]), options={"mmproj": str(tiny_gguf[1])})
    assert GGUFBackend(config).info().details["threads"] == physical_cores()
    assert 1 <= physical_cores() <= (os.cpu_count() or 1)


def test_flash_attention_off_gives_the_same_greedy_answer(
    tiny_gguf: tuple[Path, Path], engine: GGUFBackend
) -> None:
    assert engine.info().details["flash_attention"] is True
    with make_backend(*tiny_gguf, flash_attention=False) as plain:
        assert plain.info().details["flash_attention"] is False
        assert run(plain, describe(noise())) == run(engine, describe(noise()))


def test_bad_files_fail_before_loading_with_exit_code_2(tiny_gguf: tuple[Path, Path], tmp_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_gguf[0].read_bytes()[:5000])
    for model, mmproj, message in (
        (cut, tiny_gguf[1], "truncated"),
        (tiny_gguf[0], None, "No vision projector given"),
        (tiny_gguf[1], tiny_gguf[0], "is a vision projector"),
    ):
        backend = make_backend(model, mmproj)
        with pytest.raises(ModelFileError, match=message) as caught:
            backend.load()
        assert caught.value.exit_code == 2
        assert not backend.info().loaded


def test_files_llama_cpp_refuses_are_explained_with_its_reason(
    tiny_gguf: tuple[Path, Path], tmp_path: Path
) -> None:
    model, mmproj = tiny_gguf
    odd_vocab = rewrite_string(model, "tokenizer.ggml.model", "nonsense", tmp_path / "odd-vocab.gguf")
    with pytest.raises(ModelFileError, match="could not load odd-vocab.gguf.*unknown tokenizer: 'nonsense'"):
        make_backend(odd_vocab, mmproj).load()
    odd_projector = rewrite_string(
        mmproj, "clip.projector_type", "nonsense_merger", tmp_path / "odd-mmproj.gguf"
    )
    backend = make_backend(model, odd_projector)
    with pytest.raises(ModelFileError, match="vision projector odd-mmproj.gguf.*unknown projector type"):
        backend.load()
    assert not backend.info().loaded


def test_out_of_memory_while_loading_is_a_resource_error() -> None:
    error = _load_error("model.gguf", ValueError("ggml_backend_cuda_buffer_type_alloc_buffer: out of memory"))
    assert isinstance(error, ResourceExhaustedError) and "Not enough memory to load model.gguf" in str(error)
    assert isinstance(_load_error("model.gguf", ValueError("Failed to load model")), ModelFileError)


def test_generate_before_load_is_an_error(tiny_gguf: tuple[Path, Path]) -> None:
    with pytest.raises(GenerationError, match="not loaded"):
        next(make_backend(*tiny_gguf).generate(describe(red_square())))


def test_load_and_unload_are_idempotent(tiny_gguf: tuple[Path, Path]) -> None:
    backend = make_backend(*tiny_gguf)
    backend.load()
    backend.load()
    assert run(backend, describe(red_square()))
    backend.unload()
    backend.unload()
    assert not backend.info().loaded


def test_registry_does_not_import_llama_cpp() -> None:
    code = ("import sys, captioneer.backends.registry, captioneer.backends.gguf, captioneer.desktop.cli; "
            "print('llama_cpp' in sys.modules, 'jinja2' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_llama_cpp_output_is_silenced(tiny_gguf: tuple[Path, Path]) -> None:
    code = (
        "from PIL import Image\n"
        "from captioneer.backends.base import EngineConfig\n"
        "from captioneer.backends.registry import create_backend\n"
        "from captioneer.backends.request import GenerationRequest, PreparedImage, SamplingOptions\n"
        f"config = EngineConfig(model={str(tiny_gguf[0])!r}, options={{'mmproj': {str(tiny_gguf[1])!r}, "
        "'threads': 1})\n"
        "b = create_backend(config)\n"
        "b.load()\n"
        "image = PreparedImage(Image.new('RGB', (64, 64), (1, 2, 3)))\n"
        "r = GenerationRequest(prompt='Hi', images=(image,), options=SamplingOptions(max_new_tokens=4))\n"
        "print('ANSWER', len(''.join(b.generate(r))) > 0)\n"
        "b.unload()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "ANSWER True\n"
    assert out.stderr == ""


def test_native_log_goes_to_python_debug_logging(
    engine: GGUFBackend, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="captioneer.backends.gguf.native"):
        run(engine, describe(red_square()))
    native = "captioneer.backends.gguf.native"
    messages = [record.getMessage() for record in caplog.records if record.name == native]
    assert any("image" in message for message in messages), messages[:10]


# Pure decisions.

@pytest.mark.parametrize(
    ("image_tokens", "override", "expected"),
    [(1024, None, 2560), (256, None, 2048), (16, None, 2048), (4096, None, 5632), (1024, 8192, 8192)],
)
def test_context_size(image_tokens: int, override: int | None, expected: int) -> None:
    assert context_size(image_tokens, override) == expected


@pytest.mark.parametrize(
    ("device", "requested", "supported", "expected"),
    [("auto", -1, True, -1), ("auto", 20, True, 20), ("auto", -1, False, 0), ("cpu", -1, True, 0),
     ("cuda", -1, True, -1), ("mps", 12, True, 12)],
)
def test_gpu_layers(device: str, requested: int, supported: bool, expected: int) -> None:
    assert gpu_layers(device, requested, offload_supported=supported) == expected


def test_a_named_gpu_on_a_cpu_only_build_is_an_error(tiny_gguf: tuple[Path, Path]) -> None:
    with pytest.raises(ConfigurationError, match="no GPU support, so --device cuda cannot be used"):
        gpu_layers("cuda", -1, offload_supported=False)
    import llama_cpp

    if llama_cpp.llama_supports_gpu_offload():
        pytest.skip("this llama-cpp-python build has GPU support")
    # On a CPU-only build the engine refuses instead of silently running on the CPU.
    backend = make_backend(*tiny_gguf, device="cuda")
    with pytest.raises(ConfigurationError, match="no GPU support"):
        backend.load()


def test_device_name() -> None:
    assert device_name("CPU : AVX2 = 1 | CUDA : ARCHS = 890", offloading=True) == "cuda"
    assert device_name("MTL : EMBED_LIBRARY = 1 | CPU : NEON = 1", offloading=True) == "metal"
    assert device_name("CPU : AVX2 = 1 | CUDA : ARCHS = 890", offloading=False) == "cpu"


def test_sampling_arguments() -> None:
    greedy = sampling_arguments(SamplingOptions(temperature=0.0, top_p=0.8, top_k=20, seed=5))
    assert greedy["temperature"] == 0.0 and greedy["seed"] == 5
    assert greedy["top_p"] == 0.8 and greedy["top_k"] == 20
    # llama-cpp-python's own defaults (repeat penalty 1.1, min_p 0.05) are switched off.
    assert greedy["repeat_penalty"] == 1.0 and greedy["min_p"] == 0.0
    assert sampling_arguments(SamplingOptions(presence_penalty=1.5))["presence_penalty"] == 1.5


def test_chat_messages_put_images_before_the_prompt() -> None:
    request = GenerationRequest(prompt="What is this?", images=(red_square(),), system="Be brief.")
    system, user = request.openai_messages()
    assert system == {"role": "system", "content": "Be brief."}
    assert user["content"][0]["type"] == "image_url"
    assert user["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert user["content"][1] == {"type": "text", "text": "What is this?"}


@pytest.mark.parametrize(
    ("error", "log", "expected", "words"),
    [
        (MemoryError(), "", ResourceExhaustedError, "out of memory"),
        (RuntimeError("llama_decode returned -3"), "ggml_backend_cpu_buffer_type_alloc_buffer: failed to "
         "allocate CPU buffer of size 9999", ResourceExhaustedError, "out of memory"),
        (ValueError("Prompt exceeds n_ctx: 5000 > 4096"), "", ResourceExhaustedError, "context"),
        (RuntimeError("llama_decode returned 1"), "", ResourceExhaustedError, "context"),
        (ValueError("Failed to create bitmap from image bytes"), "", GenerationError, "decode the image"),
        (SecurityError("access to attribute '__globals__' is unsafe"), "", ModelFileError, "sandbox"),
        (RuntimeError("something odd"), "", GenerationError, "something odd"),
    ],
)
def test_translate_error(error: BaseException, log: str, expected: type, words: str) -> None:
    translated = translate_error(error, log)
    assert type(translated) is expected
    assert words in str(translated)


@pytest.mark.parametrize(
    ("system_info", "layers", "plain"),
    [
        ("CPU : SSE3 = 1 | AVX2 = 1 | AMX_INT8 = 1 | AVX512 = 1 |", 0, True),
        ("CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 |", 0, False),
        ("CPU : AMX_INT8 = 0 | AVX2 = 1 |", 0, False),
        ("CUDA : ARCHS = 890 | CPU : AMX_INT8 = 1 |", -1, False),  # weights live on the GPU
    ],
)
def test_plain_cpu_buffers_only_where_amx_would_crash(system_info: str, layers: int, plain: bool) -> None:
    # On AMX CPUs llama.cpp 0.3.36 crashed (SIGSEGV) on the first decode of a real Q4_K_M 2B model.
    assert needs_plain_cpu_buffers(system_info, layers) is plain


def test_plain_cpu_buffers_switch_off_extra_buffer_types_for_the_load_only() -> None:
    import llama_cpp.llama_cpp as bindings

    assert bindings.llama_model_default_params().use_extra_bufts is True
    with _plain_cpu_buffers(bindings):
        assert bindings.llama_model_default_params().use_extra_bufts is False
    assert bindings.llama_model_default_params().use_extra_bufts is True


# -- JSON strings without raw control characters, and answers cut off at the limit -------------------------

WILD = {"temperature": 1.0, "top_k": 0, "top_p": 1.0}
"""Sampling over the whole vocabulary: the tiny model's babble then reaches its control-character tokens."""


@pytest.fixture(scope="module")
def lean_engine(tiny_gguf: tuple[Path, Path]) -> Iterator[GGUFBackend]:
    """One thread and a small context: llama.cpp's threads spin, and on a busy machine two of them can make
    a sampled answer 30 times slower."""
    backend = make_backend(*tiny_gguf, threads=1)
    backend.load()
    yield backend
    backend.unload()


def small_square() -> PreparedImage:
    return PreparedImage(Image.new("RGB", (64, 64), (30, 160, 40)), source="green.png")


def grammar_rules(gbnf: str) -> dict[str, str]:
    return dict(line.split(" ::= ", 1) for line in gbnf.splitlines())


@pytest.mark.parametrize("task_id", ["keywords", "social"])
def test_strict_string_grammar_changes_only_the_string_character_rule(task_id: str) -> None:
    from llama_cpp.llama_grammar import LlamaGrammar, json_schema_to_gbnf

    converted = json_schema_to_gbnf(json.dumps(task_schema(get_task(task_id))))
    upstream, strict = grammar_rules(converted), grammar_rules(strict_string_grammar(converted))
    assert "\\x00-\\x1F" not in upstream["char"], "the converter's rule lets control characters in"
    assert strict["char"] == STRING_CHAR_RULE
    del upstream["char"], strict["char"]
    assert strict == upstream
    LlamaGrammar.from_string(strict_string_grammar(converted), verbose=False)  # llama.cpp accepts it


def test_the_string_character_rule_refuses_control_characters_and_keeps_escapes() -> None:
    # Not a quote, a backslash, U+007F or U+0000-U+001F; or one of JSON's escapes.
    assert STRING_CHAR_RULE.startswith('[^"\\\\\\x7F\\x00-\\x1F] | ')
    escapes = STRING_CHAR_RULE.split(" | ", 1)[1]
    assert escapes == '"\\\\" (["\\\\/bfnrt] | "u" [0-9a-fA-F]{4})'  # \n \t \" \\ \/ \b \f \r \uXXXX


def test_a_grammar_without_strings_is_left_alone() -> None:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    gbnf = json_schema_to_gbnf(json.dumps({"type": "object", "properties": {"n": {"type": "integer"}}}))
    assert "char ::=" not in gbnf and strict_string_grammar(gbnf) == gbnf


SHORT_KEYWORDS = {
    "type": "object",
    "required": ["caption", "keywords"],
    "additionalProperties": False,
    "properties": {
        "caption": {"type": "string", "minLength": 1, "maxLength": 60},
        "keywords": {"type": "array", "minItems": 1, "maxItems": 3,
                     "items": {"type": "string", "minLength": 1, "maxLength": 20}},
    },
}
"""The keywords schema's shape with short bounds, so the babble ends quickly."""


def _keyword_answers(engine: GGUFBackend, seeds: range) -> list[str]:
    answers = []
    for seed in seeds:
        request = GenerationRequest(prompt="Caption and keywords as JSON.", images=(small_square(),),
                                    json_schema=SHORT_KEYWORDS,
                                    options=SamplingOptions(seed=seed, max_new_tokens=512, **WILD))
        answers.append(collect(engine.generate(request)))
    return answers


def _refused_for_control_characters(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return "control character" in exc.msg
    return False


def test_structured_answers_hold_no_raw_control_characters(lean_engine: GGUFBackend, monkeypatch) -> None:
    seeds = range(12)
    fixed = _keyword_answers(lean_engine, seeds)
    assert all(answer.finish_reason == "stop" for answer in fixed)
    for answer in fixed:
        json.loads(answer)  # strict: a raw control character inside a string would fail here
    assert any("\\" in answer for answer in fixed), "escapes (\\n, \\t, \\uXXXX) are still allowed"
    # The same answers with llama-cpp-python's own grammar: raw control characters get in.
    monkeypatch.setattr("captioneer.backends.gguf.strict_string_grammar", lambda gbnf: gbnf)
    leaky = _keyword_answers(lean_engine, seeds)
    assert sum(map(_refused_for_control_characters, leaky)) >= 3


def test_the_engine_says_when_it_cut_the_answer_off(lean_engine: GGUFBackend) -> None:
    short = SamplingOptions(temperature=0.0, max_new_tokens=5)
    cut = collect(lean_engine.generate(describe(small_square(), short)))
    assert cut.finish_reason == "length" and cut.truncated
    schema = {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}}
    request = GenerationRequest(prompt="JSON.", images=(small_square(),), json_schema=schema,
                                options=SamplingOptions(temperature=0.0, max_new_tokens=64))
    finished = collect(lean_engine.generate(request))
    assert finished.finish_reason == "stop" and not finished.truncated
    assert json.loads(finished) in ({"ok": True}, {"ok": False})


def test_a_cut_off_structured_answer_is_reported_as_cut_off(lean_engine: GGUFBackend) -> None:
    short = SamplingOptions(max_new_tokens=12)
    request = build_request(get_task("keywords"), [small_square()], sampling=short)
    with pytest.raises(TruncatedOutputError) as info:
        generate_answer(lean_engine, request)
    assert str(info.value).startswith("Cut-off output after 2 attempts: The answer was cut off at 12 tokens")
    assert info.value.attempts == 2


def test_a_cut_off_plain_answer_is_kept_with_a_warning(lean_engine: GGUFBackend, tmp_path: Path) -> None:
    path = tmp_path / "green.png"
    Image.new("RGB", (64, 64), (30, 160, 40)).save(path)
    result = caption_file(lean_engine, path, get_task("caption"), sampling=SamplingOptions(max_new_tokens=6),
                          image_tokens=64)
    assert result.ok and result.text and result.attempts == 1
    assert result.warning and "cut off at 6 tokens" in result.warning
