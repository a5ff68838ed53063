"""The hardware recommendation for a library with videos: a clip is one request with the clip budget's visual
tokens (its context and KV cache sized for them), its frames through the vision encoder one token group at a
time (llama.cpp, Ollama) or all at once (transformers); `captioneer recommend --video-tokens/--videos`."""

from __future__ import annotations

import json

import pytest

from captioneer.backends.catalog import load_catalog
from captioneer.backends.estimate import (
    ClipLoad,
    Device,
    clip_vision_bytes,
    context_tokens,
    estimate_clip_memory,
    estimate_clip_seconds,
    estimate_memory,
    estimate_seconds,
    request_seconds,
    vision_activation_bytes,
)
from captioneer.backends.hardware import GIB, hypothetical_hardware
from captioneer.backends.recommend import recommend
from captioneer.backends.registry import engine_class
from captioneer.desktop.cli import main
from captioneer.desktop.core.clip_costs import SHORT_CLIP, TYPICAL_CLIP, clip_budget_estimate, clip_load
from captioneer.desktop.core.settings import Settings, save_settings
from captioneer.desktop.core.video_budget import SamplingMode, plan_sampling

CUDA = Device(kind="cuda", usable_gb=24.0, usable_label="of VRAM", bandwidth_gbs=900.0, tflops=80.0)
METAL = Device(kind="metal", usable_gb=24.0, usable_label="Metal", bandwidth_gbs=200.0, tflops=14.0)
CPU = Device(kind="cpu", usable_gb=20.0, usable_label="of RAM", bandwidth_gbs=22.6, tflops=2 * 0.048)
EIGHT_GB = dict(gpu="nvidia", vram_gb=8, ram_gb=32)


def variant(name: str):
    return load_catalog().find(name)


@pytest.mark.parametrize("tokens", [512, 2048, 4096, 8192, 24576])
@pytest.mark.parametrize("mode", list(SamplingMode))
def test_a_clip_load_is_what_the_sampling_maths_plans(tokens: int, mode: SamplingMode) -> None:
    load = clip_load(tokens, mode)
    typical = plan_sampling(TYPICAL_CLIP, tokens, mode=mode)
    short = plan_sampling(SHORT_CLIP, tokens, mode=mode)
    assert load.budget == tokens and load.frames == typical.frame_count
    assert load.groups * mode.frames_per_group == typical.frame_count
    assert load.visual_tokens == typical.total_tokens <= tokens
    assert load.largest_group_tokens == max(short.tokens_per_frame, typical.tokens_per_frame)
    assert load.duration == TYPICAL_CLIP.duration


# budget → (groups, tokens per group, largest group) of the 15 s 1080p clip: frames as images / true video.
LOADS = {
    4096: ((30, 120, 720), (15, 264, 720)),
    1024: ((16, 60, 252), (15, 60, 480)),
}


@pytest.mark.parametrize("tokens", sorted(LOADS))
def test_clip_load_table(tokens: int) -> None:
    images, video = LOADS[tokens]
    budget = clip_budget_estimate(tokens)
    for load, (groups, per_group, largest) in ((budget.as_frames, images), (budget.as_video, video)):
        assert (load.groups, load.tokens_per_group, load.largest_group_tokens) == (groups, per_group, largest)


def test_each_engine_gets_the_load_of_the_way_it_takes_a_clip() -> None:
    budget = clip_budget_estimate(4096)
    for item in load_catalog().variants:
        video = engine_class(item.engine).capabilities.video_input
        assert budget.load_for(item) is (budget.as_video if video else budget.as_frames)
    assert budget.load_for(variant("qwen3-vl-2b-transformers-bf16")) is budget.as_video
    assert budget.load_for(variant("qwen3-vl-2b-gguf-q4_k_m")) is budget.as_frames


def test_a_clip_sizes_the_kv_cache_for_the_whole_budget() -> None:
    item = variant("qwen3-vl-2b-gguf-q4_k_m")
    photo = estimate_memory(item, 1024, CUDA).kv_cache_gb
    assert estimate_clip_memory(item, clip_budget_estimate(8192).as_frames, CUDA).kv_cache_gb > 2 * photo
    for name in ("qwen3-vl-2b-gguf-q4_k_m", "qwen3-vl-8b-ollama", "qwen3-vl-4b-transformers-bf16"):
        item = variant(name)
        for tokens in (2048, 8192):
            clip = estimate_clip_memory(item, clip_budget_estimate(tokens).load_for(item), CUDA)
            expected = context_tokens(item, tokens) * item.model.kv_bytes_per_token / GIB
            assert clip.kv_cache_gb == pytest.approx(expected)
            assert clip.weights_gb == estimate_memory(item, 1024, CUDA).weights_gb


def test_llama_cpp_encodes_one_frame_at_a_time() -> None:
    """gguf and Ollama: the encoder's scratch is one frame's (the largest a clip gets), at any budget."""
    item = variant("qwen3-vl-2b-gguf-q4_k_m")
    small, big = clip_budget_estimate(4096).as_frames, clip_budget_estimate(24576).as_frames
    assert small.largest_group_tokens == big.largest_group_tokens == 720
    assert clip_vision_bytes(item, small, CUDA) == clip_vision_bytes(item, big, CUDA)
    assert clip_vision_bytes(item, big, CUDA) == vision_activation_bytes(item, 720, True)
    ollama = variant("qwen3-vl-2b-ollama")  # no flash attention: one frame's attention scores
    assert clip_vision_bytes(ollama, big, CUDA) == vision_activation_bytes(ollama, 720, False)


