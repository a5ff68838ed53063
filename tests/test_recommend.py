"""The recommendation: a table of machines with their first choice, fit and consistency rules, the estimates
against the measurements in models.md, and `captioneer recommend`."""

from __future__ import annotations

import dataclasses
import json

import pytest

from captioneer.backends.catalog import load_catalog
from captioneer.backends.errors import ConfigurationError
from captioneer.backends.estimate import (
    ENGINE_COSTS,
    Device,
    costs_of,
    estimate_memory,
    estimate_seconds,
    vision_activation_bytes,
)
from captioneer.backends.hardware import Fact, hypothetical_hardware
from captioneer.backends.hardware_probes import probe_hardware
from captioneer.backends.recommend import GPU_DEVICES, quality_rank, recommend
from captioneer.backends.registry import ENGINES
from captioneer.desktop.cli import main
from captioneer.desktop.core.paths import models_dir
from captioneer.desktop.core.settings import load_settings

# machine -> (first profile, its image budget). Memory in GB as GPU tools show it.
MACHINES = {
    "nvidia 4 GB": (dict(gpu="nvidia", vram_gb=4, ram_gb=16), "qwen3-vl-2b-gguf-q4_k_m", 1024),
    "nvidia 6 GB": (dict(gpu="nvidia", vram_gb=6, ram_gb=16), "qwen3-vl-4b-gguf-q4_k_m", 1024),
    "nvidia 8 GB": (dict(gpu="nvidia", vram_gb=8, ram_gb=32), "qwen3-vl-8b-gguf-q4_k_m", 512),
    "nvidia 12 GB": (dict(gpu="nvidia", vram_gb=12, ram_gb=32), "qwen3-vl-8b-gguf-q8_0", 1024),
    "nvidia 16 GB": (dict(gpu="nvidia", vram_gb=16, ram_gb=32), "qwen3-vl-8b-gguf-q8_0", 1024),
    "nvidia 24 GB": (dict(gpu="nvidia", vram_gb=24, ram_gb=64), "qwen3-vl-8b-gguf-q8_0", 1024),
    "M1 8 GB": (dict(gpu="apple", ram_gb=8, chip="M1"), "qwen3-vl-2b-gguf-q4_k_m", 1024),
    "M2 16 GB": (dict(gpu="apple", ram_gb=16, chip="M2"), "qwen3-vl-8b-gguf-q4_k_m", 512),
    "M3 Max 64 GB": (dict(gpu="apple", ram_gb=64, chip="M3 Max"), "qwen3-vl-8b-gguf-q8_0", 1024),
    "CPU 8 GB": (dict(gpu="none", ram_gb=8), "qwen3-vl-2b-gguf-q4_k_m", 256),
    "CPU 16 GB": (dict(gpu="none", ram_gb=16), "qwen3-vl-2b-gguf-q8_0", 256),
    "CPU 32 GB": (dict(gpu="none", ram_gb=32), "qwen3-vl-2b-gguf-q8_0", 256),
    "CPU 32 GB, 2 cores": (dict(gpu="none", ram_gb=32, cores=2), "qwen3-vl-2b-gguf-q4_k_m", 256),
    "CPU 32 GB, 8 cores": (dict(gpu="none", ram_gb=32, cores=8), "qwen3-vl-4b-gguf-q4_k_m", 256),
    "AMD 16 GB": (dict(gpu="amd", vram_gb=16, ram_gb=32), "qwen3-vl-8b-gguf-q8_0", 1024),
    "nvidia 2 GB (too small: CPU)": (dict(gpu="nvidia", vram_gb=2, ram_gb=16), "qwen3-vl-2b-gguf-q8_0", 256),
}


