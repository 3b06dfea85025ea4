"""Two-level commands (``sftvsrl data generalpoints``, ``sftvsrl play virl``): the task
registry maps each name to a module with ``add_arguments(parser)`` and ``run(args)``.

Only the module of the task being run is imported (``sftvsrl data generalpoints`` must not
pay for, or break on, the map libraries V-IRL needs), so the caller passes the arguments
being parsed to tell which one that is.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence


def add_task_subparsers(
    parser: argparse.ArgumentParser, tasks: dict[str, tuple[str, str]], argv: Sequence[str] | None
) -> None:
    """One subparser per task; the arguments of the task named in ``argv`` are added
    (every task's when ``argv`` is None, at the cost of importing them all)."""
    sub = parser.add_subparsers(dest="task", metavar="TASK", required=True)
    for name, (module_name, help_text) in tasks.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_task_module_name=module_name)
        if argv is None or name in argv:
            importlib.import_module(module_name).add_arguments(p)


def run_task(args: argparse.Namespace) -> int:
    return int(importlib.import_module(args._task_module_name).run(args) or 0)
