"""``sftvsrl sft --config configs/gp_l_tiny.yaml [key=value ...] [--resume]``.

Run it directly for one process, or under ``accelerate launch --config_file
configs/accelerate/<setup>.yaml -m sftvsrl sft ...`` for several processes or GPUs.
"""

from __future__ import annotations

import argparse
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", help="YAML config, e.g. configs/gp_l_tiny.yaml (default: the built-in SFTConfig defaults)"
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="override any config field (default: none)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue exactly from the latest checkpoint in out_dir (default: start afresh)",
    )


def run(args: argparse.Namespace) -> int:
    from sftvsrl.config import load_config
    from sftvsrl.training.sft import SFTConfig, train_sft

    cfg = load_config(SFTConfig, args.config, args.overrides)
    path = train_sft(cfg, resume=args.resume)
    if os.environ.get("RANK", "0") == "0":
        print(f"final checkpoint: {path}")
    return 0
