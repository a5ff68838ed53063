"""CPU cores counted one way, for the gguf engine's threads and the hardware report alike."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def cpuinfo_cores(cpuinfo: str) -> set[tuple[str, str]]:
    """(package, core) pairs in a Linux /proc/cpuinfo text."""
    cores = set()
    for block in cpuinfo.split("\n\n"):
        pairs = (line.partition(":") for line in block.splitlines())
        fields = {key.strip(): value.strip() for key, _, value in pairs}
        if "core id" in fields:
            cores.add((fields.get("physical id", "0"), fields["core id"]))
    return cores


def count_cores() -> tuple[int, str]:
    """Physical CPU cores this process may use, and how they were counted.

    Hyper-threads slow llama.cpp down, and a container or ``taskset`` may allow fewer CPUs than the machine
    has: the count is the smaller of the physical cores (psutil, else Linux's /proc/cpuinfo) and the CPUs this
    process may run on.

    Returns:
        ``(cores, source)``: at least 1, and where the number came from, for people.
    """
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    physical: int | None = None
    if importlib.util.find_spec("psutil") is not None:
        import psutil

        physical, how = psutil.cpu_count(logical=False), "psutil (physical cores)"
    elif CPUINFO.is_file():
        physical = len(cpuinfo_cores(CPUINFO.read_text(errors="replace"))) or None
        how = "/proc/cpuinfo (physical cores)"
    if not physical:
        return max(1, usable), "the logical CPUs this process may use (physical count unknown)"
    if usable < physical:
        return max(1, usable), f"{how}, limited by the CPUs this process may use ({usable})"
    return physical, how


def physical_cores() -> int:
    """Physical CPU cores this process may use (see :func:`count_cores`)."""
    return count_cores()[0]
