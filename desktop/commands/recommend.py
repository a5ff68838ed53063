"""`captioneer recommend`: which Qwen3-VL profile fits this machine (or a described one), ranked, with why."""

from __future__ import annotations

import argparse
import json
from typing import Any

from captioneer.backends.hardware import GPU_KINDS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "recommend",
        help="rank the model profiles that fit this machine, or a machine you describe",
        description="Estimate memory (weights + KV cache + the vision encoder at the image budget + runtime, "
        "with a safety margin) and seconds per photo for every profile, and rank those that fit. Without "
        "options it probes this machine; --gpu, --vram-gb and --ram-gb describe another one.",
    )
    parser.add_argument("--gpu", choices=GPU_KINDS, help="describe a machine with this GPU kind")
    parser.add_argument("--vram-gb", type=float, metavar="N", help="its GPU memory (nvidia, amd)")
    parser.add_argument("--ram-gb", type=float, metavar="N", help="its system memory (a Mac: unified memory)")
    parser.add_argument("--cores", type=int, metavar="N", help="its physical CPU cores (default 4)")
    parser.add_argument("--chip", help="Apple chip, e.g. 'M2 Pro' (sets bandwidth and compute)")
    parser.add_argument(
        "--engine", action="append", dest="engines", choices=["gguf", "transformers", "ollama"],
        help="consider only this engine (repeat for several)",
    )
    parser.add_argument(
        "--all-profiles", action="store_true", help="also list the profiles that do not fit, with why"
    )
    parser.add_argument("--json", action="store_true", help="print the ranked list as JSON")
    parser.set_defaults(func=run)


def _hardware(args: argparse.Namespace) -> Any:
    from captioneer.backends.errors import ConfigurationError
    from captioneer.backends.hardware import hypothetical_hardware
    from captioneer.backends.hardware_probes import probe_hardware
    from captioneer.desktop.core.paths import models_dir
    from captioneer.desktop.core.settings import load_settings

    described = args.gpu is not None or args.vram_gb is not None or args.ram_gb is not None
    if not described:
        if args.cores or args.chip:
            raise ConfigurationError("--cores and --chip describe another machine: add --gpu and --ram-gb.")
        return probe_hardware(models_dir(), ollama=load_settings().ollama_host)
    if args.gpu is None or args.ram_gb is None:
        raise ConfigurationError(
            "To describe another machine give --gpu (nvidia, apple, amd or none) and --ram-gb, plus "
            "--vram-gb for nvidia or amd."
        )
    try:
        return hypothetical_hardware(
            args.gpu, vram_gb=args.vram_gb, ram_gb=args.ram_gb, cores=args.cores, chip=args.chip
        )
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None


def format_table(profiles: list[Any]) -> str:
    """The ranking as a table, each row followed by its reason."""
    header = f"{'#':>2}  {'profile':<30} {'engine':<12} {'quant':<7} {'image':>6} {'memory':>9} {'s/img':>7}"
    lines = [header, "-" * len(header)]
    for index, profile in enumerate(profiles, start=1):
        rank = str(index) if profile.fits else "-"
        name = profile.variant.pull_name
        lines.append(
            f"{rank:>2}  {name:<30} {profile.engine:<12} {profile.quant:<7} {profile.image_tokens:>6} "
            f"{profile.memory_gb:>6.1f} GB {profile.seconds_per_photo:>7.1f}"
        )
        lines.append(f"    {profile.reason}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from captioneer.backends.recommend import recommend

    hardware = _hardware(args)
    profiles = recommend(hardware, engines=args.engines, include_unfit=args.all_profiles)
    if args.json:
        # The ranked list itself; `captioneer hardware --json` gives the facts behind it.
        print(json.dumps([profile.to_json() for profile in profiles], indent=2, sort_keys=True))
        return 0 if any(profile.fits for profile in profiles) else 1
    if not any(profile.fits for profile in profiles):
        print("No profile fits this machine's memory.")
    else:
        first = profiles[0]
        print(f"Recommended: {first.variant.pull_name} at {first.image_tokens} image tokens.")
        if not first.variant.entry.server_pulls_models:
            print(f"Download it with: captioneer models pull {first.variant.id}")
    print()
    print(format_table(profiles))
    return 0 if any(profile.fits for profile in profiles) else 1
