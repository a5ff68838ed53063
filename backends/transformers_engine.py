"""The transformers engine: Qwen3-VL with Hugging Face Transformers, bf16/fp16/fp32 or bitsandbytes NF4/int8.

torch, transformers and bitsandbytes are imported inside the methods that need them, so reading this module's
capabilities (the engine host does, in the GUI process) costs nothing.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from captioneer.backends.base import (
    FINISH_LENGTH,
    FINISH_STOP,
    Backend,
    BackendInfo,
    Capabilities,
    Completion,
    EngineConfig,
    LocalOptions,
    ProgressCallback,
)
from captioneer.backends.cancel import CancelToken, token_or_new
from captioneer.backends.errors import (
    Cancelled,
    CaptioneerError,
    ConfigurationError,
    GenerationError,
    ModelFileError,
    ResourceExhaustedError,
)
from captioneer.backends.request import GenerationRequest, SamplingOptions

if TYPE_CHECKING:
    import torch

PROFILES: tuple[str, ...] = ("bf16", "fp16", "fp32", "nf4", "int8")
"""Precision profiles: plain dtypes, bitsandbytes 4-bit NF4 (double quantization, bf16 compute), LLM.int8."""

BITSANDBYTES_PROFILES = frozenset({"nf4", "int8"})
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
QWEN3_VL_TYPES = frozenset({"qwen3_vl", "qwen3_vl_moe"})

# The vision tower and the output head stay unquantized: quantizing them costs quality for little memory.
SKIP_QUANTIZATION = ["model.visual", "lm_head"]

DEFAULT_BATCH_SIZE = 8

JSON_HINT = (
    "Reply with one JSON object only: no Markdown fences and no text before or after it. "
    "It must satisfy this JSON schema: {schema}"
)

_ALTERNATIVES = {
    "nf4": "use --quant bf16 (or fp16 on a GPU), or the gguf engine with a Q4_K_M model",
    "int8": "use --quant nf4 or bf16, or the gguf engine with a Q8_0 model",
}


def finish_reasons(
    rows: Sequence[Sequence[int]], eos_ids: frozenset[int], max_new_tokens: int
) -> list[str | None]:
    """Why each generated row ended: ``stop`` when it holds an end-of-sequence token, ``length`` when it ran
    to ``max_new_tokens`` without one (the answer is cut off), None otherwise (stopped from outside)."""
    reasons: list[str | None] = []
    for row in rows:
        if any(token in eos_ids for token in row):
            reasons.append(FINISH_STOP)
        elif len(row) >= max_new_tokens:
            reasons.append(FINISH_LENGTH)
        else:
            reasons.append(None)
    return reasons


def choose_device(requested: str, *, cuda: bool, mps: bool) -> str:
    """The torch device to run on: ``auto`` picks CUDA, then Apple MPS, then the CPU.

    Raises:
        ConfigurationError: an unknown device, or one this machine does not have.
    """
    if requested == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    kind = requested.split(":", 1)[0]
    if kind not in DEVICES:
        raise ConfigurationError(f"Unknown device '{requested}'. Choose one of: {', '.join(DEVICES)}.")
    if kind == "cuda" and not cuda:
        raise ConfigurationError(
            "CUDA was requested but PyTorch sees no NVIDIA GPU (or was installed without CUDA support). "
            "Use --device auto or cpu."
        )
    if kind == "mps" and not mps:
        raise ConfigurationError("Apple MPS was requested but is not available. Use --device auto or cpu.")
    return requested


def choose_profile(quant: str | None, device: str, *, bf16_supported: bool) -> str:
    """The precision profile to load with: the user's choice, checked, or a sensible default per device.

    Defaults: bf16 on a CUDA GPU that has it (else fp16), fp16 on Apple MPS, fp32 on the CPU.

    Raises:
        ConfigurationError: an unknown profile, or one the device cannot run, naming the alternative.
    """
    kind = device.split(":", 1)[0]
    if quant is None:
        if kind == "cuda":
            return "bf16" if bf16_supported else "fp16"
        return "fp16" if kind == "mps" else "fp32"
    profile = quant.lower()
    if profile not in PROFILES:
        raise ConfigurationError(
            f"Unknown precision '{quant}' for the transformers engine. Choose one of: {', '.join(PROFILES)}."
        )
    if profile in BITSANDBYTES_PROFILES and kind == "mps":
        raise ConfigurationError(
            f"bitsandbytes {profile} does not run on Apple MPS: use --quant fp16, or the gguf engine "
            "(Metal) with a quantized model."
        )
    if profile == "bf16" and kind == "cuda" and not bf16_supported:
        raise ConfigurationError("This GPU has no bfloat16 support: use --quant fp16 (nf4 for less memory).")
    return profile


def processor_size(pixel_areas: Sequence[int]) -> dict[str, int]:
    """The processor's size limits for images that are already prepared: exactly their own areas, so it
    neither upscales a small image nor shrinks a big one (sides are multiples of 32 already)."""
    return {"shortest_edge": min(pixel_areas), "longest_edge": max(pixel_areas)}


def resolve_model_dir(model: str) -> Path:
    """A local model folder, or the cached snapshot of a Hugging Face repo id; never downloads.

    Raises:
        ModelFileError: nothing there, not downloaded yet, not Qwen3-VL, or no safetensors weights.
    """
    if not model:
        raise ModelFileError("No model given for the transformers engine: pass --model FOLDER or a repo id.")
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelFileError(
                f"{path} is a file; the transformers engine needs a model folder (config.json, "
                "*.safetensors, tokenizer and processor files)."
            )
    elif model.count("/") == 1 and not model.startswith((".", "/", "~")):
        path = _cached_snapshot(model)
    else:
        raise ModelFileError(f"The model folder {path} does not exist.")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ModelFileError(f"{path} is not a Hugging Face model folder: config.json is missing.")
    try:
        model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"Cannot read {config_file}: {exc}") from None
    if model_type not in QWEN3_VL_TYPES:
        raise ModelFileError(
            f"{path} holds a '{model_type}' model; Captioneer runs Qwen3-VL models (model_type qwen3_vl)."
        )
    if not any(path.glob("*.safetensors")):
        if any(path.glob("*.bin")) or any(path.glob("*.pt")):
            raise ModelFileError(
                f"{path} has only PyTorch pickle weights (.bin); Captioneer loads safetensors only, because "
                "pickle files can run code. Download the safetensors version of the model."
            )
        raise ModelFileError(f"{path} has no *.safetensors weights (incomplete download?).")
    return path


def chat_messages(request: GenerationRequest) -> list[dict[str, Any]]:
    """The chat for one request: the system prompt (with a JSON-only instruction and the schema for
    structured requests), then the images and the prompt as the user's turn."""
    system = request.system
    if request.json_schema is not None:
        hint = JSON_HINT.format(schema=json.dumps(request.json_schema, ensure_ascii=False))
        system = f"{system}\n\n{hint}" if system else hint
    content: list[dict[str, Any]] = [{"type": "image"} for _ in request.images]
    content.append({"type": "text", "text": request.prompt})
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": content})
    return messages


