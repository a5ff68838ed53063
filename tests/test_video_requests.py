"""A clip as a request: PreparedClip's cost and invariants, pickling across the engine host's pipe, the
frames' times preamble for engines that take images, true video input for transformers, the prompt hash,
and the out-of-memory retry that asks again with fewer or smaller frames. Real clips made with PyAV."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from captioneer.backends.base import Capabilities, EngineConfig
from captioneer.backends.cancel import CancelToken
from captioneer.backends.errors import Cancelled, ConfigurationError, ResourceExhaustedError
from captioneer.backends.gguf import GGUFBackend
from captioneer.backends.request import (
    CLIP_AS_IMAGES,
    CLIP_AS_VIDEO,
    GenerationRequest,
    PreparedClip,
    SamplingOptions,
)
from captioneer.desktop.core.answering import MIN_RETRY_TOKENS, answer_image
from captioneer.desktop.core.clips import describe_clip, prepare_clip, smaller_clip
from captioneer.desktop.core.tasks import (
    TaskOptions,
    build_request,
    frames_preamble,
    get_task,
    prompt_hash,
)
from captioneer.desktop.core.video import probe
from captioneer.desktop.core.video_budget import SamplingMode, plan_sampling
from tests.video_clips import make_clip

IMAGES = Capabilities()
VIDEO = Capabilities(video_input=True)
VIDEO_PROMPT = "Describe this video clip in {language}."


def video_task(task_id: str = "caption"):
    """A preset from tasks.toml with a video prompt (tasks.toml's own video prompts come separately)."""
    return replace(get_task(task_id), video_prompt=VIDEO_PROMPT)


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "walk.mp4", "mp4", seconds=3.0, fps=12)


def test_images_mode_clip_is_its_frames_after_a_preamble_naming_their_times(clip_file: Path) -> None:
    clip = prepare_clip(clip_file, 256, IMAGES)
    plan = plan_sampling(probe(clip_file), 256, mode=SamplingMode.IMAGES)
    assert clip.mode == CLIP_AS_IMAGES and len(clip.frames) == plan.frame_count
    assert {frame.image.size for frame in clip.frames} == {(plan.width, plan.height)}
    assert clip.tokens == plan.total_tokens == sum(frame.tokens for frame in clip.frames)
    request = build_request(video_task(), clip)
    assert request.video is None and request.images == clip.frames
    times = ", ".join(f"{time:.1f} s" for time in clip.times)
    preamble = (
        f"These are {len(clip.frames)} frames from a 3.0-second video clip, in order, at {times}. "
        "Treat them as one video."
    )
    assert frames_preamble(clip) == preamble
    assert request.prompt == f"{preamble}\n\nDescribe this video clip in English."
    assert request.image_tokens == clip.tokens
    described = f"{len(clip.frames)} frames at {plan.width}×{plan.height}, {clip.tokens:,} tokens"
    assert describe_clip(clip) == described


def test_video_mode_clip_goes_alone_as_video_without_preamble(clip_file: Path) -> None:
    clip = prepare_clip(clip_file, 256, VIDEO)
    assert clip.mode == CLIP_AS_VIDEO and len(clip.frames) % 2 == 0
    assert clip.tokens == clip.frames[0].tokens * len(clip.frames) // 2  # a pair shares one set of tokens
    request = build_request(video_task(), clip)
    assert request.video is clip and request.images == ()
    assert request.prompt == "Describe this video clip in English."
    assert request.image_tokens == clip.tokens
    assert request.media == (clip,)


def test_an_engine_without_video_input_can_never_be_handed_video(clip_file: Path) -> None:
    frames = prepare_clip(clip_file, 256, IMAGES)
    video = prepare_clip(clip_file, 256, VIDEO)
    with pytest.raises(ValueError, match="video mode"):
        GenerationRequest(prompt="x", video=frames)
    with pytest.raises(ValueError, match="alone"):
        GenerationRequest(prompt="x", images=frames.frames[:1], video=video)
    with pytest.raises(ValueError, match="transformers"):
        GenerationRequest(prompt="x", video=video).openai_messages()
    with pytest.raises(ValueError, match="pairs"):
        PreparedClip(frames=video.frames[:3], times=video.times[:3], duration=3.0, mode=CLIP_AS_VIDEO)