@pytest.mark.parametrize("name", list(MACHINES))
def test_first_choice_and_every_listed_profile_fits(name):
    spec, first_id, first_tokens = MACHINES[name]
    profiles = recommend(hypothetical_hardware(**spec))
    assert profiles, "something must fit"
    assert (profiles[0].variant.id, profiles[0].image_tokens) == (first_id, first_tokens)
    assert profiles[0].quant != "int8"
    for profile in profiles:
        assert profile.fits and profile.memory_gb <= profile.device.usable_gb
        assert profile.reason.endswith(".") and f"{profile.image_tokens} image tokens" in profile.reason
    assert "the best quality that fits" in profiles[0].reason or "fastest" in profiles[0].reason


def test_the_done_when_case_8_gb_nvidia():
    profiles = recommend(hypothetical_hardware("nvidia", vram_gb=8, ram_gb=32))
    first = profiles[0]
    assert first.device.kind == "cuda" and first.memory_gb <= 8.0
    assert "of the 8.0 GB of VRAM" in first.reason and "vision encoder" in first.reason
    int8 = [p for p in profiles if p.quant == "int8"]
    assert int8 and all("never the first choice" in p.reason for p in int8)


def _first_quality(**spec):
    return quality_rank(recommend(hypothetical_hardware(**spec))[0])


@pytest.mark.parametrize(
    ("kind", "sizes", "spec"),
    [
        ("nvidia", [2 + n / 2 for n in range(93)], lambda gb: dict(gpu="nvidia", vram_gb=gb, ram_gb=32)),
        ("apple", [8 + 2 * n for n in range(61)], lambda gb: dict(gpu="apple", ram_gb=gb, chip="M3 Max")),
        ("cpu", [8 + 2 * n for n in range(61)], lambda gb: dict(gpu="none", ram_gb=gb)),
    ],
)
def test_more_memory_never_gets_a_worse_first_choice(kind, sizes, spec):
    """"Worse" is a lower (model size, quantization tier, image budget), compared in that order."""
    ranks = [_first_quality(**spec(gb)) for gb in sizes]
    for smaller, (low, high) in zip(sizes, zip(ranks, ranks[1:], strict=False), strict=False):
        assert high >= low, f"{kind}: first choice got worse above {smaller} GB: {low} -> {high}"
    assert ranks[-1] > ranks[0]


def test_mac_prefers_gguf_and_never_bitsandbytes():
    for ram in (8, 16, 24, 36, 64, 128):
        profiles = recommend(hypothetical_hardware("apple", ram_gb=ram, chip="M4 Pro"), include_unfit=True)
        assert profiles[0].engine == "gguf" and profiles[0].device.kind == "metal"
        assert not [p for p in profiles if p.quant in ("nf4", "int8", "bf16")]
        position = {(p.model, p.engine, p.quant): index for index, p in enumerate(profiles) if p.fits}
        for (model, engine, _), index in position.items():
            if engine == "transformers":  # fp16 on MPS ranks after GGUF F16 of the same model
                assert position[(model, "gguf", "F16")] < index


def test_usable_memory_on_a_mac_is_the_labelled_metal_share():
    small = hypothetical_hardware("apple", ram_gb=16, chip="M2")
    large = hypothetical_hardware("apple", ram_gb=64, chip="M3 Max")
    assert small.gpu.usable_gb.value == pytest.approx(16 * 2 / 3, abs=0.01)
    assert large.gpu.usable_gb.value == pytest.approx(48.0)
    assert "2/3 of RAM" in small.gpu.usable_gb.source and "3/4 of RAM" in large.gpu.usable_gb.source
    first = recommend(small)[0]
    assert "Metal working set (2/3 of RAM" in first.reason


def test_bitsandbytes_only_where_the_build_supports_the_device():
    nvidia = hypothetical_hardware("nvidia", vram_gb=12, ram_gb=32)
    with_bnb = {p.quant for p in recommend(nvidia, include_unfit=True) if p.engine == "transformers"}
    assert with_bnb == {"bf16", "nf4", "int8"}
    no_cuda_build = dataclasses.replace(nvidia, bitsandbytes=Fact(["cpu"], "test: a CPU-only build"))
    without = {p.quant for p in recommend(no_cuda_build, include_unfit=True) if p.engine == "transformers"}
    assert without == {"bf16"}


