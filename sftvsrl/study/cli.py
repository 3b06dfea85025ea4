"""``sftvsrl study --config configs/study/<name>.yaml --out runs/<name> [key=value ...]``."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="study preset, e.g. configs/study/smoke.yaml")
    parser.add_argument("--out", required=True, help="output folder; re-running resumes it")
    parser.add_argument(
        "--rerun-changed",
        action="store_true",
        help="redo the stages whose settings changed since the results in --out were made, and "
        "the stages that read from them (default: stop with an error naming the changed keys)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="with seeds=[...]: seeds run at once after stage 0, each in its own process with "
        "threads/jobs torch threads (default: 1, one after another)",
    )
    parser.add_argument(
        "--only-seed",
        type=int,
        default=None,
        metavar="S",
        help="with seeds=[...]: run stage 0 and seed S only, no combined report (default: every seed)",
    )
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
    flags = ["--rerun-changed"] if args.rerun_changed else []
    flags += [f"--jobs {args.jobs}"] * (args.jobs != 1)
    flags += [f"--only-seed {args.only_seed}"] * (args.only_seed is not None)
    command = "sftvsrl study " + " ".join(
        [f"--config {args.config}", f"--out {args.out}", *flags, *args.overrides]
    )
    report = run_study(
        cfg,
        args.out,
        command=command,
        rerun_changed=args.rerun_changed,
        jobs=args.jobs,
        only_seed=args.only_seed,
    )
    print(report, file=sys.stdout)
    return 0
