"""Hardware facts: what a machine has, each number labelled with where it came from.

Also the typical figures used where a number cannot be read, and machines described rather than probed.

Memory is in GB meaning GiB (2^30 bytes), the unit nvidia-smi, Activity Monitor and Task Manager show. This
machine is probed in :mod:`captioneer.backends.hardware_probes`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from captioneer.backends.registry import ENGINES

T = TypeVar("T")

GIB = 1024**3

CPU_GFLOPS_PER_CORE = 48.0
"""Effective GFLOP/s per physical core for llama.cpp's vision encoder and prefill. Measured on the 2-core
x86 (AVX2) development machine: 2B Q4_K_M, 972 image tokens in 83.5 s to the first token (models.md)."""

CPU_BANDWIDTH_GBS = 40.0
"""Assumed memory bandwidth of a PC without a known figure: dual-channel DDR4/DDR5 in a laptop or desktop
(DDR5-5600 is 89.6 GB/s peak; the development VM measured 22.6)."""

ASSUMED_CORES = 4
"""Physical cores assumed for hypothetical hardware when none is given."""

METAL_SHARE_SMALL = 2 / 3
METAL_SHARE_LARGE = 3 / 4
METAL_SHARE_THRESHOLD_GB = 36
"""Metal's recommended working set is about 2/3 of RAM up to 36 GB and about 3/4 above (M1 16 GB: 10.9 GB)."""

APPLE_GPU_EFFICIENCY = 0.5
"""Share of the Apple GPU's peak FP32 throughput llama.cpp's Metal prefill reaches (fits the measured
M4 Max: 2B Q4_K_M photo in 1.2–1.7 s)."""

APPLE_CHIPS: dict[str, tuple[float, float]] = {
    "M1": (68, 2.6),
    "M1 Pro": (200, 5.2),
    "M1 Max": (400, 10.4),
    "M1 Ultra": (800, 21.0),
    "M2": (100, 3.6),
    "M2 Pro": (200, 6.8),
    "M2 Max": (400, 13.6),
    "M2 Ultra": (800, 27.2),
    "M3": (100, 4.1),
    "M3 Pro": (150, 7.4),
    "M3 Max": (400, 16.4),
    "M3 Ultra": (819, 28.0),
    "M4": (120, 4.3),
    "M4 Pro": (273, 9.2),
    "M4 Max": (546, 18.4),
}
"""Apple chip → (memory bandwidth GB/s, GPU peak FP32 TFLOPS), Apple's published figures (top GPU bin)."""

APPLE_UNKNOWN_CHIP = (100.0, 3.6)
"""An Apple chip we have no figures for: assume an M2-class base chip."""

DISCRETE_GPU_CLASSES: tuple[tuple[float, float, float], ...] = (
    (4, 192, 8),
    (6, 256, 12),
    (8, 288, 20),
    (12, 400, 30),
    (16, 500, 45),
    (24, 950, 80),
    (float("inf"), 1500, 100),
)
"""Typical discrete GPU by memory size: (up to N GB, bandwidth GB/s, effective TFLOPS for llama.cpp prefill
and the vision encoder). E.g. 8 GB ≈ RTX 4060/4070 Laptop (measured ~1 s for a 2B Q4_K_M photo), 24 GB ≈
RTX 3090/4090. Used when the card's own numbers are not readable, and for hypothetical hardware."""

GPU_KINDS = ("nvidia", "apple", "amd", "none")


@dataclass(frozen=True)
class Fact(Generic[T]):
    """A probed value and where it came from (``value`` is None when a probe failed; ``source`` says why)."""

    value: T | None
    source: str

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "source": self.source}


@dataclass(frozen=True)
class GPU:
    """One accelerator.

    Attributes:
        vendor: ``nvidia``, ``apple`` or ``amd``.
        name: e.g. ``NVIDIA GeForce RTX 4070`` or ``Apple M2``.
        memory_gb: the card's VRAM, or the Mac's unified memory.
        usable_gb: what a model may use: the VRAM, or Metal's recommended working set on a Mac.
        bandwidth_gbs: memory bandwidth (decode speed is bound by it).
        tflops: effective throughput for the vision encoder and prefill (an estimate).
        free_gb: VRAM free right now, where readable.
    """

    vendor: str
    name: Fact[str]
    memory_gb: Fact[float]
    usable_gb: Fact[float]
    bandwidth_gbs: Fact[float]
    tflops: Fact[float]
    free_gb: Fact[float] = field(default_factory=lambda: Fact(None, "not readable"))

    def to_json(self) -> dict[str, Any]:
        return {
            "vendor": self.vendor,
            "name": self.name.to_json(),
            "memory_gb": self.memory_gb.to_json(),
            "usable_gb": self.usable_gb.to_json(),
            "free_gb": self.free_gb.to_json(),
            "bandwidth_gbs": self.bandwidth_gbs.to_json(),
            "tflops": self.tflops.to_json(),
        }


