"""Qt-free memory of the quick-caption cards: every answer a card got (task, time, text) with the follow-up
questions asked about it, and the decisions built on that: what a card shows and copies, which cards Caption
runs, and how many answers clearing the list would lose."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from captioneer.desktop.core.captioning import CaptionResult
from captioneer.desktop.core.tasks import get_task
from captioneer.desktop.ui.quick_caption import display_text


class Outcome(Enum):
    """How a card's last run ended; Caption runs the new, failed and cancelled ones."""

    NEW = "new"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class FollowUp:
    question: str
    answer: str


@dataclass
class Answer:
    """One finished answer of a card, the follow-ups asked about it, and whether the user copied it."""

    result: CaptionResult
    when: datetime
    question: str | None = None  # what was asked, for the tasks that answer a question
    follow_ups: list[FollowUp] = field(default_factory=list)
    copied: bool = False

    @property
    def task(self) -> str:
        return self.result.task

    def shown_text(self) -> str:
        """What the card shows, so what Copy text copies: the answer, then each question and its answer."""
        parts = [display_text(self.result)]
        parts += [f"Q: {f.question}\nA: {f.answer}" for f in self.follow_ups]
        return "\n\n".join(parts)

    def heading(self) -> str:
        """The task and the time, e.g. "Short caption · 14:05"."""
        return f"{get_task(self.task).label} · {self.when:%H:%M}"


@dataclass
class CardHistory:
    """Every answer of one card, oldest first, and the one on show (the newest unless browsed back)."""

    answers: list[Answer] = field(default_factory=list)
    index: int = -1

    def add(self, result: CaptionResult, when: datetime | None = None, question: str | None = None) -> Answer:
        answer = Answer(result, when or datetime.now(), question)
        self.answers.append(answer)
        self.index = len(self.answers) - 1
        return answer

    @property
    def current(self) -> Answer | None:
        return self.answers[self.index] if self.answers else None

    def browse(self, step: int) -> bool:
        """Show an earlier (-1) or later (+1) answer; False when there is none that way."""
        target = self.index + step
        if not 0 <= target < len(self.answers):
            return False
        self.index = target
        return True

    def add_follow_up(self, question: str, answer: str) -> None:
        """A follow-up belongs to the answer on show; its new text has not been copied yet."""
        current = self.current
        if current is None:
            raise ValueError("a follow-up needs an answer to follow")
        current.follow_ups.append(FollowUp(question, answer))
        current.copied = False

    def has_answer(self, task_id: str, question: str | None = None) -> bool:
        """Whether the card has an answer for the task (for a question task: to this question)."""
        return any(answer.task == task_id and answer.question == question for answer in self.answers)

    def uncopied(self) -> int:
        return sum(1 for answer in self.answers if not answer.copied)


def needs_caption(outcome: Outcome, history: CardHistory, task_id: str, question: str | None = None) -> bool:
    """Caption runs a card that has no answer for the chosen task (and question, for a task that answers
    one) yet, or whose last run failed or was cancelled; a good answer is re-run only when the user asks
    (Re-run, Re-run All)."""
    return outcome in (Outcome.FAILED, Outcome.CANCELLED) or not history.has_answer(task_id, question)


def uncopied_answers(histories: Iterable[CardHistory]) -> int:
    """How many answers were neither copied nor saved: what clearing the list or quitting would lose."""
    return sum(history.uncopied() for history in histories)


def discard_question(count: int) -> str:
    """The question asked before answers are thrown away."""
    noun = "answer has" if count == 1 else "answers have"
    return f"{count} {noun} not been copied. Discard {'it' if count == 1 else 'them'}?"


def shown_as_text(cards: Iterable[tuple[str, str]]) -> str:
    """Copy all as text: each card's name over exactly what the card shows."""
    blocks = [f"{name}\n{shown}" for name, shown in cards]
    return "\n\n".join(blocks) + ("\n" if blocks else "")
