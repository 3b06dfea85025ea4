"""``sftvsrl data <task>``: write expert demonstrations as prompt/completion JSONL."""

from __future__ import annotations

import argparse

from sftvsrl.subcommands import add_task_subparsers, run_task

TASKS = {
    "generalpoints": ("sftvsrl.data.generalpoints", "GeneralPoints card-game demonstrations"),
    "virl": ("sftvsrl.data.virl", "V-IRL navigation demonstrations"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_task_subparsers(parser, TASKS)


def run(args: argparse.Namespace) -> int:
    return run_task(args)
