"""What Save refuses in the settings: server addresses that cannot work and model files that are missing or
of the wrong kind, each as one message for the field it concerns. Qt-free and pure but for reading headers."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from urllib.parse import urlsplit

from captioneer.backends.errors import ModelFileError
from captioneer.backends.gguf_files import check_gguf_pair, check_mmproj_file, check_model_file
from captioneer.backends.registry import engine_entry
from captioneer.backends.transformers_loading import resolve_model_dir
from captioneer.desktop.core.fixes import window_error
from captioneer.desktop.core.settings import Settings

_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.\-_]*[A-Za-z0-9])?$")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def address_problem(address: str) -> str | None:
    """Why ``address`` cannot reach a server, or None. A bare ``host`` or ``host:port`` is fine (the
    engines add ``http://``); the scheme must be http or https, and the port 1–65535."""
    text = address.strip()
    if not text:
        return None
    if any(char.isspace() for char in text):
        return f"“{text}” has a space in it; an address has none (for example http://127.0.0.1:11434)."
    scheme, found, rest = text.partition("://")
    if not found:
        scheme, rest = "http", text
    if scheme.lower() not in ("http", "https"):
        return f"“{text}” starts with “{scheme}://”; an address starts with http:// or https://."
    try:
        parts = urlsplit(f"{scheme}://{rest}")
    except ValueError:  # a bracketed host that is no IPv6 address
        return f"“{text}” is not an address: check what is between [ and ]."
    host = parts.hostname
    if not host:
        return f"“{text}” names no computer: add its name or IP address, e.g. {scheme}://127.0.0.1:11434."
    if not (_is_ip(host) if ":" in host else _HOST.match(host)):
        return f"“{host}” in “{text}” is not a computer name or IP address."
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        return f"The port in “{text}” must be a number from 1 to 65535."
    return None


def _model_problem(settings: Settings) -> str | None:
    entry = engine_entry(settings.engine)
    model = settings.model.strip()
    if not model or not entry.local_files:
        return None
    try:
        if entry.needs_mmproj:
            check_model_file(model)
        elif model.startswith(("/", ".", "~")) or Path(model).expanduser().exists() or model.count("/") != 1:
            resolve_model_dir(model)  # a repo id (owner/name) is looked up in the download cache at load
    except ModelFileError as exc:
        return window_error(exc).text
    return None


def _mmproj_problem(settings: Settings) -> str | None:
    """What is wrong with the projector: missing for a model that needs one, not a projector, or made for
    another model. A bad model is not repeated here (it is shown next to the model)."""
    if not engine_entry(settings.engine).needs_mmproj or not (settings.mmproj or settings.model):
        return None
    try:
        model = check_model_file(settings.model) if settings.model else None
    except ModelFileError:
        model = None
        if not settings.mmproj:
            return None
    try:
        if model is not None:
            check_gguf_pair(model.path, settings.mmproj)  # all the engine's checks, missing projector too
        else:
            check_mmproj_file(settings.mmproj or "")
    except ModelFileError as exc:
        return window_error(exc).text
    return None


def settings_problems(settings: Settings) -> dict[str, str]:
    """Field name → what is wrong with it, for every field Save must refuse (empty: the settings can be
    saved). Addresses are checked whatever the engine; model files for the engine that uses them."""
    problems: dict[str, str] = {}
    if settings.ollama_host and (problem := address_problem(settings.ollama_host)):
        problems["ollama_host"] = problem
    bad_urls = [problem for url in settings.openai_base_urls if (problem := address_problem(url))]
    if bad_urls:
        problems["openai_base_urls"] = " ".join(bad_urls)
    if problem := _model_problem(settings):
        problems["model"] = problem
    if problem := _mmproj_problem(settings):
        problems["mmproj"] = problem
    return problems
