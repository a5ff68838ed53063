"""Hardware detection: fail-soft probes for GPUs, memory, cores, disk, engines and Ollama, each number
labelled with where it came from.

Memory is in GB meaning GiB (2^30 bytes), the unit nvidia-smi, Activity Monitor and Task Manager show.
Nothing here imports torch: engines are found with ``importlib.util.find_spec`` and build details are read
from files.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from captioneer.backends.ollama_engine import resolve_host
from captioneer.backends.registry import installed_engines

T = TypeVar("T")

GIB = 1024**3

PROBE_TIMEOUT = 5.0
"""Seconds a probe command (nvidia-smi, sysctl) may take before it counts as failed."""

OLLAMA_PROBE_TIMEOUT = 0.5
"""Seconds to wait for Ollama's /api/version: a running local Ollama answers in milliseconds."""

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
    """What the machine has, as the recommendation needs it. Build with :func:`probe_hardware` (this
    machine) or :func:`hypothetical_hardware` (a machine described on the command line).

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


def _apple_gpu(name: Fact[str], ram: Fact[float], working_set: Fact[float] | None, why_estimated: str) -> GPU:
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


def _discrete_gpu(vendor: str, name: Fact[str], memory: Fact[float], **known: Fact[float]) -> GPU:
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
        gpus = (_discrete_gpu(gpu, Fact(f"{label} with {vram_gb:g} GB", given), Fact(float(vram_gb), given)),)
        if gpu == "nvidia":
            bnb = Fact(["cuda"], "assumed: bitsandbytes' CUDA build on an NVIDIA machine")
    elif gpu == "apple":
        name = f"Apple {chip}" if chip and not chip.lower().startswith("apple") else (chip or "Apple Silicon")
        gpus = (_apple_gpu(Fact(name, given), ram, None, "hypothetical machine"),)
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
        engines=Fact(["gguf", "transformers", "ollama", "openai"], "hypothetical machine: all engines"),
        bitsandbytes=bnb,
        torch_cuda=Fact("hypothetical" if gpu == "nvidia" else None, "hypothetical machine"),
        ollama=OllamaStatus(host="", running=False, version=None, source="hypothetical machine"),
        hypothetical=True,
    )


# ---------------------------------------------------------------------------------------------------------
# Probes of this machine (each fail-soft)


def _run(command: list[str]) -> str | None:
    """Output of a probe command, or None when it is missing, fails or hangs."""
    if shutil.which(command[0]) is None:
        return None
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=PROBE_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def _probe_nvml() -> tuple[list[GPU], str]:
    try:
        import pynvml
    except ImportError:
        return [], "nvidia-ml-py is not installed"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return [], f"NVML unavailable ({exc})"
    gpus = []
    try:
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else name
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            known = {"free_gb": Fact(round(memory.free / GIB, 2), "NVML")}
            with contextlib.suppress(pynvml.NVMLError):
                bus_bits = pynvml.nvmlDeviceGetMemoryBusWidth(handle)
                clock_mhz = pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_MEM)
                if bus_bits and clock_mhz:
                    # Double data rate: two transfers per reported memory clock.
                    known["bandwidth_gbs"] = Fact(
                        round(bus_bits / 8 * clock_mhz * 2 / 1000, 1), "NVML bus width × memory clock"
                    )
            total = Fact(round(memory.total / GIB, 2), "NVML")
            gpus.append(_discrete_gpu("nvidia", Fact(name, "NVML"), total, **known))
    except pynvml.NVMLError as exc:
        return gpus, f"NVML failed while listing GPUs ({exc})"
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()
    return gpus, "NVML"


def _probe_nvidia_smi() -> tuple[list[GPU], str]:
    query = "--query-gpu=name,memory.total,memory.free"
    output = _run(["nvidia-smi", query, "--format=csv,noheader,nounits"])
    if output is None:
        return [], "nvidia-smi not found or failed"
    gpus = []
    for line in output.strip().splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) != 3:
            continue
        try:
            total_mib, free_mib = float(parts[1]), float(parts[2])
        except ValueError:
            continue
        source = "nvidia-smi"
        gpus.append(
            _discrete_gpu(
                "nvidia", Fact(parts[0], source), Fact(round(total_mib / 1024, 2), source),
                free_gb=Fact(round(free_mib / 1024, 2), source),
            )
        )
    return gpus, "nvidia-smi"


def probe_nvidia() -> tuple[list[GPU], list[str]]:
    """NVIDIA GPUs through NVML (nvidia-ml-py), else ``nvidia-smi``.

    Returns:
        The GPUs found and notes on what was tried.
    """
    gpus, how = _probe_nvml()
    if gpus:
        return gpus, []
    notes = [f"NVIDIA: {how}"]
    gpus, how = _probe_nvidia_smi()
    if not gpus:
        notes.append(f"NVIDIA: {how}")
    return gpus, notes


def _metal_working_set() -> Fact[float] | None:
    """Metal's recommendedMaxWorkingSetSize through PyObjC, when installed."""
    try:
        import Metal  # PyObjC's Metal bindings (pyobjc-framework-Metal), optional.
    except ImportError:
        return None
    device = Metal.MTLCreateSystemDefaultDevice()
    if device is None:
        return None
    return Fact(round(device.recommendedMaxWorkingSetSize() / GIB, 2), "Metal recommendedMaxWorkingSetSize")


