"""``sftvsrl play <task>``: a person plays an environment in the terminal."""

from __future__ import annotations

import argparse

from sftvsrl.subcommands import add_task_subparsers, run_task

TASKS = {
    "generalpoints": ("sftvsrl.envs.generalpoints.play", "play a GeneralPoints hand"),
    "virl": ("sftvsrl.envs.virl.play", "walk a V-IRL route"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_task_subparsers(parser, TASKS)


def run(args: argparse.Namespace) -> int:
    return run_task(args)
