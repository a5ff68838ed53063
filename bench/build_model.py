"""Builds a real-size Qwen3-VL with random weights (2B, 4B or 8B), converts it to GGUF and quantizes it.

Speed and memory depend on the architecture, not on the weight values, so a model built from the official
configuration with random weights costs what the released one costs. Weights cannot be downloaded here; this
builds them. Everything lands in a cache outside the repository (default ``~/.cache/captioneer-bench``)::

    <cache>/qwen3-vl-2b/hf/                  transformers folder (bf16 safetensors, tokenizer, processor)
    <cache>/qwen3-vl-2b/gguf/model-f16.gguf  language model, F16 (llama.cpp's convert_hf_to_gguf.py)
    <cache>/qwen3-vl-2b/gguf/model-q4_k_m.gguf, model-q8_0.gguf   quantized with llama.cpp's quantizer
    <cache>/qwen3-vl-2b/gguf/mmproj-f16.gguf vision projector, F16

The tokenizer is the small one of the test fixtures (``tests/fixtures/make_tiny_models.py``), but the
embedding matrix has the real 151,936 rows, so the files are full size; the output head only picks printable
words that start with a space, so every engine writes exactly the number of tokens asked for and streams them
one at a time (transformers' streamer holds text back until a space). Each step is skipped when its output
exists. Run ``python bench/build_model.py --size 2B``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

import make_tiny_models as tiny  # noqa: E402  (the fixture builder: tokenizer, template, converter)

CACHE = Path(os.environ.get("CAPTIONEER_BENCH_CACHE", Path.home() / ".cache" / "captioneer-bench"))
VOCAB = 151_936
QUANTS = {"Q4_K_M": 15, "Q8_0": 7}
"""llama.cpp's ``LLAMA_FTYPE_MOSTLY_*`` numbers for the quantizations the catalog lists."""

ARCHITECTURES = {
    "2B": {
        "text": {"hidden_size": 2048, "intermediate_size": 6144, "num_hidden_layers": 28,
                 "num_attention_heads": 16, "tie_word_embeddings": True},
        "vision": {"depth": 24, "hidden_size": 1024, "intermediate_size": 4096, "num_heads": 16,
                   "deepstack_visual_indexes": [5, 11, 17]},
    },
    "4B": {
        "text": {"hidden_size": 2560, "intermediate_size": 9728, "num_hidden_layers": 36,
                 "num_attention_heads": 32, "tie_word_embeddings": True},
        "vision": {"depth": 24, "hidden_size": 1024, "intermediate_size": 4096, "num_heads": 16,
                   "deepstack_visual_indexes": [5, 11, 17]},
    },
    "8B": {
        "text": {"hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36,
                 "num_attention_heads": 32, "tie_word_embeddings": False},
        "vision": {"depth": 27, "hidden_size": 1152, "intermediate_size": 4304, "num_heads": 16,
                   "deepstack_visual_indexes": [8, 16, 24]},
    },
}
"""The Qwen3-VL-{2B,4B,8B}-Instruct config.json numbers (reference/models.md, Architecture). The 2B built from
them has 2,127,532,032 parameters, as the released model."""


def model_dir(size: str, cache: Path = CACHE) -> Path:
    """The cache folder of one model size."""
    return cache / f"qwen3-vl-{size.lower()}"


def gguf_path(size: str, quant: str, cache: Path = CACHE) -> Path:
    """The language-model GGUF of ``size`` at ``quant`` (``F16``, ``Q4_K_M``, ``Q8_0``)."""
    return model_dir(size, cache) / "gguf" / f"model-{quant.lower()}.gguf"


def mmproj_path(size: str, cache: Path = CACHE) -> Path:
    """The F16 vision projector of ``size``."""
    return model_dir(size, cache) / "gguf" / "mmproj-f16.gguf"


def hf_path(size: str, cache: Path = CACHE) -> Path:
    """The transformers folder of ``size``."""
    return model_dir(size, cache) / "hf"


def qwen3vl_config(size: str, tokenizer):
    """The real configuration of ``size`` with the fixture tokenizer's special-token ids."""
    from transformers import Qwen3VLConfig

    arch = ARCHITECTURES[size]
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in tiny.SPECIAL_TOKENS}
    hidden = arch["text"]["hidden_size"]
    return Qwen3VLConfig(
        text_config={
            **arch["text"],
            "vocab_size": VOCAB,
            "num_key_value_heads": 8,
            "head_dim": 128,
            "hidden_act": "silu",
            "max_position_embeddings": 262144,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 5_000_000.0,
                "mrope_section": [24, 20, 20],
                "mrope_interleaved": True,
            },
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            **arch["vision"],
            "hidden_act": "gelu_pytorch_tanh",
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "out_hidden_size": hidden,
            "num_position_embeddings": 2304,
            "in_channels": 3,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=arch["text"]["tie_word_embeddings"],
    )


