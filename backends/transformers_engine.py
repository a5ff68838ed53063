"""The transformers engine: Qwen3-VL with Hugging Face Transformers, bf16/fp16/fp32 or bitsandbytes NF4/int8.

torch, transformers and bitsandbytes are imported inside the methods that need them, so reading this module's
capabilities (the engine host does, in the GUI process) costs nothing.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import threading
from collections.abc import Callable, Iterator, Sequence
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
from captioneer.backends.compute_thread import ComputeThread
from captioneer.backends.errors import (
    Cancelled,
    CaptioneerError,
    GenerationError,
    ModelFileError,
    ResourceExhaustedError,
    setting,
)
from captioneer.backends.request import GenerationRequest, SamplingOptions
from captioneer.backends.transformers_cancel import CancelCriterion, watch_layers
from captioneer.backends.transformers_loading import (
    BITSANDBYTES_PROFILES,
    PROFILES,
    choose_attention,
    choose_device,
    choose_profile,
    dtype_for,
    probe_bitsandbytes,
    quantization_config,
    resolve_model_dir,
)
from captioneer.backends.transformers_video import video_input

if TYPE_CHECKING:
    import torch


DEFAULT_BATCH_SIZE = 8

JSON_HINT = (
    "Reply with one JSON object only: no Markdown fences and no text before or after it. "
    "It must satisfy this JSON schema: {schema}"
)


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


def processor_size(pixel_areas: Sequence[int]) -> dict[str, int]:
    """The processor's size limits for images that are already prepared: exactly their own areas, so it
    neither upscales a small image nor shrinks a big one (sides are multiples of 32 already)."""
    return {"shortest_edge": min(pixel_areas), "longest_edge": max(pixel_areas)}


def chat_messages(request: GenerationRequest) -> list[dict[str, Any]]:
    """The chat for one request: the system prompt (with a JSON-only instruction and the schema for
    structured requests), then the images (or the clip) and the prompt as the user's turn."""
    system = request.system
    if request.json_schema is not None:
        hint = JSON_HINT.format(schema=json.dumps(request.json_schema, ensure_ascii=False))
        system = f"{system}\n\n{hint}" if system else hint
    content: list[dict[str, Any]] = [{"type": "image"} for _ in request.images]
    if request.video is not None:
        content.append({"type": "video"})
    content.append({"type": "text", "text": request.prompt})
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": content})
    return messages


def _is_out_of_memory(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


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
        vision=True, streaming=True, json_schema=False, batching=True, in_process=True,
        quantizations=PROFILES, video_input=True,
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
        self._compute = ComputeThread()
        self._stop_check: Callable[[], bool] | None = None  # the running request's "stop now?"

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
            self._compute.run(lambda: probe_bitsandbytes(profile, device))
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
                dtype=dtype_for(profile),
                device_map={"": device},
                quantization_config=quantization_config(profile),
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
        watch_layers(model, self._stopping)
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

    def _stopping(self) -> bool:
        check = self._stop_check
        return check is not None and check()

    def _require_loaded(self) -> None:
        if self._model is None:
            raise GenerationError("The transformers engine is not loaded: call load() first.")

    def _inputs(self, requests: Sequence[GenerationRequest]) -> Any:
        """Tokenize a batch (left-padded) with every image at exactly its prepared size, and every clip as
        true video input at its frames' size and times (the plan sampled and sized them already)."""
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
        clips = [video_input(r.video) for r in requests if r.video is not None]
        if clips:
            kwargs["videos"] = [pixels for pixels, _ in clips]
            kwargs["videos_kwargs"] = {
                "video_metadata": [metadata for _, metadata in clips],
                "do_sample_frames": False,
                "do_resize": False,
                # Caps only a resize, which never happens here; saying so keeps its warning off stderr.
                "cap_pixels_per_frame": True,
            }
        inputs = processor(text=texts, return_tensors="pt", padding=True, **kwargs)
        visual = (processor.image_token_id, processor.video_token_id)
        seen = [sum(int((row == token).sum()) for token in visual) for row in inputs["input_ids"]]
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
            "stopping_criteria": StoppingCriteriaList([CancelCriterion(cancel, stop)]),
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
                "(" + setting("image_tokens") + ") or use a smaller model or profile."
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

            self._stop_check = lambda: cancel.cancelled or stop.is_set()
            try:
                with torch.inference_mode():
                    output.append(self._model.generate(**inputs, streamer=streamer, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - carried to the consuming thread and re-raised there
                failure.append(exc)
                streamer.end()
            finally:
                self._stop_check = None

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
            self._stop_check = lambda: cancel.cancelled
            try:
                with torch.inference_mode():
                    return prompt_length, self._model.generate(**inputs, **kwargs)
            finally:
                self._stop_check = None

        try:
            prompt_length, output = self._compute.run(work)
        except (RuntimeError, ValueError) as exc:
            raise self._translate(exc) from None
        cancel.raise_if_cancelled()
        generated = output[:, prompt_length:]
        texts = self._processor.batch_decode(generated, skip_special_tokens=True)
        reasons = finish_reasons(generated.tolist(), self._eos_ids(), options.max_new_tokens)
        return [Completion(text, reason) for text, reason in zip(texts, reasons, strict=True)]
