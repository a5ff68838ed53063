"""Runs the whole benchmark and writes the table: ``python bench/run_all.py``.

Builds (once, cached outside the repository) a real-size Qwen3-VL with random weights and its GGUF files,
generates camera-like photos, then measures in separate processes, one per row:

* the memory bandwidth (the physical limit on decoding);
* for each GGUF profile and image budget: Captioneer's own path (image preparation, engine host) and the raw
  engine call (llama-cpp-python directly) on the same prepared image — seconds to the first token (vision
  encoder + prefill), decode tokens/s with a fixed number of output tokens, seconds per photo, peak RSS;
* the seed documents' recipe (transformers, fp32 on a CPU, no pixel cap, one image at a time) on one photo;
* tagger throughput: ``captioneer tag`` as a subprocess on the generated photos (photos/hour);
* the recommendation's memory and time estimates (``captioneer.backends.estimate``) next to the measured
  figures.

On a machine with CUDA the same run adds the GPU rows (GGUF with every layer offloaded; transformers in
bf16/NF4/int8 with SDPA). Results go to ``bench/results/latest.md`` and ``latest.json``, rewritten after
every row so that a cut-short run still leaves its figures. Benchmarks print figures; they are not tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
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
sys.path.insert(0, str(BENCH))

from build_model import CACHE, ensure_model, gguf_path, hf_path, mmproj_path  # noqa: E402
from photos import ensure_photos  # noqa: E402

from captioneer.backends.gguf import context_size  # noqa: E402

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


QUIET_LOAD = 2.5
"""The 1-minute load average below which the machine counts as quiet enough to time a row."""
QUIET_WAIT_S = 180.0
"""How long a row waits for a quiet machine before it runs anyway (its load is printed next to it)."""


def wait_for_quiet(threshold: float = QUIET_LOAD, max_wait: float = QUIET_WAIT_S) -> float:
    """Wait until the 1-minute load average drops below ``threshold`` (at most ``max_wait`` seconds);
    return the load average then."""
    deadline = time.monotonic() + max_wait
    load = os.getloadavg()[0]
    if load >= threshold:
        log(f"  waiting for a quieter machine (load average {load:.1f})")
    while load >= threshold and time.monotonic() < deadline:
        time.sleep(10)
        load = os.getloadavg()[0]
    return round(load, 2)


def run_worker(args: dict[str, Any], timeout: float, no_amx: bool, tiled_mm: bool) -> dict[str, Any]:
    """Run one measurement in a fresh process once the machine is quiet; its result (with the 1-minute load
    average before it, to show whether other work shared the CPU), or ``{"error": ...}`` with the reason."""
    load_before = wait_for_quiet()
    with tempfile.TemporaryDirectory(prefix="captioneer-bench-home-") as home:
        env = child_env(args.get("threads", 1), home, no_amx, tiled_mm)
        try:
            done = subprocess.run([sys.executable, str(WORKER), json.dumps(args)], capture_output=True,
                                  text=True, timeout=timeout, env=env, cwd=ROOT)
        except subprocess.TimeoutExpired:
            return {"error": f"no result within {timeout:.0f} s"}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return {**json.loads(line[len("RESULT "):]), "load_before": load_before}
    tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
    return {"error": f"exit {done.returncode}: " + " / ".join(tail)}


def run_tagger(
    folder: Path, model: Path, mmproj: Path, budget: int, args: argparse.Namespace
) -> dict[str, Any]:
    """``captioneer tag`` on ``folder`` in a fresh library; wall seconds, photos/hour, peak RSS of the command
    and its engine host (``wait4``'s rusage covers the children it reaped)."""
    command = [
        sys.executable, "-m", "captioneer.desktop.cli", "tag", str(folder), "--task", TASK,
        "--engine", "gguf",
        "--model", str(model), "--mmproj", str(mmproj), "--image-tokens", str(budget),
        "--threads", str(args.threads), "--max-tokens", str(args.tokens), "--temperature", "0", "--seed", "0",
        # One answer per photo: the random model repeats one word, which the quality check would send back.
        "--no-retry",
    ]
    photos = len(list(folder.glob("*.jpg")))
    load_before = wait_for_quiet()
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
        last = output.strip().splitlines()[-1] if output.strip() else "no output"
        return {"error": f"captioneer tag exited {process.returncode}: {last}"}
    return {"photos": photos, "wall_s": wall, "photos_per_hour": photos / wall * 3600,
            "peak_rss": usage.ru_maxrss * 1024, "exit": process.returncode, "load_before": load_before}


def estimates(size: str, engine: str, quant: str, budget: int, bandwidth_gbs: float,
              threads: int) -> dict[str, float]:
    """The recommendation's memory (GiB, with and without its safety margin) and seconds for this row."""
    from captioneer.backends.catalog import load_catalog
    from captioneer.backends.estimate import Device, estimate_memory, estimate_seconds
    from captioneer.backends.hardware import CPU_GFLOPS_PER_CORE

    variant = load_catalog().find(f"qwen3-vl-{size.lower()}-{engine}-{quant.lower()}")
    device = Device(kind="cpu", usable_gb=0.0, usable_label="", bandwidth_gbs=bandwidth_gbs,
                    tflops=threads * CPU_GFLOPS_PER_CORE / 1000)
    memory = estimate_memory(variant, budget, device)
    return {"memory_gib": memory.total_gb, "memory_subtotal_gib": memory.subtotal_gb,
            "seconds": estimate_seconds(variant, budget, device)}


def prepared_png(photo: Path, budget: int, folder: Path) -> tuple[Path, int]:
    """The photo as Captioneer prepares it at ``budget``, saved as the PNG the engines receive."""
    from captioneer.desktop.core.images import prepare_image

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
    raw = {(r.get("engine", "gguf"), r["quant"], r["budget"], r.get("device_wanted")): r
           for r in rows if r["kind"] == "raw"}
    lines = [
        f"Measured {s['started']} – {s.get('finished', 'unfinished (partial run)')} on {m['cpu']} "
        f"({m['logical_cpus']} logical CPUs, {m['ram_gib']} GiB RAM, GPU: {m['gpu'] or 'none'}), "
        f"{s['threads']} threads; llama-cpp-python {m['llama_cpp_python']}, torch {m['torch']}, "
        f"transformers {m['transformers']}, commit {m['commit']}. Load average at the start "
        f"{m['load_average_start']}, at the end {s.get('load_average_end', '—')}.",
        "",
        f"Model: Qwen3-VL-{s['size']} built from its real configuration with random weights. Photo for the "
        f"per-image rows: {s['photo']}, the fastest of {s.get('repeats', 1)} runs per GGUF and transformers "
        f"row (the first run of a process includes its warm-up; one run for the seed recipe); task `{TASK}`; "
        f"{s['tokens']} output tokens (end of text suppressed in the raw and seed rows; the Captioneer rows "
        "show how many came). Memory bandwidth "
        f"(numpy copy, read + write): {_f(bandwidth)} GB/s.",
        "",
        "| engine / profile | budget | image tokens | prepare s | vision + prefill s | decode tok/s "
        "| s / photo | raw engine s / photo | Captioneer overhead | speed-up vs seed | % of decode limit "
        "| peak RSS GiB | generating GiB | with weight copy GiB | estimate GiB | estimate error "
        "| estimated s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["kind"] != "captioneer":
            continue
        label = f"{r['engine']} {r['quant']} ({r.get('device', r.get('device_wanted'))})"
        if r.get("load_before") is not None:
            label += f" [load {r['load_before']:.1f}]"
        if "error" in r:
            lines.append(f"| {label} | {r['budget']} | failed: {r['error']} |" + " |" * 14)
            continue
        photo_s = r["prepare_s"] + r["total_s"]
        base = raw.get((r["engine"], r["quant"], r["budget"], r.get("device_wanted")))
        base_s = base["total_s"] if base and "error" not in base else None
        llm_bytes = r.get("llm_bytes") or (base or {}).get("llm_bytes")
        limit = bandwidth / (llm_bytes / 1e9) if bandwidth and llm_bytes else None
        share = r["decode_tps"] / limit * 100 if limit and r.get("decode_tps") else None
        est = r.get("estimate")
        peak = r["peak_rss"] + r.get("copy_bytes", 0)
        error = (est["memory_gib"] * GIB / peak - 1) * 100 if est and peak else None
        before = r.get("estimate_before")
        error_text = "—" if error is None else f"{error:+.0f} %"
        if before and error is not None:
            error_text += f" (was {(before['memory_gib'] * GIB / peak - 1) * 100:+.0f} %)"
        lines.append(
            f"| {label} | {r['budget']} | {r['image_tokens']} | {_f(r['prepare_s'], 2)} | {_f(r['first_s'])} "
            f"| {_f(r['decode_tps'])} ({r['tokens']} tok) | {_f(photo_s)} | {_f(base_s)} "
            f"| {_f(photo_s / base_s if base_s else None, 2, '×')} "
            f"| {_f(seed_s / photo_s if seed_s else None, 1, '×')} | {_f(share, 0, ' %')} "
            f"| {_gib(r['peak_rss'])} | {_gib(r.get('running_rss'))} | {_gib(peak)} "
            f"| {_f(est['memory_gib'] if est else None, 2)} "
            f"| {error_text} "
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
            library = "transformers" if r.get("engine") == "transformers" else "llama-cpp-python"
            label = f"raw {library} {r['quant']} ({r.get('device', '—')})"
            budget = r["budget"]
        else:
            continue
        if r.get("load_before") is not None:
            label += f" [load {r['load_before']:.1f}]"
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
        lines += ["", "Tagger throughput (`captioneer tag --no-retry`, a fresh library, the generated photos "
                  f"{', '.join(s['tagger_photos'])}; wall time includes start-up, scan and model load; "
                  "`--no-retry` because the random model's captions repeat one word, which the quality check "
                  "would otherwise send back once per photo):", "",
                  "| profile | budget | photos | wall s | photos / hour | peak RSS GiB |",
                  "|---|---|---|---|---|---|"]
        for r in tag_rows:
            if "error" in r:
                lines.append(f"| gguf {r['quant']} | {r['budget']} | failed: {r['error']} | | | |")
                continue
            lines.append(f"| gguf {r['quant']} [load {r['load_before']:.1f}] | {r['budget']} | {r['photos']} "
                         f"| {_f(r['wall_s'])} "
                         f"| {_f(r['photos_per_hour'], 0)} | {_gib(r['peak_rss'])} |")
    lines += ["", "Columns: *vision + prefill* = seconds to the first token; *decode tok/s* = tokens after "
              "the first ÷ their time; *s / photo* = preparation + generation; *Captioneer overhead* = "
              "s / photo ÷ the raw engine call's s / photo on the same prepared image (llama-cpp-python or "
              "transformers directly, same precision); *speed-up vs seed* = "
              "the seed recipe's s / photo ÷ this row's; *% of decode limit* = decode tok/s ÷ (bandwidth ÷ "
              "bytes of weights read per token: the GGUF language-model file; for transformers the decoder "
              "layers and output head as loaded, quantized ones at their packed size); *estimate* = "
              "`captioneer.backends.estimate.estimate_memory(...).total_gb` (with its safety margin) "
              "and *estimate "
              "error* = estimate ÷ peak RSS with the weight copy − 1; *with weight copy* = peak RSS + the "
              "extra memory llama.cpp's default weight buffers (AMX or repacked kernels) took when loading "
              "the same model (measured by loading it both ways; 0 where the rows ran with them); "
              "*generating* = the highest RSS sampled while the model generated (the peak can come while "
              "loading: transformers maps the bf16 checkpoint and, for fp32, fp16 and int8, builds the "
              "converted weights beside it before it closes the mapping); "
              "*estimated s* = `estimate_seconds`; [load x] = the machine's 1-minute load average just "
              f"before the row (with {m['logical_cpus']} CPUs, above ~{m['logical_cpus'] + 0.5:.1f} other "
              "work shared them)."]
    lines += [f"- {note}" for note in run.notes]
    return "\n".join(lines) + "\n"


def reestimate(out: Path) -> Run:
    """Reload a run's results and recompute its estimates with the estimator as it is now, keeping the ones
    the run made as ``estimate_before`` (to show an estimator fix against the same measurements)."""
    data = json.loads(out.with_suffix(".json").read_text())
    run = Run(settings=data["settings"], machine=data["machine"], files=data["files"], rows=data["rows"],
              notes=data["notes"])
    bandwidth = next((r["gbs"] for r in run.rows if r["kind"] == "bandwidth" and "gbs" in r), 0.0)
    for row in run.rows:
        if row["kind"] == "captioneer" and "estimate" in row:
            row.setdefault("estimate_before", row["estimate"])
            row["estimate"] = estimates(run.settings["size"], row["engine"], row["quant"], row["budget"],
                                        bandwidth, run.settings["threads"])
    save(run, out)
    return run


def save(run: Run, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(run))
    out.with_suffix(".json").write_text(json.dumps(run.to_json(), indent=1) + "\n")


class Bench:
    """The measurements of one run, each appended to ``run`` and saved as soon as it lands."""

    def __init__(self, run: Run, args: argparse.Namespace, photo: Path, prepared: Path, prompt: str,
                 system: str | None, bandwidth_gbs: float) -> None:
        self.run, self.args, self.photo, self.prepared = run, args, photo, prepared
        self.prompt, self.system, self.bandwidth_gbs = prompt, system, bandwidth_gbs
        self.mmproj = mmproj_path(args.size, args.cache)
        self.tiled = args.tiled_mm == "on"

    def _worker(self, job: dict[str, Any], no_amx: bool | None = None) -> dict[str, Any]:
        no_amx = self.args.no_amx if no_amx is None else no_amx
        return run_worker(job, self.args.timeout, no_amx, self.tiled)

    def _add(self, row: dict[str, Any]) -> None:
        self.run.rows.append(row)
        log(f"  {row}")
        save(self.run, self.args.out)

    def weight_copy(self, quant: str, model: Path) -> int:
        """Bytes llama.cpp's default weight buffers add when loading ``model`` (the rows run without them
        where they crash): the model loaded both ways, nothing else."""
        job = {"kind": "load", "model": str(model), "n_ctx": context_size(min(self.args.budgets)),
               "threads": self.args.threads}
        plain, default = self._worker(job, True), self._worker(job, False)
        measured = "error" not in plain and "error" not in default
        copy = max(0, default["peak_rss"] - plain["peak_rss"]) if measured else 0
        self._add({"kind": "load", "quant": quant, "plain": plain, "default": default, "copy_bytes": copy})
        return copy

    def gguf(self, device: str, quant: str, budgets: list[int]) -> None:
        """Captioneer's path and the raw engine call for one GGUF profile at each budget."""
        args = self.args
        model = gguf_path(args.size, quant, args.cache)
        copy = self.weight_copy(quant, model) if device == "cpu" and args.no_amx else 0
        common = {"model": str(model), "mmproj": str(self.mmproj), "threads": args.threads,
                  "max_tokens": args.tokens, "repeats": args.repeats}
        for budget in budgets:
            png, tokens = prepared_png(self.photo, budget, self.prepared)
            log(f"Captioneer gguf {quant} at {budget} tokens ({device})")
            row = {"kind": "captioneer", "engine": "gguf", "quant": quant, "budget": budget,
                   "device_wanted": device, "llm_bytes": model.stat().st_size, "copy_bytes": copy}
            if device == "cpu":
                row["estimate"] = estimates(args.size, "gguf", quant, budget, self.bandwidth_gbs,
                                            args.threads)
            result = self._worker({"kind": "captioneer", "engine": "gguf", "photo": str(self.photo),
                                   "budget": budget, "device": device, "task": TASK, **common})
            self._add({**row, **result})
            log(f"raw llama-cpp-python {quant} at {budget} tokens ({device})")
            result = self._worker({"kind": "raw", "png": str(png), "prompt": self.prompt,
                                   "system": self.system, "n_ctx": context_size(budget), **common})
            self._add({"kind": "raw", "engine": "gguf", "quant": quant, "budget": budget,
                       "device_wanted": device, "image_tokens": tokens, **result})

    def seed(self, device: str) -> None:
        """The seed documents' recipe on the same photo, untouched."""
        log(f"seed recipe: transformers, no pixel cap ({device})")
        self._add({"kind": "seed", **self._worker({
            "kind": "seed", "model": str(hf_path(self.args.size, self.args.cache)), "photo": str(self.photo),
            "prompt": self.prompt, "threads": self.args.threads, "max_tokens": self.args.tokens,
            "device": device})})

    def transformers(self, device: str, quant: str, budgets: list[int]) -> None:
        """Captioneer's transformers engine and the raw transformers call (no Captioneer code) in one
        precision profile at each budget: on a CPU fp32, bf16, NF4 or int8; on CUDA bf16, NF4 or int8."""
        args = self.args
        common = {"model": str(hf_path(args.size, args.cache)), "quant": quant, "device": device,
                  "threads": args.threads, "max_tokens": args.tokens, "repeats": args.repeats}
        for budget in budgets:
            png, tokens = prepared_png(self.photo, budget, self.prepared)
            log(f"Captioneer transformers {quant} at {budget} tokens ({device})")
            row = {"kind": "captioneer", "engine": "transformers", "quant": quant, "budget": budget,
                   "device_wanted": device}
            if device == "cpu":
                row["estimate"] = estimates(args.size, "transformers", quant, budget, self.bandwidth_gbs,
                                            args.threads)
            result = self._worker({"kind": "captioneer", "engine": "transformers", "photo": str(self.photo),
                                   "budget": budget, "task": TASK, **common})
            self._add({**row, **result})
            log(f"raw transformers {quant} at {budget} tokens ({device})")
            result = self._worker({"kind": "raw_transformers", "png": str(png), "prompt": self.prompt,
                                   "system": self.system, **common})
            self._add({"kind": "raw", "engine": "transformers", "quant": quant, "budget": budget,
                       "device_wanted": device, "image_tokens": tokens, **result})

    def tagger(self, quant: str, photos: list[Path]) -> None:
        """``captioneer tag`` over the generated photos."""
        args = self.args
        log(f"captioneer tag, gguf {quant} at {args.tagger_budget} tokens, {len(photos)} photos")
        result = run_tagger(photos[0].parent, gguf_path(args.size, quant, args.cache), self.mmproj,
                            args.tagger_budget, args)
        self._add({"kind": "tagger", "quant": quant, "budget": args.tagger_budget, **result})


# ---------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="2B", choices=("2B", "4B", "8B"))
    parser.add_argument("--quants", nargs="+", default=["Q4_K_M", "Q8_0", "F16"])
    parser.add_argument("--budgets", nargs="+", type=int, default=[256, 512, 1024],
                        help="image budgets for the first quantization (default 256 512 1024)")
    parser.add_argument("--other-budgets", nargs="+", type=int, default=[512],
                        help="image budgets for the other quantizations (default 512)")
    parser.add_argument("--tokens", type=int, default=64, help="output tokens per photo (default 64)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2,
                        help="photos per GGUF or transformers row, the fastest counts (default 2; the seed "
                        "recipe runs once)")
    parser.add_argument("--tagger-quants", nargs="*", default=["Q4_K_M"])
    parser.add_argument("--tagger-budget", type=int, default=512)
    parser.add_argument("--transformers-quants", nargs="*", default=["fp32", "bf16", "fp16", "nf4", "int8"],
                        help="the transformers engine's CPU profiles to measure (default fp32 bf16 fp16 nf4 "
                        "int8; on CUDA bf16 nf4 int8 are measured at every --budgets)")
    parser.add_argument("--transformers-budgets", nargs="+", type=int, default=[512],
                        help="image budgets for the transformers CPU profiles (default 512)")
    parser.add_argument("--no-seed", action="store_true", help="skip the seed recipe (the slowest row)")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.md")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds one row may take")
    parser.add_argument("--reestimate", action="store_true",
                        help="measure nothing: recompute the estimates of the results in --out, rewrite them")
    parser.add_argument("--amx", choices=("auto", "on", "off"), default="auto",
                        help="llama.cpp's AMX weight buffers: auto = off where the CPU has AMX (they crash)")
    parser.add_argument("--tiled-mm", choices=("on", "off"), default="off",
                        help="llama.cpp's tiled CPU matmul (GGML_CPU_TILED_MM); default off: it made "
                        "decoding ~20x slower here")
    args = parser.parse_args()
    # A plain ``kill`` ends the run like Ctrl-C: subprocess.run then kills the row's worker too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if args.reestimate:
        print(render(reestimate(args.out)))
        return
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
                  "repeats": args.repeats, "transformers_quants": args.transformers_quants,
                  "transformers_budgets": args.transformers_budgets,
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

    from captioneer.desktop.core.tasks import get_task, render_prompt

    task = get_task(TASK)
    bench = Bench(run, args, photo, prepared, render_prompt(task), task.system, bandwidth.get("gbs", 0.0))
    first, *others = args.quants
    for device in devices:
        bench.gguf(device, first, args.budgets)
        if device == "cpu" and not args.no_seed:
            bench.seed("cpu")
        for quant in others:
            bench.gguf(device, quant, args.other_budgets)
    for quant in args.transformers_quants:
        bench.transformers("cpu", quant, args.transformers_budgets)
    if gpu:
        if not args.no_seed:
            bench.seed("cuda")
        for quant in ("bf16", "nf4", "int8"):
            bench.transformers("cuda", quant, args.budgets)
    for quant in args.tagger_quants:
        bench.tagger(quant, photos)

    run.settings["finished"] = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    run.settings["load_average_end"] = round(os.getloadavg()[0], 2)
    save(run, args.out)
    print(render(run))


if __name__ == "__main__":
    main()
