"""The first-run wizard, offscreen: hardware facts and ranked profiles, a download from the loopback hub
stand-in with the tiny GGUF pair, a real test caption through the engine host, and an Ollama pull against the
Ollama stand-in with cancel and resume; then the model manager on what was downloaded."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from PySide6.QtWidgets import QWizard

from captioneer.backends.catalog import load_catalog
from captioneer.backends.download import FileCheck, InstalledModel, Manifest
from captioneer.backends.hardware import HardwareFacts, hypothetical_hardware
from captioneer.backends.hardware_probes import probe_ollama
from captioneer.backends.recommend import recommend
from captioneer.desktop.core.paths import models_dir
from captioneer.desktop.core.settings import Settings
from captioneer.desktop.ui.model_manager import (
    ModelEntry,
    ModelManagerDialog,
    describe_checks,
    list_models,
    settings_for,
)
from captioneer.desktop.ui.wizard import (
    ModelReady,
    SetupWizard,
    hardware_lines,
    profile_cells,
    profile_settings,
)
from tests.fakes.hub_server import FakeHub
from tests.fakes.ollama_server import FakeOllama

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore("OpenType support missing", "propagateSizeHints"),
]

GGUF_VARIANT = "qwen3-vl-2b-gguf-q4_k_m"
OLLAMA_TAG = "qwen3-vl:2b-instruct"


def laptop(ollama_url: str | None = None) -> HardwareFacts:
    """A 16 GB laptop without a GPU; Ollama's status is really probed (at the stand-in) when given."""
    facts = hypothetical_hardware("none", ram_gb=16, cores=8)
    if ollama_url is not None:
        facts = dataclasses.replace(facts, ollama=probe_ollama(ollama_url))
    return facts


