"""The quantization recommendation: a pure function from hardware facts to ranked model profiles, each with a
memory estimate that counts the image, a speed estimate and a one-sentence reason.

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
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from captioneer.backends.catalog import Catalog, Variant, load_catalog
from captioneer.backends.gguf import context_size as gguf_context_size
from captioneer.backends.hardware import (
    CPU_BANDWIDTH_GBS,
    CPU_GFLOPS_PER_CORE,
    GIB,
    HardwareFacts,
    discrete_gpu_class,
)
from captioneer.backends.ollama_engine import MIN_CONTEXT as OLLAMA_MIN_CONTEXT
from captioneer.backends.ollama_engine import PROMPT_ALLOWANCE as OLLAMA_PROMPT_ALLOWANCE

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

OS_RESERVE_GB = 4.0
OS_RESERVE_SHARE = 0.25
"""Memory left to the OS, the app's window and a browser when a model runs in system RAM (CPU, and the
Metal working set on a Mac): the larger of 4 GB and a quarter of RAM."""

GPU_IMAGE_TOKENS = (1024, 512, 256)
CPU_IMAGE_TOKENS = (512, 256)
"""Image budgets tried, largest first. 1,024 is the app's default; on a CPU the image is the cost."""

MIN_GOOD_IMAGE_TOKENS = {"gpu": 512, "cpu": 256}
"""Below this budget a profile counts as reduced and ranks after those at or above it."""

FULL_DETAIL_TOKENS = 512
"""From this budget on (≈ 720×720 pixels) an image keeps the detail captions need; below, detail counts
before the quantization in :func:`quality_rank`."""

TARGET_SECONDS = {"gpu": 15.0, "cpu": 20.0}
"""Seconds per photo a first choice should meet: on a CPU, a 1,000-photo album in under six hours."""

SIZE_RANK = {"2B": 0, "4B": 1, "8B": 2}
QUANT_TIER = {"Q4_K_M": 1, "nf4": 1, "Q8_0": 2, "int8": 2, "F16": 2, "bf16": 2, "fp16": 2, "fp32": 2}
"""Quality of (size, quantization), best last. 8-bit is practically lossless, so Q8_0 and 16-bit tie and
the faster Q8_0 wins; a bigger model beats a finer quantization of a smaller one."""

ENGINE_PREFERENCE = {"gguf": 2, "ollama": 1, "transformers": 0}
"""At equal quality: the embedded llama.cpp first (no server, Metal on a Mac, faster than HF generate)."""

GPU_DEVICES = {"nvidia": "cuda", "apple": "metal", "amd": "amd"}


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


@dataclass(frozen=True)
class Profile:
    """One ranked recommendation: a catalog variant at an image budget on a device.

    Attributes:
        variant: what to download and run (``variant.id`` is what ``captioneer models pull`` takes).
        device: where it runs.
        image_tokens: the pixel budget in visual tokens.
        memory: the estimate.
        seconds_per_photo: estimated time for one photo (prompt + image + a short answer).
        fits: whether ``memory.total_gb`` fits ``device.usable_gb``.
        meets_target: fast enough and a large enough image budget to be a first choice.
        reason: one sentence for people.
    """

    variant: Variant
    device: Device
    image_tokens: int
    memory: MemoryEstimate
    seconds_per_photo: float
    fits: bool
    meets_target: bool
    reason: str = ""

    @property
    def model(self) -> str:
        return self.variant.model.id

    @property
    def engine(self) -> str:
        return self.variant.engine

    @property
    def quant(self) -> str:
        return self.variant.quant

    @property
    def memory_gb(self) -> float:
        return self.memory.total_gb

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "engine": self.engine,
            "quant": self.quant,
            "image_tokens": self.image_tokens,
            "memory_gb": round(self.memory_gb, 2),
            "seconds_per_photo": round(self.seconds_per_photo, 1),
            "reason": self.reason,
            "fits": self.fits,
            "meets_target": self.meets_target,
            "profile": self.variant.id,
            "ollama_tag": self.variant.tag,
            "device": self.device.kind,
            "usable_gb": round(self.device.usable_gb, 2),
            "memory": self.memory.to_json(),
        }


# ---------------------------------------------------------------------------------------------------------
# Estimates


