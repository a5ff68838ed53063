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
    clips = parser.add_mutually_exclusive_group()
    clips.add_argument(
        "--video-tokens", type=int, metavar="N",
        help="the library has videos: estimate a clip at this budget too (one request, all its frames)",
    )
    clips.add_argument(
        "--videos", action="store_true",
        help="the library has videos: estimate a clip at the clip budget in Settings too",
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


def _clip_tokens(args: argparse.Namespace) -> int | None:
    """The clip budget asked for: --video-tokens (checked), the settings' with --videos, else None."""
    from captioneer.desktop.core.settings import Settings, clip_budget, load_settings

    if args.video_tokens is not None:
        return clip_budget(Settings(), args.video_tokens)
    return load_settings().video_tokens if args.videos else None


def format_table(profiles: list[Any]) -> str:
    """The ranking as a table, each row followed by its reason; with clip columns when clips were estimated
    (``photos`` in the clip column: it fits photos but not a clip)."""
    clips = any(profile.clip is not None for profile in profiles)
    header = f"{'#':>2}  {'profile':<30} {'engine':<12} {'quant':<7} {'image':>6} {'memory':>9} {'s/img':>7}"
    if clips:
        header += f" {'clip':>9} {'s/clip':>7}"
    lines = [header, "-" * len(header)]
    for index, profile in enumerate(profiles, start=1):
        rank = str(index) if profile.fits else "-"
        name = profile.variant.pull_name
        row = (
            f"{rank:>2}  {name:<30} {profile.engine:<12} {profile.quant:<7} {profile.image_tokens:>6} "
            f"{profile.memory_gb:>6.1f} GB {profile.seconds_per_photo:>7.1f}"
        )
        if profile.clip is not None:
            row += f" {profile.clip.memory.total_gb:>6.1f} GB {profile.clip.seconds:>7.1f}"
            row += "" if profile.clip.fits else "  photos only"
        lines.append(row)
        lines.append(f"    {profile.reason}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from captioneer.backends.recommend import recommend
    from captioneer.desktop.core.clip_costs import clip_budget_estimate

    hardware = _hardware(args)
    clip_tokens = _clip_tokens(args)
    clips = clip_budget_estimate(clip_tokens) if clip_tokens is not None else None
    profiles = recommend(hardware, engines=args.engines, include_unfit=args.all_profiles, clips=clips)
    if args.json:
        # The ranked list itself; `captioneer hardware --json` gives the facts behind it.
        print(json.dumps([profile.to_json() for profile in profiles], indent=2, sort_keys=True))
        return 0 if any(profile.fits for profile in profiles) else 1
    if not any(profile.fits for profile in profiles):
        print("No profile fits this machine's memory.")
    else:
        first = profiles[0]
        print(f"Recommended: {first.variant.pull_name} at {first.image_tokens} image tokens.")
        if first.clip is not None and first.clip.fits:
            print(
                f"Videos: a {first.clip.load.budget:,}-token clip needs ≈{first.clip.memory.total_gb:.1f} GB "
                f"and ≈{first.clip.seconds:.0f} s with it."
            )
        elif first.clip is not None:
            print(
                f"No profile that fits this machine fits a {first.clip.load.budget:,}-token clip: lower the "
                "clip budget (--video-tokens; Settings → Video clip detail) to tag videos here."
            )
        if not first.variant.entry.server_pulls_models:
            print(f"Download it with: captioneer models pull {first.variant.id}")
    print()
    print(format_table(profiles))
    return 0 if any(profile.fits for profile in profiles) else 1
