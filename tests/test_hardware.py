"""Hardware detection: fail-soft probes with labelled sources, the Ollama probe against loopback servers,
sysfs and chip-name parsing, and `captioneer hardware`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import pytest

from captioneer.backends.cpu_cores import cpuinfo_cores, physical_cores
from captioneer.backends.hardware import GPU, Fact, HardwareFacts, apple_chip_figures, hypothetical_hardware
from captioneer.backends.hardware_probes import (
    bitsandbytes_devices_from_files,
    probe_amd,
    probe_disk,
    probe_hardware,
    probe_nvidia,
    probe_ollama,
)
from captioneer.desktop.cli import main
from tests.fakes.ollama_server import FakeOllama


def _facts_in(data: object) -> list[dict]:
    """Every {"value", "source"} pair in a JSON tree."""
    found = []
    if isinstance(data, dict):
        if set(data) == {"value", "source"}:
            return [data]
        for value in data.values():
            found += _facts_in(value)
    elif isinstance(data, list):
        for value in data:
            found += _facts_in(value)
    return found


def test_probing_this_machine_labels_every_number(tmp_path):
    facts = probe_hardware(tmp_path / "not" / "yet" / "models", ollama="http://127.0.0.1:9")
    assert isinstance(facts, HardwareFacts) and not facts.hypothetical
    data = facts.to_json()
    pairs = _facts_in(data)
    assert len(pairs) >= 7 and all(isinstance(p["source"], str) and p["source"] for p in pairs)
    assert facts.ram_gb.value and facts.ram_gb.value > 0.5
    assert facts.cores.value and facts.cores.value >= 1
    assert facts.disk_free_gb.value is not None and str(tmp_path) in facts.disk_free_gb.source
    assert "gguf" in facts.engines.value  # llama-cpp-python is installed here
    if not facts.gpus:  # the development machine: the probes say why they found nothing
        assert facts.gpu_kind == "none" and facts.gpu_notes
    assert facts.ollama.running is False


def _python_prints(code: str) -> list[str]:
    """What a fresh Python running ``code`` prints: its first two words and the rest of the line."""
    command = [sys.executable, "-c", code]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return result.stdout.strip().split(" ", 2)


def test_probing_and_recommending_import_no_engine(tmp_path):
    code = (
        "import sys; from pathlib import Path; "
        "from captioneer.backends.hardware_probes import probe_hardware; "
        "from captioneer.backends.recommend import recommend; "
        f"f = probe_hardware(Path({str(tmp_path)!r}), ollama='http://127.0.0.1:9'); recommend(f); "
        "print('torch' in sys.modules or 'llama_cpp' in sys.modules, 'bitsandbytes' in sys.modules, "
        "f.torch_cuda.source)"
    )
    torch_loaded, bnb_loaded, source = _python_prints(code)
    assert (torch_loaded, bnb_loaded) == ("False", "False")
    assert "torch" in source


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ollama_probe_running_and_not_running():
    with FakeOllama(version="0.13.1") as server:
        address = server.url
        status = probe_ollama(address)
    assert status.running and status.version == "0.13.1" and status.host == address
    nobody = f"http://127.0.0.1:{_free_port()}"
    status = probe_ollama(nobody)
    assert not status.running and status.version is None and nobody in status.source


class _NotOllama(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html>a router page</html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_ollama_probe_is_not_fooled_by_another_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotOllama)
    thread = Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        status = probe_ollama(f"127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
    assert not status.running and "not Ollama" in status.source


def test_amd_gpus_from_sysfs(tmp_path):
    for card, vendor, vram in (("card0", "0x10de", 8 * 1024**3), ("card1", "0x1002", 16 * 1024**3)):
        device = tmp_path / card / "device"
        device.mkdir(parents=True)
        (device / "vendor").write_text(f"{vendor}\n")
        (device / "mem_info_vram_total").write_text(f"{vram}\n")
    (tmp_path / "card1" / "device" / "product_name").write_text("Radeon RX 7800 XT\n")
    (tmp_path / "card1-DP-1").mkdir()  # a connector, not a card
    gpus, _ = probe_amd(tmp_path)
    assert len(gpus) == 1
    gpu = gpus[0]
    assert (gpu.vendor, gpu.name.value, gpu.memory_gb.value) == ("amd", "Radeon RX 7800 XT", 16.0)
    assert "mem_info_vram_total" in gpu.memory_gb.source and "estimate" in gpu.bandwidth_gbs.source
    assert probe_amd(tmp_path / "missing") == ([], [])


@pytest.mark.parametrize(
    ("chip", "name", "bandwidth"),
    [("Apple M3 Max", "M3 Max", 400), ("Apple M4", "M4", 120), ("apple m2 pro", "M2 Pro", 200),
     ("Apple M9 Hyper", None, 100.0)],
)
def test_apple_chip_names(chip, name, bandwidth):
    matched, found_bandwidth, _ = apple_chip_figures(chip)
    assert (matched, found_bandwidth) == (name, bandwidth)


def test_bitsandbytes_devices_come_from_its_native_libraries():
    names = ["__init__.py", "libbitsandbytes_cpu.so", "libbitsandbytes_cuda126.so",
             "libbitsandbytes_cuda13.dll", "libbitsandbytes_rocm64.so"]
    assert bitsandbytes_devices_from_files(names) == ["cuda", "rocm", "cpu"]
    assert bitsandbytes_devices_from_files(["libbitsandbytes_mps.dylib"]) == ["mps"]
    assert bitsandbytes_devices_from_files(["__init__.py"]) == []


def test_cpuinfo_counts_physical_cores() -> None:
    block = "processor : {n}\nphysical id : {p}\ncore id : {c}\n"
    text = "\n".join(block.format(n=n, p=0, c=n % 4) for n in range(8))
    assert len(cpuinfo_cores(text)) == 4


def test_the_report_counts_the_cores_the_gguf_engine_uses(tmp_path):
    facts = probe_hardware(tmp_path, ollama="http://127.0.0.1:9")
    assert facts.cores.value == physical_cores()
    if not hasattr(os, "sched_setaffinity"):
        return
    # A process allowed one CPU (taskset, a container's cpuset): the engine runs one thread, and the report
    # says so instead of the machine's physical cores.
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
        "from captioneer.backends.gguf import physical_cores; "
        "from captioneer.backends.hardware_probes import probe_cores; "
        "fact = probe_cores(); print(fact.value, physical_cores(), fact.source)"
    )
    reported, threads, source = _python_prints(code)
    assert (reported, threads) == ("1", "1")
    assert "limited by the CPUs this process may use (1)" in source or facts.cores.value == 1


def test_free_disk_of_a_folder_not_made_yet(tmp_path):
    fact = probe_disk(tmp_path / "a" / "b" / "models")
    assert fact.value and fact.value > 0 and str(tmp_path) in fact.source


def test_hypothetical_machines():
    mac = hypothetical_hardware("apple", ram_gb=8, chip="M1")
    assert mac.gpu_kind == "apple" and mac.gpu.name.value == "Apple M1"
    assert mac.gpu.usable_gb.value == pytest.approx(8 * 2 / 3, abs=0.01)
    assert mac.bitsandbytes.value == []
    pc = hypothetical_hardware("nvidia", vram_gb=12, ram_gb=32, cores=6)
    assert isinstance(pc.gpu, GPU) and pc.gpu.memory_gb == Fact(12.0, "given")
    assert pc.cores == Fact(6, "given") and pc.bitsandbytes.value == ["cuda"]
    assert hypothetical_hardware("none", ram_gb=16).cores.source.startswith("assumed")
    with pytest.raises(ValueError, match="--vram-gb"):
        hypothetical_hardware("amd", ram_gb=16)
    with pytest.raises(ValueError, match="Unknown GPU kind"):
        hypothetical_hardware("intel", ram_gb=16)


def test_hardware_command(capsys, captioneer_home: Path, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{_free_port()}")
    assert main(["hardware", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ram_gb"]["source"] and data["ollama"]["running"] is False
    assert str(captioneer_home) in data["disk_free_gb"]["source"]
    assert main(["hardware"]) == 0
    text = capsys.readouterr().out
    assert "RAM" in text and "[psutil]" in text and "Ollama        not running" in text


class _StandInNVML:
    """A stand-in for the ``pynvml`` module (no NVIDIA driver here): one RTX 4090-like card."""

    NVML_CLOCK_MEM = 2

    class NVMLError(Exception):
        pass

    class _Memory:
        total = 24 * 1024**3
        free = 20 * 1024**3

    def __init__(self) -> None:
        self.shut_down = False

    def nvmlInit(self) -> None:
        pass

    def nvmlShutdown(self) -> None:
        self.shut_down = True

    def nvmlDeviceGetCount(self) -> int:
        return 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        return f"handle{index}"

    def nvmlDeviceGetName(self, handle: str) -> bytes:
        return b"NVIDIA GeForce RTX 4090"

    def nvmlDeviceGetMemoryInfo(self, handle: str) -> _Memory:
        return self._Memory()

    def nvmlDeviceGetMemoryBusWidth(self, handle: str) -> int:
        return 384

    def nvmlDeviceGetMaxClockInfo(self, handle: str, clock: int) -> int:
        assert clock == self.NVML_CLOCK_MEM
        return 10501


def test_nvidia_through_nvml(monkeypatch):
    nvml = _StandInNVML()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    gpus, notes = probe_nvidia()
    assert notes == [] and nvml.shut_down
    (gpu,) = gpus
    assert (gpu.vendor, gpu.name.value, gpu.memory_gb.value, gpu.free_gb.value) == (
        "nvidia", "NVIDIA GeForce RTX 4090", 24.0, 20.0
    )
    assert gpu.bandwidth_gbs == Fact(1008.1, "NVML bus width × memory clock")  # the 4090's 1,008 GB/s
    assert gpu.memory_gb.source == "NVML" and "estimate" in gpu.tflops.source


def test_nvidia_through_nvidia_smi_when_nvml_fails(monkeypatch, tmp_path):
    class _BrokenNVML(_StandInNVML):
        def nvmlInit(self) -> None:
            raise self.NVMLError("Driver Not Loaded")

    monkeypatch.setitem(sys.modules, "pynvml", _BrokenNVML())
    # A stand-in nvidia-smi on PATH that prints what the real one prints for this query.
    script = tmp_path / "nvidia-smi"
    script.write_text("#!/bin/sh\necho 'NVIDIA GeForce RTX 3060, 12288, 11900'\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    gpus, notes = probe_nvidia()
    (gpu,) = gpus
    assert (gpu.name.value, gpu.memory_gb.value) == ("NVIDIA GeForce RTX 3060", 12.0)
    assert gpu.memory_gb.source == "nvidia-smi" and gpu.free_gb.value == pytest.approx(11.62, abs=0.01)
    assert notes == ["NVIDIA: NVML unavailable (Driver Not Loaded)"]
    script.write_text("#!/bin/sh\nexit 9\n")
    gpus, notes = probe_nvidia()
    assert gpus == [] and notes[-1] == "NVIDIA: nvidia-smi not found or failed"


def test_a_probed_gpu_drives_the_recommendation(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pynvml", _StandInNVML())
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{_free_port()}")
    assert main(["recommend", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)[0]
    assert first["device"] == "cuda" and first["memory_gb"] <= 24.0 and "of VRAM" in first["reason"]
