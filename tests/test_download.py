"""Downloads against a loopback stand-in for the Hugging Face hub: pinning, resume after a cut connection or a
cancel, size and SHA-256 checks, corrupt files redone, and `captioneer models`. Nothing leaves the machine."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from captioneer.backends import download
from captioneer.backends import hub as hub_client
from captioneer.backends.cancel import CancelToken
from captioneer.backends.catalog import load_catalog
from captioneer.backends.download import DownloadError, installed_model, pull, read_manifest, verify
from captioneer.backends.errors import Cancelled, ModelFileError
from captioneer.desktop.cli import main
from captioneer.desktop.core.paths import cache_dir, models_dir
from tests.conftest import TINY_GGUF_MMPROJ, TINY_GGUF_MODEL
from tests.fakes.hub_server import FakeHub
from tests.fakes.ollama_server import FakeOllama

GGUF_REPO = "Qwen/Qwen3-VL-2B-Instruct-GGUF"
HF_REPO = "Qwen/Qwen3-VL-2B-Instruct"
MODEL_FILE = "Qwen3VL-2B-Instruct-Q4_K_M.gguf"
MMPROJ_FILE = "mmproj-Qwen3VL-2B-Instruct-F16.gguf"
OLD, NEW = "a" * 40, "b" * 40


def gguf_repo_files() -> dict[str, bytes]:
    """The official repo's layout with the committed tiny Qwen3-VL GGUF pair as its Q4_K_M files."""
    return {
        MODEL_FILE: TINY_GGUF_MODEL.read_bytes(),
        MMPROJ_FILE: TINY_GGUF_MMPROJ.read_bytes(),
        "Qwen3VL-2B-Instruct-Q8_0.gguf": b"GGUF other quantization",
        "mmproj-Qwen3VL-2B-Instruct-Q8_0.gguf": b"GGUF other projector",
        "README.md": b"# Qwen3-VL-2B-Instruct-GGUF\n",
    }