def context_tokens(variant: Variant, image_tokens: int) -> int:
    """Context the engine allocates KV cache for at this image budget."""
    if variant.engine == "ollama":
        return max(OLLAMA_MIN_CONTEXT, image_tokens + OLLAMA_PROMPT_ALLOWANCE)
    if variant.engine == "gguf":
        return gguf_context_size(image_tokens)
    return image_tokens + CONTEXT_ALLOWANCE


def uses_flash_attention(variant: Variant, device: Device) -> bool:
    """Whether the vision encoder avoids materialising its attention scores. llama.cpp has flash attention on
    every backend (the gguf engine turns it on); transformers' SDPA fuses it on CUDA and on a CPU (measured:
    2B bf16 at 494 tokens peaked at 5.0 GiB, where the scores would add 1.0) but may not on MPS; Ollama
    decides for itself, so assume off (its vision graph is the failure users report)."""
    if variant.engine == "gguf":
        return True
    if variant.engine == "transformers":
        return device.kind in ("cuda", "cpu")
    return False


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
    if device.family == "cpu" and variant.engine in ("gguf", "ollama"):
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
    if device.family == "cpu" and variant.engine == "transformers" and variant.quant != CHECKPOINT_DTYPE:
        return variant.download_gb
    return 0.0


def estimate_memory(variant: Variant, image_tokens: int, device: Device) -> MemoryEstimate:
    """Weights (with llama.cpp's CPU copy, or transformers' mapped checkpoint on a CPU) + KV cache +
    vision-encoder activations at ``image_tokens`` + runtime, in GiB."""
    flash = uses_flash_attention(variant, device)
    extra_gb = weight_copy_gb(variant, device) + mapped_checkpoint_gb(variant, device)
    torch_gb = TORCH_RUNTIME_GB if variant.engine == "transformers" and device.family == "cpu" else 0.0
    return MemoryEstimate(
        weights_gb=(variant.weights_gb + extra_gb) * 1e9 / GIB,
        kv_cache_gb=context_tokens(variant, image_tokens) * variant.model.kv_bytes_per_token / GIB,
        vision_gb=vision_activation_bytes(variant, image_tokens, flash) / GIB,
        runtime_gb=RUNTIME_GB[device.family] + torch_gb,
    )


def estimate_seconds(variant: Variant, image_tokens: int, device: Device) -> float:
    """Seconds for one photo: vision encoder and prefill (compute) + decoding (bandwidth) + overhead."""
    spec = variant.model
    patches = PATCHES_PER_TOKEN * image_tokens
    attention = 4 * patches**2 * spec.vision_hidden * spec.vision_depth
    if not uses_flash_attention(variant, device):
        attention *= NO_FLASH_ATTENTION_SLOWDOWN
    flops = (
        2 * spec.llm_params_b * 1e9 * (image_tokens + PROMPT_TOKENS)
        + 2 * spec.vision_params_b * 1e9 * patches
        + attention
    )
    compute_s = flops / (device.tflops * 1e12)
    tokens_per_s = device.bandwidth_gbs * DECODE_EFFICIENCY / variant.decode_gb
    if variant.engine == "transformers":
        tokens_per_s = min(tokens_per_s, TRANSFORMERS_DECODE_CAP) * TRANSFORMERS_SPEED[variant.quant]
    return compute_s + OUTPUT_TOKENS / tokens_per_s + PER_PHOTO_OVERHEAD_S


# ---------------------------------------------------------------------------------------------------------
# Devices and candidates


def os_reserve_gb(ram_gb: float) -> float:
    return max(OS_RESERVE_GB, OS_RESERVE_SHARE * ram_gb)


