"""One benchmark measurement in its own process, so that its peak memory is its own.

``python bench/worker.py '<json>'`` runs the measurement the JSON names (``kind``) and prints one line
``RESULT {...}`` with seconds, tokens and peak memory. ``bench/run_all.py`` starts one worker per row.

Kinds:
    captioneer  Captioneer's own path: ``prepare_image`` → ``captioneer.desktop.core.tasks`` request → the
                engine host
                (``captioneer.backends.host.open_backend``), as the app runs it. Engine ``gguf`` or
                ``transformers``.
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
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

GIB = 1024**3


def status_bytes(field: str, pid: int | str = "self") -> int:
    """A memory figure (``VmHWM``, ``VmRSS``, ...) of the process in bytes, from Linux's /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/{pid}/status has no {field} line")


def peak_rss_bytes(pid: int | str = "self") -> int:
    """The process's peak resident memory (VmHWM) in bytes."""
    return status_bytes("VmHWM", pid)


class RunningPeak:
    """The highest resident memory of ``pid`` while the ``with`` block runs, sampled every 50 ms: the memory
    a loaded model needs to work, without what loading alone touched (transformers reads the safetensors
    file through a mapping, whose pages count in the lifetime peak but are dropped once the weights are
    copied)."""

    def __init__(self, pid: int | str = "self") -> None:
        self.pid, self.peak = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, status_bytes("VmRSS", self.pid))
            if self._stop.wait(0.05):
                return

    def __enter__(self) -> RunningPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, status_bytes("VmRSS", self.pid))


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
    returns) and consume it; return seconds to the first piece, total seconds, the piece count and the
    text."""
    start = time.perf_counter()
    first = None
    pieces: list[str] = []
    for piece in open_stream():
        pieces.append(piece)
        if first is None:
            first = time.perf_counter() - start
    total = time.perf_counter() - start
    return {"first_s": first if first is not None else total, "total_s": total, "tokens": len(pieces),
            "text": "".join(pieces)}


def fastest(measure, repeats: int) -> dict[str, Any]:
    """Run ``measure`` (one timed generation, from an empty KV cache) ``repeats`` times; the fastest run,
    with every total."""
    runs = [measure() for _ in range(max(1, repeats))]
    best = min(runs, key=lambda run: run["total_s"])
    return {**best, "runs_s": [round(run["total_s"], 2) for run in runs]}


def decode_rate(result: dict[str, float]) -> float | None:
    """Tokens per second after the first token (decoding only)."""
    decode_s = result["total_s"] - result["first_s"]
    return (result["tokens"] - 1) / decode_s if result["tokens"] > 1 and decode_s > 0 else None


def run_captioneer(args: dict[str, Any]) -> dict[str, Any]:
    """Captioneer's path, from the photo file to the answer, through the engine host."""
    from captioneer.backends.base import EngineConfig
    from captioneer.backends.host import open_backend
    from captioneer.backends.registry import options_class
    from captioneer.backends.request import SamplingOptions
    from captioneer.desktop.core.images import prepare_image
    from captioneer.desktop.core.tasks import build_request, get_task

    start = time.perf_counter()
    image = prepare_image(args["photo"], args["budget"])
    prepare_s = time.perf_counter() - start
    wanted = {"mmproj": args.get("mmproj"), "quant": args.get("quant"), "device": args.get("device", "auto"),
              "threads": args["threads"], "flash_attention": True}
    takes = options_class(args["engine"]).model_fields
    config = EngineConfig(
        engine=args["engine"], model=args["model"], image_tokens=args["budget"],
        options={key: value for key, value in wanted.items() if key in takes and value is not None},
    )
    backend = open_backend(config)
    start = time.perf_counter()
    backend.load()
    load_s = time.perf_counter() - start
    sampling = SamplingOptions(max_new_tokens=args["max_tokens"], temperature=0.0, seed=0)
    request = build_request(get_task(args["task"]), [image], sampling=sampling)
    try:
        with RunningPeak(backend.pid or "self") as running:
            result = fastest(lambda: timed_stream(lambda: backend.generate(request)), args.get("repeats", 1))
        if args["engine"] == "transformers":
            # Its streamer passes text on at spaces, not per token; the benchmark model writes one word with
            # a leading space per token (bench/build_model.py), so the spaces count the tokens.
            result["tokens"] = result["text"].count(" ")
        host = backend.pid
        peak = peak_rss_bytes(host) if host else peak_rss_bytes()
        gpu = gpu_memory_bytes(host) if host else None
        info = backend.info()
    finally:
        backend.unload()
    return {
        **result, "prepare_s": prepare_s, "load_s": load_s, "image_tokens": image.tokens,
        "decode_tps": decode_rate(result), "peak_rss": peak, "running_rss": running.peak, "gpu_bytes": gpu,
        "device": info.device,
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
        return (text for chunk in stream if (text := chunk["choices"][0]["delta"].get("content")))

    with RunningPeak() as running:
        result = fastest(lambda: timed_stream(pieces), args.get("repeats", 1))
    llama.close()
    return {**result, "load_s": load_s, "decode_tps": decode_rate(result), "peak_rss": peak_rss_bytes(),
            "running_rss": running.peak, "device": "cuda" if offload else "cpu"}


def run_load(args: dict[str, Any]) -> dict[str, Any]:
    """Load a GGUF model only and report the peak RSS. With llama.cpp's default weight buffers this includes
    the copy it makes of quantized weights for its AMX or repacked CPU kernels."""
    import llama_cpp

    llama = llama_cpp.Llama(model_path=args["model"], n_ctx=args["n_ctx"], n_threads=args["threads"],
                            flash_attn=True, verbose=False)
    peak = peak_rss_bytes()
    llama.close()
    return {"peak_rss": peak}


def _load_hf(model_dir: str, quant: str, cuda: bool, threads: int) -> tuple[Any, Any, float]:
    """transformers' processor and Qwen3-VL model in ``quant`` (fp32, bf16, fp16, nf4 or int8) with SDPA
    attention, set up directly with transformers and bitsandbytes (no Captioneer code): NF4 with double
    quantization and bf16 compute, LLM.int8 in fp16, the vision tower and the output head unquantized."""
    import torch
    from transformers import AutoProcessor, BitsAndBytesConfig, Qwen3VLForConditionalGeneration

    torch.set_num_threads(threads)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "nf4": torch.bfloat16,
             "int8": torch.float16}[quant]
    kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": "sdpa"}
    unquantized = ["model.visual", "lm_head"]
    if quant == "nf4":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16, llm_int8_skip_modules=unquantized)
    elif quant == "int8":
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True,
                                                           llm_int8_skip_modules=unquantized)
    kwargs["device_map"] = {"": "cuda" if cuda else "cpu"}
    start = time.perf_counter()
    processor = AutoProcessor.from_pretrained(model_dir)
    model = Qwen3VLForConditionalGeneration.from_pretrained(model_dir, **kwargs).eval()
    return processor, model, time.perf_counter() - start