def probe_apple(ram: Fact[float]) -> tuple[list[GPU], list[str]]:
    """Apple Silicon: the chip, its unified memory and the share the GPU may use."""
    if sys.platform != "darwin" or platform.machine() != "arm64":
        return [], []
    chip = (_run(["sysctl", "-n", "machdep.cpu.brand_string"]) or "").strip()
    name = Fact(chip, "sysctl machdep.cpu.brand_string") if chip else Fact("Apple Silicon", "sysctl failed")
    why = "recommendedMaxWorkingSetSize not readable: install pyobjc-framework-Metal"
    return [_apple_gpu(name, ram, _metal_working_set(), why)], []


def probe_amd(drm_root: Path = Path("/sys/class/drm")) -> tuple[list[GPU], list[str]]:
    """AMD GPUs on Linux, from the amdgpu driver's sysfs files (elsewhere: not probed)."""
    if not drm_root.is_dir():
        return [], []
    gpus = []
    for card in sorted(drm_root.glob("card[0-9]*")):
        device = card / "device"
        try:
            if (device / "vendor").read_text().strip() != "0x1002":
                continue
            vram = int((device / "mem_info_vram_total").read_text().strip())
        except (OSError, ValueError):
            continue
        product = device / "product_name"
        name = product.read_text().strip() if product.is_file() else f"AMD GPU ({card.name})"
        source = f"sysfs {device / 'mem_info_vram_total'}"
        gpus.append(_discrete_gpu("amd", Fact(name, "sysfs"), Fact(round(vram / GIB, 2), source)))
    return gpus, []


def probe_ram() -> Fact[float]:
    """Total system memory: psutil, else /proc/meminfo, else sysconf."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        return Fact(round(psutil.virtual_memory().total / GIB, 2), "psutil")
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        match = re.search(r"^MemTotal:\s+(\d+) kB", meminfo.read_text(), flags=re.MULTILINE)
        if match:
            return Fact(round(int(match.group(1)) * 1024 / GIB, 2), "/proc/meminfo")
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return Fact(None, "no psutil, /proc/meminfo or sysconf")
    return Fact(round(total / GIB, 2), "sysconf")


def probe_cores() -> Fact[int]:
    """Physical CPU cores (psutil), else logical CPUs labelled as such."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        physical = psutil.cpu_count(logical=False)
        if physical:
            return Fact(physical, "psutil (physical cores)")
    logical = os.cpu_count()
    return Fact(logical, "os.cpu_count() (logical CPUs; physical count unknown)")


def probe_disk(models_dir: Path) -> Fact[float]:
    """Free space on the drive that holds (or will hold) ``models_dir``."""
    folder = models_dir
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        return Fact(None, f"cannot read free space of {folder}: {exc.strerror}")
    return Fact(round(free / GIB, 2), f"shutil.disk_usage({folder})")


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def probe_torch_cuda() -> Fact[str]:
    """The CUDA version torch was built with, read from ``torch/version.py`` without importing torch."""
    folder = _package_dir("torch")
    if folder is None:
        return Fact(None, "torch is not installed")
    try:
        text = (folder / "version.py").read_text(encoding="utf-8")
    except OSError:
        return Fact(None, "torch/version.py not readable")
    match = re.search(r"^cuda(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", text, flags=re.MULTILINE)
    if match:
        return Fact(match.group(1), "torch/version.py")
    return Fact(None, "torch/version.py: a build without CUDA")