def transformers_repo_files(seed: bytes = b"old") -> dict[str, bytes]:
    weights = b"".join(hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(100_000))  # 3.2 MB
    return {
        "config.json": json.dumps({"model_type": "qwen3_vl", "seed": seed.decode()}).encode(),
        "model.safetensors": weights,
        "tokenizer.json": b'{"version": "1.0"}',
        "README.md": b"# card",
    }


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch):
    """The stand-in hub with both 2B repositories, as HF_ENDPOINT; downloads allowed (conftest sets
    HF_HUB_OFFLINE=1 so nothing reaches the real hub) and quick retries."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub_client, "RETRY_DELAYS", (0.01, 0.02, 0.05, 0.1, 0.1))
    server = FakeHub()
    server.add_repo(GGUF_REPO, gguf_repo_files(), commit=OLD)
    server.add_repo(HF_REPO, transformers_repo_files(), commit=OLD)
    with server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


def variant(name: str):
    return load_catalog().find(name)


def test_pull_gguf_pins_checks_and_records(hub: FakeHub):
    calls: list[tuple[float, str]] = []
    gguf = variant("qwen3-vl-2b-gguf-q4_k_m")
    installed = pull(gguf, models_dir(), progress=lambda fraction, message: calls.append((fraction, message)))
    folder = models_dir() / "qwen3-vl-2b-gguf-q4_k_m"
    assert installed.folder == folder and not folder.is_relative_to(cache_dir())
    assert installed.model_path.read_bytes() == TINY_GGUF_MODEL.read_bytes()
    assert installed.mmproj_path == folder / MMPROJ_FILE
    assert {p.name for p in folder.iterdir()} == {MODEL_FILE, MMPROJ_FILE, download.MANIFEST_NAME}
    manifest = read_manifest(folder)
    assert manifest.complete and manifest.repo == GGUF_REPO and manifest.revision == OLD
    recorded = {f.name: (f.size, f.sha256, f.role) for f in manifest.files}
    assert recorded[MODEL_FILE] == (
        TINY_GGUF_MODEL.stat().st_size, hashlib.sha256(TINY_GGUF_MODEL.read_bytes()).hexdigest(), "model"
    )
    assert recorded[MMPROJ_FILE][2] == "mmproj"
    # Only the two files were fetched, from the resolved commit, never from "main".
    fetched = [r.path for r in hub.requests if "/resolve/" in r.path]
    expected = [f"/{GGUF_REPO}/resolve/{OLD}/{name}" for name in (MODEL_FILE, MMPROJ_FILE)]
    assert sorted(fetched) == sorted(expected)
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and "ready" in calls[-1][1]
    assert any(m.startswith(f"Downloading {MODEL_FILE}: ") for _, m in calls)
    assert verify(gguf, models_dir()) == [
        download.FileCheck(MODEL_FILE, "ok"), download.FileCheck(MMPROJ_FILE, "ok")
    ]


def test_resume_after_a_cut_connection(hub: FakeHub):
    hub.cut_after[MODEL_FILE] = 100_000
    installed = pull(variant("qwen3-vl-2b-gguf-q4_k_m"), models_dir())
    gets = hub.gets(MODEL_FILE)
    assert [g.range for g in gets] == [None, "bytes=100000-"]
    assert installed.model_path.read_bytes() == TINY_GGUF_MODEL.read_bytes()
    assert not list(installed.folder.glob("*.part"))


def test_a_server_that_ignores_range_gets_the_file_restarted(hub: FakeHub):
    hub.cut_after[MODEL_FILE] = 50_000
    hub.ignore_range = True
    installed = pull(variant("qwen3-vl-2b-gguf-q4_k_m"), models_dir())
    assert [g.range for g in hub.gets(MODEL_FILE)] == [None, "bytes=50000-"]
    assert installed.model_path.read_bytes() == TINY_GGUF_MODEL.read_bytes()


def test_cancel_then_resume_at_the_pinned_commit_then_update(hub: FakeHub):
    hf = variant("qwen3-vl-2b-transformers-nf4")
    folder = models_dir() / "qwen3-vl-2b-transformers"
    cancel = CancelToken()

    def cancel_in_weights(fraction: float, message: str) -> None:
        if message.startswith("Downloading model.safetensors"):
            cancel.cancel()

    with pytest.raises(Cancelled):
        pull(hf, models_dir(), progress=cancel_in_weights, cancel=cancel)
    part = folder / "model.safetensors.part"
    kept = part.stat().st_size
    old_files = transformers_repo_files()
    assert 0 < kept < len(old_files["model.safetensors"])
    assert not (folder / "model.safetensors").exists() and installed_model(hf, models_dir()) is None
    assert read_manifest(folder).complete is False

    # Meanwhile the repository's main branch moves on.
    hub.add_repo(HF_REPO, transformers_repo_files(b"new") | {"extra.json": b"{}"}, commit=NEW)
    installed = pull(hf, models_dir())
    assert installed.manifest.revision == OLD
    assert hub.gets("model.safetensors")[-1].range == f"bytes={kept}-"
    assert all(f"/resolve/{OLD}/" in r.path for r in hub.requests if "/resolve/" in r.path)
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (folder / name).read_bytes() == old_files[name]
    assert not (folder / "README.md").exists()

    updated = pull(hf, models_dir(), update=True)
    assert updated.manifest.revision == NEW
    assert (folder / "model.safetensors").read_bytes() == transformers_repo_files(b"new")["model.safetensors"]
    assert (folder / "extra.json").read_bytes() == b"{}"
    # The precisions share one download: NF4 and bf16 see the same folder.
    assert installed_model(variant("qwen3-vl-2b-transformers-bf16"), models_dir()).folder == folder


def test_a_corrupt_same_size_file_is_detected_and_redone(hub: FakeHub):
    gguf = variant("qwen3-vl-2b-gguf-q4_k_m")
    installed = pull(gguf, models_dir())
    data = bytearray(installed.model_path.read_bytes())
    data[1000:1010] = bytes(10)  # bit rot: same size, different bytes
    installed.model_path.write_bytes(bytes(data))
    checks = {c.name: c.status for c in verify(gguf, models_dir())}
    assert checks == {MODEL_FILE: "corrupt", MMPROJ_FILE: "ok"}
    before = len(hub.gets(MODEL_FILE)), len(hub.gets(MMPROJ_FILE))
    pull(gguf, models_dir())
    assert (len(hub.gets(MODEL_FILE)), len(hub.gets(MMPROJ_FILE))) == (before[0] + 1, before[1])
    assert all(c.ok for c in verify(gguf, models_dir()))


def test_a_corrupt_transfer_is_fetched_again_and_never_used(hub: FakeHub):
    gguf = variant("qwen3-vl-2b-gguf-q4_k_m")
    hub.corrupt[MODEL_FILE] = 1
    pull(gguf, models_dir())
    assert len(hub.gets(MODEL_FILE)) == 2

    download.remove(gguf, models_dir())
    hub.corrupt[MODEL_FILE] = 5
    with pytest.raises(ModelFileError, match="arrived corrupt twice"):
        pull(gguf, models_dir())
    folder = models_dir() / gguf.store
    assert not (folder / MODEL_FILE).exists() and not list(folder.glob("*.part"))
    assert installed_model(gguf, models_dir()) is None


def test_a_truncated_file_on_disk_is_not_used(hub: FakeHub):
    gguf = variant("qwen3-vl-2b-gguf-q4_k_m")
    installed = pull(gguf, models_dir())
    with installed.mmproj_path.open("r+b") as fh:
        fh.truncate(1000)
    assert installed_model(gguf, models_dir()) is None
    assert {c.name: c.status for c in verify(gguf, models_dir())}[MMPROJ_FILE] == "wrong-size"


def test_hub_problems_are_explained(hub: FakeHub, monkeypatch: pytest.MonkeyPatch):
    from huggingface_hub import constants

    del hub.repos[GGUF_REPO].commits[OLD][MODEL_FILE]
    with pytest.raises(ModelFileError, match="no Q4_K_M model file"):
        pull(variant("qwen3-vl-2b-gguf-q4_k_m"), models_dir())
    with pytest.raises(DownloadError, match=f"has no repository {GGUF_REPO.replace('2B', '4B')}"):
        pull(variant("qwen3-vl-4b-gguf-q4_k_m"), models_dir())
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DownloadError, match="HF_HUB_OFFLINE"):
        pull(variant("qwen3-vl-8b-gguf-q4_k_m"), models_dir())
    assert not (models_dir() / "qwen3-vl-8b-gguf-q4_k_m").exists()


def test_nothing_listens_at_the_endpoint(hub: FakeHub, monkeypatch: pytest.MonkeyPatch):
    address = hub.url
    hub.stop()
    monkeypatch.setenv("HF_ENDPOINT", address)
    with pytest.raises(DownloadError, match="Cannot reach the Hugging Face hub"):
        pull(variant("qwen3-vl-2b-gguf-q4_k_m"), models_dir())


def test_models_commands(hub: FakeHub, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9")  # nothing there
    assert main(["models", "pull", "qwen3-vl-2b-gguf-q4_k_m"]) == 0
    out = capsys.readouterr().out
    assert "is ready" in out and "--mmproj" in out
    assert main(["models", "list", "--json"]) == 0
    rows = {row["profile"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["qwen3-vl-2b-gguf-q4_k_m"]["status"] == "downloaded"
    assert rows["qwen3-vl-2b-gguf-q4_k_m"]["revision"] == OLD
    assert rows["qwen3-vl-8b-gguf-q4_k_m"]["status"] == "not downloaded"
    assert rows["qwen3-vl-2b-ollama"]["status"] == "unknown"
    assert main(["models", "verify"]) == 0
    assert f"{MODEL_FILE}: ok" in capsys.readouterr().out

    model = models_dir() / "qwen3-vl-2b-gguf-q4_k_m" / MODEL_FILE
    stat = model.stat()
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF
    model.write_bytes(bytes(data))
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same time: only the hash knows
    assert main(["models", "verify", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert {c["file"]: c["status"] for c in report["qwen3-vl-2b-gguf-q4_k_m"]}[MODEL_FILE] == "corrupt"
    assert main(["models", "pull", "qwen3-vl-2b-gguf-q4_k_m"]) == 0
    assert main(["models", "verify", "qwen3-vl-2b-gguf-q4_k_m"]) == 0

    assert main(["models", "remove", "qwen3-vl-2b-gguf-q4_k_m"]) == 0
    assert not (models_dir() / "qwen3-vl-2b-gguf-q4_k_m").exists()
    capsys.readouterr()
    assert main(["models", "pull", "qwen3-vl-9b"]) == 2
    assert "Unknown model profile" in capsys.readouterr().err


def test_ollama_profiles_are_pulled_by_ollama(capsys: pytest.CaptureFixture[str]):
    with FakeOllama(pull_library={"qwen3-vl:2b-instruct": [1000, 2000]}) as ollama:
        assert main(["models", "pull", "qwen3-vl:2b-instruct", "--host", ollama.url]) == 0
        assert ollama.bodies("/api/pull")[-1]["model"] == "qwen3-vl:2b-instruct"
    assert "is in Ollama" in capsys.readouterr().out
    assert main(["models", "remove", "qwen3-vl:2b-instruct"]) == 2
    assert "ollama rm" in capsys.readouterr().err


def test_models_land_in_the_data_folder(captioneer_home: Path):
    assert models_dir() == captioneer_home / "data" / "models"


def test_the_stand_in_speaks_the_hubs_protocol(hub: FakeHub, tmp_path: Path):
    """huggingface_hub's own metadata (HEAD) and download work against the stand-in: it is faithful."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    meta = get_hf_file_metadata(hf_hub_url(GGUF_REPO, MODEL_FILE, endpoint=hub.url))
    data = TINY_GGUF_MODEL.read_bytes()
    assert (meta.commit_hash, meta.etag, meta.size) == (OLD, hashlib.sha256(data).hexdigest(), len(data))
    path = hf_hub_download(HF_REPO, "config.json", endpoint=hub.url, cache_dir=tmp_path)
    assert Path(path).read_bytes() == transformers_repo_files()["config.json"] and f"snapshots/{OLD}" in path


def test_gguf_files_that_do_not_belong_together_are_not_installed(hub: FakeHub):
    swapped = gguf_repo_files()
    swapped[MODEL_FILE], swapped[MMPROJ_FILE] = swapped[MMPROJ_FILE], swapped[MODEL_FILE]
    hub.add_repo(GGUF_REPO, swapped, commit=NEW)
    gguf = variant("qwen3-vl-2b-gguf-q4_k_m")
    with pytest.raises(ModelFileError, match="vision projector"):
        pull(gguf, models_dir())
    assert installed_model(gguf, models_dir()) is None
    assert read_manifest(models_dir() / gguf.store).complete is False
