"""Plot a PPO run's reward and success rate per update from its ``log.jsonl``.

python scripts/plot_rl_log.py runs/gp_l_tiny_rl/log.jsonl docs/figures/rl_curve.png [--title TEXT]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(log_path: str, out_path: str, title: str | None = None) -> None:
    rows = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]
    steps = [r["step"] for r in rows]
    fig, ax1 = plt.subplots(figsize=(6, 3.5))
    ax1.plot(steps, [r["mean_reward"] for r in rows], color="tab:blue", label="mean reward per answer")
    ax1.set_xlabel("PPO update")
    ax1.set_ylabel("mean reward per answer", color="tab:blue")
    ax2 = ax1.twinx()
    sr = [(s, r["success_rate"]) for s, r in zip(steps, rows, strict=True) if r["success_rate"] is not None]
    ax2.plot([s for s, _ in sr], [v for _, v in sr], color="tab:green", label="episode success rate")
    ax2.set_ylabel("success rate (episodes ended in the update)", color="tab:green")
    ax2.set_ylim(0, 1)
    ax1.set_title(title or Path(log_path).parent.name)
    fig.tight_layout()
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=120)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", help="the run's log.jsonl")
    parser.add_argument("out", help="PNG to write")
    parser.add_argument("--title", help="figure title (default: the run folder's name)")
    args = parser.parse_args()
    main(args.log, args.out, args.title)
