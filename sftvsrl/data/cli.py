"""``sftvsrl data <task>``: write expert demonstrations as prompt/completion JSONL."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from sftvsrl.envs.tasks import commands
from sftvsrl.subcommands import add_task_subparsers, run_task

TASK_CLI = "data"  # the registry's command group: each task family names its module for it


def add_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> None:
    add_task_subparsers(parser, commands(TASK_CLI), argv)


def run(args: argparse.Namespace) -> int:
    return run_task(args)