def devices_for(hardware: HardwareFacts) -> tuple[Device | None, Device]:
    """The accelerator (if any) and the CPU, with what a model may use on each."""
    ram = hardware.ram_gb.value or 0.0
    ram_left = max(ram - os_reserve_gb(ram), 0.0)
    cores = hardware.cores.value or 1
    left_label = f"of RAM left after {os_reserve_gb(ram):.1f} GB for the system"
    cpu = Device(
        kind="cpu",
        usable_gb=ram_left,
        usable_label=left_label,
        bandwidth_gbs=hardware.cpu_bandwidth_gbs.value or CPU_BANDWIDTH_GBS,
        tflops=cores * CPU_GFLOPS_PER_CORE / 1000,
    )
    gpu = hardware.gpu
    if gpu is None or not gpu.usable_gb.value:
        return None, cpu
    usable, label = gpu.usable_gb.value, "of VRAM"
    if gpu.vendor == "apple":
        label = f"Metal working set ({gpu.usable_gb.source.split(',')[0]})"
        if ram_left < usable:
            usable, label = ram_left, left_label.replace("of RAM", "of unified memory")
    bandwidth, tflops = discrete_gpu_class(gpu.memory_gb.value or usable)
    accelerator = Device(
        kind=GPU_DEVICES[gpu.vendor],
        usable_gb=usable,
        usable_label=label,
        bandwidth_gbs=gpu.bandwidth_gbs.value or bandwidth,
        tflops=gpu.tflops.value or tflops,
    )
    return accelerator, cpu


def candidate_variants(catalog: Catalog, device: Device, hardware: HardwareFacts) -> list[Variant]:
    """The variants worth estimating on ``device``: GGUF and Ollama everywhere; transformers on CUDA (bf16,
    plus NF4/int8 where the installed bitsandbytes build supports CUDA) and on Metal (fp16). Transformers on a
    CPU is left out: it holds the mapped bf16 checkpoint beside any other precision (5–12.6 GiB for the 2B,
    against 2.5–4.7 for GGUF), and only bf16 on a CPU with bf16 matrix units (AMX) is fast (bench/README.md:
    14 s per photo there, fp32 30 s)."""
    bnb = set(hardware.bitsandbytes.value or [])
    wanted = []
    for variant in catalog.variants:
        if variant.engine in ("gguf", "ollama"):
            wanted.append(variant)
        elif variant.engine == "transformers":
            quantized = variant.quant in ("nf4", "int8")
            on_cuda = device.kind == "cuda" and (variant.quant == "bf16" or (quantized and "cuda" in bnb))
            on_metal = device.kind == "metal" and variant.quant == "fp16"
            if on_cuda or on_metal:
                wanted.append(variant)
    return wanted


def _evaluate(variant: Variant, device: Device, image_tokens: int) -> Profile:
    memory = estimate_memory(variant, image_tokens, device)
    seconds = estimate_seconds(variant, image_tokens, device)
    fits = memory.total_gb <= device.usable_gb
    meets = seconds <= TARGET_SECONDS[device.family] and image_tokens >= MIN_GOOD_IMAGE_TOKENS[device.family]
    return Profile(variant, device, image_tokens, memory, seconds, fits, meets)


def quality_rank(profile: Profile) -> tuple[int, bool, int, int]:
    """How good a profile's answers are, regardless of speed, best largest: model size; a full-detail image
    (at least FULL_DETAIL_TOKENS); quantization tier; image budget. A profile is "worse" than another when
    this is smaller."""
    return (
        SIZE_RANK[profile.variant.model.size_label],
        profile.image_tokens >= FULL_DETAIL_TOKENS,
        QUANT_TIER[profile.quant],
        profile.image_tokens,
    )


def rank_key(profile: Profile) -> tuple:
    """Sort key, best largest: fits; meets the target; not LLM.int8; then, for profiles that meet the
    target, quality (:func:`quality_rank`), engine preference and speed; for those that do not, speed first
    (when nothing is fast enough, the fastest is best)."""
    quality = quality_rank(profile)
    engine = ENGINE_PREFERENCE[profile.engine]
    if profile.meets_target:
        rest: tuple = (quality, engine, -profile.seconds_per_photo)
    else:
        rest = (-profile.seconds_per_photo, quality, engine)
    return (profile.fits, profile.meets_target, profile.quant != "int8", rest)


def _best_budget(variant: Variant, device: Device) -> Profile:
    budgets = CPU_IMAGE_TOKENS if device.family == "cpu" else GPU_IMAGE_TOKENS
    profiles = [_evaluate(variant, device, tokens) for tokens in budgets]
    if not any(profile.fits for profile in profiles):
        return min(profiles, key=lambda profile: profile.memory_gb)
    return max(profiles, key=rank_key)


# ---------------------------------------------------------------------------------------------------------
# Reasons


def _gb(value: float) -> str:
    return f"{value:.1f} GB"


