"""Reversible review steps: the state of results before a review action, and putting it back."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from captioneer.desktop.library.catalog.store import Catalog


@dataclass(frozen=True)
class ResultState:
    """What a review step may change on a result, as it was before."""

    result_id: int
    review: str
    review_reason: str | None
    caption: str
    title: str | None
    alt_text: str | None
    keywords: str
    edited: int


def snapshot(catalog: Catalog, result_ids: Sequence[int]) -> tuple[ResultState, ...]:
    """The current state of these results, to undo a review action on them."""
    if not result_ids:
        return ()
    marks = ",".join("?" * len(result_ids))
    rows = catalog.db.execute(
        "SELECT id, review, review_reason, caption, title, alt_text, keywords, edited FROM results "
        f"WHERE id IN ({marks})",
        list(result_ids),
    )
    return tuple(ResultState(*row) for row in rows)


def restore(catalog: Catalog, states: Sequence[ResultState]) -> None:
    """Put results back exactly as :func:`snapshot` saw them, in one transaction."""
    now = time.time()
    with catalog.transaction() as db:
        for state in states:
            db.execute(
                "UPDATE results SET review = ?, review_reason = ?, caption = ?, title = ?, alt_text = ?, "
                "keywords = ?, edited = ?, updated_at = ? WHERE id = ?",
                (
                    state.review,
                    state.review_reason,
                    state.caption,
                    state.title,
                    state.alt_text,
                    state.keywords,
                    state.edited,
                    now,
                    state.result_id,
                ),
            )