def test_cpu_only_uses_a_small_image_budget_and_no_transformers():
    for ram in (8, 16, 32, 64):
        profiles = recommend(hypothetical_hardware("none", ram_gb=ram), include_unfit=True)
        assert all(p.image_tokens <= 512 and p.device.kind == "cpu" for p in profiles)
        assert 256 <= profiles[0].image_tokens <= 512
        assert not [p for p in profiles if p.engine == "transformers"]


def test_engine_filter_and_unfit_profiles():
    hardware = hypothetical_hardware("nvidia", vram_gb=8, ram_gb=32)
    only_ollama = recommend(hardware, engines={"ollama"})
    assert only_ollama and {p.engine for p in only_ollama} == {"ollama"}
    everything = recommend(hardware, include_unfit=True)
    fits = [p.fits for p in everything]
    assert fits == sorted(fits, reverse=True) and not fits[-1]
    unfit = [p for p in everything if not p.fits]
    assert all("more than the 8.0 GB of VRAM" in p.reason for p in unfit)
    assert {p.variant.id for p in unfit} >= {"qwen3-vl-8b-gguf-f16", "qwen3-vl-8b-gguf-q8_0"}


# The estimates against what models.md measured: real-size 2B Q4_K_M + F16 mmproj on a 2-core x86 CPU,
# 22.6 GB/s, one 1600×1200 photo, 64 output tokens.
MEASURED_CPU = Device(kind="cpu", usable_gb=20.0, usable_label="of RAM", bandwidth_gbs=22.6, tflops=2 * 0.048)


def test_vision_memory_counts_the_image_and_is_quadratic_without_flash_attention():
    variant = load_catalog().find("qwen3-vl-2b-gguf-q4_k_m")
    flash = [vision_activation_bytes(variant, tokens, True) for tokens in (256, 512, 1024)]
    assert flash[2] == pytest.approx(4 * flash[0])  # linear in patches
    eager = [vision_activation_bytes(variant, tokens, False) - vision_activation_bytes(variant, tokens, True)
             for tokens in (512, 1024)]
    assert eager[1] == pytest.approx(4 * eager[0])  # the attention scores grow with patches²
    with_image = estimate_memory(variant, 1024, MEASURED_CPU)
    assert with_image.vision_gb > 0.3
    assert with_image.total_gb > estimate_memory(variant, 256, MEASURED_CPU).total_gb


def test_estimates_match_the_measurements():
    variant = load_catalog().find("qwen3-vl-2b-gguf-q4_k_m")
    # Peak RSS, flash attention on: 3.3 GB at 234 tokens, 3.6 GB at 972 tokens (before our safety margin).
    assert estimate_memory(variant, 234, MEASURED_CPU).subtotal_gb == pytest.approx(3.3, rel=0.12)
    assert estimate_memory(variant, 972, MEASURED_CPU).subtotal_gb == pytest.approx(3.6, rel=0.12)
    # Flash attention off (Ollama's case): 8.0 GB at 972 tokens.
    ollama_like = vision_activation_bytes(variant, 972, False) / 1024**3
    no_flash = estimate_memory(variant, 972, MEASURED_CPU).subtotal_gb - estimate_memory(
        variant, 972, MEASURED_CPU).vision_gb + ollama_like
    assert no_flash == pytest.approx(8.0, rel=0.12)
    # Seconds per photo: 23.7 s at 234 tokens, 43.6 s at 494, 89.6 s at 972.
    for tokens, seconds in ((234, 23.7), (494, 43.6), (972, 89.6)):
        assert estimate_seconds(variant, tokens, MEASURED_CPU) == pytest.approx(seconds, rel=0.12)


# Peak RSS (GiB) of Captioneer's transformers engine on the benchmark's real-size 2B, 494 image tokens, on
# a CPU (bench/README.md, 2026-11-22): the mapped bf16 checkpoint counts beside converted/quantized weights.
TRANSFORMERS_CPU_PEAKS = {"bf16": 5.01, "fp16": 8.68, "fp32": 12.64, "nf4": 6.96, "int8": 8.02}


