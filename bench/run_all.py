"""Runs the whole benchmark and writes the table: ``python bench/run_all.py``.

Builds (once, cached outside the repository) a real-size Qwen3-VL with random weights and its GGUF files,
generates camera-like photos, then measures in separate processes, one per row:

* the memory bandwidth (the physical limit on decoding);
* for each GGUF profile and image budget: Captioneer's own path (image preparation, engine host) and the raw
  engine call (llama-cpp-python directly) on the same prepared image — seconds to the first token (vision
  encoder + prefill), decode tokens/s with a fixed number of output tokens, seconds per photo, peak RSS;
* the seed documents' recipe (transformers, fp32 on a CPU, no pixel cap, one image at a time) on one photo;
* tagger throughput: ``captioneer tag`` as a subprocess on the generated photos (photos/hour);
* the recommendation's memory and time estimates (``backends.recommend``) next to the measured figures.

On a machine with CUDA the same run adds the GPU rows (GGUF with every layer offloaded; transformers in
bf16/NF4/int8 with SDPA). Results go to ``bench/results/latest.md`` and ``latest.json``, rewritten after
every row so that a cut-short run still leaves its figures. Benchmarks print figures; they are not tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from build_model import CACHE, ensure_model, gguf_path, hf_path, mmproj_path  # noqa: E402
from photos import ensure_photos  # noqa: E402

from backends.gguf import context_size  # noqa: E402

GIB = 1024**3
RESULTS = BENCH / "results"
WORKER = BENCH / "worker.py"
TASK = "caption"
"""The per-image rows ask for a one-sentence caption (plain text, no grammar), as the seed recipe does."""


@dataclass
class Run:
    """Everything measured so far, and how."""

    settings: dict[str, Any]
    machine: dict[str, Any]
    files: dict[str, int] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"settings": self.settings, "machine": self.machine, "files": self.files, "rows": self.rows,
                "notes": self.notes}


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def machine_facts() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    import llama_cpp
    import torch
    import transformers

    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "ram_gib": round(ram, 1),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "llama_cpp_python": llama_cpp.__version__,
        "llama_gpu_offload": bool(llama_cpp.llama_supports_gpu_offload()),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "commit": commit,
        "load_average_start": round(os.getloadavg()[0], 2),
    }


NO_AMX = BENCH / "no_amx"
"""Folder whose ``sitecustomize.py`` loads llama.cpp models without the AMX buffers that crash here."""


def amx_in_llama_cpp() -> bool:
    """Whether this CPU and llama.cpp build use AMX for quantized weights (which crashed on the benchmark
    machine: see ``bench/no_amx/sitecustomize.py``)."""
    import llama_cpp

    return "AMX_INT8 = 1" in llama_cpp.llama_print_system_info().decode(errors="replace")


def child_env(threads: int, home: str, no_amx: bool, tiled_mm: bool) -> dict[str, str]:
    """The environment of a measured process: its own library folder, its thread count, the AMX hook and
    llama.cpp's tiled CPU matrix multiplication switch (``GGML_CPU_TILED_MM``)."""
    env = {**os.environ, "CAPTIONEER_HOME": home, "OMP_NUM_THREADS": str(threads),
           "TOKENIZERS_PARALLELISM": "false", "GGML_CPU_TILED_MM": "1" if tiled_mm else "0"}
    if no_amx:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(NO_AMX), env.get("PYTHONPATH")) if p)
    return env


def run_worker(args: dict[str, Any], timeout: float, no_amx: bool, tiled_mm: bool) -> dict[str, Any]:
    """Run one measurement in a fresh process; its result, or ``{"error": ...}`` with the reason."""
    with tempfile.TemporaryDirectory(prefix="captioneer-bench-home-") as home:
        env = child_env(args.get("threads", 1), home, no_amx, tiled_mm)
        try:
            done = subprocess.run([sys.executable, str(WORKER), json.dumps(args)], capture_output=True,
                                  text=True, timeout=timeout, env=env, cwd=ROOT)
        except subprocess.TimeoutExpired:
            return {"error": f"no result within {timeout:.0f} s"}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
    return {"error": f"exit {done.returncode}: " + " / ".join(tail)}


