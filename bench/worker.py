"""One benchmark measurement in its own process, so that its peak memory is its own.

``python bench/worker.py '<json>'`` runs the measurement the JSON names (``kind``) and prints one line
``RESULT {...}`` with seconds, tokens and peak memory. ``bench/run_all.py`` starts one worker per row.

Kinds:
    captioneer  Captioneer's own path: ``prepare_image`` → ``desktop.core.tasks`` request → the engine host
                (``backends.host.open_backend``), as the app runs it. Engine ``gguf`` or ``transformers``.
    raw         llama-cpp-python used directly (``Llama`` + ``MTMDChatHandler``), no Captioneer code, on the
                PNG Captioneer prepared, with the same prompt and settings.
    seed        The seed documents' recipe: transformers ``generate`` on the photo as it is (no pixel cap),
                one image at a time; fp32 on a CPU, bf16/NF4/int8 with SDPA on CUDA.
    load        A GGUF model loaded and nothing else: the weights' share of the peak memory.
    bandwidth   Memory bandwidth: a timed numpy copy of a large array.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GIB = 1024**3


def peak_rss_bytes(pid: int | str = "self") -> int:
    """The process's peak resident memory (VmHWM) in bytes, from Linux's /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmHWM line")


def gpu_memory_bytes(pid: int) -> int | None:
    """GPU memory ``pid`` holds according to nvidia-smi, or None without nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        return None
    output = subprocess.run(
        ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
        capture_output=True, text=True, check=True,
    ).stdout
    for line in output.splitlines():
        owner, _, mib = line.partition(",")
        if owner.strip() == str(pid):
            return int(mib.strip()) * 1024 * 1024
    return None


def timed_stream(open_stream) -> dict[str, float]:
    """Open a token stream (``open_stream()``, timed too: llama-cpp-python encodes the image before it
    returns) and consume it; return seconds to the first piece, total seconds and the piece count."""
    start = time.perf_counter()
    first = None
    pieces = 0
    for _ in open_stream():
        pieces += 1
        if first is None:
            first = time.perf_counter() - start
    total = time.perf_counter() - start
    return {"first_s": first if first is not None else total, "total_s": total, "tokens": pieces}


def fastest(open_stream, repeats: int) -> dict[str, Any]:
    """Time the stream ``repeats`` times (each from an empty KV cache); the fastest run, with every total."""
    runs = [timed_stream(open_stream) for _ in range(max(1, repeats))]
    best = min(runs, key=lambda run: run["total_s"])
    return {**best, "runs_s": [round(run["total_s"], 2) for run in runs]}


def decode_rate(result: dict[str, float]) -> float | None:
    """Tokens per second after the first token (decoding only)."""
    decode_s = result["total_s"] - result["first_s"]
    return (result["tokens"] - 1) / decode_s if result["tokens"] > 1 and decode_s > 0 else None


def run_captioneer(args: dict[str, Any]) -> dict[str, Any]:
    """Captioneer's path, from the photo file to the answer, through the engine host."""
    from backends.base import EngineConfig
    from backends.host import open_backend
    from backends.request import SamplingOptions
    from desktop.core.images import prepare_image
    from desktop.core.tasks import build_request, get_task

    start = time.perf_counter()
    image = prepare_image(args["photo"], args["budget"])
    prepare_s = time.perf_counter() - start
    config = EngineConfig(
        engine=args["engine"], model=args["model"], mmproj=args.get("mmproj"), quant=args.get("quant"),
        device=args.get("device", "auto"), image_tokens=args["budget"], threads=args["threads"],
        flash_attention=True,
    )
    backend = open_backend(config)
    start = time.perf_counter()
    backend.load()
    load_s = time.perf_counter() - start
    sampling = SamplingOptions(max_new_tokens=args["max_tokens"], temperature=0.0, seed=0)
    request = build_request(get_task(args["task"]), [image], sampling=sampling)
    try:
        result = fastest(lambda: backend.generate(request), args.get("repeats", 1))
        host = backend.pid
        peak = peak_rss_bytes(host) if host else peak_rss_bytes()
        gpu = gpu_memory_bytes(host) if host else None
        info = backend.info()
    finally:
        backend.unload()
    return {
        **result, "prepare_s": prepare_s, "load_s": load_s, "image_tokens": image.tokens,
        "decode_tps": decode_rate(result), "peak_rss": peak, "gpu_bytes": gpu, "device": info.device,
        "worker_rss": peak_rss_bytes(),
    }


