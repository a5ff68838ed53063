"""The memory and speed model: what one catalog variant needs on one device at an image budget.

The model's numbers come from the catalog; what differs between engines is declared once in
:data:`ENGINE_COSTS`.

Memory for one profile at an image budget of T visual tokens (GB = GiB):

    weights                       the catalog's file or in-memory size
  + KV cache                      context × 2 × layers × KV heads × head_dim × 2 bytes (f16)
  + vision-encoder activations    4·T patches × VISION_BYTES_PER_PATCH (scaled by the encoder's width),
                                  + NO_FLASH_SCORE_COPIES × heads × (4·T)² × 4 bytes without flash attention
  + weight copy                   llama.cpp on a CPU copies the weights for its repacked/AMX kernels;
                                  transformers on a CPU keeps the mapped bf16 checkpoint beside converted
                                  or quantized weights
  + runtime                       RUNTIME_GB: compute buffers, the CUDA/Metal context, the interpreter
                                  (+ TORCH_RUNTIME_GB for PyTorch on a CPU)
  × SAFETY_MARGIN

Seconds per photo: prefill and the vision encoder are compute bound (2 × parameters × tokens FLOPs, plus the
encoder's attention, which grows with patches²); decoding is bandwidth bound (bandwidth × DECODE_EFFICIENCY ÷
weights read per token). The constants come from /shared/reference/models.md, most from its "Measured here"
section (a real-size 2B on a 2-core CPU).

A video clip is ONE request whose visual tokens are the clip budget (a :class:`ClipLoad`): the context and its
KV cache are sized for the whole budget, and the prefill reads every frame's tokens. The vision encoder works
per token group: Qwen3-VL's patch embedding is a 3-D convolution two frames deep, so an image is encoded as a
pair of identical frames and true video input (transformers) puts two real frames in the same patches: a group
is a frame (frames as images) or a frame pair (true video), each costing its own tokens × 4 patches, its own
patches² attention. llama.cpp and Ollama encode a request's images one at a time, so their encoder memory is
one group's; transformers encodes all of a clip's groups in one pass, so its linear activations cover all of
them (its attention runs per group).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from captioneer.backends.catalog import Variant
from captioneer.backends.errors import ConfigurationError
from captioneer.backends.gguf import context_size as gguf_context_size
from captioneer.backends.hardware import GIB
from captioneer.backends.ollama_engine import MIN_CONTEXT as OLLAMA_MIN_CONTEXT
from captioneer.backends.ollama_engine import PROMPT_ALLOWANCE as OLLAMA_PROMPT_ALLOWANCE
from captioneer.backends.registry import engine_class

SAFETY_MARGIN = 1.10
"""Headroom on every estimate: allocator fragmentation, the desktop's share of a primary GPU, and error."""

RUNTIME_GB = {"gpu": 0.8, "cpu": 0.2}
"""Memory beyond weights (and their CPU copy), KV and the vision step. GPU: compute buffers (~0.5 GB) and the
CUDA/Metal context. CPU: the rest of the engine process, measured at 0.2 GiB of peak RSS beyond the files, KV
and vision (2B Q4_K_M, 234 tokens, bench/README.md)."""

TORCH_RUNTIME_GB = 0.35
"""PyTorch and transformers in a CPU engine process beyond RUNTIME_GB: importing them takes 0.55 GB of RSS
(measured), and the benchmark's transformers rows fit 0.2 + 0.35 (bench/README.md)."""

CHECKPOINT_DTYPE = "bf16"
"""The precision of the released transformers checkpoints; a profile in it uses the file's pages as its
weights, the others convert or quantize them into memory of their own."""

CONTEXT_ALLOWANCE = 1024
"""Context tokens beyond the image for the prompt and the answer with transformers (its cache grows with
use). The gguf engine and Ollama size their own contexts; the estimate uses their formulas."""

PATCHES_PER_TOKEN = 4
"""The vision encoder sees 16×16-pixel patches; 2×2 of them merge into one 32×32-pixel LLM token."""

VISION_BYTES_PER_PATCH = 100 * 1024
"""Vision-encoder scratch per patch with flash attention, for a 1,024-wide encoder (2B/4B; scaled for the
8B's 1,152). Measured: peak RSS 3.3 GB at 234 tokens and 3.6 GB at 972 tokens (2B Q4_K_M, flash on)."""