@dataclass(frozen=True)
class OllamaStatus:
    """Whether Ollama answers at ``host``, and its version."""

    host: str
    running: bool
    version: str | None
    source: str

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "running": self.running, "version": self.version, "source": self.source}


@dataclass(frozen=True)
class HardwareFacts:
    """What the machine has, as the recommendation needs it. Build with
    :func:`~captioneer.backends.hardware_probes.probe_hardware` (this machine) or
    :func:`hypothetical_hardware` (a machine described on the command line).

    Attributes:
        system: ``Linux``, ``Darwin``, ``Windows``.
        machine: CPU architecture, e.g. ``x86_64``, ``arm64``.
        gpus: accelerators found, largest first.
        ram_gb: system memory.
        cores: physical CPU cores.
        cpu_bandwidth_gbs: system memory bandwidth (CPU decoding speed).
        disk_free_gb: free space where models are stored.
        engines: engines whose libraries are installed.
        bitsandbytes: devices the installed bitsandbytes build has native code for (``cuda``, ``rocm``…).
        torch_cuda: the CUDA version torch was built with, if any.
        ollama: whether Ollama is running.
        gpu_notes: what the GPU probes tried and why they found nothing.
        hypothetical: described, not probed.
    """

    system: str
    machine: str
    gpus: tuple[GPU, ...]
    ram_gb: Fact[float]
    cores: Fact[int]
    cpu_bandwidth_gbs: Fact[float]
    disk_free_gb: Fact[float]
    engines: Fact[list[str]]
    bitsandbytes: Fact[list[str]]
    torch_cuda: Fact[str]
    ollama: OllamaStatus
    gpu_notes: tuple[str, ...] = ()
    hypothetical: bool = False

    @property
    def gpu(self) -> GPU | None:
        """The accelerator a model would run on: the one with the most usable memory."""
        return self.gpus[0] if self.gpus else None

    @property
    def gpu_kind(self) -> str:
        """``nvidia``, ``apple``, ``amd`` or ``none``."""
        return self.gpu.vendor if self.gpu else "none"

    def to_json(self) -> dict[str, Any]:
        return {
            "hypothetical": self.hypothetical,
            "system": self.system,
            "machine": self.machine,
            "gpu_kind": self.gpu_kind,
            "gpus": [gpu.to_json() for gpu in self.gpus],
            "gpu_notes": list(self.gpu_notes),
            "ram_gb": self.ram_gb.to_json(),
            "cores": self.cores.to_json(),
            "cpu_bandwidth_gbs": self.cpu_bandwidth_gbs.to_json(),
            "disk_free_gb": self.disk_free_gb.to_json(),
            "engines": self.engines.to_json(),
            "bitsandbytes": self.bitsandbytes.to_json(),
            "torch_cuda": self.torch_cuda.to_json(),
            "ollama": self.ollama.to_json(),
        }


# ---------------------------------------------------------------------------------------------------------
# Typical figures (pure)


def discrete_gpu_class(memory_gb: float) -> tuple[float, float]:
    """(bandwidth GB/s, effective TFLOPS) of a typical discrete GPU with ``memory_gb`` of VRAM."""
    for limit, bandwidth, tflops in DISCRETE_GPU_CLASSES:
        if memory_gb <= limit + 0.5:
            return bandwidth, tflops
    raise AssertionError("DISCRETE_GPU_CLASSES ends with an unbounded class")


def apple_chip_figures(chip: str) -> tuple[str | None, float, float]:
    """Match a chip name such as ``Apple M3 Max`` to :data:`APPLE_CHIPS`.

    Returns:
        ``(matched name or None, bandwidth GB/s, peak FP32 TFLOPS)``.
    """
    match = re.search(r"\b(M\d+)(?:\s+(Pro|Max|Ultra))?\b", chip, flags=re.IGNORECASE)
    if match:
        name = match.group(1).upper() + (f" {match.group(2).capitalize()}" if match.group(2) else "")
        if name in APPLE_CHIPS:
            bandwidth, tflops = APPLE_CHIPS[name]
            return name, bandwidth, tflops
    return None, *APPLE_UNKNOWN_CHIP


def metal_working_set_share(ram_gb: float) -> float:
    """Share of RAM Metal lets the GPU use when its own figure is not readable."""
    return METAL_SHARE_SMALL if ram_gb <= METAL_SHARE_THRESHOLD_GB else METAL_SHARE_LARGE


