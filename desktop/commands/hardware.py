"""`captioneer hardware`: what this machine has for running models, and where each number came from."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "hardware",
        help="show the GPU, memory, cores, disk, engines and Ollama this machine has",
        description="Probe this machine (every probe is fail-soft) and show each number with its source.",
    )
    parser.add_argument("--json", action="store_true", help="print the facts as JSON")
    parser.set_defaults(func=run)


def _value(fact: Any, unit: str = "") -> str:
    if fact.value is None:
        return f"unknown ({fact.source})"
    value = ", ".join(fact.value) if isinstance(fact.value, list) else fact.value
    value = value if value != "" else "none"
    return f"{value}{unit}  [{fact.source}]"


def format_facts(facts: Any) -> str:
    """The facts as a readable block: one line per number, its source in brackets."""
    lines = [f"System        {facts.system} {facts.machine}"]
    if not facts.gpus:
        notes = "; ".join(facts.gpu_notes) or "no GPU probe found one"
        lines.append(f"GPU           none  [{notes}]")
    for index, gpu in enumerate(facts.gpus):
        lines += [
            f"GPU {index}         {_value(gpu.name)}",
            f"  memory      {_value(gpu.memory_gb, ' GB')}",
            f"  usable      {_value(gpu.usable_gb, ' GB')}",
            f"  free now    {_value(gpu.free_gb, ' GB')}",
            f"  bandwidth   {_value(gpu.bandwidth_gbs, ' GB/s')}",
            f"  compute     {_value(gpu.tflops, ' TFLOPS effective')}",
        ]
    ollama = facts.ollama
    ollama_line = f"running, version {ollama.version}" if ollama.running else "not running"
    lines += [
        f"RAM           {_value(facts.ram_gb, ' GB')}",
        f"CPU cores     {_value(facts.cores)}",
        f"CPU memory    {_value(facts.cpu_bandwidth_gbs, ' GB/s')}",
        f"Disk free     {_value(facts.disk_free_gb, ' GB')}",
        f"Engines       {_value(facts.engines)}",
        f"bitsandbytes  {_value(facts.bitsandbytes)}",
        f"torch CUDA    {_value(facts.torch_cuda)}",
        f"Ollama        {ollama_line} at {ollama.host}  [{ollama.source}]",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from captioneer.backends.hardware_probes import probe_hardware
    from captioneer.desktop.core.paths import models_dir
    from captioneer.desktop.core.settings import load_settings

    facts = probe_hardware(models_dir(), ollama=load_settings().ollama_host)
    if args.json:
        print(json.dumps(facts.to_json(), indent=2, sort_keys=True))
    else:
        print(format_facts(facts))
    return 0