def bitsandbytes_devices_from_files(names: list[str]) -> list[str]:
    """Devices a bitsandbytes wheel supports, from its native library file names (pure)."""
    devices = []
    for device, prefix in (("cuda", "libbitsandbytes_cuda"), ("rocm", "libbitsandbytes_rocm"),
                           ("mps", "libbitsandbytes_mps"), ("xpu", "libbitsandbytes_xpu"),
                           ("cpu", "libbitsandbytes_cpu")):
        if any(name.startswith(prefix) for name in names):
            devices.append(device)
    return devices


def probe_bitsandbytes(torch_cuda: Fact[str]) -> Fact[list[str]]:
    """Which devices the installed bitsandbytes build can quantize on (NF4/int8), without importing it.

    CUDA counts only when torch was built with CUDA too: bitsandbytes loads the library matching torch's.
    """
    folder = _package_dir("bitsandbytes")
    if folder is None:
        return Fact([], "bitsandbytes is not installed")
    try:
        version = importlib.metadata.version("bitsandbytes")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown version"
    devices = bitsandbytes_devices_from_files([path.name for path in folder.iterdir()])
    if "cuda" in devices and torch_cuda.value is None:
        devices.remove("cuda")
        return Fact(devices, f"bitsandbytes {version} native libraries; torch has no CUDA build")
    return Fact(devices, f"bitsandbytes {version} native libraries")


def probe_ollama(host: str | None = None, timeout: float = OLLAMA_PROBE_TIMEOUT) -> OllamaStatus:
    """Ask Ollama for its version with a short timeout; anything but a proper answer is "not running"."""
    address = resolve_host(host)
    url = f"{address}/api/version"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        return OllamaStatus(address, False, None, f"GET {url}: HTTP {exc.code} (not Ollama)")
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        return OllamaStatus(address, False, None, f"GET {url}: {reason}")
    except ValueError:
        return OllamaStatus(address, False, None, f"GET {url}: the answer is not JSON (not Ollama)")
    version = body.get("version") if isinstance(body, dict) else None
    if not isinstance(version, str):
        return OllamaStatus(address, False, None, f"GET {url}: no version in the answer (not Ollama)")
    return OllamaStatus(address, True, version, f"GET {url}")


def probe_hardware(models_dir: Path, *, ollama: str | None = None) -> HardwareFacts:
    """Probe this machine. Every probe is fail-soft: a failure leaves ``None`` and says why in ``source``.

    Args:
        models_dir: where models are stored (for free disk space).
        ollama: Ollama's address (default ``$OLLAMA_HOST`` or the standard one).
    """
    ram = probe_ram()
    gpus: list[GPU] = []
    notes: list[str] = []
    probe: Callable[[], tuple[list[GPU], list[str]]]
    for probe in (probe_nvidia, lambda: probe_apple(ram), probe_amd):
        found, probe_notes = probe()
        gpus.extend(found)
        notes.extend(probe_notes)
    gpus.sort(key=lambda gpu: gpu.usable_gb.value or 0.0, reverse=True)
    apple = next((gpu for gpu in gpus if gpu.vendor == "apple"), None)
    cpu_bandwidth = (
        Fact(apple.bandwidth_gbs.value, apple.bandwidth_gbs.source)
        if apple
        else Fact(CPU_BANDWIDTH_GBS, "assumed: dual-channel DDR4/DDR5 (estimate)")
    )
    torch_cuda = probe_torch_cuda()
    return HardwareFacts(
        system=platform.system(),
        machine=platform.machine(),
        gpus=tuple(gpus),
        ram_gb=ram,
        cores=probe_cores(),
        cpu_bandwidth_gbs=cpu_bandwidth,
        disk_free_gb=probe_disk(models_dir),
        engines=Fact(installed_engines(), "importlib.util.find_spec (engines not imported)"),
        bitsandbytes=probe_bitsandbytes(torch_cuda),
        torch_cuda=torch_cuda,
        ollama=probe_ollama(ollama),
        gpu_notes=tuple(notes),
    )
