"""Plot a PPO run's reward and success rate per update from its ``log.jsonl``.

python scripts/plot_rl_log.py runs/gp_l_tiny_rl/log.jsonl docs/figures/rl_curve.png [--title TEXT]

The committed figure: python scripts/plot_rl_log.py docs/results/gp_l_tiny_rl/rl_log.jsonl \
    docs/figures/rl_gp_l_tiny_curve.png --title "tiny-lm PPO on GeneralPoints-L (ID training hands)"
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sftvsrl.study.plots import plot_rl_training, read_ppo_log

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", help="the run's log.jsonl")
    parser.add_argument("out", help="PNG to write")
    parser.add_argument("--title", help="figure title (default: the run folder's name)")
    args = parser.parse_args()
    out = plot_rl_training(read_ppo_log(args.log), args.out, args.title or Path(args.log).parent.name)
    print(f"wrote {out}")
