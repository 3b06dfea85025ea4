"""``sftvsrl rl --config configs/gp_l_tiny_rl.yaml init=<sft checkpoint> [algorithm=grpo group_size=8] [--resume]``."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        help="YAML config, e.g. configs/gp_l_tiny_rl.yaml (default: the built-in RLConfig defaults, algorithm=ppo)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from out_dir's latest checkpoint (default: start afresh)",
    )
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides, e.g. init=runs/sft algorithm=grpo group_size=8 (default: none)",
    )


def run(args: argparse.Namespace) -> int:
    from sftvsrl.config import load_config
    from sftvsrl.training.rl import RLConfig, train_rl

    cfg = load_config(RLConfig, args.config, args.overrides)
    out = train_rl(cfg, resume=args.resume)
    print(f"rl: logs in {out / 'log.jsonl'}, checkpoints in {out / 'checkpoints'}")
    return 0
