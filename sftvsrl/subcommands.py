"""Two-level commands (``sftvsrl data generalpoints``, ``sftvsrl play virl``): the task
name picks a module with ``add_arguments(parser)`` and ``run(args)``. Task modules must
stay light to import (no torch at module level)."""

from __future__ import annotations

import argparse
import importlib


def add_task_subparsers(parser: argparse.ArgumentParser, tasks: dict[str, tuple[str, str]]) -> None:
    sub = parser.add_subparsers(dest="task", metavar="TASK", required=True)
    for name, (module_name, help_text) in tasks.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        module = importlib.import_module(module_name)
        module.add_arguments(p)
        p.set_defaults(_task_module=module)


def run_task(args: argparse.Namespace) -> int:
    return int(args._task_module.run(args) or 0)