def build_hf(size: str, out: Path) -> int:
    """Write the random-weight model (bf16), tokenizer and processor to ``out``; return its parameters."""
    import torch
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    torch.manual_seed(tiny.SEED)
    tokenizer = tiny.build_tokenizer(vocab_size=384)
    config = qwen3vl_config(size, tokenizer)
    torch.set_default_dtype(torch.bfloat16)
    try:
        model = Qwen3VLForConditionalGeneration(config).eval()
    finally:
        torch.set_default_dtype(torch.float32)
    params = sum(p.numel() for p in model.parameters())
    keep_word_head(model, tokenizer)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    model.generation_config.eos_token_id = [eos, pad]
    model.generation_config.pad_token_id = pad
    # The released processor: 16-pixel patches, 2×2 merge, up to 16,384 tokens per image (no app-side cap).
    image_processor = Qwen2VLImageProcessor(
        size={"shortest_edge": 64 * 32 * 32, "longest_edge": 16384 * 32 * 32}, patch_size=16,
        temporal_patch_size=2, merge_size=2, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
    )
    video_processor = Qwen3VLVideoProcessor(
        size={"shortest_edge": 128 * 32 * 32, "longest_edge": 768 * 32 * 32}, patch_size=16,
        temporal_patch_size=2, merge_size=2, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
    )
    tokenizer.chat_template = tiny.CHAT_TEMPLATE
    processor = Qwen3VLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
        chat_template=tiny.CHAT_TEMPLATE,
    )
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    model.save_pretrained(partial, safe_serialization=True)
    processor.save_pretrained(partial)
    tokenizer_config = partial / "tokenizer_config.json"
    data = json.loads(tokenizer_config.read_text())
    data["chat_template"] = tiny.CHAT_TEMPLATE
    tokenizer_config.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    partial.rename(out)
    return params


def keep_word_head(model, tokenizer) -> None:
    """Zero the output-head rows of every token but the small tokenizer's words with a leading space
    (" the", " dog", ...: a space and ASCII letters).

    The rows past the tokenizer (up to 151,936), the special tokens (end of text included), partial UTF-8
    bytes and word pieces then score 0 and lose to any positive logit, so every engine writes the full number
    of visible tokens that was asked for: random weights cannot stop early or stream empty pieces; the answer
    has exactly one space per token (the benchmark counts them); and since each token starts a word,
    transformers' ``TextIteratorStreamer`` (which holds text back until a space) passes them on one by one
    as llama.cpp does. The matrix keeps its full size (the 2B ties it to the input
    embeddings), so it costs what the real one costs.
    """
    import torch

    special = set(tokenizer.convert_tokens_to_ids(list(tiny.SPECIAL_TOKENS)))
    head = model.get_output_embeddings().weight
    keep = torch.zeros(head.shape[0], dtype=torch.bool)
    for token_id in range(len(tokenizer)):
        text = tokenizer.decode([token_id])
        keep[token_id] = (token_id not in special and len(text) > 1 and text[0] == " "
                          and text[1:].isascii() and text[1:].isalpha())
    if not keep.any():
        raise RuntimeError("The tokenizer has no word tokens with a leading space to keep in the output head")
    with torch.no_grad():
        head[~keep] = 0.0


def llama_cpp_source(cache: Path = CACHE) -> Path:
    """llama.cpp's source tree (for ``convert_hf_to_gguf.py``) from the installed llama-cpp-python's sdist,
    fetched once with pip into the cache."""
    import llama_cpp

    version = llama_cpp.__version__
    tree = cache / f"llama_cpp_python-{version}" / "vendor" / "llama.cpp"
    if (tree / "convert_hf_to_gguf.py").is_file():
        return tree
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", f"llama-cpp-python=={version}", "--no-deps",
             "--no-binary", ":all:", "-d", tmp],
            check=True,
        )
        archive = next(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        with tarfile.open(archive) as tar:
            tar.extractall(cache, filter="data")
    return tree


def quantize(source: Path, target: Path, ftype: int, threads: int) -> None:
    """Quantize ``source`` to ``target`` with llama.cpp's own quantizer (``llama_model_quantize``)."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads
    partial = target.with_name(target.name + ".partial")
    status = llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), params)
    if status != 0:
        raise SystemExit(f"llama_model_quantize failed ({status}) for {target.name}")
    partial.rename(target)


def ensure_model(size: str = "2B", cache: Path = CACHE, threads: int = 2, log=print) -> dict[str, int]:
    """Build whatever of ``size``'s files is missing; return each file's size in bytes."""
    hf = hf_path(size, cache)
    if not (hf / "config.json").is_file():
        start = time.perf_counter()
        params = build_hf(size, hf)
        log(f"built {hf} ({params:,} parameters, {time.perf_counter() - start:.0f} s)")
    f16, mmproj = gguf_path(size, "F16", cache), mmproj_path(size, cache)
    if not (f16.is_file() and mmproj.is_file()):
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            tiny.convert_to_gguf(hf, Path(tmp), llama_cpp_source(cache))
            f16.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(Path(tmp) / "mmproj.gguf", mmproj)
            shutil.move(Path(tmp) / "model.gguf", f16)
        log(f"converted to {f16.name} + {mmproj.name} ({time.perf_counter() - start:.0f} s)")
    for quant, ftype in QUANTS.items():
        target = gguf_path(size, quant, cache)
        if not target.is_file():
            start = time.perf_counter()
            quantize(f16, target, ftype, threads)
            log(f"quantized {target.name} ({time.perf_counter() - start:.0f} s)")
    files = [gguf_path(size, q, cache) for q in ("F16", *QUANTS)] + [mmproj]
    return {path.name: path.stat().st_size for path in files}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(ARCHITECTURES), default="2B")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    for name, size in ensure_model(args.size, args.cache, args.threads).items():
        print(f"{name}: {size:,} bytes")


if __name__ == "__main__":
    main()
