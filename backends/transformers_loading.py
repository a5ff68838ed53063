"""How the transformers engine finds and sets up a model: the model folder (never downloaded), the device, the
precision profile (bitsandbytes NF4/int8 included, probed before loading) and the attention kernel."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from captioneer.backends.errors import ConfigurationError, ModelFileError, setting

if TYPE_CHECKING:
    import torch

PROFILES: tuple[str, ...] = ("bf16", "fp16", "fp32", "nf4", "int8")
"""Precision profiles: plain dtypes, bitsandbytes 4-bit NF4 (double quantization, bf16 compute), LLM.int8."""

BITSANDBYTES_PROFILES = frozenset({"nf4", "int8"})
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
QWEN3_VL_TYPES = frozenset({"qwen3_vl", "qwen3_vl_moe"})

# The vision tower and the output head stay unquantized: quantizing them costs quality for little memory.
SKIP_QUANTIZATION = ["model.visual", "lm_head"]

_ALTERNATIVES = {
    "nf4": setting("quant", "use --quant bf16", "set the Precision to bf16")
    + " (or fp16 on a GPU), or the gguf engine with a Q4_K_M model",
    "int8": setting("quant", "use --quant nf4 or bf16", "set the Precision to nf4 or bf16")
    + ", or the gguf engine with a Q8_0 model",
}


def choose_device(requested: str, *, cuda: bool, mps: bool) -> str:
    """The torch device to run on: ``auto`` picks CUDA, then Apple MPS, then the CPU.

    Raises:
        ConfigurationError: an unknown device, or one this machine does not have.
    """
    if requested == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    kind = requested.split(":", 1)[0]
    if kind not in DEVICES:
        raise ConfigurationError(f"Unknown device '{requested}'. Choose one of: {', '.join(DEVICES)}.")
    if kind == "cuda" and not cuda:
        raise ConfigurationError(
            "CUDA was requested but PyTorch sees no NVIDIA GPU (or was installed without CUDA support). "
            + setting("device", "Use --device auto or cpu.", "Set the Device to auto or cpu.")
        )
    if kind == "mps" and not mps:
        raise ConfigurationError(
            "Apple MPS was requested but is not available. "
            + setting("device", "Use --device auto or cpu.", "Set the Device to auto or cpu.")
        )
    return requested


def choose_profile(quant: str | None, device: str, *, bf16_supported: bool) -> str:
    """The precision profile to load with: the user's choice, checked, or a sensible default per device.

    Defaults: bf16 on a CUDA GPU that has it (else fp16), fp16 on Apple MPS, fp32 on the CPU.

    Raises:
        ConfigurationError: an unknown profile, or one the device cannot run, naming the alternative.
    """
    kind = device.split(":", 1)[0]
    if quant is None:
        if kind == "cuda":
            return "bf16" if bf16_supported else "fp16"
        return "fp16" if kind == "mps" else "fp32"
    profile = quant.lower()
    if profile not in PROFILES:
        raise ConfigurationError(
            f"Unknown precision '{quant}' for the transformers engine. Choose one of: {', '.join(PROFILES)}."
        )
    if profile in BITSANDBYTES_PROFILES and kind == "mps":
        raise ConfigurationError(
            f"bitsandbytes {profile} does not run on Apple MPS: "
            + setting("quant", "use --quant fp16", "set the Precision to fp16") + ", or the gguf engine "
            "(Metal) with a quantized model."
        )
    if profile == "bf16" and kind == "cuda" and not bf16_supported:
        raise ConfigurationError(
            "This GPU has no bfloat16 support: "
            + setting("quant", "use --quant fp16", "set the Precision to fp16") + " (nf4 for less memory)."
        )
    return profile


def resolve_model_dir(model: str) -> Path:
    """A local model folder, or the cached snapshot of a Hugging Face repo id; never downloads.

    Raises:
        ModelFileError: nothing there, not downloaded yet, not Qwen3-VL, or no safetensors weights.
    """
    if not model:
        raise ModelFileError(
            "No model given for the transformers engine: "
            + setting("model", "pass --model FOLDER or a repo id.", "choose the model folder.")
        )
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelFileError(
                f"{path} is a file; the transformers engine needs a model folder (config.json, "
                "*.safetensors, tokenizer and processor files)."
            )
    elif model.count("/") == 1 and not model.startswith((".", "/", "~")):
        path = _cached_snapshot(model)
    else:
        raise ModelFileError(f"The model folder {path} does not exist.")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ModelFileError(f"{path} is not a Hugging Face model folder: config.json is missing.")
    try:
        model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"Cannot read {config_file}: {exc}") from None
    if model_type not in QWEN3_VL_TYPES:
        raise ModelFileError(
            f"{path} holds a '{model_type}' model; Captioneer runs Qwen3-VL models (model_type qwen3_vl)."
        )
    if not any(path.glob("*.safetensors")):
        if any(path.glob("*.bin")) or any(path.glob("*.pt")):
            raise ModelFileError(
                f"{path} has only PyTorch pickle weights (.bin); Captioneer loads safetensors only, because "
                "pickle files can run code. Download the safetensors version of the model."
            )
        raise ModelFileError(f"{path} has no *.safetensors weights (incomplete download?).")
    return path


def _cached_snapshot(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except LocalEntryNotFoundError:
        raise ModelFileError(
            f"{repo_id} is not downloaded yet. Download it first (Captioneer's model download, or "
            f"`hf download {repo_id}`); the transformers engine itself never goes online."
        ) from None


def probe_bitsandbytes(profile: str, device: str) -> None:
    """Run one tiny quantized layer on ``device``: some bitsandbytes builds lack a mode on some platforms,
    and that must be a clear message before minutes of loading, not a stack trace halfway through."""
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigurationError(
            f"The {profile} profile needs bitsandbytes: pip install bitsandbytes — "
            f"or {_ALTERNATIVES[profile]}."
        )
    # On import, bitsandbytes warns that an optional CPU kernel from the Hugging Face Hub is missing;
    # Captioneer never downloads code, so for users that warning is noise.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    import bitsandbytes as bnb
    import torch

    try:
        if profile == "nf4":
            layer = bnb.nn.Linear4bit(64, 64, bias=False, compute_dtype=torch.bfloat16, quant_type="nf4",
                                      compress_statistics=True)
            layer = layer.to(device)
            layer(torch.ones(1, 64, dtype=torch.bfloat16, device=device))
        else:
            layer = bnb.nn.Linear8bitLt(64, 64, bias=False, has_fp16_weights=False, threshold=6.0)
            layer = layer.to(device)
            layer(torch.ones(1, 64, dtype=torch.float16, device=device))
    except (RuntimeError, NotImplementedError, AttributeError, TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"The installed bitsandbytes {bnb.__version__} cannot run {profile} on {device} ({exc}). "
            f"Instead, {_ALTERNATIVES[profile]}."
        ) from None


def dtype_for(profile: str) -> torch.dtype:
    """The dtype of the weights that stay unquantized (and of the activations)."""
    import torch

    # LLM.int8 works in half precision: it would cast float32 inputs to float16 anyway.
    return {
        "bf16": torch.bfloat16, "nf4": torch.bfloat16, "fp16": torch.float16, "int8": torch.float16,
        "fp32": torch.float32,
    }[profile]


def quantization_config(profile: str) -> Any:
    if profile not in BITSANDBYTES_PROFILES:
        return None
    import torch
    from transformers import BitsAndBytesConfig

    if profile == "nf4":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
            llm_int8_skip_modules=SKIP_QUANTIZATION,
        )
    return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=SKIP_QUANTIZATION)


def choose_attention(device: str, profile: str, *, wanted: bool, flash_installed: bool) -> str:
    """Flash attention where it is wanted, installed and can run (CUDA, half precision); SDPA elsewhere."""
    if wanted and flash_installed and device.startswith("cuda") and profile != "fp32":
        return "flash_attention_2"
    return "sdpa"