NO_FLASH_SCORE_COPIES = 4.5
"""Without flash attention the encoder materialises heads × patches² attention scores in f32, several times
over. Measured: flash off took 8.0 GB, not 3.6 GB, at 972 tokens (3,888 patches, 16 heads) = 4.5 copies."""

NO_FLASH_ATTENTION_SLOWDOWN = 3.6
"""Encoder attention costs this many times its FLOPs without flash attention (measured: 130.3 s instead of
89.6 s per photo on the 2-core CPU)."""

DECODE_EFFICIENCY = 0.55
"""Share of the bandwidth ceiling llama.cpp reaches when decoding (40–70 % published; 64 % measured here)."""

TRANSFORMERS_DECODE_CAP = 50.0
"""Tokens/s ceiling of Hugging Face ``generate`` at batch 1 (overhead bound: 45–60 tok/s published)."""

TRANSFORMERS_SPEED = {"bf16": 1.0, "fp16": 1.0, "fp32": 1.0, "nf4": 0.72, "int8": 0.25}
"""Decode speed relative to bf16: NF4 ~0.7–0.75×, LLM.int8 3–5× slower."""

PROMPT_TOKENS = 60
"""Text tokens of a typical task prompt with the chat template."""

OUTPUT_TOKENS = 64
"""Tokens of a typical caption or keyword answer."""

PER_PHOTO_OVERHEAD_S = 0.3
"""Image preparation and request handling per photo."""

FRAME_TIME_TOKENS = 8
"""Prompt tokens per token group of a clip for its time (``<3.5 seconds>``, or a frame's time line)."""

DEVICE_KINDS = frozenset({"cuda", "metal", "amd", "cpu"})
"""Where a profile can run (:attr:`Device.kind`)."""


def _ollama_context(image_tokens: int) -> int:
    return max(OLLAMA_MIN_CONTEXT, image_tokens + OLLAMA_PROMPT_ALLOWANCE)


def _growing_context(image_tokens: int) -> int:
    return image_tokens + CONTEXT_ALLOWANCE


@dataclass(frozen=True)
class EngineCosts:
    """How an engine's runtime spends memory and time beyond the model's own numbers, and where it is worth
    estimating: the traits the estimates and the ranking read.

    Attributes:
        context_tokens: the context the engine allocates KV cache for at an image budget.
        flash_attention_on: the device kinds where its vision encoder avoids materialising the attention
            scores.
        copies_weights_on_cpu: llama.cpp runs the model: on a CPU it copies the weights into buffers of its
            own (:func:`weight_copy_gb`).
        maps_checkpoint_on_cpu: PyTorch loads the bf16 checkpoint through a memory mapping that stays resident
            beside other precisions on a CPU (:func:`mapped_checkpoint_gb`).
        cpu_runtime_gb: its libraries' memory in a CPU engine process beyond RUNTIME_GB.
        decode_cap: tokens/s its generate loop reaches at most at batch 1 (None: bandwidth bound only).
        decode_speed: decode speed per quantization, relative to the checkpoint's precision.
        precisions: device kind → the quantizations worth estimating there (None: every variant, everywhere).
        bitsandbytes_precisions: of those, the ones bitsandbytes makes while loading: only where its
            installed build has native code for the device.
        preference: at equal quality, the engine with the higher preference ranks first.
        second_choice: why a profile ranks after a first choice of the same quality, per device kind (``*``:
            on any other device).
        encodes_request_at_once: its vision encoder takes all of a request's images (a clip's frames) in one
            pass, so its activations cover all of them; otherwise one image at a time.
    """

    context_tokens: Callable[[int], int]
    flash_attention_on: frozenset[str]
    preference: int
    copies_weights_on_cpu: bool = False
    maps_checkpoint_on_cpu: bool = False
    cpu_runtime_gb: float = 0.0
    decode_cap: float | None = None
    decode_speed: Mapping[str, float] = field(default_factory=dict)
    precisions: Mapping[str, tuple[str, ...]] | None = None
    bitsandbytes_precisions: tuple[str, ...] = ()
    second_choice: Mapping[str, str] = field(default_factory=dict)
    encodes_request_at_once: bool = False

    def runs_on(self, variant: Variant, device_kind: str, bitsandbytes: set[str]) -> bool:
        """Whether ``variant`` is worth estimating on the device (``bitsandbytes``: the devices its build
        supports)."""
        if self.precisions is None:
            return True
        if variant.quant not in self.precisions.get(device_kind, ()):
            return False
        return variant.quant not in self.bitsandbytes_precisions or device_kind in bitsandbytes

    def why_second(self, device_kind: str) -> str | None:
        return self.second_choice.get(device_kind) or self.second_choice.get("*")


