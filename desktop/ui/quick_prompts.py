"""The quick-caption window's questions and banners: discard answers? send photos to a server?
Decisions are plain functions; the questions are real dialogs."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtWidgets import QMessageBox, QWidget

from captioneer.desktop.core.engine_setup import allowing, servers_to_ask
from captioneer.desktop.core.settings import Settings


def ask(parent: QWidget, title: str, text: str, accept: str, informative: str = "") -> bool:
    """A question with two buttons, ``accept`` and Cancel; True when the user chose ``accept``.

    Cancel is the default and Escape's answer, so a stray Enter never sends photos or drops answers."""
    box = QMessageBox(QMessageBox.Icon.Question, title, text, QMessageBox.StandardButton.NoButton, parent)
    if informative:
        box.setInformativeText(informative)
    yes = box.addButton(accept, QMessageBox.ButtonRole.AcceptRole)
    cancel = box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(cancel)
    box.setEscapeButton(cancel)
    box.exec()
    return box.clickedButton() is yes


def remote_banner(destinations: Sequence[str]) -> str:
    """The privacy banner over the list when photos leave this computer."""
    names = ", ".join(destinations)
    return f"Photos are sent to {names} to be captioned: they leave this computer."


def send_question(addresses: Sequence[str]) -> tuple[str, str]:
    """The question asked before the first photo goes to a new server, and what it means."""
    names = ", ".join(addresses)
    return (
        f"Send photos to {names}?",
        "This server is not on this computer: the photos you caption are sent to it over the network. "
        "Captioneer asks once per server.",
    )


def approve_servers(parent: QWidget, settings: Settings, destinations: Sequence[str]) -> Settings | None:
    """Ask before photos go to servers not agreed to yet: the settings with them allowed (unchanged when
    there were none to ask about), or None when the user said no."""
    new = servers_to_ask(destinations, settings.remote_servers_allowed)
    if not new:
        return settings
    text, informative = send_question(new)
    if not ask(parent, "Send Photos to a Server?", text, "Send Photos", informative):
        return None
    return allowing(settings, new)
