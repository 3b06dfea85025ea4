"""Two-level commands (``sftvsrl data generalpoints``, ``sftvsrl play virl``): the task
name picks a module with ``add_arguments(parser)`` and ``run(args)``.

Only the module of the task being run is imported (``sftvsrl data generalpoints`` must not
pay for, or break on, the map libraries V-IRL needs). ``sftvsrl.cli`` tells this module
which arguments it is parsing through ``set_argv``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

_argv: list[str] | None = None


def set_argv(argv: list[str]) -> None:
    global _argv
    _argv = list(argv)


def add_task_subparsers(parser: argparse.ArgumentParser, tasks: dict[str, tuple[str, str]]) -> None:
    sub = parser.add_subparsers(dest="task", metavar="TASK", required=True)
    argv = _argv if _argv is not None else sys.argv[1:]
    for name, (module_name, help_text) in tasks.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_task_module_name=module_name)
        if name in argv:
            importlib.import_module(module_name).add_arguments(p)


def run_task(args: argparse.Namespace) -> int:
    return int(importlib.import_module(args._task_module_name).run(args) or 0)