def decoder_bytes(model: Any) -> int:
    """Bytes of weights one decoded token reads: the language model's layers and final norm plus the output
    head (the embedding table is only looked up; quantized weights count at their packed size)."""
    seen: set[int] = set()
    total = 0
    language = model.model.language_model
    for name, tensor in [*language.named_parameters(), *model.lm_head.named_parameters()]:
        if name.startswith("embed_tokens") and tensor is not model.lm_head.weight:
            continue
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        total += tensor.numel() * tensor.element_size()
    return total


def _timed_generate(model: Any, inputs: Any, max_tokens: int) -> dict[str, float]:
    """Greedy ``generate`` of exactly ``max_tokens`` tokens (end of text suppressed), with the time of the
    first token taken by a stopping criterion that never stops."""
    import torch
    from transformers import StoppingCriteria

    class Clock(StoppingCriteria):
        """Notes when each token lands; never stops generation."""

        def __init__(self) -> None:
            self.times: list[float] = []

        def __call__(self, input_ids, scores, **kwargs):
            self.times.append(time.perf_counter())
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    clock = Clock()
    start = time.perf_counter()
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=max_tokens, min_new_tokens=max_tokens,
                                do_sample=False, stopping_criteria=[clock])
    total_s = time.perf_counter() - start
    tokens = int(output.shape[1] - inputs["input_ids"].shape[1])
    return {"first_s": clock.times[0] - start, "total_s": total_s, "tokens": tokens,
            "output_ids": output[0, inputs["input_ids"].shape[1]:].tolist()}


