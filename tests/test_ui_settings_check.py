"""Settings are checked at Save: bad server addresses and wrong model files are refused next to their field,
the dialog stays open with what was typed, and nothing is written; a picked GGUF brings its projector."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PySide6.QtWidgets import QDialogButtonBox, QFileDialog

from captioneer.desktop.core.settings import Settings, save_settings, settings_path
from captioneer.desktop.core.settings_check import address_problem, settings_problems
from captioneer.desktop.ui.settings_dialog import SettingsDialog
from tests.conftest import FIXTURES

OTHER_MMPROJ = FIXTURES / "tiny-qwen3vl-w96-gguf" / "mmproj.gguf"

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore("OpenType support missing", "propagateSizeHints"),
]


@pytest.mark.parametrize(
    ("address", "says"),
    [
        ("hhttp://x", "starts with “hhttp://”"),
        ("http://", "names no computer"),
        ("localhost:99999", "from 1 to 65535"),
        ("localhost:0", "from 1 to 65535"),
        ("http://box lan:11434", "has a space"),
        ("http://[zz]:1", "not an address"),
        ("http://bad!name:80", "not a computer name"),
    ],
)
def test_addresses_that_cannot_work_are_refused(address: str, says: str) -> None:
    problem = address_problem(address)
    assert problem is not None and says in problem


@pytest.mark.parametrize(
    "address",
    ["http://127.0.0.1:11434", "localhost", "localhost:11434", "https://gpu.lan/v1", "http://[::1]:8080/v1",
     "192.168.1.20:8080", "  http://127.0.0.1:11434  "],
)
def test_addresses_the_engines_accept_pass(address: str) -> None:
    assert address_problem(address) is None


def save(dialog: SettingsDialog) -> None:
    dialog.buttons.button(QDialogButtonBox.StandardButton.Save).click()


def test_a_bad_ollama_address_is_refused_at_save_next_to_the_field(qtbot) -> None:
    save_settings(Settings(ollama_host="http://127.0.0.1:11434"))
    before = settings_path().read_text()
    dialog = SettingsDialog(Settings(ollama_host="http://127.0.0.1:11434"))
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.ollama_host.setText("hhttp://x")
    dialog.openai_urls.setPlainText("http://127.0.0.1:8080/v1\nlocalhost:99999")
    save(dialog)

    assert dialog.isVisible() and dialog.result() != dialog.DialogCode.Accepted
    assert dialog.ollama_host.text() == "hhttp://x"  # what was typed is kept
    assert dialog.openai_urls.toPlainText() == "http://127.0.0.1:8080/v1\nlocalhost:99999"
    assert dialog.ollama_host_error.isVisible() and "hhttp://" in dialog.ollama_host_error.text()
    assert dialog.openai_urls_error.isVisible() and "localhost:99999" in dialog.openai_urls_error.text()
    assert dialog.tabs.tabText(dialog.tabs.currentIndex()) == "Servers"
    assert "2 settings" in dialog.error.text()
    assert settings_path().read_text() == before
    assert dialog.result_settings().ollama_host == "http://127.0.0.1:11434"
    qtbot.keyClicks(dialog.ollama_host, "y")  # typing in the field clears its message
    assert not dialog.ollama_host_error.isVisible() and dialog.openai_urls_error.isVisible()

    dialog.ollama_host.setText("localhost:11434")
    dialog.openai_urls.setPlainText("http://127.0.0.1:8080/v1")
    save(dialog)
    assert dialog.result() == dialog.DialogCode.Accepted
    assert not dialog.ollama_host_error.isVisible()
    assert dialog.result_settings().ollama_host == "localhost:11434"


def test_wrong_model_files_are_refused_at_save(qtbot, tiny_gguf, tmp_path: Path) -> None:
    model, mmproj = tiny_gguf
    dialog = SettingsDialog(Settings(engine="gguf", model=str(model), mmproj=str(mmproj)))
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.tabs.setCurrentIndex(2)
    text_file = tmp_path / "notes.gguf"
    text_file.write_text("not a model")
    cases = [
        (str(tmp_path / "missing.gguf"), str(mmproj), "model", "not found"),
        (str(mmproj), str(mmproj), "model", "is a vision projector"),
        (str(text_file), str(mmproj), "model", "not a GGUF file"),
        (str(model), str(model), "mmproj", "are the same file"),
        (str(model), str(OTHER_MMPROJ), "mmproj", "does not match"),
        (str(model), "", "mmproj", "Choose its mmproj .gguf file"),
    ]
    for model_text, mmproj_text, field, says in cases:
        dialog.model.setText(model_text)
        dialog.mmproj.setText(mmproj_text)
        save(dialog)
        label = dialog.model_error if field == "model" else dialog.mmproj_error
        assert dialog.result() != dialog.DialogCode.Accepted, model_text
        assert label.isVisible() and says in label.text(), label.text()
        assert "--" not in label.text()
        assert dialog.tabs.tabText(dialog.tabs.currentIndex()) == "Engine"
        assert dialog.model.text() == model_text
    dialog.model.setText(str(model))
    dialog.mmproj.setText(str(mmproj))
    save(dialog)
    assert dialog.result() == dialog.DialogCode.Accepted


def test_model_checks_follow_the_engine(tiny_hf_model, tiny_gguf) -> None:
    assert settings_problems(Settings(engine="transformers", model=str(tiny_hf_model))) == {}
    assert settings_problems(Settings(engine="transformers", model="Qwen/Qwen3-VL-2B-Instruct")) == {}
    assert "model" in settings_problems(Settings(engine="transformers", model="/no/such/folder"))
    assert "model" in settings_problems(Settings(engine="transformers", model=str(tiny_gguf[0])))
    assert settings_problems(Settings(engine="ollama", model="qwen3-vl:2b-instruct")) == {}


def test_browsing_reads_the_engines_trait_and_pairs_the_projector(
    qtbot, tiny_gguf, tiny_hf_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = Path(shutil.copy(tiny_gguf[0], tmp_path / "Qwen3VL-2B-Instruct-Q4_K_M.gguf"))
    mmproj = Path(shutil.copy(tiny_gguf[1], tmp_path / "mmproj-Qwen3VL-2B-Instruct-F16.gguf"))
    asked: list[str] = []
    # The system's file dialogs cannot be clicked here: stand-ins that record which one was asked for.
    monkeypatch.setattr(QFileDialog, "getExistingDirectory",
                        lambda *a, **k: asked.append("folder") or str(tiny_hf_model))
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        lambda *a, **k: asked.append("file") or (str(mmproj), ""))
    dialog = SettingsDialog(Settings(engine="gguf"))
    qtbot.addWidget(dialog)
    dialog.model_browse.click()  # the projector picked as the model: both fields are filled right
    assert (dialog.model.text(), dialog.mmproj.text()) == (str(model), str(mmproj))
    dialog.engine.setCurrentIndex(dialog.engine.findData("transformers"))
    dialog.model_browse.click()
    assert dialog.model.text() == str(tiny_hf_model)
    assert asked == ["file", "folder"]
    save(dialog)
    assert dialog.result() == dialog.DialogCode.Accepted
    saved = json.loads(settings_path().read_text()) if settings_path().exists() else None
    assert saved is None  # the dialog hands the settings back; the caller saves them


def test_a_gguf_model_without_projector_is_refused_naming_the_one_beside(tiny_gguf, tmp_path: Path) -> None:
    model = Path(shutil.copy(tiny_gguf[0], tmp_path / "Qwen3VL-2B-Instruct-Q4_K_M.gguf"))
    shutil.copy(tiny_gguf[1], tmp_path / "mmproj-Qwen3VL-2B-Instruct-F16.gguf")
    problems = settings_problems(Settings(engine="gguf", model=str(model)))
    assert list(problems) == ["mmproj"]
    assert "Choose its mmproj .gguf file" in problems["mmproj"]
    assert "mmproj-Qwen3VL-2B-Instruct-F16.gguf" in problems["mmproj"] and "--" not in problems["mmproj"]
    assert list(settings_problems(Settings(engine="gguf", model=str(tmp_path / "gone.gguf")))) == ["model"]
    assert settings_problems(Settings(engine="gguf", mmproj=str(tiny_gguf[1]))) == {}