ENGINE_COSTS: dict[str, EngineCosts] = {
    # llama.cpp in-process: flash attention on every backend (the engine turns it on); the first choice at
    # equal quality (no server, Metal on a Mac, faster than HF generate).
    "gguf": EngineCosts(
        context_tokens=gguf_context_size,
        flash_attention_on=DEVICE_KINDS,
        preference=2,
        copies_weights_on_cpu=True,
    ),
    # llama.cpp inside Ollama, which decides on flash attention itself: assume off (its vision graph is the
    # failure users report).
    "ollama": EngineCosts(
        context_tokens=_ollama_context,
        flash_attention_on=frozenset(),
        preference=1,
        copies_weights_on_cpu=True,
        second_choice={"*": "needs a running Ollama, whose vision step is counted without flash attention"},
    ),
    # PyTorch: SDPA fuses the encoder's attention on CUDA and on a CPU (measured: 2B bf16 at 494 tokens peaked
    # at 5.0 GiB, where the scores would add 1.0) but may not on MPS. On a CPU it holds the mapped bf16
    # checkpoint beside any other precision (5–12.6 GiB for the 2B, against 2.5–4.7 for GGUF), and only bf16
    # with bf16 matrix units (AMX) is fast (bench/README.md: 14 s per photo there, fp32 30 s): not estimated.
    "transformers": EngineCosts(
        context_tokens=_growing_context,
        flash_attention_on=frozenset({"cuda", "cpu"}),
        preference=0,
        maps_checkpoint_on_cpu=True,
        cpu_runtime_gb=TORCH_RUNTIME_GB,
        decode_cap=TRANSFORMERS_DECODE_CAP,
        decode_speed=TRANSFORMERS_SPEED,
        precisions={"cuda": ("bf16", "nf4", "int8"), "metal": ("fp16",)},
        bitsandbytes_precisions=("nf4", "int8"),
        encodes_request_at_once=True,
        second_choice={
            "metal": "transformers on Metal (MPS) is slower than GGUF on Metal",
            "*": "Hugging Face generate is slower than llama.cpp at the same quality",
        },
    ),
}
"""The engines the catalog has variants for."""


def costs_of(engine: str) -> EngineCosts:
    """The cost traits of ``engine``.

    Raises:
        ConfigurationError: the catalog has a variant for an engine the estimates know nothing about.
    """
    try:
        return ENGINE_COSTS[engine]
    except KeyError:
        raise ConfigurationError(
            f"models.toml lists a {engine} variant, but the recommendation has no cost model for the "
            f"{engine} engine (it knows {', '.join(ENGINE_COSTS)}): add one to ENGINE_COSTS in "
            "backends/estimate.py."
        ) from None


@dataclass(frozen=True)
class MemoryEstimate:
    """What a profile needs, in GB (GiB), before and with the safety margin."""

    weights_gb: float
    kv_cache_gb: float
    vision_gb: float
    runtime_gb: float

    @property
    def subtotal_gb(self) -> float:
        return self.weights_gb + self.kv_cache_gb + self.vision_gb + self.runtime_gb

    @property
    def total_gb(self) -> float:
        return self.subtotal_gb * SAFETY_MARGIN

    def to_json(self) -> dict[str, float]:
        return {
            "weights_gb": round(self.weights_gb, 2),
            "kv_cache_gb": round(self.kv_cache_gb, 2),
            "vision_gb": round(self.vision_gb, 2),
            "runtime_gb": round(self.runtime_gb, 2),
            "safety_margin": SAFETY_MARGIN,
            "total_gb": round(self.total_gb, 2),
        }


@dataclass(frozen=True)
class Device:
    """Where a profile would run, with the numbers the estimates need."""

    kind: str
    """``cuda``, ``metal``, ``amd`` or ``cpu``."""
    usable_gb: float
    usable_label: str
    """What the usable memory is, for reasons: e.g. ``of VRAM``, ``Metal working set (2/3 of RAM)``."""
    bandwidth_gbs: float
    tflops: float

    @property
    def family(self) -> str:
        """``gpu`` or ``cpu``: which targets and image budgets apply."""
        return "cpu" if self.kind == "cpu" else "gpu"


def context_tokens(variant: Variant, image_tokens: int) -> int:
    """Context the engine allocates KV cache for at this image budget."""
    return costs_of(variant.engine).context_tokens(image_tokens)