def run_seed(args: dict[str, Any]) -> dict[str, Any]:
    """The seed recipe: the processor's defaults on the untouched photo, ``generate`` one image at a time."""
    import torch
    from PIL import Image

    cuda = torch.cuda.is_available() and args.get("device", "auto") != "cpu"
    quant = args.get("quant", "bf16" if cuda else "fp32")
    processor, model, load_s = _load_hf(args["model"], quant, cuda, args["threads"])
    photo = Image.open(args["photo"]).convert("RGB")
    messages = [{"role": "user", "content": [{"type": "image", "image": photo},
                                             {"type": "text", "text": args["prompt"]}]}]
    start = time.perf_counter()
    inputs = processor.apply_chat_template(messages, tokenize=True, add_generation_prompt=True,
                                           return_dict=True, return_tensors="pt").to(model.device)
    prepare_s = time.perf_counter() - start
    image_tokens = int(inputs["image_grid_thw"][0].prod()) // 4
    with RunningPeak() as running:
        result = _timed_generate(model, inputs, args["max_tokens"])
    result.pop("output_ids")
    return {
        **result, "prepare_s": prepare_s, "load_s": load_s, "image_tokens": image_tokens,
        "decode_tps": decode_rate(result), "peak_rss": peak_rss_bytes(), "running_rss": running.peak,
        "gpu_bytes": torch.cuda.max_memory_allocated() if cuda else None, "device": "cuda" if cuda else "cpu",
        "quant": quant,
    }


def run_raw_transformers(args: dict[str, Any]) -> dict[str, Any]:
    """transformers directly (no Captioneer code) on the PNG Captioneer prepared, at exactly its size, with
    the same system prompt, prompt and precision as the Captioneer row; the fastest of ``repeats``."""
    import torch
    from PIL import Image

    cuda = torch.cuda.is_available() and args.get("device", "auto") != "cpu"
    processor, model, load_s = _load_hf(args["model"], args["quant"], cuda, args["threads"])
    image = Image.open(args["png"]).convert("RGB")
    messages = []
    if args.get("system"):
        messages.append({"role": "system", "content": [{"type": "text", "text": args["system"]}]})
    messages.append({"role": "user",
                     "content": [{"type": "image"}, {"type": "text", "text": args["prompt"]}]})
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    area = image.width * image.height
    inputs = processor(text=[text], images=[image], return_tensors="pt",
                       size={"shortest_edge": area, "longest_edge": area}).to(model.device)
    image_tokens = int(inputs["image_grid_thw"][0].prod()) // 4
    with RunningPeak() as running:
        best = fastest(lambda: _timed_generate(model, inputs, args["max_tokens"]), args.get("repeats", 1))
    text = processor.tokenizer.decode(best.pop("output_ids"), skip_special_tokens=True)
    return {
        **best, "load_s": load_s, "image_tokens": image_tokens, "decode_tps": decode_rate(best),
        "peak_rss": peak_rss_bytes(),
        "running_rss": running.peak, "gpu_bytes": torch.cuda.max_memory_allocated() if cuda else None,
        "device": "cuda" if cuda else "cpu",
        "llm_bytes": decoder_bytes(model), "text": text,
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


KINDS = {"captioneer": run_captioneer, "raw": run_raw, "raw_transformers": run_raw_transformers,
         "load": run_load, "seed": run_seed, "bandwidth": run_bandwidth}


def main() -> None:
    args = json.loads(sys.argv[1])
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    result = KINDS[args["kind"]](args)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
