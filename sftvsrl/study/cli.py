"""``sftvsrl study --config configs/study/<name>.yaml --out runs/<name> [key=value ...]``."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="study preset, e.g. configs/study/smoke.yaml")
    parser.add_argument("--out", required=True, help="output folder; re-running resumes it")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="overrides, e.g. stage2.rl_updates=10 (default: none)",
    )


def run(args: argparse.Namespace) -> int:
    from sftvsrl.study.config import load_study_config
    from sftvsrl.study.run import run_study

    cfg = load_study_config(args.config, args.overrides)
    command = "sftvsrl study " + " ".join([f"--config {args.config}", f"--out {args.out}", *args.overrides])
    report = run_study(cfg, args.out, command=command)
    print(report, file=sys.stdout)
    return 0
