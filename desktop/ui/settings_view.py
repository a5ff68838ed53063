"""The settings dialog's layout: engine and model, generation, language, servers, metadata and appearance."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from captioneer.desktop.core.languages import OUTPUT_LANGUAGES
from captioneer.desktop.core.settings import MAX_VIDEO_TOKENS, MIN_VIDEO_TOKENS
from captioneer.desktop.ui.theme import set_error_style

QUANTS = ("", "bf16", "fp16", "fp32", "nf4", "int8")
DEVICES = ("auto", "cpu", "cuda", "mps")
METADATA_MODES = (
    ("sidecar", "Sidecar files (.xmp) next to the photos"),
    ("embedded", "Inside the photo files (sidecars for RAW)"),
    ("both", "Both: inside the photos and in sidecars"),
)
THEME_LABELS = (("system", "Same as the system"), ("light", "Light"), ("dark", "Dark"))


def _seconds(low: float, high: float) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setDecimals(1)
    box.setSuffix(" s")
    return box


def field_error() -> QLabel:
    """The line under a field that says why Save refused its value; hidden while there is nothing to say."""
    label = QLabel()
    label.setWordWrap(True)
    set_error_style(label)  # palette(bright-text) is white on the light palette
    label.hide()
    return label


def _with_button(field: QLineEdit, button: QPushButton) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(6)
    layout.addWidget(field, 1)
    layout.addWidget(button)
    return row


def _with_hint(box: QSpinBox, hint: QLabel) -> QWidget:
    """A token budget and, beside it, what the budget means."""
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(box)
    layout.addWidget(hint, 1)
    return row


class SettingsView(QDialog):
    """Widgets of the settings dialog, grouped the way people think about them."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(680)

        self.engine = QComboBox()
        self.model = QLineEdit()
        self.model.setPlaceholderText("GGUF file, model folder, Ollama tag or server model name")
        self.model_browse = QPushButton("Browse…")
        self.mmproj = QLineEdit()
        self.mmproj.setPlaceholderText("mmproj-….gguf (the vision projector, GGUF only)")
        self.mmproj_browse = QPushButton("Browse…")
        self.quant = QComboBox()
        for quant in QUANTS:
            self.quant.addItem(quant or "Default for the model", quant)
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        engine_box = QGroupBox("Engine and model")
        engine_form = QFormLayout(engine_box)
        engine_form.addRow("Engine", self.engine)
        self.model_error = field_error()
        self.mmproj_error = field_error()
        engine_form.addRow("Model", _with_button(self.model, self.model_browse))
        engine_form.addRow("", self.model_error)
        engine_form.addRow("Vision projector", _with_button(self.mmproj, self.mmproj_browse))
        engine_form.addRow("", self.mmproj_error)
        engine_form.addRow("Precision", self.quant)
        engine_form.addRow("Device", self.device)

        self.image_tokens = QSpinBox()
        self.image_tokens.setRange(64, 16384)
        self.image_tokens.setSingleStep(64)
        self.image_tokens.setSuffix(" tokens")
        self.image_tokens_hint = QLabel()
        self.video_tokens = QSpinBox()
        self.video_tokens.setRange(MIN_VIDEO_TOKENS, MAX_VIDEO_TOKENS)
        self.video_tokens.setSingleStep(512)
        self.video_tokens.setSuffix(" tokens")
        self.video_tokens.setToolTip(
            "A video clip's whole budget, shared by the frames sampled from it (Tag Photos shows the frames "
            "and their size for your clips). More tokens: more or sharper frames, more memory and time."
        )
        self.video_tokens_hint = QLabel()
        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(0, 32768)
        self.max_tokens.setSingleStep(32)
        self.max_tokens.setSpecialValueText("Task default")
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.0, 2.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setDecimals(2)
        self.language = QComboBox()
        self.language.setEditable(True)
        self.language.addItems(OUTPUT_LANGUAGES)
        generation_box = QGroupBox("Generation")
        generation_form = QFormLayout(generation_box)
        generation_form.addRow("Image detail", _with_hint(self.image_tokens, self.image_tokens_hint))
        generation_form.addRow("Video clip detail", _with_hint(self.video_tokens, self.video_tokens_hint))
        generation_form.addRow("Max answer length", self.max_tokens)
        generation_form.addRow("Temperature", self.temperature)
        generation_form.addRow("Answer language", self.language)

        self.ollama_host = QLineEdit()
        self.ollama_host.setPlaceholderText("http://127.0.0.1:11434")
        self.openai_urls = QPlainTextEdit()
        self.openai_urls.setPlaceholderText("http://127.0.0.1:8080/v1\n(one server per line)")
        self.openai_urls.setFixedHeight(self.fontMetrics().lineSpacing() * 4 + 12)
        self.openai_key = QLineEdit()
        self.openai_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.openai_key.setPlaceholderText("only if the server asks for one")
        self.server_parallel = QSpinBox()
        self.server_parallel.setRange(1, 64)
        self.server_parallel.setToolTip(
            "How many photos each server works on at once (vLLM batches them; for Ollama set "
            "OLLAMA_NUM_PARALLEL to match)."
        )
        self.server_connect_timeout = _seconds(0.1, 600)
        self.server_read_timeout = _seconds(0.1, 3600)
        self.server_read_timeout.setToolTip("A server silent this long, before or during an answer, is hung.")
        self.server_request_timeout = _seconds(0.1, 86400)
        self.server_request_timeout.setToolTip("The most one server may take for one photo's whole answer.")
        self.server_retry_down_after = _seconds(0.1, 86400)
        self.server_retry_down_after.setToolTip(
            "A server that fails or keeps answering busy is skipped this long, then tried with one request."
        )
        self.server_max_answer_kb = QSpinBox()
        self.server_max_answer_kb.setRange(1, 1_048_576)
        self.server_max_answer_kb.setSuffix(" kB")
        self.server_max_answer_kb.setToolTip("A longer answer is cut off: the server ignored its limit.")
        servers_box = QGroupBox("Servers")
        servers_form = QFormLayout(servers_box)
        self.ollama_host_error = field_error()
        self.openai_urls_error = field_error()
        servers_form.addRow("Ollama address", self.ollama_host)
        servers_form.addRow("", self.ollama_host_error)
        servers_form.addRow("OpenAI-compatible servers", self.openai_urls)
        servers_form.addRow("", self.openai_urls_error)
        servers_form.addRow("API key", self.openai_key)
        servers_form.addRow("Photos at once per server", self.server_parallel)
        servers_form.addRow("Connect timeout", self.server_connect_timeout)
        servers_form.addRow("Silence allowed (read timeout)", self.server_read_timeout)
        servers_form.addRow("Time per photo (request timeout)", self.server_request_timeout)
        servers_form.addRow("Skip a failing server for", self.server_retry_down_after)
        servers_form.addRow("Longest answer", self.server_max_answer_kb)

        self.metadata_mode = QComboBox()
        for mode, label in METADATA_MODES:
            self.metadata_mode.addItem(label, mode)
        self.theme = QComboBox()
        for theme, label in THEME_LABELS:
            self.theme.addItem(label, theme)
        other_box = QGroupBox("Metadata and appearance")
        other_form = QFormLayout(other_box)
        other_form.addRow("Write metadata to", self.metadata_mode)
        other_form.addRow("Theme", self.theme)

        self.error = field_error()
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.rejected.connect(self.reject)

        self.tabs = QTabWidget()
        for box, title in (
            (engine_box, "Engine"), (generation_box, "Generation"), (servers_box, "Servers"),
            (other_box, "Metadata and look"),
        ):
            box.setTitle("")
            box.setFlat(True)
            page = QWidget()
            page_layout = QVBoxLayout(page)
            page_layout.setContentsMargins(12, 12, 12, 12)
            page_layout.addWidget(box)
            page_layout.addStretch(1)
            self.tabs.addTab(page, title)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 16, 16, 12)
        layout.setSpacing(12)
        layout.addWidget(self.tabs)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