def apple_gpu(name: Fact[str], ram: Fact[float], working_set: Fact[float] | None, why_estimated: str) -> GPU:
    matched, bandwidth, tflops = apple_chip_figures(name.value or "")
    figures = f"Apple's figures for the {matched}" if matched else "unknown chip: assumed M2-class"
    if working_set is None:
        share = metal_working_set_share(ram.value or 0.0)
        fraction = "2/3" if share == METAL_SHARE_SMALL else "3/4"
        source = f"{fraction} of RAM, Metal's usual working set ({why_estimated})"
        working_set = Fact(round((ram.value or 0.0) * share, 2), source)
    return GPU(
        vendor="apple",
        name=name,
        memory_gb=ram,
        usable_gb=working_set,
        bandwidth_gbs=Fact(float(bandwidth), figures),
        tflops=Fact(round(tflops * APPLE_GPU_EFFICIENCY, 2), f"{figures} × {APPLE_GPU_EFFICIENCY}, estimate"),
    )


def discrete_gpu(vendor: str, name: Fact[str], memory: Fact[float], **known: Fact[float]) -> GPU:
    bandwidth, tflops = discrete_gpu_class(memory.value or 0.0)
    typical = f"typical for a {memory.value:g} GB card (estimate)"
    return GPU(
        vendor=vendor,
        name=name,
        memory_gb=memory,
        usable_gb=Fact(memory.value, f"all of the VRAM ({memory.source})"),
        bandwidth_gbs=known.get("bandwidth_gbs") or Fact(float(bandwidth), typical),
        tflops=Fact(float(tflops), typical),
        free_gb=known.get("free_gb") or Fact(None, "not readable"),
    )


def hypothetical_hardware(
    gpu: str,
    *,
    vram_gb: float | None = None,
    ram_gb: float,
    cores: int | None = None,
    chip: str | None = None,
) -> HardwareFacts:
    """Describe a machine that is not this one, for "what would work on my other laptop?".

    Args:
        gpu: ``nvidia``, ``apple``, ``amd`` or ``none``.
        vram_gb: the card's memory (nvidia, amd); a Mac's GPU shares ``ram_gb``.
        ram_gb: system memory.
        cores: physical CPU cores (default :data:`ASSUMED_CORES`).
        chip: Apple chip name, e.g. ``M3 Max`` (sets bandwidth and compute).

    Raises:
        ValueError: a discrete GPU without ``vram_gb``, or an unknown ``gpu``.
    """
    given = "given"
    ram = Fact(float(ram_gb), given)
    gpus: tuple[GPU, ...] = ()
    bnb: Fact[list[str]] = Fact([], "hypothetical machine: bitsandbytes has no native build for this device")
    cpu_bandwidth = Fact(CPU_BANDWIDTH_GBS, "assumed: dual-channel DDR4/DDR5 (estimate)")
    if gpu in ("nvidia", "amd"):
        if not vram_gb:
            raise ValueError(f"A hypothetical {gpu} GPU needs its memory size (--vram-gb).")
        label = "NVIDIA GPU" if gpu == "nvidia" else "AMD GPU"
        gpus = (discrete_gpu(gpu, Fact(f"{label} with {vram_gb:g} GB", given), Fact(float(vram_gb), given)),)
        if gpu == "nvidia":
            bnb = Fact(["cuda"], "assumed: bitsandbytes' CUDA build on an NVIDIA machine")
    elif gpu == "apple":
        name = f"Apple {chip}" if chip and not chip.lower().startswith("apple") else (chip or "Apple Silicon")
        gpus = (apple_gpu(Fact(name, given), ram, None, "hypothetical machine"),)
        bandwidth = gpus[0].bandwidth_gbs
        cpu_bandwidth = Fact(bandwidth.value, bandwidth.source)
    elif gpu != "none":
        raise ValueError(f"Unknown GPU kind '{gpu}'. Choose one of: {', '.join(GPU_KINDS)}.")
    return HardwareFacts(
        system={"apple": "Darwin"}.get(gpu, "unknown"),
        machine={"apple": "arm64"}.get(gpu, "unknown"),
        gpus=gpus,
        ram_gb=ram,
        cores=Fact(cores, given) if cores else Fact(ASSUMED_CORES, "assumed (not given)"),
        cpu_bandwidth_gbs=cpu_bandwidth,
        disk_free_gb=Fact(None, "hypothetical machine"),
        engines=Fact(list(ENGINES), "hypothetical machine: all engines"),
        bitsandbytes=bnb,
        torch_cuda=Fact("hypothetical" if gpu == "nvidia" else None, "hypothetical machine"),
        ollama=OllamaStatus(host="", running=False, version=None, source="hypothetical machine"),
        hypothetical=True,
    )

