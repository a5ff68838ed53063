"""The quick-caption list of cards: one card per image, the answer streamed into it by ticket, its copy,
follow-up and remove buttons, and copying every result at once."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QGuiApplication, QImage

from captioneer.desktop.core.captioning import CaptionResult
from captioneer.desktop.ui.card_view import THUMB_EDGE, CardState, CardView
from captioneer.desktop.ui.main_view import MainView
from captioneer.desktop.ui.quick_caption import all_as_json, all_as_text, copy_values, display_text
from captioneer.desktop.ui.workers import Background


@dataclass
class Card:
    """One image in the list and what has happened to it."""

    id: int
    path: Path
    view: CardView
    result: CaptionResult | None = None
    ticket: int | None = None
    streamed: list[str] = field(default_factory=list)
    prefix: str = ""  # earlier answers shown above a follow-up's answer
    structured: bool = False


class CardList(QObject):
    """The cards on show by id, and the tickets of the caption jobs that write into them."""

    resultReady = Signal(object)  # CaptionResult, for every finished card (ok or failed)
    cardCancelled = Signal(int)
    followUpRequested = Signal(object, str)  # Card, question

    def __init__(
        self,
        view: MainView,
        background: Background,
        status: Callable[[str], None],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.view = view
        self.background = background
        self._status = status
        self.cards: dict[int, Card] = {}
        self._tickets: dict[int, Card] = {}
        self._ids = itertools.count(1)
        background.relay.thumbnailReady.connect(self._on_thumbnail)
        background.relay.thumbnailFailed.connect(self._on_thumbnail_failed)

    def add(self, path: Path) -> Card:
        """A new card for ``path``, its thumbnail made off the GUI thread."""
        card = Card(id=next(self._ids), path=path, view=CardView(path.name))
        card.view.setToolTip(str(path))
        card.view.copyRequested.connect(lambda what, card=card: self.copy_card(card, what))
        card.view.followUpRequested.connect(
            lambda question, card=card: self.followUpRequested.emit(card, question)
        )
        card.view.removeRequested.connect(lambda card=card: self.remove(card))
        self.cards[card.id] = card
        self.view.add_card(card.view)
        self.background.thumbnail(card.id, path, THUMB_EDGE * 2)
        return card

    @Slot(int, QImage)
    def _on_thumbnail(self, card_id: int, image: QImage) -> None:
        if card_id in self.cards:
            self.cards[card_id].view.set_thumbnail(image)

    @Slot(int, str)
    def _on_thumbnail_failed(self, card_id: int, reason: str) -> None:
        if card_id in self.cards:
            self.cards[card_id].view.set_thumbnail_error(reason)

    # -- answers by ticket -------------------------------------------------------------------------------

    def start(self, card: Card, prefix: str, structured: bool) -> int:
        """Make the card wait for a new job's answer; returns the job's ticket (a later job replaces it)."""
        card.ticket = next(self._ids)
        self._tickets[card.ticket] = card
        card.streamed = []
        card.prefix = prefix
        card.structured = structured
        if not prefix:
            card.view.set_text("")
        card.view.set_state(CardState.WAITING)
        self._sync_actions(card)
        return card.ticket

    def _card_for(self, ticket: int) -> Card | None:
        card = self._tickets.get(ticket)
        return card if card is not None and card.ticket == ticket and card.id in self.cards else None

    @staticmethod
    def _sync_actions(card: Card) -> None:
        idle = card.ticket is None
        card.view.show_actions(idle and card.result is not None and card.result.ok)

    @Slot(int)
    def on_started(self, ticket: int) -> None:
        card = self._card_for(ticket)
        if card is not None:
            card.view.set_state(CardState.WORKING)
            if card.prefix:
                card.view.set_text(card.prefix + "…")

    @Slot(int, str)
    def on_chunk(self, ticket: int, text: str) -> None:
        card = self._card_for(ticket)
        if card is not None:
            card.streamed.append(text)
            card.view.set_text(card.prefix + "".join(card.streamed), monospace=card.structured)

    @Slot(int, str)
    def on_retrying(self, ticket: int, reason: str) -> None:
        card = self._card_for(ticket)
        if card is not None:
            card.streamed = []
            card.view.set_state(CardState.WORKING, "retrying")
            card.view.setToolTip(reason)

    @Slot(int, object)
    def on_finished(self, ticket: int, result: CaptionResult) -> None:
        card = self._card_for(ticket)
        self._tickets.pop(ticket, None)
        if card is None:
            return
        card.ticket = None
        if result.ok:
            card.result = result
            card.view.set_text(card.prefix + display_text(result))
            card.view.set_state(CardState.DONE, f"{result.seconds:.1f} s")
            values = copy_values(result)
            card.view.set_copy_enabled(bool(values.text), bool(values.alt_text), bool(values.keywords))
        else:
            self.show_failure(card, result)
        self._sync_actions(card)
        self.resultReady.emit(result)

    def show_failure(self, card: Card, result: CaptionResult) -> None:
        card.result = result
        card.view.set_text(card.prefix + (result.error or "Failed."))
        card.view.text.setToolTip(f"Details: {result.error_detail}" if result.error_detail else "")
        card.view.set_state(CardState.FAILED)
        card.view.set_copy_enabled(False, False, False)

    @Slot(int)
    def on_cancelled(self, ticket: int) -> None:
        card = self._card_for(ticket)
        self._tickets.pop(ticket, None)
        if card is None:
            return
        card.ticket = None
        card.streamed = []
        if card.prefix:  # a cancelled follow-up keeps the earlier answers
            card.view.set_text(card.prefix.rsplit("\n\nQ: ", 1)[0])
        else:
            card.result = None
            card.view.set_text("Stopped before an answer was finished. Press Caption to run it again.")
            card.view.set_copy_enabled(False, False, False)
        card.view.set_state(CardState.CANCELLED)
        self._sync_actions(card)
        self.cardCancelled.emit(card.id)

    # -- results -----------------------------------------------------------------------------------------

    def copy_card(self, card: Card, what: str) -> None:
        if card.result is None:
            return
        value = getattr(copy_values(card.result), what)
        if value:
            QGuiApplication.clipboard().setText(value)
            card.view.flash_copied(what)

    def finished_results(self) -> list[CaptionResult]:
        return [card.result for card in self.cards.values() if card.result is not None]

    def copy_all(self, as_json: bool) -> None:
        results = self.finished_results()
        if not results:
            self._status("Nothing to copy yet.")
            return
        QGuiApplication.clipboard().setText(all_as_json(results) if as_json else all_as_text(results))
        self._status(f"Copied {len(results)} result(s) as {'JSON' if as_json else 'text'}.")

    def remove(self, card: Card) -> None:
        self.cards.pop(card.id, None)
        card.view.hide()
        self.view.cards_layout.removeWidget(card.view)
        card.view.deleteLater()
        if not self.cards:
            self.view.show_cards(False)

    def clear(self) -> None:
        for card in list(self.cards.values()):
            self.remove(card)