def _why_lower(profile: Profile, first: Profile) -> str:
    target = TARGET_SECONDS[profile.device.family]
    if profile.quant == "int8":
        return "LLM.int8 runs 3–5× slower than bf16, so it is never the first choice"
    if not profile.meets_target and profile.seconds_per_photo > target:
        return f"slower than the {target:.0f} s per photo a first choice should reach"
    if not profile.meets_target:
        return "only fits with a reduced image budget, which loses fine detail"
    if quality_rank(profile)[0] < quality_rank(first)[0]:
        return "a smaller model than the first choice"
    if quality_rank(profile) < quality_rank(first):
        return "a coarser quantization or a smaller image budget than the first choice"
    if profile.engine == "ollama":
        return "needs a running Ollama, whose vision step is counted without flash attention"
    if profile.engine == "transformers" and profile.device.kind == "metal":
        return "transformers on Metal (MPS) is slower than GGUF on Metal"
    if profile.engine == "transformers":
        return "Hugging Face generate is slower than llama.cpp at the same quality"
    return "the same quality as the first choice, but slower"


def _reason(profile: Profile, first: Profile | None) -> str:
    m = profile.memory
    label = f"{profile.variant.model.size_label} {profile.quant} on {profile.engine} ({profile.device.kind})"
    needs = (
        f"{label} needs ≈{_gb(m.total_gb)} at {profile.image_tokens} image tokens "
        f"({m.weights_gb:.1f} weights + {m.kv_cache_gb:.1f} KV cache + {m.vision_gb:.1f} vision encoder + "
        f"{m.runtime_gb:.1f} runtime, +{(SAFETY_MARGIN - 1) * 100:.0f} %)"
    )
    room = f"{_gb(profile.device.usable_gb)} {profile.device.usable_label}"
    if not profile.fits:
        return f"{needs}, more than the {room}."
    speed = f"≈{profile.seconds_per_photo:.0f} s per photo"
    if first is None:
        if profile.meets_target:
            why = "the best quality that fits and is fast enough"
        else:
            why = "nothing reaches the speed target here, so the fastest profile that fits comes first"
    else:
        why = _why_lower(profile, first)
    return f"{needs} of the {room}, {speed}; {why}."


def _with_reason(profile: Profile, first: Profile | None) -> Profile:
    return Profile(
        profile.variant, profile.device, profile.image_tokens, profile.memory, profile.seconds_per_photo,
        profile.fits, profile.meets_target, _reason(profile, first),
    )


# ---------------------------------------------------------------------------------------------------------
# The recommendation


def recommend(
    hardware: HardwareFacts,
    *,
    engines: Collection[str] | None = None,
    include_unfit: bool = False,
    catalog: Catalog | None = None,
) -> list[Profile]:
    """Rank the profiles that fit ``hardware``, best first. Pure: the same facts give the same answer.

    One profile per catalog variant, at the largest image budget that fits (on a CPU: and is fast enough).
    Profiles run on the accelerator; the CPU only when nothing fits the accelerator (or there is none).

    Args:
        hardware: probed (:func:`~captioneer.backends.hardware.probe_hardware`) or described
            (:func:`~captioneer.backends.hardware.hypothetical_hardware`) facts.
        engines: consider only these engines (default: those the facts say are installed — every engine
            for a hypothetical machine).
        include_unfit: append the variants that fit nowhere, with why, after the ranked ones.
        catalog: the model catalog (default: the shipped one).

    Returns:
        Profiles sorted by :func:`rank_key`; those that fit first, each with its reason.
    """
    catalog = catalog or load_catalog()
    if engines is None:
        engines = hardware.engines.value
    accelerator, cpu = devices_for(hardware)
    chosen: list[Profile] = []
    unfit: list[Profile] = []
    for device in [d for d in (accelerator, cpu) if d is not None]:
        evaluated = [
            _best_budget(variant, device)
            for variant in candidate_variants(catalog, device, hardware)
            if variant.engine in engines
        ]
        chosen = sorted((p for p in evaluated if p.fits), key=rank_key, reverse=True)
        if device is accelerator or not unfit:
            unfit = sorted((p for p in evaluated if not p.fits), key=lambda p: p.memory_gb)
        if chosen:
            break
    first = chosen[0] if chosen else None
    ranked = [_with_reason(profile, None if index == 0 else first) for index, profile in enumerate(chosen)]
    if include_unfit:
        ranked.extend(_with_reason(profile, first) for profile in unfit)
    return ranked
