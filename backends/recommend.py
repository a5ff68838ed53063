"""The recommendation: a pure function from hardware facts to ranked model profiles, each with its reason.

Each profile carries a memory estimate that counts the image and a speed estimate
(:mod:`captioneer.backends.estimate`), and one sentence for people on why it ranks where it does. Given a clip
budget (a library with videos), each also carries the estimate for one clip, and profiles that fit photos but
not clips rank after those that fit both, saying so.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any

from captioneer.backends.catalog import Catalog, Variant, load_catalog
from captioneer.backends.estimate import (
    SAFETY_MARGIN,
    ClipBudget,
    ClipLoad,
    Device,
    MemoryEstimate,
    costs_of,
    estimate_clip_memory,
    estimate_clip_seconds,
    estimate_memory,
    estimate_seconds,
)
from captioneer.backends.hardware import (
    CPU_BANDWIDTH_GBS,
    CPU_GFLOPS_PER_CORE,
    HardwareFacts,
    discrete_gpu_class,
)

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

GPU_DEVICES = {"nvidia": "cuda", "apple": "metal", "amd": "amd"}


@dataclass(frozen=True)
class ClipFit:
    """A profile's estimate for one video clip at the clip budget (one request with all its frames)."""

    load: ClipLoad
    memory: MemoryEstimate
    seconds: float
    fits: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "video_tokens": self.load.budget,
            "frames": self.load.frames,
            "memory_gb": round(self.memory.total_gb, 2),
            "seconds_per_clip": round(self.seconds, 1),
            "fits": self.fits,
            "memory": self.memory.to_json(),
        }


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
        clip: the estimate for a video clip, when a clip budget was given.
    """

    variant: Variant
    device: Device
    image_tokens: int
    memory: MemoryEstimate
    seconds_per_photo: float
    fits: bool
    meets_target: bool
    reason: str = ""
    clip: ClipFit | None = None

    @property
    def clip_fits(self) -> bool:
        """Whether a clip fits too (True when no clip budget was given)."""
        return self.clip is None or self.clip.fits

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
            **({"clip": self.clip.to_json()} if self.clip is not None else {}),
        }


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
    """The variants worth estimating on ``device``, as each engine's costs say (:meth:`EngineCosts.runs_on`):
    GGUF and Ollama everywhere; transformers on CUDA (bf16, plus NF4/int8 where the installed bitsandbytes
    build supports CUDA) and on Metal (fp16), not on a CPU."""
    bnb = set(hardware.bitsandbytes.value or [])
    return [v for v in catalog.variants if costs_of(v.engine).runs_on(v, device.kind, bnb)]


def _evaluate(variant: Variant, device: Device, image_tokens: int) -> Profile:
    memory = estimate_memory(variant, image_tokens, device)
    seconds = estimate_seconds(variant, image_tokens, device)
    fits = memory.total_gb <= device.usable_gb
    meets = seconds <= TARGET_SECONDS[device.family] and image_tokens >= MIN_GOOD_IMAGE_TOKENS[device.family]
    return Profile(variant, device, image_tokens, memory, seconds, fits, meets)


def with_clip(profile: Profile, clips: ClipBudget) -> Profile:
    """``profile`` with its estimate for one clip at the clip budget, as its engine takes a clip."""
    load = clips.load_for(profile.variant)
    memory = estimate_clip_memory(profile.variant, load, profile.device)
    seconds = estimate_clip_seconds(profile.variant, load, profile.device)
    return replace(profile, clip=ClipFit(load, memory, seconds, memory.total_gb <= profile.device.usable_gb))


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
    """Sort key, best largest: fits; a clip fits too (when a clip budget is given); meets the target; not
    LLM.int8; then, for profiles that meet the target, quality (:func:`quality_rank`), engine preference and
    speed; for those that do not, speed first (when nothing is fast enough, the fastest is best)."""
    quality = quality_rank(profile)
    engine = costs_of(profile.engine).preference
    if profile.meets_target:
        rest: tuple = (quality, engine, -profile.seconds_per_photo)
    else:
        rest = (-profile.seconds_per_photo, quality, engine)
    return (profile.fits, profile.clip_fits, profile.meets_target, profile.quant != "int8", rest)


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
    if first.clip_fits and not profile.clip_fits:
        return "ranked after the profiles that fit video clips too"
    if not profile.meets_target and profile.seconds_per_photo > target:
        return f"slower than the {target:.0f} s per photo a first choice should reach"
    if not profile.meets_target:
        return "only fits with a reduced image budget, which loses fine detail"
    if quality_rank(profile)[0] < quality_rank(first)[0]:
        return "a smaller model than the first choice"
    if quality_rank(profile) < quality_rank(first):
        return "a coarser quantization or a smaller image budget than the first choice"
    engine_reason = costs_of(profile.engine).why_second(profile.device.kind)
    return engine_reason or "the same quality as the first choice, but slower"


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


def _clip_reason(profile: Profile) -> str:
    """What a clip costs on ``profile``, or why it does not fit (empty without a clip budget)."""
    clip = profile.clip
    if clip is None or not profile.fits:
        return ""
    m = clip.memory
    load = clip.load
    needs = (
        f"a {load.budget:,}-token clip needs ≈{_gb(m.total_gb)} ({m.kv_cache_gb:.1f} KV cache, "
        f"{m.vision_gb:.1f} vision encoder)"
    )
    if not clip.fits:
        return (
            f" It fits photos, but {needs}, more than the {_gb(profile.device.usable_gb)} "
            f"{profile.device.usable_label}: lower the clip budget or choose a profile that fits clips."
        )
    typical = f"{load.frames} frames of a {load.duration:.0f} s clip"
    return f" Videos: {needs}, ≈{clip.seconds:.0f} s per clip ({typical})."


def _with_reason(profile: Profile, first: Profile | None) -> Profile:
    return replace(profile, reason=_reason(profile, first) + _clip_reason(profile))


# ---------------------------------------------------------------------------------------------------------
# The recommendation


def recommend(
    hardware: HardwareFacts,
    *,
    engines: Collection[str] | None = None,
    include_unfit: bool = False,
    catalog: Catalog | None = None,
    clips: ClipBudget | None = None,
) -> list[Profile]:
    """Rank the profiles that fit ``hardware``, best first. Pure: the same facts give the same answer.

    One profile per catalog variant, at the largest image budget that fits (on a CPU: and is fast enough).
    Profiles run on the accelerator; the CPU only when nothing fits the accelerator (or there is none).

    Args:
        hardware: probed (:func:`~captioneer.backends.hardware_probes.probe_hardware`) or described
            (:func:`~captioneer.backends.hardware.hypothetical_hardware`) facts.
        engines: consider only these engines (default: those the facts say are installed — every engine
            for a hypothetical machine).
        include_unfit: append the variants that fit nowhere, with why, after the ranked ones.
        catalog: the model catalog (default: the shipped one).
        clips: the clip budget of a library with videos: each profile gets its clip estimate
            (:attr:`Profile.clip`), and those that fit photos but not clips rank after the rest.

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
        if clips is not None:
            evaluated = [with_clip(profile, clips) for profile in evaluated]
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
