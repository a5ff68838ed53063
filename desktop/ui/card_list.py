"""The quick-caption list of cards: one card per file, the answer streamed into it by ticket, its history of
answers and follow-ups, its copy, re-run and remove buttons, and copying every card at once."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QGuiApplication, QImage

from captioneer.backends.errors import window_text
from captioneer.desktop.core.captioning import CaptionResult
from captioneer.desktop.ui.card_history import CardHistory, Outcome, shown_as_text, uncopied_answers
from captioneer.desktop.ui.card_view import THUMB_EDGE, CardState, CardView
from captioneer.desktop.ui.main_view import MainView
from captioneer.desktop.ui.quick_caption import copy_values, display_text, file_key
from captioneer.desktop.ui.workers import Background

SETUP_ERRORS = ("engine", "configuration")
"""Error kinds that are about the settings or the engine, not the photo: shown once in the window's banner,
never on the cards."""

_STATES = {
    Outcome.NEW: CardState.WAITING,
    Outcome.DONE: CardState.DONE,
    Outcome.FAILED: CardState.FAILED,
    Outcome.CANCELLED: CardState.CANCELLED,
}


@dataclass
class Card:
    """One file in the list and what has happened to it."""

    id: int
    path: Path
    key: str
    view: CardView
    history: CardHistory = field(default_factory=CardHistory)
    outcome: Outcome = Outcome.NEW
    result: CaptionResult | None = None  # the last finished caption run, ok or failed
    ticket: int | None = None
    streamed: list[str] = field(default_factory=list)
    question: str | None = None  # the follow-up being answered, if that is what runs
    asked: str | None = None  # the question of a question task being answered
    structured: bool = False
    note: str = ""  # why a new card has not run, e.g. "type a question"


class CardList(QObject):
    """The cards on show by id, and the tickets of the caption jobs that write into them."""

    resultReady = Signal(object)  # CaptionResult, for every finished job (ok or failed)
    cardCancelled = Signal(int)
    followUpRequested = Signal(object, str)  # Card, question
    rerunRequested = Signal(object)  # Card

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
        self._keys: dict[str, Card] = {}
        self._tickets: dict[int, Card] = {}
        self._ids = itertools.count(1)
        background.relay.thumbnailReady.connect(self._on_thumbnail)
        background.relay.thumbnailFailed.connect(self._on_thumbnail_failed)

    def add(self, path: Path) -> Card | None:
        """A new card for ``path``, its thumbnail made off the GUI thread; None if the file has one."""
        key = file_key(path)
        if key in self._keys:
            return None
        card = Card(id=next(self._ids), path=path, key=key, view=CardView(path.name))
        card.view.setToolTip(str(path))
        card.view.copyRequested.connect(lambda what, card=card: self.copy_card(card, what))
        card.view.followUpRequested.connect(
            lambda question, card=card: self.followUpRequested.emit(card, question)
        )
        card.view.removeRequested.connect(lambda card=card: self.remove(card))
        card.view.rerunRequested.connect(lambda card=card: self.rerunRequested.emit(card))
        card.view.browseRequested.connect(lambda step, card=card: self.browse(card, step))
        self.cards[card.id] = card
        self._keys[key] = card
        self.view.add_card(card.view)
        self.background.thumbnail(card.id, path, THUMB_EDGE * 2)
        return card

    def find(self, path: Path) -> Card | None:
        return self._keys.get(file_key(path))

    @Slot(int, QImage)
    def _on_thumbnail(self, card_id: int, image: QImage) -> None:
        if card_id in self.cards:
            self.cards[card_id].view.set_thumbnail(image)

    @Slot(int, str)
    def _on_thumbnail_failed(self, card_id: int, reason: str) -> None:
        if card_id in self.cards:
            self.cards[card_id].view.set_thumbnail_error(reason)

    # -- what a card shows -------------------------------------------------------------------------------

    def refresh(self, card: Card) -> None:
        """Show the card's state at rest: its answer on show (or its error) and the buttons that apply."""
        view, current = card.view, card.history.current
        failed = card.outcome is Outcome.FAILED
        detail = card.note if card.outcome is Outcome.NEW else ""
        if card.outcome is Outcome.DONE and current is not None:
            detail = f"{current.result.seconds:.1f} s"
        view.set_state(_STATES[card.outcome], detail)
        detail_text = card.result.error_detail if failed and card.result else ""
        view.text.setToolTip(f"Details: {detail_text}" if detail_text else "")
        if failed:
            view.set_text(window_text(card.result.error) if card.result and card.result.error else "Failed.")
        elif current is not None:
            view.set_text(current.shown_text())
        elif card.outcome is Outcome.CANCELLED:
            view.set_text("Stopped before an answer was finished. Press Caption to run it again.")
        else:
            view.set_text("")
        if current is None or failed:
            view.show_history("", 0, 0)
            view.set_copy_enabled(False, False, False)
        else:
            view.show_history(current.heading(), card.history.index + 1, len(card.history.answers))
            values = copy_values(current.result)
            view.set_copy_enabled(True, bool(values.alt_text), bool(values.keywords))
        view.show_actions(card.ticket is None and current is not None and not failed)

    def browse(self, card: Card, step: int) -> None:
        if card.ticket is None and card.history.browse(step):
            self.refresh(card)

    def shown_text(self, card: Card) -> str:
        return card.view.text.text()

    # -- answers by ticket -------------------------------------------------------------------------------

    def start(
        self, card: Card, structured: bool, question: str | None = None, asked: str | None = None
    ) -> int:
        """Make the card wait for a new job's answer (a follow-up when ``question`` is given, the answer to
        ``asked`` for a question task); returns the job's ticket (a later job replaces it). The answer on
        show stays until the new one streams in."""
        card.ticket = next(self._ids)
        card.asked = asked
        self._tickets[card.ticket] = card
        card.streamed = []
        card.question = question
        card.structured = structured
        card.note = ""
        card.view.set_state(CardState.WAITING)
        card.view.show_actions(False)
        return card.ticket

    def _card_for(self, ticket: int) -> Card | None:
        card = self._tickets.get(ticket)
        return card if card is not None and card.ticket == ticket and card.id in self.cards else None

    def _streaming_text(self, card: Card) -> str:
        current = card.history.current
        if card.question is not None and current is not None:
            return f"{current.shown_text()}\n\nQ: {card.question}\nA: " + "".join(card.streamed)
        return "".join(card.streamed)

    @Slot(int)
    def on_started(self, ticket: int) -> None:
        card = self._card_for(ticket)
        if card is not None:
            card.view.set_state(CardState.WORKING)
            card.view.show_history("", 0, 0)
            card.view.set_text(self._streaming_text(card) + "…")

    @Slot(int, str)
    def on_chunk(self, ticket: int, text: str) -> None:
        card = self._card_for(ticket)
        if card is not None:
            card.streamed.append(text)
            monospace = card.structured and card.question is None
            card.view.set_text(self._streaming_text(card), monospace=monospace)

    @Slot(int, str)
    def on_retrying(self, ticket: int, reason: str) -> None:
        card = self._card_for(ticket)
        if card is not None:
            card.streamed = []
            card.view.set_state(CardState.WORKING, "retrying")
            card.view.setToolTip(window_text(reason))

    @Slot(int, object)
    def on_finished(self, ticket: int, result: CaptionResult) -> None:
        card = self._card_for(ticket)
        self._tickets.pop(ticket, None)
        if card is None:
            return
        card.ticket = None
        question, card.question = card.question, None
        if result.error_kind in SETUP_ERRORS:
            card.note = "not run"  # the window's banner says why; the card keeps what it had
        elif question is not None:
            if result.ok:
                card.history.add_follow_up(question, display_text(result))
            else:
                self._status(f"The follow-up question failed: {window_text(result.error or '')}")
        elif result.ok:
            card.result = result
            card.history.add(result, question=card.asked)
            card.outcome = Outcome.DONE
        else:
            card.result = result
            card.outcome = Outcome.FAILED
        self.refresh(card)
        self.resultReady.emit(result)

    def hold(self, card: Card, note: str) -> None:
        """A card that was not sent (no question typed, a server not agreed to): say why, keep the rest."""
        card.note = note
        if card.ticket is None:
            self.refresh(card)

    @Slot(int)
    def on_cancelled(self, ticket: int) -> None:
        card = self._card_for(ticket)
        self._tickets.pop(ticket, None)
        if card is None:
            return
        card.ticket = None
        card.streamed = []
        question, card.question = card.question, None
        if question is None:  # a cancelled follow-up leaves the card as it was
            card.outcome = Outcome.CANCELLED
            if not card.history.answers:
                card.result = None
        self.refresh(card)
        self.cardCancelled.emit(card.id)

    # -- copying -----------------------------------------------------------------------------------------

    def copy_card(self, card: Card, what: str) -> None:
        """Copy text copies exactly what the card shows; alt text and keywords, the answer on show's."""
        current = card.history.current
        if current is None:
            return
        value = self.shown_text(card) if what == "text" else getattr(copy_values(current.result), what)
        if value:
            QGuiApplication.clipboard().setText(value)
            current.copied = True
            card.view.flash_copied(what)

    def copy_all(self, as_json: bool) -> None:
        """Every card's answer on show (failed ones with their error), as text exactly as shown or as JSON."""
        cards = self.cards.values()
        shown = [card for card in cards if card.history.current or card.outcome is Outcome.FAILED]
        if not shown:
            self._status("Nothing to copy yet.")
            return
        if as_json:
            items = []
            for card in shown:
                current = card.history.current
                if card.outcome is Outcome.FAILED or current is None:
                    items.append(card.result.to_json() if card.result else {"path": str(card.path)})
                    continue
                item = current.result.to_json()
                if current.follow_ups:
                    item["follow_ups"] = [{"question": f.question, "answer": f.answer}
                                          for f in current.follow_ups]
                items.append(item)
            text = json.dumps(items, ensure_ascii=False, indent=2) + "\n"
        else:
            text = shown_as_text((card.path.name, self.shown_text(card)) for card in shown)
        QGuiApplication.clipboard().setText(text)
        for card in shown:
            if card.history.current is not None:
                card.history.current.copied = True
        self._status(f"Copied {len(shown)} result(s) as {'JSON' if as_json else 'text'}.")

    def uncopied(self) -> int:
        """Answers that clearing the list would lose: not copied since they were made."""
        return uncopied_answers(card.history for card in self.cards.values())

    # -- removing ----------------------------------------------------------------------------------------

    def remove(self, card: Card) -> None:
        self.cards.pop(card.id, None)
        self._keys.pop(card.key, None)
        card.view.hide()
        self.view.remove_card(card.view)
        card.view.deleteLater()
        if not self.cards:
            self.view.show_cards(False)

    def clear(self) -> None:
        for card in list(self.cards.values()):
            self.remove(card)
