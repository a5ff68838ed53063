"""`captioneer tasks`: list the prompt presets."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tasks",
        help="list the task presets",
        description="List the task presets, each with what it takes: photos only, videos only, or photos "
        "and videos.",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from captioneer.desktop.core.tasks import all_tasks

    tasks = all_tasks()
    width = max(len(task_id) for task_id in tasks)
    for task in tasks.values():
        kind = " [JSON]" if task.structured else ""
        print(f"{task.id:<{width}}  {task.label}{kind} ({task.media}): {task.summary}")
    return 0