def test_a_task_without_a_video_prompt_refuses_a_clip(clip_file: Path) -> None:
    clip = prepare_clip(clip_file, 256, IMAGES)
    with pytest.raises(ConfigurationError, match="does not take videos"):
        build_request(replace(get_task("ocr"), video_prompt=None), clip)


def test_a_clip_request_pickles_across_the_host_pipe_unchanged(clip_file: Path) -> None:
    clip = prepare_clip(clip_file, 256, VIDEO)
    request = build_request(video_task(), clip)
    back = pickle.loads(pickle.dumps(request))
    assert back.video is not None and back.video.times == clip.times
    assert back.video.duration == clip.duration and back.video.mode == CLIP_AS_VIDEO
    assert [frame.sha256 for frame in back.video.frames] == [frame.sha256 for frame in clip.frames]
    assert back.video.sha256 == clip.sha256 and back.prompt == request.prompt


def test_the_prompt_hash_tells_a_clip_from_a_photo(clip_file: Path) -> None:
    task = video_task("keywords")
    clip = prepare_clip(clip_file, 256, IMAGES)
    video = prepare_clip(clip_file, 256, VIDEO)
    hashes = {
        prompt_hash(build_request(task, [clip.frames[0]])),
        prompt_hash(build_request(task, clip)),
        prompt_hash(build_request(task, video)),
    }
    assert len(hashes) == 3


@pytest.mark.parametrize("capabilities", [IMAGES, VIDEO], ids=["images", "video"])
def test_a_smaller_clip_is_made_from_its_own_frames_within_half_the_budget(
    clip_file: Path, capabilities: Capabilities
) -> None:
    clip = prepare_clip(clip_file, 1024, capabilities)
    half = clip.tokens // 2  # the tiny clip's frames are small: its whole cost is well under the budget
    smaller = smaller_clip(clip, half, capabilities)
    assert smaller is not None and smaller.mode == clip.mode
    assert smaller.tokens <= half
    assert len(smaller.frames) <= len(clip.frames)
    assert smaller.width <= clip.width and smaller.height <= clip.height
    assert set(smaller.times) <= set(clip.times)  # each frame keeps its own time
    assert list(smaller.times) == sorted(smaller.times)
    assert smaller_clip(clip, 1024, capabilities) is None  # its own budget again: nothing cheaper


def test_cancel_while_sampling_stops_at_once(clip_file: Path) -> None:
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        prepare_clip(clip_file, 256, IMAGES, cancel=cancel)


class ExhaustedByBigClips(GGUFBackend):
    """The real gguf engine that runs out of memory on any request above ``limit`` visual tokens (memory
    cannot be made to run out on demand), keeping what it was asked."""

    def __init__(self, config: EngineConfig, limit: int) -> None:
        super().__init__(config)
        self.limit = limit
        self.asked: list[GenerationRequest] = []

    def generate(self, request: GenerationRequest, cancel: CancelToken | None = None) -> Iterator[str]:
        self.asked.append(request)
        if request.image_tokens > self.limit:
            raise ResourceExhaustedError("Out of memory (stand-in).")
        yield from super().generate(request, cancel)


def test_out_of_memory_on_a_clip_asks_again_at_half_its_budget(
    clip_file: Path, tiny_gguf: tuple[Path, Path]
) -> None:
    model, mmproj = tiny_gguf
    config = EngineConfig(engine="gguf", model=str(model), image_tokens=16, options={"mmproj": str(mmproj)})
    clip = prepare_clip(clip_file, 384, Capabilities())
    budget = clip.tokens  # a clip that fills its budget, as a phone clip at the default budget does
    engine = ExhaustedByBigClips(config, limit=budget - 1)
    retries: list[str] = []
    engine.load()
    try:
        answer = answer_image(
            engine, clip, video_task(), TaskOptions(), retries=0, image_tokens=budget,
            on_retry=retries.append, sampling=SamplingOptions(max_new_tokens=8, temperature=0.0),
        )
    finally:
        engine.unload()
    first, second = engine.asked
    assert len(first.images) == len(clip.frames) and first.image_tokens == clip.tokens
    half = max(MIN_RETRY_TOKENS, budget // 2)
    assert second.image_tokens <= half < first.image_tokens and len(second.images) <= len(first.images)
    assert second.prompt.startswith(f"These are {len(second.images)} frames from a 3.0-second video clip")
    assert answer.ok and answer.image_tokens == second.image_tokens and answer.attempts == 2
    assert retries and f"{half}-token clip budget" in retries[0]