def uses_flash_attention(variant: Variant, device: Device) -> bool:
    """Whether the vision encoder avoids materialising its attention scores."""
    return device.kind in costs_of(variant.engine).flash_attention_on


def vision_activation_bytes(variant: Variant, image_tokens: int, flash_attention: bool) -> float:
    """Vision-encoder scratch for one image at the budget: linear in patches with flash attention, plus the
    patches² attention scores without it."""
    spec = variant.model
    patches = PATCHES_PER_TOKEN * image_tokens
    linear = patches * VISION_BYTES_PER_PATCH * spec.vision_hidden / 1024
    if flash_attention:
        return linear
    return linear + NO_FLASH_SCORE_COPIES * spec.vision_heads * patches**2 * 4


def weight_copy_gb(variant: Variant, device: Device) -> float:
    """GB of the language model that llama.cpp (the gguf engine, Ollama) holds twice on a CPU.

    It copies the weights into buffers of its own for its repacked kernels (Q4_K on AVX2 and ARM, Q8_0 on
    ARM) and its AMX kernels (Q4_K, Q8_0, F16 on Xeons), while the mapped file stays resident. Counted for
    every quantization so the estimate never falls short; it is high by the file's size where no copy is
    made (Q8_0 and F16 on an x86 CPU without AMX). Measured with the benchmark's real-size 2B on an AMX CPU
    (bench/README.md): +1.04 GiB for Q4_K_M (file 1.03 GiB), +1.89 for Q8_0 (1.71), +3.20 for F16 (3.21).
    """
    if device.family == "cpu" and costs_of(variant.engine).copies_weights_on_cpu:
        return variant.decode_gb
    return 0.0


def mapped_checkpoint_gb(variant: Variant, device: Device) -> float:
    """GB of the bf16 checkpoint resident beside the weights of transformers on a CPU, at the peak.

    transformers reads the safetensors file through a memory mapping, and every page it reads counts in the
    process's memory while the mapping lives. A bf16 model's weights are those pages. fp32, fp16 and int8
    build converted copies beside them while loading, and the peak comes then (the mapping closes once every
    tensor is converted); NF4 keeps the vision tower and the embeddings as views of the file, so the mapping
    stays for the model's life. Measured with the benchmark's real-size 2B at 494 tokens (bench/README.md):
    peaks of 12.6 GiB (fp32), 8.7 (fp16), 7.9 (int8) and 7.1 (NF4) against 5.0 for bf16.
    """
    maps = costs_of(variant.engine).maps_checkpoint_on_cpu
    if device.family == "cpu" and maps and variant.quant != CHECKPOINT_DTYPE:
        return variant.download_gb
    return 0.0


@dataclass(frozen=True)
class ClipLoad:
    """A video clip as one request, as the estimates need it: the budget the context is sized for, the token
    groups of a typical clip (frames, or frame pairs with true video input) for its time, and the largest
    group any clip can get at this budget (a short clip: few, large frames) for the encoder's memory.

    Built from the app's sampling maths (``desktop/core/clip_costs.py``); ``backends`` cannot import it.
    """

    budget: int
    groups: int
    tokens_per_group: int
    largest_group_tokens: int
    frames: int
    """Frames the typical clip samples (twice ``groups`` with true video input)."""
    duration: float
    """The typical clip's length in seconds."""

    def __post_init__(self) -> None:
        numbers = (self.budget, self.groups, self.tokens_per_group, self.largest_group_tokens, self.frames)
        if min(numbers) < 1 or self.duration <= 0:
            raise ValueError(f"a clip load needs positive numbers: {self}")

    @property
    def visual_tokens(self) -> int:
        """The typical clip's visual tokens (at most the budget)."""
        return self.groups * self.tokens_per_group


@dataclass(frozen=True)
class ClipBudget:
    """A clip budget for either way an engine takes a clip (:attr:`Capabilities.video_input`)."""

    tokens: int
    as_video: ClipLoad
    """True video input: frame pairs share tokens."""
    as_frames: ClipLoad
    """Frames sent as separate images."""

    def load_for(self, variant: Variant) -> ClipLoad:
        """The load ``variant``'s engine gets from a clip."""
        video = engine_class(variant.engine).capabilities.video_input
        return self.as_video if video else self.as_frames