def run_tagger(
    folder: Path, model: Path, mmproj: Path, budget: int, args: argparse.Namespace
) -> dict[str, Any]:
    """``captioneer tag`` on ``folder`` in a fresh library; wall seconds, photos/hour, peak RSS of the command
    and its engine host (``wait4``'s rusage covers the children it reaped)."""
    command = [
        sys.executable, "-m", "desktop.cli", "tag", str(folder), "--task", TASK, "--engine", "gguf",
        "--model", str(model), "--mmproj", str(mmproj), "--image-tokens", str(budget),
        "--threads", str(args.threads), "--max-tokens", str(args.tokens), "--temperature", "0", "--seed", "0",
    ]
    photos = len(list(folder.glob("*.jpg")))
    with tempfile.TemporaryDirectory(prefix="captioneer-bench-home-") as home:
        env = child_env(args.threads, home, args.no_amx, args.tiled_mm == "on")
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT)
        output = process.stdout.read().decode(errors="replace")
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 1):
        return {"error": f"captioneer tag exited {process.returncode}: {output.strip().splitlines()[-1:]}"}
    return {"photos": photos, "wall_s": wall, "photos_per_hour": photos / wall * 3600,
            "peak_rss": usage.ru_maxrss * 1024, "exit": process.returncode}


def estimates(quant: str, budget: int, bandwidth_gbs: float, threads: int) -> dict[str, float]:
    """The recommendation's memory (GiB, with and without its safety margin) and seconds for this row."""
    from backends.catalog import load_catalog
    from backends.hardware import CPU_GFLOPS_PER_CORE
    from backends.recommend import Device, estimate_memory, estimate_seconds

    variant = load_catalog().find(f"qwen3-vl-2b-gguf-{quant.lower()}")
    device = Device(kind="cpu", usable_gb=0.0, usable_label="", bandwidth_gbs=bandwidth_gbs,
                    tflops=threads * CPU_GFLOPS_PER_CORE / 1000)
    memory = estimate_memory(variant, budget, device)
    return {"memory_gib": memory.total_gb, "memory_subtotal_gib": memory.subtotal_gb,
            "seconds": estimate_seconds(variant, budget, device)}


def prepared_png(photo: Path, budget: int, folder: Path) -> tuple[Path, int]:
    """The photo as Captioneer prepares it at ``budget``, saved as the PNG the engines receive."""
    from desktop.core.images import prepare_image

    image = prepare_image(photo, budget)
    path = folder / f"{photo.stem}-{budget}.png"
    path.write_bytes(image.png_bytes)
    return path, image.tokens


# ---------------------------------------------------------------------------------------------------------
# The table


def _f(value: Any, digits: int = 1, suffix: str = "") -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}{suffix}"


def _gib(value: Any) -> str:
    return "—" if value is None else f"{value / GIB:.2f}"


