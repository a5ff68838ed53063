"""The gguf engine: a Qwen3-VL GGUF model and its mmproj run in-process by llama-cpp-python's mtmd handler."""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import secrets
import sys
import threading
import weakref
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from captioneer.backends.base import (
    Backend,
    BackendInfo,
    Capabilities,
    EngineConfig,
    LocalOptions,
    ProgressCallback,
)
from captioneer.backends.cancel import CancelToken, token_or_new
from captioneer.backends.cpu_cores import physical_cores
from captioneer.backends.errors import (
    Cancelled,
    CaptioneerError,
    ConfigurationError,
    EngineNotInstalledError,
    GenerationError,
    ModelFileError,
    ResourceExhaustedError,
    setting,
)
from captioneer.backends.gguf_cancel import NativeCancel
from captioneer.backends.gguf_files import GGUFHeader, check_gguf_pair
from captioneer.backends.request import GenerationRequest, SamplingOptions

CONTEXT_STEP = 512
PROMPT_ALLOWANCE = 512
"""Tokens kept for the chat template, the system prompt and the instruction."""
OUTPUT_ALLOWANCE = 1024
"""Tokens kept for the answer when the context is sized from the image budget."""
TEMPLATE_OVERHEAD = 32
"""Chat-template tokens around the prompt (role markers, vision start/end)."""

_LOG_LINES = 200
_GGML_WARN, _GGML_ERROR = 3, 4
"""ggml_log_level values (ggml.h)."""
native_log = logging.getLogger("captioneer.backends.gguf.native")