def _cached_snapshot(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except LocalEntryNotFoundError:
        raise ModelFileError(
            f"{repo_id} is not downloaded yet. Download it first (Captioneer's model download, or "
            f"`hf download {repo_id}`); the transformers engine itself never goes online."
        ) from None


def _probe_bitsandbytes(profile: str, device: str) -> None:
    """Run one tiny quantized layer on ``device``: some bitsandbytes builds lack a mode on some platforms,
    and that must be a clear message before minutes of loading, not a stack trace halfway through."""
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigurationError(
            f"The {profile} profile needs bitsandbytes: pip install bitsandbytes — "
            f"or {_ALTERNATIVES[profile]}."
        )
    # On import, bitsandbytes warns that an optional CPU kernel from the Hugging Face Hub is missing;
    # Captioneer never downloads code, so for users that warning is noise.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    import bitsandbytes as bnb
    import torch

    try:
        if profile == "nf4":
            layer = bnb.nn.Linear4bit(64, 64, bias=False, compute_dtype=torch.bfloat16, quant_type="nf4",
                                      compress_statistics=True)
            layer = layer.to(device)
            layer(torch.ones(1, 64, dtype=torch.bfloat16, device=device))
        else:
            layer = bnb.nn.Linear8bitLt(64, 64, bias=False, has_fp16_weights=False, threshold=6.0)
            layer = layer.to(device)
            layer(torch.ones(1, 64, dtype=torch.float16, device=device))
    except (RuntimeError, NotImplementedError, AttributeError, TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"The installed bitsandbytes {bnb.__version__} cannot run {profile} on {device} ({exc}). "
            f"{_ALTERNATIVES[profile].capitalize()}."
        ) from None


def _dtype_for(profile: str) -> torch.dtype:
    """The dtype of the weights that stay unquantized (and of the activations)."""
    import torch

    # LLM.int8 works in half precision: it would cast float32 inputs to float16 anyway.
    return {
        "bf16": torch.bfloat16, "nf4": torch.bfloat16, "fp16": torch.float16, "int8": torch.float16,
        "fp32": torch.float32,
    }[profile]


def _quantization_config(profile: str) -> Any:
    if profile not in BITSANDBYTES_PROFILES:
        return None
    import torch
    from transformers import BitsAndBytesConfig

    if profile == "nf4":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
            llm_int8_skip_modules=SKIP_QUANTIZATION,
        )
    return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=SKIP_QUANTIZATION)