def _memory(variant: Variant, device: Device, visual_tokens: int, vision_bytes: float) -> MemoryEstimate:
    extra_gb = weight_copy_gb(variant, device) + mapped_checkpoint_gb(variant, device)
    libraries_gb = costs_of(variant.engine).cpu_runtime_gb if device.family == "cpu" else 0.0
    return MemoryEstimate(
        weights_gb=(variant.weights_gb + extra_gb) * 1e9 / GIB,
        kv_cache_gb=context_tokens(variant, visual_tokens) * variant.model.kv_bytes_per_token / GIB,
        vision_gb=vision_bytes / GIB,
        runtime_gb=RUNTIME_GB[device.family] + libraries_gb,
    )


def estimate_memory(variant: Variant, image_tokens: int, device: Device) -> MemoryEstimate:
    """Weights (with llama.cpp's CPU copy, or transformers' mapped checkpoint on a CPU) + KV cache +
    vision-encoder activations at ``image_tokens`` + runtime, in GiB."""
    flash = uses_flash_attention(variant, device)
    return _memory(variant, device, image_tokens, vision_activation_bytes(variant, image_tokens, flash))


def clip_vision_bytes(variant: Variant, clip: ClipLoad, device: Device) -> float:
    """Vision-encoder scratch for a clip at its worst: the largest groups a clip can get at the budget. One
    group at a time (llama.cpp, Ollama), or all of them in one pass (transformers): linear activations over
    the whole budget's patches, attention scores (without flash attention) for every group."""
    flash = uses_flash_attention(variant, device)
    largest = clip.largest_group_tokens
    if not costs_of(variant.engine).encodes_request_at_once:
        return vision_activation_bytes(variant, largest, flash)
    groups = max(1, clip.budget // largest)
    linear = vision_activation_bytes(variant, largest, True)
    scores = vision_activation_bytes(variant, largest, flash) - linear
    return vision_activation_bytes(variant, clip.budget, True) + groups * scores


def estimate_clip_memory(variant: Variant, clip: ClipLoad, device: Device) -> MemoryEstimate:
    """What tagging a clip needs: the photo's terms with the context sized for the clip budget and the vision
    encoder's scratch for its frames (:func:`clip_vision_bytes`)."""
    return _memory(variant, device, clip.budget, clip_vision_bytes(variant, clip, device))


def request_seconds(
    variant: Variant,
    device: Device,
    *,
    groups: int,
    tokens_per_group: int,
    prompt_tokens: int = PROMPT_TOKENS,
) -> float:
    """Seconds for one request showing ``groups`` images (or frame pairs) of ``tokens_per_group`` tokens:
    vision encoder and prefill (compute) + decoding (bandwidth) + overhead."""
    spec = variant.model
    costs = costs_of(variant.engine)
    patches = PATCHES_PER_TOKEN * tokens_per_group
    attention = groups * 4 * patches**2 * spec.vision_hidden * spec.vision_depth
    if not uses_flash_attention(variant, device):
        attention *= NO_FLASH_ATTENTION_SLOWDOWN
    flops = (
        2 * spec.llm_params_b * 1e9 * (groups * tokens_per_group + prompt_tokens)
        + 2 * spec.vision_params_b * 1e9 * groups * patches
        + attention
    )
    compute_s = flops / (device.tflops * 1e12)
    tokens_per_s = device.bandwidth_gbs * DECODE_EFFICIENCY / variant.decode_gb
    if costs.decode_cap is not None:
        tokens_per_s = min(tokens_per_s, costs.decode_cap)
    tokens_per_s *= costs.decode_speed.get(variant.quant, 1.0)
    return compute_s + OUTPUT_TOKENS / tokens_per_s + PER_PHOTO_OVERHEAD_S


def estimate_seconds(variant: Variant, image_tokens: int, device: Device) -> float:
    """Seconds for one photo: vision encoder and prefill (compute) + decoding (bandwidth) + overhead."""
    return request_seconds(variant, device, groups=1, tokens_per_group=image_tokens)


def estimate_clip_seconds(variant: Variant, clip: ClipLoad, device: Device) -> float:
    """Seconds for a typical clip: every token group through the encoder and the prefill, each group's time in
    the prompt. Decoding the clip's frames (PyAV) is not counted: milliseconds per frame beside the model."""
    return request_seconds(
        variant,
        device,
        groups=clip.groups,
        tokens_per_group=clip.tokens_per_group,
        prompt_tokens=PROMPT_TOKENS + clip.groups * FRAME_TIME_TOKENS,
    )