def run_raw(args: dict[str, Any]) -> dict[str, Any]:
    """llama-cpp-python directly, on the prepared PNG, EOS suppressed so exactly max_tokens come out."""
    import llama_cpp
    from llama_cpp.llama_chat_format import MTMDChatHandler

    png = Path(args["png"]).read_bytes()
    url = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    offload = bool(llama_cpp.llama_supports_gpu_offload())
    start = time.perf_counter()
    handler = MTMDChatHandler(clip_model_path=args["mmproj"], verbose=False, use_gpu=offload)
    llama = llama_cpp.Llama(
        model_path=args["model"], chat_handler=handler, n_ctx=args["n_ctx"], n_threads=args["threads"],
        n_threads_batch=args["threads"], n_gpu_layers=-1 if offload else 0, flash_attn=True, verbose=False,
    )
    handler._init_mtmd_context(llama)
    load_s = time.perf_counter() - start
    stops = llama.tokenize(b"<|im_end|><|endoftext|>", add_bos=False, special=True)
    messages = []
    if args.get("system"):
        messages.append({"role": "system", "content": args["system"]})
    messages.append({"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": args["prompt"]},
    ]})

    def pieces():
        stream = llama.create_chat_completion(
            messages=messages, stream=True, max_tokens=args["max_tokens"], temperature=0.0, seed=0,
            logit_bias={token: -100.0 for token in stops},
        )
        return (chunk for chunk in stream if chunk["choices"][0]["delta"].get("content"))

    result = fastest(pieces, args.get("repeats", 1))
    llama.close()
    return {**result, "load_s": load_s, "decode_tps": decode_rate(result), "peak_rss": peak_rss_bytes(),
            "device": "cuda" if offload else "cpu"}


def run_load(args: dict[str, Any]) -> dict[str, Any]:
    """Load a GGUF model only and report the peak RSS. With llama.cpp's default weight buffers this includes
    the copy it makes of quantized weights for its AMX or repacked CPU kernels."""
    import llama_cpp

    llama = llama_cpp.Llama(model_path=args["model"], n_ctx=args["n_ctx"], n_threads=args["threads"],
                            flash_attn=True, verbose=False)
    peak = peak_rss_bytes()
    llama.close()
    return {"peak_rss": peak}


def run_seed(args: dict[str, Any]) -> dict[str, Any]:
    """The seed recipe: the processor's defaults on the untouched photo, ``generate`` one image at a time."""
    import torch
    from PIL import Image
    from transformers import AutoProcessor, Qwen3VLForConditionalGeneration, StoppingCriteria

    cuda = torch.cuda.is_available() and args.get("device", "auto") != "cpu"
    torch.set_num_threads(args["threads"])
    quant = args.get("quant", "bf16" if cuda else "fp32")
    kwargs: dict[str, Any] = {"dtype": torch.float32 if quant == "fp32" else torch.bfloat16,
                              "attn_implementation": "sdpa"}
    if quant in ("nf4", "int8"):
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = (
            BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                               bnb_4bit_compute_dtype=torch.bfloat16)
            if quant == "nf4" else BitsAndBytesConfig(load_in_8bit=True)
        )
    if cuda:
        kwargs["device_map"] = "cuda"
    start = time.perf_counter()
    processor = AutoProcessor.from_pretrained(args["model"])
    model = Qwen3VLForConditionalGeneration.from_pretrained(args["model"], **kwargs).eval()
    load_s = time.perf_counter() - start

    class Clock(StoppingCriteria):
        """Notes when each token lands; never stops generation."""

        def __init__(self) -> None:
            self.times: list[float] = []

        def __call__(self, input_ids, scores, **kwargs):
            self.times.append(time.perf_counter())
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    photo = Image.open(args["photo"]).convert("RGB")
    messages = [{"role": "user", "content": [{"type": "image", "image": photo},
                                             {"type": "text", "text": args["prompt"]}]}]
    start = time.perf_counter()
    inputs = processor.apply_chat_template(messages, tokenize=True, add_generation_prompt=True,
                                           return_dict=True, return_tensors="pt").to(model.device)
    prepare_s = time.perf_counter() - start
    grid = inputs["image_grid_thw"][0]
    image_tokens = int(grid.prod()) // 4
    clock = Clock()
    start = time.perf_counter()
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=args["max_tokens"],
                                min_new_tokens=args["max_tokens"], do_sample=False, stopping_criteria=[clock])
    total_s = time.perf_counter() - start
    tokens = int(output.shape[1] - inputs["input_ids"].shape[1])
    result = {"first_s": clock.times[0] - start, "total_s": total_s, "tokens": tokens}
    return {
        **result, "prepare_s": prepare_s, "load_s": load_s, "image_tokens": image_tokens,
        "decode_tps": decode_rate(result), "peak_rss": peak_rss_bytes(),
        "gpu_bytes": torch.cuda.max_memory_allocated() if cuda else None, "device": "cuda" if cuda else "cpu",
        "quant": quant,
    }


def run_bandwidth(args: dict[str, Any]) -> dict[str, Any]:
    """Copy a large float array several times; GB/s counts the bytes read plus the bytes written."""
    import numpy as np

    size = int(args.get("gib", 1.0) * GIB)
    source = np.ones(size // 8, dtype=np.float64)
    target = np.empty_like(source)
    np.copyto(target, source)
    best = float("inf")
    for _ in range(args.get("repeats", 5)):
        start = time.perf_counter()
        np.copyto(target, source)
        best = min(best, time.perf_counter() - start)
    return {"gbs": 2 * source.nbytes / best / 1e9, "bytes": source.nbytes, "seconds": best}


KINDS = {"captioneer": run_captioneer, "raw": run_raw, "load": run_load, "seed": run_seed,
         "bandwidth": run_bandwidth}


def main() -> None:
    args = json.loads(sys.argv[1])
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    result = KINDS[args["kind"]](args)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