def choose_attention(device: str, profile: str, *, wanted: bool, flash_installed: bool) -> str:
    """Flash attention where it is wanted, installed and can run (CUDA, half precision); SDPA elsewhere."""
    if wanted and flash_installed and device.startswith("cuda") and profile != "fp32":
        return "flash_attention_2"
    return "sdpa"


def _is_out_of_memory(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


class _ComputeThread:
    """One long-lived thread that runs all of a backend's torch work: loading, preprocessing, generation.

    PyTorch's CPU kernels run on OpenMP, and every thread that starts parallel work gets a team of its own
    threads. Once a process holds more OpenMP threads than CPUs, libgomp stops letting idle team threads
    spin between parallel regions, and decoding on a CPU lost 17 % (5.9 → 4.9 tok/s, 2B bf16 on 2 cores,
    bench/README.md) as soon as generation ran on a fresh thread per request next to a team made while
    loading. Keeping every torch call on this one thread keeps one team. The thread is a daemon, so an
    interrupted load never holds up the interpreter's exit, and it ends when the model is unloaded (its
    team with it), so backends loaded one after another in a process never pile up teams.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def submit(self, job: Callable[[], Any]) -> Future[Any]:
        """Run ``job`` on the compute thread; its result or exception arrives through the future."""
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="transformers-compute", daemon=True)
                self._thread.start()
        future: Future[Any] = Future()
        self._jobs.put((job, future))
        return future

    def run(self, job: Callable[[], Any]) -> Any:
        """Run ``job`` on the compute thread and wait for it."""
        if threading.current_thread() is self._thread:
            return job()
        return self.submit(job).result()

    def stop(self) -> None:
        """End the thread after the work already queued and wait for it (a thread still tearing down its
        OpenMP team when the interpreter exits can abort the process); a later ``submit`` starts a fresh
        one."""
        with self._start_lock:
            thread, self._thread = self._thread, None
            if thread is None:
                return
            self._jobs.put(None)
        if thread is not threading.current_thread():
            thread.join()

    def _serve(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            job, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(job())
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread, which re-raises it
                future.set_exception(exc)


class _CancelCriterion:
    """A stopping criterion that ends generation between tokens when the user cancels (or the consumer
    of the stream goes away)."""

    def __init__(self, cancel: CancelToken, stop: threading.Event) -> None:
        self.cancel = cancel
        self.stop = stop

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        import torch

        done = self.cancel.cancelled or self.stop.is_set()
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


class _PresencePenalty:
    """OpenAI-style presence penalty: subtract ``penalty`` from every token already generated once."""

    def __init__(self, penalty: float, prompt_length: int) -> None:
        self.penalty = penalty
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        import torch

        generated = input_ids[:, self.prompt_length:]
        if generated.shape[1] == 0:
            return scores
        seen = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device).scatter_(1, generated, True)
        return scores - self.penalty * seen.to(scores.dtype)


class TransformersBackend(Backend):
    """Qwen3-VL in this process with Hugging Face Transformers.

    Loads safetensors only with ``trust_remote_code`` off, uses SDPA attention (flash attention when
    installed), gives the processor each prepared image's exact size, streams through a text streamer while
    one compute thread does all torch work, cancels between tokens and batches many images with left
    padding.
    """

    name: ClassVar[str] = "transformers"
    capabilities: ClassVar[Capabilities] = Capabilities(
        vision=True, streaming=True, json_schema=False, batching=True, in_process=True, quantizations=PROFILES
    )

    class Options(LocalOptions):
        """The transformers engine's options (and the :class:`LocalOptions`).

        Attributes:
            quant: precision/quantization profile: bf16, fp16, fp32, nf4, int8; default: the best the
                device runs.
            batch_size: images answered together in one batch.
        """

        quant: str | None = None
        batch_size: int = Field(default=DEFAULT_BATCH_SIZE, ge=1, strict=True)

    options: Options

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        self._model: Any = None
        self._processor: Any = None
        self._device: str | None = None
        self._profile: str | None = None
        self._model_dir: Path | None = None
        self._attention: str | None = None
        self._batch_size = self.options.batch_size
        self._last_image_tokens: list[int] = []
        self._lock = threading.Lock()
        self._compute = _ComputeThread()

    # -- loading -------------------------------------------------------------------------------------

    def load(self, progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> None:
        if self._model is not None:
            return
        cancel = token_or_new(cancel)

        def report(fraction: float, message: str) -> None:
            cancel.raise_if_cancelled()
            if progress is not None:
                progress(fraction, message)

        report(0.0, "Checking the model folder")
        model_dir = resolve_model_dir(self.config.model)
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # progress goes through ``progress``, not tqdm on stderr

        mps = getattr(torch.backends, "mps", None)
        device = choose_device(
            self.options.device, cuda=torch.cuda.is_available(), mps=bool(mps and mps.is_available())
        )
        bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported()
        profile = choose_profile(self.options.quant, device, bf16_supported=bf16)
        if profile in BITSANDBYTES_PROFILES:
            report(0.05, f"Checking bitsandbytes {profile} on {device}")
            self._compute.run(lambda: _probe_bitsandbytes(profile, device))
        if self.options.threads:
            self._compute.run(lambda: torch.set_num_threads(self.options.threads))
        attention = choose_attention(
            device, profile, wanted=self.options.flash_attention,
            flash_installed=importlib.util.find_spec("flash_attn") is not None,
        )

        report(0.1, "Loading the processor")
        try:
            processor = AutoProcessor.from_pretrained(
                model_dir, trust_remote_code=False, local_files_only=True
            )
        except (OSError, ValueError) as exc:
            raise ModelFileError(f"Cannot load the processor/tokenizer from {model_dir}: {exc}") from None
        processor.tokenizer.padding_side = "left"

        report(0.2, f"Loading the weights ({profile} on {device})")
        try:
            model = self._compute.run(lambda: AutoModelForImageTextToText.from_pretrained(
                model_dir,
                dtype=_dtype_for(profile),
                device_map={"": device},
                quantization_config=_quantization_config(profile),
                attn_implementation=attention,
                use_safetensors=True,
                trust_remote_code=False,
                local_files_only=True,
            ))
        except (RuntimeError, torch.OutOfMemoryError) as exc:
            if _is_out_of_memory(exc):
                raise ResourceExhaustedError(
                    f"Not enough memory to load {model_dir.name} as {profile} on {device}. Pick a smaller "
                    "model or a smaller profile (nf4), or the gguf engine."
                ) from None
            raise ModelFileError(f"Cannot load the weights in {model_dir}: {exc}") from None
        except (OSError, ValueError) as exc:
            raise ModelFileError(f"Cannot load the weights in {model_dir}: {exc}") from None
        model.eval()
        if cancel.cancelled:
            del model
            self._free_memory(device)
            raise Cancelled()
        self._model, self._processor = model, processor
        self._device, self._profile, self._model_dir, self._attention = device, profile, model_dir, attention
        if progress is not None:
            progress(1.0, "Ready")  # loaded: a cancel arriving now is too late to undo it

    def unload(self) -> None:
        if self._model is None:
            return
        device = self._device or "cpu"
        self._model = None
        self._processor = None
        self._compute.stop()
        self._free_memory(device)

    @staticmethod
    def _free_memory(device: str) -> None:
        import torch

        gc.collect()
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        elif device == "mps":
            torch.mps.empty_cache()

    def info(self) -> BackendInfo:
        loaded = self._model is not None
        details: dict[str, Any] = {}
        memory = None
        if loaded:
            memory = int(self._model.get_memory_footprint())
            details = {
                "model_dir": str(self._model_dir),
                "dtype": str(self._model.dtype).removeprefix("torch."),
                "attention": self._attention,
                "batch_size": self._batch_size,
                "last_image_tokens": list(self._last_image_tokens),
            }
        return BackendInfo(
            engine=self.name,
            model=self.config.model,
            quant=self._profile or self.options.quant,
            device=self._device,
            loaded=loaded,
            memory_bytes=memory,
            details=details,
        )

    # -- generation ----------------------------------------------------------------------------------

    def _require_loaded(self) -> None:
        if self._model is None:
            raise GenerationError("The transformers engine is not loaded: call load() first.")

    def _inputs(self, requests: Sequence[GenerationRequest]) -> Any:
        """Tokenize a batch (left-padded) with every image at exactly its prepared size."""
        processor = self._processor
        texts = [
            processor.apply_chat_template(chat_messages(r), tokenize=False, add_generation_prompt=True)
            for r in requests
        ]
        images = [image.image for r in requests for image in r.images]
        kwargs: dict[str, Any] = {}
        if images:
            kwargs["images"] = images
            kwargs["size"] = processor_size([image.width * image.height for image in images])
        inputs = processor(text=texts, return_tensors="pt", padding=True, **kwargs)
        image_token_id = processor.image_token_id
        seen = [int((row == image_token_id).sum()) for row in inputs["input_ids"]]
        wanted = [r.image_tokens for r in requests]
        if seen != wanted:
            raise GenerationError(
                f"The processor re-sized the images: the model would see {seen} image tokens, "
                f"not {wanted}."
            )
        self._last_image_tokens = seen
        return inputs.to(self._device)

    def _generation_kwargs(
        self, options: SamplingOptions, prompt_length: int, cancel: CancelToken, stop: threading.Event
    ) -> dict[str, Any]:
        from transformers import LogitsProcessorList, StoppingCriteriaList

        kwargs: dict[str, Any] = {
            "max_new_tokens": options.max_new_tokens,
            "stopping_criteria": StoppingCriteriaList([_CancelCriterion(cancel, stop)]),
            "pad_token_id": self._processor.tokenizer.pad_token_id,
        }
        if options.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(
                do_sample=True, temperature=options.temperature, top_p=options.top_p,
                top_k=options.top_k or None,
            )
        if options.presence_penalty:
            kwargs["logits_processor"] = LogitsProcessorList(
                [_PresencePenalty(options.presence_penalty, prompt_length)]
            )
        return kwargs

    def _seed(self, options: SamplingOptions) -> None:
        if not options.greedy and options.seed is not None:
            import torch

            torch.manual_seed(options.seed)

    def _translate(self, exc: BaseException) -> CaptioneerError:
        """The one place where torch/transformers failures become errors for people."""
        if isinstance(exc, CaptioneerError):
            return exc
        if _is_out_of_memory(exc):
            self._free_memory(self._device or "cpu")
            return ResourceExhaustedError(
                f"The {self._device} ran out of memory for this request. Lower the image budget "
                "(--image-tokens) or use a smaller model or profile."
            )
        return GenerationError(f"Transformers failed while generating ({type(exc).__name__}: {exc}).")

    def generate(self, request: GenerationRequest, cancel: CancelToken | None = None) -> Iterator[str]:
        cancel = token_or_new(cancel)
        self._require_loaded()
        with self._lock:
            return (yield from self._stream(request, cancel))

    def _stream(self, request: GenerationRequest, cancel: CancelToken) -> Iterator[str]:
        from transformers import TextIteratorStreamer

        cancel.raise_if_cancelled()
        try:
            inputs = self._compute.run(lambda: self._inputs([request]))
        except (RuntimeError, ValueError) as exc:
            raise self._translate(exc) from None
        prompt_length = inputs["input_ids"].shape[1]
        stop = threading.Event()
        streamer = TextIteratorStreamer(
            self._processor.tokenizer, skip_prompt=True, skip_special_tokens=True
        )
        kwargs = self._generation_kwargs(request.options, prompt_length, cancel, stop)
        failure: list[BaseException] = []
        output: list[Any] = []

        def work() -> None:
            import torch

            try:
                with torch.inference_mode():
                    output.append(self._model.generate(**inputs, streamer=streamer, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - carried to the consuming thread and re-raised there
                failure.append(exc)
                streamer.end()

        self._seed(request.options)
        generation = self._compute.submit(work)
        try:
            for text in streamer:
                if text:
                    yield text
        finally:
            # A consumer that stops early (or an error) must not leave the compute thread generating.
            stop.set()
            generation.result()
        if failure:
            raise self._translate(failure[0]) from None
        cancel.raise_if_cancelled()
        generated = output[0][:, prompt_length:].tolist()
        return finish_reasons(generated, self._eos_ids(), request.options.max_new_tokens)[0]

    def _eos_ids(self) -> frozenset[int]:
        """The tokens that end an answer (the generation config's, and the tokenizer's)."""
        configured = self._model.generation_config.eos_token_id
        ids = set(configured if isinstance(configured, list) else [configured])
        ids.add(self._processor.tokenizer.eos_token_id)
        return frozenset(token for token in ids if token is not None)

    def generate_batch(
        self, requests: Sequence[GenerationRequest], cancel: CancelToken | None = None
    ) -> list[str]:
        """Answer many requests in left-padded batches of ``batch_size``; requests with different sampling
        options run in separate batches. Greedy results equal running the requests one by one."""
        cancel = token_or_new(cancel)
        self._require_loaded()
        results: list[str | None] = [None] * len(requests)
        groups: dict[SamplingOptions, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(request.options, []).append(index)
        with self._lock:
            for options, indexes in groups.items():
                for start in range(0, len(indexes), self._batch_size):
                    part = indexes[start:start + self._batch_size]
                    texts = self._run_batch([requests[i] for i in part], options, cancel)
                    for index, text in zip(part, texts, strict=True):
                        results[index] = text
        return [text for text in results if text is not None]

    def _run_batch(
        self, requests: Sequence[GenerationRequest], options: SamplingOptions, cancel: CancelToken
    ) -> list[str]:
        import torch

        cancel.raise_if_cancelled()

        def work() -> Any:
            inputs = self._inputs(requests)
            prompt_length = inputs["input_ids"].shape[1]
            kwargs = self._generation_kwargs(options, prompt_length, cancel, threading.Event())
            self._seed(options)
            with torch.inference_mode():
                return prompt_length, self._model.generate(**inputs, **kwargs)

        try:
            prompt_length, output = self._compute.run(work)
        except (RuntimeError, ValueError) as exc:
            raise self._translate(exc) from None
        cancel.raise_if_cancelled()
        generated = output[:, prompt_length:]
        texts = self._processor.batch_decode(generated, skip_special_tokens=True)
        reasons = finish_reasons(generated.tolist(), self._eos_ids(), options.max_new_tokens)
        return [Completion(text, reason) for text, reason in zip(texts, reasons, strict=True)]