def context_size(image_tokens: int, override: int | None = None) -> int:
    """Context length for one image of ``image_tokens`` plus prompt and answer, rounded up to 512."""
    if override is not None:
        return override
    needed = image_tokens + PROMPT_ALLOWANCE + OUTPUT_ALLOWANCE
    return -(-needed // CONTEXT_STEP) * CONTEXT_STEP


def gpu_layers(device: str, requested: int, offload_supported: bool) -> int:
    """Layers to offload (-1 = all) for ``device`` (auto, cpu, cuda, mps…).

    ``auto`` offloads what was asked where this llama.cpp build can and runs on the CPU where it cannot;
    a GPU asked for by name on a CPU-only build is an error rather than a silent slow run.
    """
    if device == "cpu":
        return 0
    if offload_supported:
        return requested
    if device == "auto":
        return 0
    raise ConfigurationError(
        "The installed llama-cpp-python has no GPU support, so "
        + setting("device", f"--device {device}", f"the device “{device}”") + " cannot be used. "
        "Install a GPU build of llama-cpp-python (see its install notes for CUDA or Metal), or use "
        + setting("device", "--device auto.", "the device “auto”.")
    )


STRING_CHAR_RULE = r'[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})'
"""One character inside a JSON string: anything but a quote, a backslash or a control character
(U+0000-U+001F, U+007F), or an escape (``\\n``, ``\\t``, ``\\u00e9``…). The rule llama.cpp's own C++
converter uses; llama-cpp-python's Python converter (0.3.x) allows raw control characters, which make the JSON
invalid."""


def strict_string_grammar(gbnf: str) -> str:
    """``gbnf`` (from llama-cpp-python's JSON-schema converter) with every JSON string character limited to
    :data:`STRING_CHAR_RULE`.

    The converter defines one ``char`` rule that all strings use (bounded ones repeat it); only its body
    changes. A grammar without strings is returned as it is.
    """
    lines = gbnf.splitlines()
    for index, line in enumerate(lines):
        name, separator, _ = line.partition(" ::= ")
        if separator and name == "char":
            lines[index] = f"char ::= {STRING_CHAR_RULE}"
    return "\n".join(lines)


def sampling_arguments(options: SamplingOptions) -> dict[str, Any]:
    """llama-cpp-python keyword arguments for ``options``; its own extra samplers are switched off so that
    temperature 0 is plain greedy decoding, as in every other engine."""
    return {
        "temperature": options.temperature,
        "top_p": options.top_p,
        "top_k": options.top_k,
        "min_p": 0.0,
        "typical_p": 1.0,
        "presence_penalty": options.presence_penalty,
        "frequency_penalty": 0.0,
        "repeat_penalty": 1.0,
        "seed": options.seed,
    }


def device_name(system_info: str, offloading: bool) -> str:
    """``cpu``, or the GPU backend this llama.cpp build offloads to."""
    if not offloading:
        return "cpu"
    for marker, name in (("CUDA", "cuda"), ("METAL", "metal"), ("MTL", "metal"), ("HIP", "rocm"),
                         ("VULKAN", "vulkan"), ("SYCL", "sycl")):
        if marker in system_info.upper():
            return name
    return "gpu"


# Phrases in llama-cpp-python exceptions and llama.cpp's log that tell what ran out.
_MEMORY_WORDS = ("out of memory", "failed to allocate", "unable to allocate", "cudamalloc failed")
_CONTEXT_WORDS = ("n_ctx", "context window", "memory slot", "kv slot", "llama_decode returned 1")


def translate_error(exc: BaseException, log_tail: str = "") -> CaptioneerError:
    """Turn a llama-cpp-python or llama.cpp failure into the error the app shows (the one choke point)."""
    if isinstance(exc, CaptioneerError):
        return exc
    text = f"{exc}\n{log_tail}".lower()
    if isinstance(exc, MemoryError) or any(word in text for word in _MEMORY_WORDS):
        return ResourceExhaustedError(
            "llama.cpp ran out of memory on this image. Lower the image budget ("
            + setting("image_tokens") + "), use a smaller model or quantization, or close other programs."
        )
    if any(word in text for word in _CONTEXT_WORDS):
        return ResourceExhaustedError(
            f"The image and prompt do not fit in the model's context ({exc}). Lower the image budget "
            "(" + setting("image_tokens") + ")" + setting("context", " or raise the context (--context)", "")
            + "."
        )
    if "jinja2" in sys.modules and isinstance(exc, sys.modules["jinja2"].TemplateError):
        from jinja2.sandbox import SecurityError

        kind = "was blocked by the sandbox" if isinstance(exc, SecurityError) else "failed"
        return ModelFileError(
            f"The chat template inside the model file {kind} ({exc}). The file may be damaged or "
            "tampered with; download the model again from its official repository."
        )
    if "bitmap" in text:
        return GenerationError(f"llama.cpp could not decode the image ({exc}).")
    return GenerationError(f"llama.cpp failed: {exc}")


def _failure(exc: BaseException, cancel: CancelToken) -> CaptioneerError:
    """A native failure during generation: Cancelled when llama.cpp stopped because of the cancel token
    (an aborted decode reports an error code), else the translated error."""
    if cancel.cancelled:
        return Cancelled()
    return translate_error(exc, _NATIVE_LOG.tail())


class _NativeLog:
    """Receives llama.cpp's and mtmd's log lines instead of the terminal: keeps the last warnings and
    errors to explain failures, and passes every line to Python logging at debug level (logger
    ``captioneer.backends.gguf.native``)."""

    def __init__(self) -> None:
        self.lines: deque[str] = deque(maxlen=_LOG_LINES)
        self.callback: Any = None

    def install(self, llama_cpp: Any, mtmd_cpp: Any) -> None:
        if self.callback is None:

            def collect(level: int, text: bytes, user_data: Any) -> None:
                line = text.decode("utf-8", errors="replace")
                if level in (_GGML_WARN, _GGML_ERROR):
                    self.lines.append(line)
                native_log.debug("%s", line.rstrip("\n"))

            self.callback = llama_cpp.llama_log_callback(collect)
        llama_cpp.llama_log_set(self.callback, ctypes.c_void_p(0))
        mtmd_cpp.mtmd_log_set(self.callback, ctypes.c_void_p(0))
        mtmd_cpp.mtmd_helper_log_set(self.callback, ctypes.c_void_p(0))

    def tail(self, lines: int = 20) -> str:
        return "".join(list(self.lines)[-lines:])


_NATIVE_LOG = _NativeLog()


def _load_error(what: str, exc: Exception) -> CaptioneerError:
    """A failed load: out of memory, or a file llama.cpp refuses (with its own reason from the log)."""
    reason = " ".join(line.strip() for line in _NATIVE_LOG.tail(3).splitlines() if line.strip())
    if any(word in f"{exc} {reason}".lower() for word in _MEMORY_WORDS):
        return ResourceExhaustedError(
            f"Not enough memory to load {what}. Pick a smaller model or quantization, or a lower image "
            "budget; on a GPU, offload fewer layers."
        )
    return ModelFileError(
        f"llama.cpp could not load {what}: {exc}{f' ({reason})' if reason else ''}. The file may be for "
        "a newer llama.cpp, or damaged: update Captioneer or download the model again."
    )


def _rss_bytes() -> int | None:
    """This process's resident memory where the OS tells it cheaply (Linux), else None."""
    statm = Path("/proc/self/statm")
    if not statm.is_file():
        return None
    return int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def needs_plain_cpu_buffers(system_info: str, gpu_layers: int) -> bool:
    """Whether to keep llama.cpp's weights out of its "extra" CPU buffers (AMX, repacking).

    On CPUs with AMX, llama.cpp 0.3.36 moves Q4_K_M/Q8_0 weights into AMX buffers and the first decode crashes
    with SIGSEGV (measured with a real-size 2B model; F16 runs). Plain buffers work everywhere.
    """
    return gpu_layers == 0 and "AMX_INT8 = 1" in system_info


@contextlib.contextmanager
def _plain_cpu_buffers(bindings: Any) -> Iterator[None]:
    """Load models with ``use_extra_bufts`` off: llama-cpp-python takes its defaults from this function."""
    original = bindings.llama_model_default_params

    def without_extra_buffers() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    bindings.llama_model_default_params = without_extra_buffers
    try:
        yield
    finally:
        bindings.llama_model_default_params = original


class GGUFBackend(Backend):
    """llama.cpp in-process: a GGUF language model plus its mmproj vision projector.

    The model's own chat template (from its GGUF metadata) is rendered by llama-cpp-python's
    ``MTMDChatHandler`` in a sandboxed Jinja environment; each request starts from an empty KV cache.
    """

    name: ClassVar[str] = "gguf"
    capabilities: ClassVar[Capabilities] = Capabilities(
        vision=True, streaming=True, json_schema=True, in_process=True,
        quantizations=("Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "F16", "BF16"),
    )

    class Options(LocalOptions):
        """The GGUF engine's options (and the :class:`LocalOptions`).

        Attributes:
            mmproj: the GGUF vision projector that belongs to the model.
            gpu_layers: layers to offload; -1 offloads all where a GPU backend exists.
        """

        mmproj: str | None = None
        gpu_layers: int = -1

    options: Options

    @classmethod
    def context_tokens(cls, image_tokens: int, override: int | None = None) -> int:
        return context_size(image_tokens, override)

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        self._llama: Any = None
        self._close: weakref.finalize | None = None
        self._model_header: GGUFHeader | None = None
        self._mmproj_header: GGUFHeader | None = None
        self._threads = self.options.threads or physical_cores()
        self._n_ctx = context_size(config.image_tokens, config.context_tokens)
        self._gpu_layers = 0
        self._device = "cpu"
        self._plain_buffers = False
        self._native: NativeCancel | None = None
        self._lock = threading.Lock()

    def load(self, progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> None:
        if self._llama is not None:
            return
        cancel = token_or_new(cancel)
        if progress:
            progress(0.0, "Checking the model files")
        model, mmproj = check_gguf_pair(self.config.model, self.options.mmproj)
        cancel.raise_if_cancelled()
        try:
            import llama_cpp
            import llama_cpp.mtmd_cpp as mtmd_cpp
            from llama_cpp.llama_chat_format import MTMDChatHandler
        except ImportError as exc:
            raise EngineNotInstalledError(
                f"The gguf engine needs llama-cpp-python ({exc}). "
                "Install it with: pip install 'captioneer[gguf]'"
            ) from None
        _NATIVE_LOG.install(llama_cpp, mtmd_cpp)
        _NATIVE_LOG.lines.clear()
        offload = bool(llama_cpp.llama_supports_gpu_offload())
        self._gpu_layers = gpu_layers(self.options.device, self.options.gpu_layers, offload)
        system_info = llama_cpp.llama_print_system_info().decode(errors="replace")
        self._device = device_name(system_info, self._gpu_layers != 0)
        self._plain_buffers = needs_plain_cpu_buffers(system_info, self._gpu_layers)
        if self._plain_buffers:
            # With weights in plain buffers llama.cpp's tiled CPU matmul decodes ~20× slower (0.4 vs 9 tok/s).
            os.environ.setdefault("GGML_CPU_TILED_MM", "0")
        if progress:
            progress(0.2, f"Loading {model.path.name}")
        buffers = _plain_cpu_buffers(llama_cpp.llama_cpp) if self._plain_buffers else contextlib.nullcontext()
        try:
            handler = MTMDChatHandler(clip_model_path=str(mmproj.path), verbose=False,
                                      use_gpu=self._gpu_layers != 0)
            with buffers:
                llama = llama_cpp.Llama(
                    model_path=str(model.path),
                    chat_handler=handler,
                    n_ctx=self._n_ctx,
                    n_threads=self._threads,
                    n_threads_batch=self._threads,
                    n_gpu_layers=self._gpu_layers,
                    flash_attn=self.options.flash_attention,
                    verbose=False,
                )
            _NATIVE_LOG.install(llama_cpp, mtmd_cpp)
        except (ValueError, RuntimeError, OSError) as exc:
            raise _load_error(model.path.name, exc) from None
        if progress:
            progress(0.7, f"Loading the vision projector {mmproj.path.name}")
        native = NativeCancel(llama_cpp)
        try:
            # The handler would load the projector on the first image; load it now so errors show here.
            with native.encoder_hook(mtmd_cpp):
                handler._init_mtmd_context(llama)
        except (ValueError, RuntimeError, OSError) as exc:
            llama.close()
            raise _load_error(f"the vision projector {mmproj.path.name}", exc) from None
        native.attach(llama, llama_cpp)
        self._llama, self._model_header, self._mmproj_header = llama, model, mmproj
        self._native = native
        # Free native memory when this engine is garbage-collected or the interpreter exits unloaded.
        self._close = weakref.finalize(self, llama.close)
        if progress:
            progress(1.0, "Ready")

    def _grammar(self, schema: dict[str, Any]) -> Any:
        from llama_cpp.llama_grammar import LlamaGrammar, json_schema_to_gbnf

        try:
            text = strict_string_grammar(json_schema_to_gbnf(json.dumps(schema)))
            return LlamaGrammar.from_string(text, verbose=False)
        except (ValueError, RuntimeError, TypeError, KeyError) as exc:
            raise ConfigurationError(f"llama.cpp cannot turn the task's JSON schema into a grammar: {exc}") \
                from None

    def _max_tokens(self, request: GenerationRequest) -> int:
        """Answer tokens that fit after the image and prompt; ResourceExhaustedError if nothing fits."""
        text = (request.system or "") + request.prompt
        prompt_tokens = len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))
        used = request.image_tokens + prompt_tokens + TEMPLATE_OVERHEAD
        room = self._n_ctx - used
        if room < 16:
            # A video's frames arrive as several images in one request: its budget is the clip's.
            clip = len(request.images) > 1
            what = f"The {len(request.images)} video frames" if clip else "The image"
            budget = (
                "the clip budget (" + setting("video_tokens") if clip else "the image budget ("
                + setting("image_tokens")
            )
            raise ResourceExhaustedError(
                f"{what} ({request.image_tokens} tokens) and prompt ({prompt_tokens} tokens) do not fit "
                f"in the {self._n_ctx}-token context. Lower {budget})"
                + setting("context", " or raise the context (--context)", "") + "."
            )
        return min(request.options.max_new_tokens, room)

    def generate(self, request: GenerationRequest, cancel: CancelToken | None = None) -> Iterator[str]:
        cancel = token_or_new(cancel)
        if self._llama is None:
            raise GenerationError("The gguf engine is not loaded: call load() first.")
        cancel.raise_if_cancelled()
        grammar = self._grammar(request.json_schema) if request.json_schema is not None else None
        with self._lock:
            llama = self._llama
            max_tokens = self._max_tokens(request)
            _NATIVE_LOG.lines.clear()
            sampling = sampling_arguments(request.options)
            if sampling["seed"] is None:
                # Without a seed llama-cpp-python derives each request's seed from the previous one;
                # an unseeded request gets its own, so no request depends on the ones before it.
                sampling["seed"] = secrets.randbelow(2**32)
            with self._native.watching(cancel):
                return (yield from self._stream(llama, request, max_tokens, grammar, sampling, cancel))

    def _stream(
        self, llama: Any, request: GenerationRequest, max_tokens: int, grammar: Any,
        sampling: dict[str, Any], cancel: CancelToken,
    ) -> Iterator[str]:
        """Run one completion and yield its text; a cancel stops it at the next token, or inside the image
        encoding and prompt decoding (see :class:`NativeCancel`)."""
        try:
            stream = llama.create_chat_completion(
                messages=request.openai_messages(),
                stream=True,
                max_tokens=max_tokens,
                grammar=grammar,
                **sampling,
            )
        except Exception as exc:  # the one choke point: every native failure is translated
            raise _failure(exc, cancel) from exc
        finish_reason: str | None = None
        with contextlib.closing(stream):
            cancel.raise_if_cancelled()
            while True:
                try:
                    chunk = next(stream)
                except StopIteration:
                    break
                except Exception as exc:  # the one choke point, as above
                    raise _failure(exc, cancel) from exc
                if cancel.cancelled:
                    raise Cancelled()
                choice = chunk["choices"][0]
                text = choice["delta"].get("content")
                if text:
                    yield text
                finish_reason = choice.get("finish_reason") or finish_reason
        return finish_reason

    def unload(self) -> None:
        with self._lock:
            if self._llama is not None:
                self._close()
                self._llama = self._native = None

    def info(self) -> BackendInfo:
        model = self._model_header
        return BackendInfo(
            engine=self.name,
            model=self.config.model,
            quant=model.quantization if model else None,
            device=self._device,
            loaded=self._llama is not None,
            memory_bytes=_rss_bytes(),
            details={
                "mmproj": self.options.mmproj,
                "mmproj_quant": self._mmproj_header.quantization if self._mmproj_header else None,
                "architecture": model.architecture if model else None,
                "threads": self._threads,
                "context": self._n_ctx,
                "gpu_layers": self._gpu_layers,
                "flash_attention": self.options.flash_attention,
                "plain_cpu_buffers": self._plain_buffers,
            },
        )
