"""`captioneer tasks`: list the prompt presets."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tasks", help="list the task presets", description="List the task presets."
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from captioneer.desktop.core.tasks import all_tasks

    tasks = all_tasks()
    width = max(len(task_id) for task_id in tasks)
    for task in tasks.values():
        kind = " [JSON]" if task.structured else ""
        print(f"{task.id:<{width}}  {task.label}{kind}: {task.summary}")
    return 0
