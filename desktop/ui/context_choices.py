"""The Tag Photos dialog's Context group, wired: filled from the window's remembered choices, read back into
the run's :class:`~captioneer.desktop.core.context.ContextSpec`, off for tasks that have no place for it."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox

from captioneer.desktop.core.context import TYPED_FIELDS, ContextSpec, ordered_variables
from captioneer.desktop.core.tasks import get_task
from captioneer.desktop.library.browse import LibraryPrefs
from captioneer.desktop.ui.context_view import ContextGroupView


def fill_context(group: ContextGroupView, prefs: LibraryPrefs, task: QComboBox) -> None:
    """Show the choices remembered in ``prefs``; the group follows the ``task`` chosen (its item data)."""
    chosen = set(ordered_variables(prefs.context if isinstance(prefs.context, list) else ()))
    for name, box in group.variables.items():
        box.setChecked(name in chosen)
    for name in TYPED_FIELDS:
        getattr(group, name).setText(str(getattr(prefs, f"context_{name}") or ""))
    follow_task(group, task.currentData())
    task.currentIndexChanged.connect(lambda: follow_task(group, task.currentData()))


def follow_task(group: ContextGroupView, task_id: str | None) -> None:
    """Turn the group off (and say why) for a task whose prompt has no place for context."""
    takes = bool(task_id) and get_task(str(task_id)).takes_context
    group.setEnabled(takes)
    group.note.setText("" if takes else "This task does not use context (it does not describe the photo).")
    group.note.setVisible(not takes)


def chosen_context(group: ContextGroupView, prefs: LibraryPrefs) -> ContextSpec:
    """The group's choices as the run's context (none when the group is off), remembered in ``prefs``."""
    variables = ordered_variables(name for name, box in group.variables.items() if box.isChecked())
    typed = {name: getattr(group, name).text().strip() for name in TYPED_FIELDS}
    prefs.context = list(variables)
    for name, text in typed.items():
        setattr(prefs, f"context_{name}", text)
    if not group.isEnabled():
        return ContextSpec()
    return ContextSpec(variables, **typed)