@pytest.mark.parametrize(("quant", "peak"), sorted(TRANSFORMERS_CPU_PEAKS.items()))
def test_transformers_cpu_estimates_cover_the_measured_peaks(quant: str, peak: float) -> None:
    variant = load_catalog().find(f"qwen3-vl-2b-transformers-{quant}")
    estimate = estimate_memory(variant, 494, MEASURED_CPU).total_gb
    assert peak <= estimate <= peak * 1.15


def test_every_catalog_engine_has_a_cost_model() -> None:
    catalog_engines = {variant.engine for variant in load_catalog().variants}
    assert set(ENGINE_COSTS) == catalog_engines and catalog_engines <= set(ENGINES)
    with pytest.raises(ConfigurationError, match="no cost model for the openai engine"):
        costs_of("openai")


def test_json_output_of_the_command(capsys):
    assert main(["recommend", "--gpu", "nvidia", "--vram-gb", "8", "--ram-gb", "32", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    first = payload[0]
    keys = ("model", "engine", "quant", "image_tokens", "memory_gb", "seconds_per_photo", "reason", "fits")
    assert set(keys) <= set(first)
    assert first["model"] == "qwen3-vl-8b" and first["memory_gb"] <= 8.0 and first["fits"]
    assert (first["device"], first["usable_gb"], first["profile"]) == ("cuda", 8.0, "qwen3-vl-8b-gguf-q4_k_m")
    # Stable: the same question gives the same bytes.
    assert main(["recommend", "--gpu", "nvidia", "--vram-gb", "8", "--ram-gb", "32", "--json"]) == 0
    assert capsys.readouterr().out == json.dumps(payload, indent=2, sort_keys=True) + "\n"


def test_human_output_and_mistakes(capsys):
    assert main(["recommend", "--gpu", "apple", "--ram-gb", "16", "--chip", "M2 Pro", "--all-profiles"]) == 0
    out = capsys.readouterr().out
    assert "Recommended: qwen3-vl-8b-gguf-q4_k_m" in out and "captioneer models pull" in out
    assert "s/img" in out and "more than the" in out
    assert main(["recommend", "--gpu", "nvidia", "--ram-gb", "16"]) == 2
    assert "--vram-gb" in capsys.readouterr().err
    assert main(["recommend", "--gpu", "none", "--vram-gb", "8"]) == 2


def test_this_machine(capsys):
    """Without a description, `captioneer recommend` ranks this machine's probed facts, whatever it has (a
    GPU or not); the same facts without their GPUs get CPU profiles at a CPU's image budget."""
    assert main(["recommend", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload and all(p["fits"] for p in payload)
    facts = probe_hardware(models_dir(), ollama=load_settings().ollama_host)
    assert payload == json.loads(json.dumps([profile.to_json() for profile in recommend(facts)]))
    assert payload[0]["device"] in {GPU_DEVICES.get(facts.gpu_kind), "cpu"}
    assert all(p["image_tokens"] <= 512 for p in payload if p["device"] == "cpu")
    without_gpu = recommend(dataclasses.replace(facts, gpus=()))
    assert without_gpu and all(p.fits and p.device.kind == "cpu" for p in without_gpu)
    assert without_gpu[0].image_tokens <= 512


def test_a_probed_machine_is_offered_only_its_installed_engines() -> None:
    # The wizard and `captioneer recommend` on this machine must not rank an engine that is not installed
    # (the base app bundle has no transformers engine).
    everything = hypothetical_hardware("nvidia", vram_gb=12, ram_gb=32)
    assert {p.engine for p in recommend(everything)} >= {"gguf", "transformers", "ollama"}
    base_bundle = dataclasses.replace(everything, engines=Fact(["gguf", "ollama", "openai"], "test"))
    engines = {p.engine for p in recommend(base_bundle, include_unfit=True)}
    assert engines == {"gguf", "ollama"}