@pytest.fixture
def hub_online(monkeypatch: pytest.MonkeyPatch):
    """The loopback hub stand-in, with downloads allowed (conftest switches the real hub off)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with FakeHub() as hub:
        yield hub


def host_gguf_repo(hub: FakeHub, tiny_gguf: tuple[Path, Path]) -> None:
    variant = load_catalog().find(GGUF_VARIANT)
    model, mmproj = tiny_gguf
    hub.add_repo(variant.repo, {
        f"Qwen3VL-2B-Instruct-{variant.quant}.gguf": model.read_bytes(),
        f"mmproj-Qwen3VL-2B-Instruct-{variant.mmproj_quant}.gguf": mmproj.read_bytes(),
        "README.md": b"tiny stand-in repo",
    })


def select_variant(wizard: SetupWizard, variant_id: str) -> None:
    row = next(i for i, p in enumerate(wizard.profiles) if p.variant.id == variant_id)
    wizard.hardware_page.table.selectRow(row)


# -- pure pieces -------------------------------------------------------------------------------------------


def test_hardware_lines_say_what_was_found() -> None:
    lines = dict(hardware_lines(laptop()))
    assert lines["Graphics"].startswith("No graphics processor found")
    assert lines["Memory"] == "16 GB" and lines["Processor"] == "8 cores"
    assert lines["Ollama"].startswith("not running")
    gpu_lines = dict(hardware_lines(hypothetical_hardware("nvidia", vram_gb=12, ram_gb=32)))
    assert "12.0 GB usable" in gpu_lines["Graphics"]


def test_profile_cells_and_settings() -> None:
    profile = recommend(laptop())[0]
    cells = profile_cells(profile)
    assert cells[0] == profile.variant.model.name and cells[3] == f"{profile.image_tokens} tokens"
    assert cells[4].endswith("GB") and cells[5].endswith("s / photo")
    ready = ModelReady("/m/model.gguf", "/m/mm.gguf")
    chosen = profile_settings(Settings(language="Deutsch"), profile, ready)
    assert (chosen.engine, chosen.model, chosen.mmproj) == (profile.engine, "/m/model.gguf", "/m/mm.gguf")
    assert chosen.image_tokens == profile.image_tokens and chosen.first_run_done
    assert chosen.language == "Deutsch"


def test_describe_checks() -> None:
    ok = FileCheck("a.gguf", "ok")
    assert describe_checks([ok, FileCheck("b.gguf", "ok")]) == "All 2 files are intact ✓"
    text = describe_checks([ok, FileCheck("b.gguf", "wrong-size", "3 bytes instead of 9")])
    assert "b.gguf: wrong-size (3 bytes instead of 9)" in text and "a.gguf" not in text


# -- the wizard --------------------------------------------------------------------------------------------


def test_wizard_downloads_from_the_hub_tests_a_caption_and_saves(qtbot, hub_online, tiny_gguf) -> None:
    host_gguf_repo(hub_online, tiny_gguf)
    with FakeOllama() as ollama:
        wizard = SetupWizard(Settings(ollama_host=ollama.url), prober=lambda s: laptop(s.ollama_host),
                             endpoint=hub_online.url)
        qtbot.addWidget(wizard)
        wizard.show()
        page = wizard.hardware_page
        qtbot.waitUntil(page.isComplete, timeout=20_000)
        facts = {page.facts.itemAt(i, page.facts.ItemRole.LabelRole).widget().text():
                 page.facts.itemAt(i, page.facts.ItemRole.FieldRole).widget().text()
                 for i in range(page.facts.rowCount())}
        assert facts["Ollama:"].startswith("running (version 0.12.10)")
        assert "gguf" in facts["Engines installed:"]
        table = page.table
        assert table.rowCount() == len(wizard.profiles) > 1
        assert table.item(0, 0).text().startswith("★ ")
        assert "Why:" in page.reason.text()

        select_variant(wizard, GGUF_VARIANT)
        wizard.next()
        download = wizard.download_page
        assert wizard.currentPage() is download and not download.isComplete()
        assert download.download_button.text() == "Download"
        download.download_button.click()
        qtbot.waitUntil(download.isComplete, timeout=30_000)
        assert download.progress.value() == 1000 and "✓" in download.status.text()
        assert any(r.path.endswith(".gguf") for r in hub_online.requests)

        wizard.next()
        test_page = wizard.test_page
        qtbot.waitUntil(test_page.isComplete, timeout=90_000)
        assert wizard.test_result is not None and wizard.test_result.ok
        assert "Measured here:" in test_page.measured.text() and "s per image" in test_page.measured.text()
        wizard.button(QWizard.WizardButton.FinishButton).click()
        chosen = wizard.chosen_settings()
    assert chosen.engine == "gguf" and chosen.first_run_done
    assert Path(chosen.model).is_relative_to(models_dir()) and Path(chosen.model).is_file()
    assert chosen.mmproj and Path(chosen.mmproj).is_file()

    # The model manager lists it, verifies it, can switch to it and delete it.
    dialog = ModelManagerDialog(Settings())
    qtbot.addWidget(dialog)
    assert dialog.table.rowCount() == 1
    assert "Qwen3-VL 2B Instruct Q4_K_M" in dialog.table.item(0, 0).text()
    assert dialog.table.item(0, 3).text() == "Complete"
    dialog.verify_button.click()
    qtbot.waitUntil(lambda: "intact" in dialog.status.text(), timeout=20_000)
    assert dialog.status.text() == "All 2 files are intact ✓"
    chosen_by_manager: list[Settings] = []
    dialog.modelChosen.connect(chosen_by_manager.append)
    qtbot.waitUntil(dialog.use_button.isEnabled)
    dialog.use_button.click()
    assert chosen_by_manager[0].model == chosen.model and chosen_by_manager[0].engine == "gguf"
    assert "in use" in dialog.table.item(0, 0).text()
    questions: list[str] = []
    dialog.confirm = lambda question: questions.append(question) or True
    dialog.delete_button.click()
    assert "uses now" in questions[0]
    assert dialog.table.rowCount() == 0 and dialog.empty.isVisibleTo(dialog)
    assert list_models(models_dir()) == []


def test_wizard_pull_through_ollama_can_be_cancelled_and_resumed(qtbot) -> None:
    with FakeOllama(pull_library={OLLAMA_TAG: [400_000, 200_000]}, pull_delay=0.05) as ollama:
        wizard = SetupWizard(Settings(ollama_host=ollama.url), prober=lambda s: laptop(s.ollama_host))
        qtbot.addWidget(wizard)
        wizard.show()
        qtbot.waitUntil(wizard.hardware_page.isComplete, timeout=20_000)
        select_variant(wizard, next(p.variant.id for p in wizard.profiles if p.variant.tag == OLLAMA_TAG))
        wizard.next()
        page = wizard.download_page
        assert page.download_button.text() == "Pull with Ollama"
        page.download_button.click()
        qtbot.waitUntil(lambda: page.progress.value() > 0, timeout=20_000)
        page.cancel_button.click()
        qtbot.waitUntil(lambda: page.download_button.text() == "Resume", timeout=20_000)
        assert "Paused" in page.status.text() and not page.isComplete()
        page.download_button.click()
        qtbot.waitUntil(page.isComplete, timeout=30_000)
        assert len(ollama.bodies("/api/pull")) == 2

        wizard.next()
        qtbot.waitUntil(wizard.test_page.isComplete, timeout=30_000)
        assert wizard.test_result.text == "A red square on a white background."
        assert ollama.last_chat()["model"] == OLLAMA_TAG
        chosen = wizard.chosen_settings()
    assert (chosen.engine, chosen.model, chosen.mmproj) == ("ollama", OLLAMA_TAG, None)


def test_wizard_reports_a_hub_that_does_not_answer(qtbot, hub_online) -> None:
    wizard = SetupWizard(Settings(), prober=lambda s: laptop(), endpoint=hub_online.url)
    qtbot.addWidget(wizard)
    wizard.show()
    qtbot.waitUntil(wizard.hardware_page.isComplete, timeout=20_000)
    select_variant(wizard, GGUF_VARIANT)
    wizard.next()
    page = wizard.download_page
    page.download_button.click()
    qtbot.waitUntil(lambda: page.download_button.text() == "Try again", timeout=30_000)
    assert page.status.text().startswith("The download failed:") and not page.isComplete()


def entry_for(variant_id: str, folder: Path, complete: bool = True) -> ModelEntry:
    variant = load_catalog().find(variant_id)
    manifest = Manifest(store=folder.name, engine=variant.engine, repo=variant.repo or "", revision="a" * 40,
                        files=[])
    model = folder / "model.gguf" if variant.engine == "gguf" else folder
    mmproj = folder / "mmproj.gguf" if variant.engine == "gguf" else None
    installed = InstalledModel(variant, folder, manifest, model, mmproj) if complete else None
    return ModelEntry(folder, manifest, variant, installed)


def test_settings_for_a_downloaded_model(tmp_path) -> None:
    gguf = entry_for(GGUF_VARIANT, tmp_path / "g")
    chosen = settings_for(Settings(engine="transformers", quant="nf4"), gguf)
    assert (chosen.engine, chosen.model, chosen.mmproj, chosen.quant) == (
        "gguf", str(tmp_path / "g" / "model.gguf"), str(tmp_path / "g" / "mmproj.gguf"), None)
    hf = entry_for("qwen3-vl-2b-transformers-bf16", tmp_path / "t")
    assert settings_for(Settings(engine="transformers", quant="nf4"), hf).quant == "nf4"
    assert settings_for(Settings(engine="gguf"), hf).quant is None
    assert hf.label == "Qwen3-VL 2B Instruct (all precisions)"
    assert gguf.in_use(chosen) and not hf.in_use(chosen)
    with pytest.raises(ValueError):
        settings_for(Settings(), entry_for(GGUF_VARIANT, tmp_path / "p", complete=False))
