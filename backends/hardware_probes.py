"""Probes of this machine for its hardware facts, each fail-soft: a failed probe leaves ``None`` and says why.

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
from pathlib import Path

from captioneer.backends.cpu_cores import count_cores
from captioneer.backends.hardware import (
    CPU_BANDWIDTH_GBS,
    GIB,
    GPU,
    Fact,
    HardwareFacts,
    OllamaStatus,
    apple_gpu,
    discrete_gpu,
)
from captioneer.backends.ollama_engine import resolve_host
from captioneer.backends.registry import installed_engines

PROBE_TIMEOUT = 5.0
"""Seconds a probe command (nvidia-smi, sysctl) may take before it counts as failed."""

OLLAMA_PROBE_TIMEOUT = 0.5
"""Seconds to wait for Ollama's /api/version: a running local Ollama answers in milliseconds."""


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
            gpus.append(discrete_gpu("nvidia", Fact(name, "NVML"), total, **known))
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
            discrete_gpu(
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
    return [apple_gpu(name, ram, _metal_working_set(), why)], []


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
        gpus.append(discrete_gpu("amd", Fact(name, "sysfs"), Fact(round(vram / GIB, 2), source)))
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
    """Physical CPU cores this process may use: the gguf engine's default thread count too."""
    cores, source = count_cores()
    return Fact(cores, source)


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