def test_transformers_encodes_the_whole_clip_in_one_pass() -> None:
    item = variant("qwen3-vl-2b-transformers-bf16")
    loads = [clip_budget_estimate(tokens).as_video for tokens in (4096, 8192)]
    # Flash/SDPA on CUDA: activations linear in all the clip's patches, so they double with the budget.
    on_cuda = [clip_vision_bytes(item, load, CUDA) for load in loads]
    assert on_cuda[0] == vision_activation_bytes(item, 4096, True)
    assert on_cuda[1] == pytest.approx(2 * on_cuda[0])
    # fp16 on Metal, no flash attention: attention scores per token group (frame pair), not over the clip.
    fp16 = variant("qwen3-vl-2b-transformers-fp16")
    load = loads[0]
    per_group = vision_activation_bytes(fp16, 720, False) - vision_activation_bytes(fp16, 720, True)
    on_metal = clip_vision_bytes(fp16, load, METAL)
    assert on_metal == pytest.approx(vision_activation_bytes(fp16, 4096, True) + (4096 // 720) * per_group)
    assert on_metal < vision_activation_bytes(fp16, 4096, False)  # far below one 4,096-token image


def test_clip_seconds_count_every_group_and_attention_per_group() -> None:
    item = variant("qwen3-vl-2b-gguf-q4_k_m")
    assert request_seconds(item, CPU, groups=1, tokens_per_group=512) == estimate_seconds(item, 512, CPU)
    frames = clip_budget_estimate(4096).as_frames
    clip = estimate_clip_seconds(item, frames, CPU)
    assert clip > estimate_seconds(item, 1024, CPU)
    # 30 frames of 120 tokens: cheaper than one image of the same 3,600 tokens (attention per frame).
    assert clip < estimate_seconds(item, frames.visual_tokens, CPU)
    # A bigger budget costs more time.
    assert estimate_clip_seconds(item, clip_budget_estimate(8192).as_frames, CPU) > clip


def test_a_clip_load_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="positive"):
        ClipLoad(budget=4096, groups=0, tokens_per_group=1, largest_group_tokens=720, frames=30, duration=15)


def test_recommend_with_clips_puts_the_profiles_that_fit_clips_first() -> None:
    hardware = hypothetical_hardware(**EIGHT_GB)
    photos = recommend(hardware)
    assert photos[0].variant.id == "qwen3-vl-8b-gguf-q4_k_m" and photos[0].clip is None
    with_clips = recommend(hardware, clips=clip_budget_estimate(4096))
    assert {p.variant.id for p in with_clips} == {p.variant.id for p in photos}  # the same photo profiles
    fits = [p.clip_fits for p in with_clips]
    assert fits[0] and fits == sorted(fits, reverse=True)  # those that fit clips first
    assert with_clips[0].variant.id != "qwen3-vl-8b-gguf-q4_k_m"  # the 8B fits photos, not 4,096-token clips
    eight = next(p for p in with_clips if p.variant.id == "qwen3-vl-8b-gguf-q4_k_m")
    assert eight.fits and not eight.clip_fits and eight.clip.memory.total_gb > 8.0
    assert "It fits photos, but a 4,096-token clip needs" in eight.reason
    assert "ranked after the profiles that fit video clips too" in eight.reason
    first = with_clips[0]
    assert first.clip.memory.total_gb <= 8.0 and "Videos: a 4,096-token clip needs" in first.reason
    assert first.clip.memory.total_gb > first.memory.total_gb


def test_with_a_small_clip_budget_the_photo_choice_stands() -> None:
    hardware = hypothetical_hardware(**EIGHT_GB)
    ranked = recommend(hardware, clips=clip_budget_estimate(512))
    assert ranked[0].variant.id == recommend(hardware)[0].variant.id and ranked[0].clip_fits


def test_recommend_cli_with_and_without_clip_tokens(capsys, captioneer_home) -> None:
    args = ["recommend", "--gpu", "nvidia", "--vram-gb", "8", "--ram-gb", "32"]
    assert main(args) == 0
    plain = capsys.readouterr().out
    assert "s/clip" not in plain and "Videos:" not in plain
    assert "Recommended: qwen3-vl-8b-gguf-q4_k_m" in plain
    assert main([*args, "--video-tokens", "4096"]) == 0
    out = capsys.readouterr().out
    assert "s/clip" in out and "photos only" in out
    assert "Recommended: qwen3-vl-8b-gguf-q4_k_m" not in out
    assert "Videos: a 4,096-token clip needs ≈" in out
    assert main([*args, "--video-tokens", "4096", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload[0]["clip"]["video_tokens"] == 4096 and payload[0]["clip"]["fits"]
    assert payload[0]["clip"]["frames"] == 30 and payload[0]["clip"]["memory_gb"] <= 8.0
    assert any(not p["clip"]["fits"] for p in payload)


def test_recommend_videos_takes_the_settings_clip_budget(capsys, captioneer_home) -> None:
    save_settings(Settings(video_tokens=2048))
    assert main(["recommend", "--gpu", "none", "--ram-gb", "16", "--videos"]) == 0
    assert "a 2,048-token clip needs" in capsys.readouterr().out


def test_recommend_says_when_no_profile_fits_clips(capsys) -> None:
    machine = ["--gpu", "nvidia", "--vram-gb", "4", "--ram-gb", "16"]
    assert main(["recommend", *machine, "--video-tokens", "24576"]) == 0
    out = capsys.readouterr().out
    assert "No profile that fits this machine fits a 24,576-token clip: lower the clip budget" in out


@pytest.mark.parametrize("tokens", ["10", "30000"])
def test_a_wrong_clip_budget_is_one_line(capsys, tokens: str) -> None:
    assert main(["recommend", "--gpu", "none", "--ram-gb", "16", "--video-tokens", tokens]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "choose 64 to 24,576 tokens" in err