def render(run: Run) -> str:
    """The results as markdown: machine, per-profile table, baselines, tagger, estimate errors."""
    m, s = run.machine, run.settings
    rows = run.rows
    bandwidth = next((r["gbs"] for r in rows if r["kind"] == "bandwidth" and "gbs" in r), None)
    seeds = [r for r in rows if r["kind"] == "seed" and "error" not in r and r.get("device") == "cpu"]
    seed = seeds[0] if seeds else None
    seed_s = seed["prepare_s"] + seed["total_s"] if seed else None
    raw = {(r["quant"], r["budget"], r.get("device_wanted")): r for r in rows if r["kind"] == "raw"}
    lines = [
        f"Measured {s['started']} – {s.get('finished', 'unfinished (partial run)')} on {m['cpu']} "
        f"({m['logical_cpus']} logical CPUs, {m['ram_gib']} GiB RAM, GPU: {m['gpu'] or 'none'}), "
        f"{s['threads']} threads; llama-cpp-python {m['llama_cpp_python']}, torch {m['torch']}, "
        f"transformers {m['transformers']}, commit {m['commit']}. Load average at the start "
        f"{m['load_average_start']}, at the end {s.get('load_average_end', '—')}.",
        "",
        f"Model: Qwen3-VL-{s['size']} built from its real configuration with random weights. Photo for the "
        f"per-image rows: {s['photo']}; task `{TASK}`; {s['tokens']} output tokens (end of text "
        "suppressed in the raw and seed rows; the Captioneer rows show how many came). Memory bandwidth "
        f"(numpy copy, read + write): {_f(bandwidth)} GB/s.",
        "",
        "| engine / profile | budget | image tokens | prepare s | vision + prefill s | decode tok/s "
        "| s / photo | raw engine s / photo | Captioneer overhead | speed-up vs seed | % of decode limit "
        "| peak RSS GiB | with weight copy GiB | estimate GiB | estimate error | estimated s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["kind"] != "captioneer":
            continue
        label = f"{r['engine']} {r['quant']} ({r.get('device', r.get('device_wanted'))})"
        if "error" in r:
            lines.append(f"| {label} | {r['budget']} | failed: {r['error']} |" + " |" * 13)
            continue
        photo_s = r["prepare_s"] + r["total_s"]
        base = raw.get((r["quant"], r["budget"], r.get("device_wanted")))
        base_s = base["total_s"] if base and "error" not in base else None
        limit = bandwidth / (r["llm_bytes"] / 1e9) if bandwidth and r.get("llm_bytes") else None
        share = r["decode_tps"] / limit * 100 if limit and r.get("decode_tps") else None
        est = r.get("estimate")
        peak = r["peak_rss"] + r.get("copy_bytes", 0)
        error = (est["memory_gib"] * GIB / peak - 1) * 100 if est and peak else None
        lines.append(
            f"| {label} | {r['budget']} | {r['image_tokens']} | {_f(r['prepare_s'], 2)} | {_f(r['first_s'])} "
            f"| {_f(r['decode_tps'])} ({r['tokens']} tok) | {_f(photo_s)} | {_f(base_s)} "
            f"| {_f(photo_s / base_s if base_s else None, 2, '×')} "
            f"| {_f(seed_s / photo_s if seed_s else None, 1, '×')} | {_f(share, 0, ' %')} "
            f"| {_gib(r['peak_rss'])} | {_gib(peak)} | {_f(est['memory_gib'] if est else None, 2)} "
            f"| {_f(error, 0, ' %') if error is None else f'{error:+.0f} %'} "
            f"| {_f(est['seconds'] if est else None)} |"
        )
    lines += ["", "Baselines (same photo, same budget, same settings):", "",
              "| recipe | budget | image tokens | load s | vision + prefill s | decode tok/s | s / photo "
              "| peak RSS GiB |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["kind"] == "seed":
            label = f"seed recipe: transformers {r.get('quant', '')}, no pixel cap ({r.get('device', '—')})"
            budget = "none"
        elif r["kind"] == "raw":
            label = f"raw llama-cpp-python {r['quant']} ({r.get('device', '—')})"
            budget = r["budget"]
        else:
            continue
        if "error" in r:
            lines.append(f"| {label} | {budget} | failed: {r['error']} |" + " |" * 5)
            continue
        lines.append(
            f"| {label} | {budget} | {r.get('image_tokens', '—')} | {_f(r['load_s'])} | {_f(r['first_s'])} "
            f"| {_f(r['decode_tps'])} ({r['tokens']} tok) | {_f(r.get('prepare_s', 0.0) + r['total_s'])} "
            f"| {_gib(r['peak_rss'])} |"
        )
    tag_rows = [r for r in rows if r["kind"] == "tagger"]
    if tag_rows:
        lines += ["", "Tagger throughput (`captioneer tag`, a fresh library, the generated photos "
                  f"{', '.join(s['tagger_photos'])}; wall time includes start-up, scan and model load):", "",
                  "| profile | budget | photos | wall s | photos / hour | peak RSS GiB |",
                  "|---|---|---|---|---|---|"]
        for r in tag_rows:
            if "error" in r:
                lines.append(f"| gguf {r['quant']} | {r['budget']} | failed: {r['error']} | | | |")
                continue
            lines.append(f"| gguf {r['quant']} | {r['budget']} | {r['photos']} | {_f(r['wall_s'])} "
                         f"| {_f(r['photos_per_hour'], 0)} | {_gib(r['peak_rss'])} |")
    lines += ["", "Columns: *vision + prefill* = seconds to the first token; *decode tok/s* = tokens after "
              "the first ÷ their time; *s / photo* = preparation + generation; *Captioneer overhead* = "
              "s / photo ÷ the raw engine call's s / photo on the same prepared image; *speed-up vs seed* = "
              "the seed recipe's s / photo ÷ this row's; *% of decode limit* = decode tok/s ÷ (bandwidth ÷ "
              "bytes of the GGUF language model); *estimate* = "
              "`backends.recommend.estimate_memory(...).total_gb` (with its safety margin) and *estimate "
              "error* = estimate ÷ peak RSS with the weight copy − 1; *with weight copy* = peak RSS + the "
              "extra memory llama.cpp's default weight buffers (AMX or repacked kernels) took when loading "
              "the same model (measured by loading it both ways; 0 where the rows ran with them); "
              "*estimated s* = `estimate_seconds`."]
    lines += [f"- {note}" for note in run.notes]
    return "\n".join(lines) + "\n"


def save(run: Run, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(run))
    out.with_suffix(".json").write_text(json.dumps(run.to_json(), indent=1) + "\n")


# ---------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="2B", choices=("2B", "4B", "8B"))
    parser.add_argument("--quants", nargs="+", default=["Q4_K_M", "Q8_0", "F16"])
    parser.add_argument("--budgets", nargs="+", type=int, default=[256, 512, 1024])
    parser.add_argument("--tokens", type=int, default=64, help="output tokens per photo (default 64)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tagger-quants", nargs="*", default=["Q4_K_M", "Q8_0", "F16"])
    parser.add_argument("--tagger-budget", type=int, default=512)
    parser.add_argument("--no-seed", action="store_true", help="skip the seed recipe (the slowest row)")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.md")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds one row may take")
    parser.add_argument("--amx", choices=("auto", "on", "off"), default="auto",
                        help="llama.cpp's AMX weight buffers: auto = off where the CPU has AMX (they crash)")
    parser.add_argument("--tiled-mm", choices=("on", "off"), default="off",
                        help="llama.cpp's tiled CPU matmul (GGML_CPU_TILED_MM); default off: it made "
                        "decoding ~20x slower here")
    args = parser.parse_args()
    args.no_amx = args.amx == "off" or (args.amx == "auto" and amx_in_llama_cpp())
    tiled = args.tiled_mm == "on"

    args.cache.mkdir(parents=True, exist_ok=True)
    log(f"building or reusing Qwen3-VL-{args.size} in {args.cache}")
    files = ensure_model(args.size, args.cache, args.threads, log=log)
    photos = ensure_photos(args.cache / "photos")
    photo = photos[0]
    prepared = args.cache / "prepared"
    prepared.mkdir(exist_ok=True)
    run = Run(
        settings={"size": args.size, "quants": args.quants, "budgets": args.budgets, "tokens": args.tokens,
                  "threads": args.threads, "photo": f"{photo.name}",
                  "tagger_photos": [p.name for p in photos],
                  "started": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
                  "command": " ".join(["python", "bench/run_all.py", *sys.argv[1:]])},
        machine=machine_facts(), files=files,
    )
    if args.no_amx:
        run.notes.append(
            "llama.cpp's extra CPU weight buffers (AMX and repacking) were off in every process "
            "(bench/no_amx/sitecustomize.py): with AMX, quantized models crash with SIGSEGV on the first "
            "decode on this machine."
        )
    if args.tiled_mm == "off":
        run.notes.append(
            "GGML_CPU_TILED_MM=0 in every process: with llama.cpp's tiled CPU matmul on (its default in "
            "llama-cpp-python 0.3.36) and the weights in ordinary CPU buffers, 2B Q4_K_M decoded at "
            "~0.4 tok/s instead of ~9 and the first token of a 234-token image took 23 s instead of 11."
        )
    gpu = run.machine["gpu"] is not None
    devices = ["cpu", "auto"] if gpu else ["cpu"]
    log(f"files: {files}")

    bandwidth = run_worker({"kind": "bandwidth", "gib": 1.0, "threads": 1}, args.timeout, args.no_amx, tiled)
    run.rows.append({"kind": "bandwidth", **bandwidth})
    log(f"bandwidth {bandwidth}")
    save(run, args.out)

    from desktop.core.tasks import get_task, render_prompt

    task = get_task(TASK)
    prompt, system = render_prompt(task), task.system
    mmproj = mmproj_path(args.size, args.cache)
    for device in devices:
        for quant in args.quants:
            model = gguf_path(args.size, quant, args.cache)
            llm_bytes = model.stat().st_size
            copy = 0
            if device == "cpu" and args.no_amx:
                # The rows below run without llama.cpp's weight copy (it crashes here); measure what the copy
                # weighs by loading the model both ways, so the memory figures can include it.
                load = {"kind": "load", "model": str(model), "n_ctx": context_size(min(args.budgets)),
                        "threads": args.threads}
                plain = run_worker(load, args.timeout, True, tiled)
                default = run_worker(load, args.timeout, False, tiled)
                if "error" not in plain and "error" not in default:
                    copy = max(0, default["peak_rss"] - plain["peak_rss"])
                run.rows.append({"kind": "load", "quant": quant, "plain": plain, "default": default,
                                 "copy_bytes": copy})
                log(f"  weight copy of {quant}: {copy / GIB:.2f} GiB ({plain}, {default})")
            for budget in args.budgets:
                png, tokens = prepared_png(photo, budget, prepared)
                common = {"model": str(model), "mmproj": str(mmproj), "threads": args.threads,
                          "max_tokens": args.tokens}
                row = {"kind": "captioneer", "engine": "gguf", "quant": quant, "budget": budget,
                       "device_wanted": device, "llm_bytes": llm_bytes, "copy_bytes": copy}
                log(f"Captioneer gguf {quant} at {budget} tokens ({device})")
                result = run_worker({"kind": "captioneer", "engine": "gguf", "photo": str(photo),
                                     "budget": budget, "device": device, "task": TASK, **common},
                                    args.timeout, args.no_amx, tiled)
                if device == "cpu":
                    row["estimate"] = estimates(quant, budget, bandwidth.get("gbs", 0.0), args.threads)
                run.rows.append({**row, **result})
                log(f"  {result}")
                save(run, args.out)
                log(f"raw llama-cpp-python {quant} at {budget} tokens ({device})")
                result = run_worker({"kind": "raw", "png": str(png), "prompt": prompt, "system": system,
                                     "n_ctx": context_size(budget), "gpu": device != "cpu", **common},
                                    args.timeout, args.no_amx, tiled)
                run.rows.append({"kind": "raw", "quant": quant, "budget": budget, "device_wanted": device,
                                 "image_tokens": tokens, **result})
                log(f"  {result}")
                save(run, args.out)

    if gpu:
        for quant in ("bf16", "nf4", "int8"):
            for budget in args.budgets:
                log(f"Captioneer transformers {quant} at {budget} tokens (cuda)")
                result = run_worker({"kind": "captioneer", "engine": "transformers", "quant": quant,
                                     "model": str(hf_path(args.size, args.cache)), "photo": str(photo),
                                     "budget": budget, "device": "cuda", "task": TASK,
                                     "threads": args.threads, "max_tokens": args.tokens},
                                    args.timeout, args.no_amx, tiled)
                run.rows.append({"kind": "captioneer", "engine": "transformers", "quant": quant,
                                 "budget": budget, "device_wanted": "cuda", **result})
                log(f"  {result}")
                save(run, args.out)

    for quant in args.tagger_quants:
        log(f"captioneer tag, gguf {quant} at {args.tagger_budget} tokens, {len(photos)} photos")
        result = run_tagger(photos[0].parent, gguf_path(args.size, quant, args.cache), mmproj,
                            args.tagger_budget, args)
        run.rows.append({"kind": "tagger", "quant": quant, "budget": args.tagger_budget, **result})
        log(f"  {result}")
        save(run, args.out)

    if not args.no_seed:
        for device in devices:
            log(f"seed recipe: transformers, no pixel cap ({device})")
            result = run_worker({"kind": "seed", "model": str(hf_path(args.size, args.cache)),
                                 "photo": str(photo), "prompt": prompt, "threads": args.threads,
                                 "max_tokens": args.tokens, "device": device},
                                args.timeout, args.no_amx, tiled)
            run.rows.append({"kind": "seed", **result})
            log(f"  {result}")
            save(run, args.out)

    run.settings["finished"] = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    run.settings["load_average_end"] = round(os.getloadavg()[0], 2)
    save(run, args.out)
    print(render(run))


if __name__ == "__main__":
    main()
