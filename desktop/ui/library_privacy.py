"""Where the library's photos go: a banner naming the server on another computer that tagging would send
photos to, and the question before a run sends the first one (Send Photos / Cancel), remembered per address in
the settings' ``remote_servers_allowed``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

from PySide6.QtCore import QObject, Signal

from captioneer.backends.base import EngineConfig
from captioneer.backends.errors import CaptioneerError
from captioneer.desktop.core.engine_setup import allowing, remote_destinations, servers_to_ask
from captioneer.desktop.ui.library_dialogs_view import RemoteQuestionView
from captioneer.desktop.ui.library_session import LibrarySession
from captioneer.desktop.ui.library_view import LibraryView


def privacy_note(destinations: Sequence[str], allowed: Sequence[str] = ()) -> str:
    """The banner's text (rich text): which server(s) tagging sends photos to, each on a line of its own (Qt
    would break an address after its ``//``), and whether the person already agreed; empty when photos stay
    here."""
    if not destinations:
        return ""
    where = "<br>".join(f"<b>{escape(server)}</b>" for server in destinations)
    asks = (
        "You agreed to send photos there."
        if not servers_to_ask(destinations, allowed)
        else "The first run asks before anything is sent."
    )
    return (
        f"Tagging sends photos to a server on another computer:<br>{where}<br>{asks} Choose a local engine "
        "in Settings to keep photos on this computer."
    )


class PrivacyGuard(QObject):
    """Keeps the privacy banner true to the settings and asks before photos leave this computer.

    ``settingsChosen`` carries settings with newly allowed servers, for the window to save and share."""

    settingsChosen = Signal(object)  # Settings

    def __init__(
        self,
        session: LibrarySession,
        view: LibraryView,
        engine_config: Callable[[], EngineConfig],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.view = view
        self._engine_config = engine_config
        view.privacy_banner.dismiss_button.hide()
        view.privacy_banner.accept_button.setText("Settings…")
        view.privacy_banner.accept_button.clicked.connect(view.settings_action.trigger)

    def destinations(self) -> tuple[str, ...]:
        """The servers off this computer the chosen engine would send photos to (none without a model)."""
        try:
            return remote_destinations(self._engine_config())
        except CaptioneerError:
            return ()

    def refresh(self) -> None:
        """Show the banner while photos would leave this computer; hide it when they would not."""
        note = privacy_note(self.destinations(), self.session.settings.remote_servers_allowed)
        self.view.privacy_banner.text.setText(note)
        self.view.privacy_banner.setVisible(bool(note))

    def allows(self, config: EngineConfig) -> bool:
        """Whether a run with ``config`` may start: photos stay here, every server was agreed to before, or
        the person agrees now (remembered for next time). False when the person cancels."""
        asked = servers_to_ask(remote_destinations(config), self.session.settings.remote_servers_allowed)
        if not asked:
            return True
        question = RemoteQuestionView(asked, self.view)
        question.exec()
        if question.clickedButton() is not question.send_button:
            self.session.notify("Nothing was sent: the run did not start.")
            return False
        self.settingsChosen.emit(allowing(self.session.settings, asked))
        return True
