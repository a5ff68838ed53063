"""The committed tiny Qwen3-VL fixtures are one model: transformers and llama.cpp agree on greedy text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from captioneer.backends.base import EngineConfig
from captioneer.backends.gguf import GGUFBackend
from captioneer.backends.gguf_files import read_gguf_header
from captioneer.backends.request import GenerationRequest, PreparedImage, SamplingOptions

PROMPT = "Describe this image."


def test_fixture_metadata_agrees(tiny_hf_model: Path, tiny_gguf: tuple[Path, Path]) -> None:
    config = json.loads((tiny_hf_model / "config.json").read_text())
    tokenizer = json.loads((tiny_hf_model / "tokenizer.json").read_text())
    added = {token["content"]: token["id"] for token in tokenizer["added_tokens"]}
    assert config["image_token_id"] == added["<|image_pad|>"]
    assert config["video_token_id"] == added["<|video_pad|>"]
    assert config["vision_start_token_id"] == added["<|vision_start|>"]
    assert config["vision_end_token_id"] == added["<|vision_end|>"]
    model, mmproj = (read_gguf_header(path) for path in tiny_gguf)
    assert model.embedding_length == config["text_config"]["hidden_size"] == mmproj.projection_dim
    assert model.metadata["qwen3vl.block_count"] == config["text_config"]["num_hidden_layers"]
    assert model.metadata["tokenizer.ggml.pre"] == "qwen2"
    assert mmproj.metadata["clip.vision.block_count"] == config["vision_config"]["depth"]
    for path in (*tiny_gguf, tiny_hf_model / "model.safetensors"):
        assert path.stat().st_size < 2_000_000


@pytest.mark.slow
def test_transformers_and_llama_cpp_agree_on_greedy_text(
    tiny_hf_model: Path, tiny_gguf: tuple[Path, Path]
) -> None:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    image = Image.new("RGB", (320, 256), (200, 30, 30))
    processor = AutoProcessor.from_pretrained(tiny_hf_model)
    model = AutoModelForImageTextToText.from_pretrained(tiny_hf_model).eval()
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=[text], images=[image], return_tensors="pt")
    assert int(inputs["image_grid_thw"].prod()) // 4 == 80
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    new_tokens = output[:, inputs["input_ids"].shape[1] :]
    expected = processor.batch_decode(new_tokens, skip_special_tokens=True)[0]

    config = EngineConfig(model=str(tiny_gguf[0]), image_tokens=256,
        options={"mmproj": str(tiny_gguf[1]), "threads": 2})
    request = GenerationRequest(prompt=PROMPT, images=(PreparedImage(image),),
                                options=SamplingOptions(temperature=0.0, max_new_tokens=12))
    with GGUFBackend(config) as backend:
        answer = "".join(backend.generate(request))
    assert answer == expected
