""""Use model files I already have…" in the wizard and the model manager, offscreen: a picked GGUF model is
paired with the projector beside it (or the projector asked for), a picked projector finds its model, a
Transformers folder is taken as a folder, the recommended image detail is applied, the real engine captions
the test picture from the files where they are, and the model manager shows the model in use wherever it
lives."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PySide6.QtWidgets import QWizard

from captioneer.backends.hardware import HardwareFacts, hypothetical_hardware
from captioneer.backends.recommend import recommend
from captioneer.desktop.core.model_files import OwnModel, own_model, recommended_image_tokens
from captioneer.desktop.core.paths import models_dir
from captioneer.desktop.core.settings import Settings, load_settings
from captioneer.desktop.ui.main_window import MainWindow
from captioneer.desktop.ui.model_manager import ModelManagerDialog
from captioneer.desktop.ui.wizard import SetupWizard
from tests.conftest import FIXTURES

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore("OpenType support missing", "propagateSizeHints"),
]

OTHER_MMPROJ = FIXTURES / "tiny-qwen3vl-w96-gguf" / "mmproj.gguf"
MODEL_NAME = "Qwen3VL-2B-Instruct-Q4_K_M.gguf"
MMPROJ_NAME = "mmproj-Qwen3VL-2B-Instruct-F16.gguf"


def laptop() -> HardwareFacts:
    return hypothetical_hardware("none", ram_gb=16, cores=8)


@pytest.fixture
def my_models(tmp_path: Path, tiny_gguf) -> tuple[Path, Path]:
    """The tiny pair under catalog names in a folder of the user's, outside Captioneer's models folder."""
    folder = tmp_path / "my models"
    folder.mkdir()
    model = Path(shutil.copy(tiny_gguf[0], folder / MODEL_NAME))
    mmproj = Path(shutil.copy(tiny_gguf[1], folder / MMPROJ_NAME))
    shutil.copy(OTHER_MMPROJ, folder / "mmproj-Qwen3VL-8B-Instruct-F16.gguf")  # another size's: not paired
    return model, mmproj


def wizard_on_laptop(qtbot, settings: Settings) -> SetupWizard:
    wizard = SetupWizard(settings, prober=lambda s: laptop())
    qtbot.addWidget(wizard)
    wizard.show()
    qtbot.waitUntil(lambda: bool(wizard.profiles), timeout=20_000)
    return wizard


def test_recommended_image_detail_matches_size_and_quantization() -> None:
    profiles = recommend(laptop())
    gguf = [p for p in profiles if p.engine == "gguf"]
    target = gguf[-1]
    exact = OwnModel("gguf", Path("m.gguf"), Path("p.gguf"), hidden=target.variant.model.hidden,
                     quant=target.quant)
    assert recommended_image_tokens(profiles, exact) == target.image_tokens
    unknown = OwnModel("gguf", Path("m.gguf"), Path("p.gguf"), hidden=64, quant="F16")
    assert recommended_image_tokens(profiles, unknown) == gguf[0].image_tokens
    assert recommended_image_tokens([], unknown) is None


def test_wizard_uses_my_gguf_files_paired_and_tested_where_they_are(qtbot, my_models) -> None:
    model, mmproj = my_models
    wizard = wizard_on_laptop(qtbot, Settings(image_tokens=128))
    page = wizard.hardware_page
    assert page.own_files.use_button.text() == "Use Model Files I Already Have…"
    wizard.own_files.ask_model_path = lambda: str(model)
    page.own_files.use_button.click()

    panel = page.own_files
    assert panel.details.isVisible() and not panel.choose_mmproj_button.isVisible()
    assert panel.mmproj.text() == f"{MMPROJ_NAME} (found next to the model)"
    expected_tokens = recommended_image_tokens(wizard.profiles, wizard.own_files.own)
    assert expected_tokens and expected_tokens != 128
    assert panel.image_detail.text().startswith(f"{expected_tokens} tokens, recommended")
    assert wizard.selected_profile() is None and page.isComplete()

    wizard.next()  # nothing to download: straight to the test caption
    assert wizard.currentPage() is wizard.test_page
    qtbot.waitUntil(wizard.test_page.isComplete, timeout=90_000)  # the real gguf engine, in the engine host
    assert wizard.test_result.ok
    wizard.button(QWizard.WizardButton.FinishButton).click()
    chosen = wizard.chosen_settings()
    assert (chosen.engine, chosen.model, chosen.mmproj) == ("gguf", str(model), str(mmproj))
    assert chosen.image_tokens == expected_tokens and chosen.first_run_done
    assert not Path(chosen.model).is_relative_to(models_dir())
    window = MainWindow()  # what the main window does with the wizard's answer: saved in the config dir
    qtbot.addWidget(window.view)
    window.apply_settings(chosen)
    assert load_settings() == chosen


def test_wizard_asks_for_the_projector_when_none_fits(qtbot, tiny_gguf, tmp_path: Path) -> None:
    alone = tmp_path / "alone"
    alone.mkdir()
    model = Path(shutil.copy(tiny_gguf[0], alone / MODEL_NAME))
    wizard = wizard_on_laptop(qtbot, Settings())
    panel = wizard.hardware_page.own_files
    wizard.own_files.ask_model_path = lambda: str(model)
    panel.use_button.click()
    assert panel.choose_mmproj_button.isVisible()
    assert panel.choose_mmproj_button.text() == "Choose Vision Projector…"
    assert "choose its mmproj" in panel.mmproj.text() and not wizard.hardware_page.isComplete()

    wizard.own_files.ask_mmproj_path = lambda: str(OTHER_MMPROJ)  # another model size's projector: refused
    panel.choose_mmproj_button.click()
    assert "does not match" in panel.error.text() and not wizard.hardware_page.isComplete()
    assert "--" not in panel.error.text()
    wizard.own_files.ask_mmproj_path = lambda: str(tiny_gguf[1])
    panel.choose_mmproj_button.click()
    assert wizard.hardware_page.isComplete() and not panel.choose_mmproj_button.isVisible()
    assert wizard.own_files.own.mmproj == tiny_gguf[1]

    wizard.hardware_page.table.selectRow(0)  # a recommended download replaces the picked files
    assert wizard.own_files.own is None and not panel.details.isVisible()


def test_picking_the_projector_first_finds_the_model_and_a_folder_is_a_folder(
    qtbot, my_models, tiny_hf_model, tmp_path: Path
) -> None:
    model, mmproj = my_models
    wizard = wizard_on_laptop(qtbot, Settings())
    wizard.own_files.pick(mmproj)
    assert wizard.own_files.own.model == model and wizard.own_files.ready()

    wizard.own_files.pick(tiny_hf_model / "config.json")
    own = wizard.own_files.own
    assert (own.engine, own.model, own.mmproj) == ("transformers", tiny_hf_model, None)
    assert wizard.hardware_page.own_files.mmproj.text() == "not needed (part of the model folder)"
    assert wizard.own_files.ready()

    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    wizard.own_files.pick(notes)
    panel = wizard.hardware_page.own_files
    assert panel.error.isVisible()
    assert "neither a GGUF model nor a Transformers model folder" in panel.error.text()
    assert not wizard.hardware_page.isComplete()


def test_a_failed_test_caption_speaks_plainly_and_offers_its_fix(qtbot, my_models, tiny_gguf) -> None:
    model, mmproj = my_models
    wizard = wizard_on_laptop(qtbot, Settings())
    wizard.own_files.pick(model)
    mmproj.unlink()  # the projector disappears between the choice and the test
    wizard.next()
    page = wizard.test_page
    qtbot.waitUntil(page.retry_button.isVisible, timeout=60_000)
    assert page.caption.text().startswith("The test caption failed:") and str(mmproj) in page.caption.text()
    assert "--" not in page.caption.text()
    assert "Vision projector not found" in page.caption.text()
    assert page.fix_button.isVisible() and page.fix_button.text() == "Choose Vision Projector…"
    wizard.own_files.ask_mmproj_path = lambda: str(tiny_gguf[1])
    page.fix_button.click()  # choose it, and the test runs again
    qtbot.waitUntil(page.isComplete, timeout=90_000)
    assert wizard.chosen_settings().mmproj == str(tiny_gguf[1])


def test_a_failed_test_without_a_fix_here_goes_back_to_the_choice(qtbot, my_models) -> None:
    model, _mmproj = my_models
    wizard = wizard_on_laptop(qtbot, Settings())
    wizard.own_files.pick(model)
    model.unlink()
    wizard.next()
    page = wizard.test_page
    qtbot.waitUntil(page.retry_button.isVisible, timeout=60_000)
    assert "--" not in page.caption.text()
    assert page.fix_button.isVisible() and page.fix_button.text() == "Back to the Model Choice"
    page.fix_button.click()
    assert wizard.currentPage() is wizard.hardware_page


def test_model_manager_uses_my_files_and_lists_the_model_in_use_wherever_it_lives(qtbot, my_models) -> None:
    model, mmproj = my_models
    window = MainWindow()
    qtbot.addWidget(window.view)
    window.apply_settings(Settings(image_tokens=128))
    dialog = ModelManagerDialog(window.settings, window.view, prober=lambda s: laptop())
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.empty.isVisible()
    chosen: list[Settings] = []
    dialog.modelChosen.connect(chosen.append)
    dialog.modelChosen.connect(window.apply_settings)  # as the main window wires it
    dialog.own_files.ask_model_path = lambda: str(model)
    dialog.own_files_view.use_button.click()
    qtbot.waitUntil(lambda: bool(chosen), timeout=20_000)

    settings = chosen[0]
    assert (settings.engine, settings.model, settings.mmproj) == ("gguf", str(model), str(mmproj))
    own = own_model(model)
    assert settings.image_tokens == recommended_image_tokens(recommend(laptop()), own) != 128
    assert load_settings() == settings
    assert dialog.table.isVisible() and dialog.table.rowCount() == 1
    assert dialog.table.item(0, 0).text() == f"{MODEL_NAME} — in use"
    assert dialog.table.item(0, 3).text() == "In use (your own files)"
    assert dialog.table.item(0, 4).text() == str(model)
    assert not dialog.delete_button.isEnabled() and not dialog.verify_button.isEnabled()

    reopened = ModelManagerDialog(settings, prober=lambda s: laptop())  # the next time it opens, too
    qtbot.addWidget(reopened)
    assert reopened.table.rowCount() == 1 and "in use" in reopened.table.item(0, 0).text()


def test_model_manager_waits_for_the_projector_before_using_files(qtbot, tiny_gguf, tmp_path: Path) -> None:
    alone = tmp_path / "alone"
    alone.mkdir()
    model = Path(shutil.copy(tiny_gguf[0], alone / MODEL_NAME))
    dialog = ModelManagerDialog(Settings(), prober=lambda s: laptop())
    qtbot.addWidget(dialog)
    chosen: list[Settings] = []
    dialog.modelChosen.connect(chosen.append)
    dialog.own_files.pick(model)
    panel = dialog.own_files_view
    qtbot.waitUntil(lambda: "recommended for this model" in panel.image_detail.text(), timeout=20_000)
    assert not chosen and panel.choose_mmproj_button.isVisibleTo(dialog)
    dialog.own_files.ask_mmproj_path = lambda: str(tiny_gguf[1])
    panel.choose_mmproj_button.click()
    assert len(chosen) == 1 and chosen[0].mmproj == str(tiny_gguf[1])
    assert "now uses" in dialog.status.text()
    assert dialog.table.item(0, 0).text() == f"{MODEL_NAME} — in use"


def test_model_manager_says_plainly_when_a_download_cannot_be_verified(qtbot) -> None:
    from captioneer.backends.catalog import load_catalog
    from captioneer.backends.download import MANIFEST_NAME, Manifest

    variant = load_catalog().find("qwen3-vl-2b-gguf-q4_k_m")
    folder = models_dir() / variant.store
    folder.mkdir(parents=True)
    manifest = Manifest(store=variant.store, engine="gguf", repo=variant.repo or "", revision="a" * 40,
                        files=[])
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest.to_json()))
    dialog = ModelManagerDialog(Settings(), prober=lambda s: laptop())
    qtbot.addWidget(dialog)
    assert dialog.table.rowCount() == 1
    (folder / MANIFEST_NAME).unlink()  # gone between listing and verifying
    dialog.verify_button.click()
    qtbot.waitUntil(lambda: dialog.status.text().startswith("Could not verify:"), timeout=20_000)
    assert "is not downloaded" in dialog.status.text()


def test_model_in_use_outside_the_downloads(tiny_hf_model, my_models) -> None:
    from captioneer.desktop.ui.model_manager import model_in_use

    folder = model_in_use(Settings(engine="transformers", model=str(tiny_hf_model)), [], models_dir())
    assert folder is not None and folder.label == "tiny-qwen3vl"
    assert folder.size == sum(p.stat().st_size for p in tiny_hf_model.iterdir() if p.is_file())
    model, mmproj = my_models
    pair = model_in_use(Settings(engine="gguf", model=str(model), mmproj=str(mmproj)), [], models_dir())
    assert pair.size == model.stat().st_size + mmproj.stat().st_size
    assert model_in_use(Settings(engine="ollama", model="qwen3-vl:2b-instruct"), [], models_dir()) is None
    gone = model_in_use(Settings(engine="gguf", model=str(model), mmproj=str(model.parent / "gone.gguf")), [],
                        models_dir())
    assert gone.state == "Missing: gone.gguf — choose the files again"  # shown, so people see why it fails
    assert model_in_use(Settings(), [], models_dir()) is None
    deleted_download = models_dir() / "qwen3-vl-2b-gguf-q4_k_m" / "model.gguf"
    assert model_in_use(Settings(engine="gguf", model=str(deleted_download)), [], models_dir()) is None
