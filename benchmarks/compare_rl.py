"""PPO vs GRPO from one tiny GeneralPoints-L SFT checkpoint, with the same sampled answers.

    PYTHONPATH=. python benchmarks/compare_rl.py [--init <sft checkpoint or run folder>]
        [--out runs/compare_rl] [--sft-steps 300] [--updates 10] [--episodes 128] [--threads 1]

Without ``--init`` it first writes compact expert rows of ID training hands (``sftvsrl data
generalpoints``) and runs a short SFT from ``tiny-lm``. Then PPO and GRPO each run
``--updates`` updates of 64 sampled answers (PPO: 64 envs x 1 answer; GRPO: 8 groups of 8
episodes of the same hand; 1 turn, as in ``configs/gp_l_tiny_rl.yaml``, whose other settings
both use), and the SFT checkpoint and both results are evaluated greedily on the same
``--episodes`` training-split hands. Prints the greedy table and the sampled-episode success
per update, with 95% Wilson intervals. A measurement, not a test: run it alone.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
ENV = "sftvsrl/GeneralPoints-L-v0"
TRAIN_HANDS = {"rule": "id", "split": "train", "prompt_style": "compact"}


def build_sft(out: Path, steps: int) -> Path:
    """Expert rows plus a short SFT from tiny-lm; returns the final checkpoint."""
    from sftvsrl.config import load_config
    from sftvsrl.training.sft import SFTConfig, train_sft

    data = out / "data" / "train.jsonl"
    if not data.is_file():
        cmd = [sys.executable, "-m", "sftvsrl", "data", "generalpoints", "--rule", "id", "--split", "train"]
        cmd += ["--n", str(steps * 32), "--prompt-style", "compact", "--out", str(data)]
        subprocess.run(cmd, check=True, cwd=ROOT)
    cfg = load_config(
        SFTConfig,
        ROOT / "configs" / "gp_l_tiny.yaml",
        [
            f"data.train={data}",
            f"out_dir={out / 'sft'}",
            f"max_steps={steps}",
            "save_every=100000",
            "progress=false",
        ],
    )
    return train_sft(cfg)


def rl(init: Path, out: Path, algorithm: str, updates: int) -> Path:
    from sftvsrl.config import load_config
    from sftvsrl.training.rl import RLConfig, train_rl

    extra = ["algorithm=grpo", "group_size=8"] if algorithm == "grpo" else ["steps_per_env=1"]
    cfg = load_config(
        RLConfig,
        ROOT / "configs" / "gp_l_tiny_rl.yaml",
        [f"init={init}", f"out_dir={out}", "num_envs=64", f"updates={updates}", f"save_every={updates}",
         "tensorboard=false", *extra],
    )  # fmt: skip
    run = train_rl(cfg)
    return sorted((run / "checkpoints").glob("step-*"))[-1]


def greedy(ckpt: Path, episodes: int) -> tuple[int, int]:
    from sftvsrl.evaluation.runner import evaluate
    from sftvsrl.models.loading import load_model
    from sftvsrl.rollout import HFRolloutEngine

    engine = HFRolloutEngine(load_model(ckpt), batch_size=64)
    records, _ = evaluate(engine, ENV, TRAIN_HANDS, episodes=episodes, max_turns=1, num_envs=64, seed=1000,
                          max_new_tokens=80)  # fmt: skip
    return sum(bool(r["success"]) for r in records), len(records)


def ci(k: int, n: int) -> str:
    from sftvsrl.evaluation.wilson import wilson_interval

    lo, hi = wilson_interval(k, n)
    return f"{k}/{n} = {100 * k / n:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--init", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("runs/compare_rl"))
    ap.add_argument("--sft-steps", type=int, default=300)
    ap.add_argument("--updates", type=int, default=10)
    ap.add_argument("--episodes", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from sftvsrl.runs import resolve_checkpoint

    t0 = time.perf_counter()
    init = resolve_checkpoint(args.init) if args.init else build_sft(args.out, args.sft_steps)
    t_sft = time.perf_counter() - t0
    results = {"sft": greedy(init, args.episodes)}
    logs, seconds = {}, {}
    for algorithm in ("ppo", "grpo"):
        t = time.perf_counter()
        results[algorithm] = greedy(rl(init, args.out / algorithm, algorithm, args.updates), args.episodes)
        seconds[algorithm] = time.perf_counter() - t
        lines = (args.out / algorithm / "log.jsonl").read_text().splitlines()
        logs[algorithm] = [json.loads(x) for x in lines]

    print(f"\ninit {init} (SFT/data {t_sft:.0f} s); {args.updates} updates x 64 answers each; "
          f"{torch.get_num_threads()} thread(s)")  # fmt: skip
    print("\n| greedy, training-split hands | success [95% CI] |\n|---|---|")
    for name, (k, n) in results.items():
        print(f"| {name} | {ci(k, n)} |")
    print(
        "\n| update | PPO sampled success | GRPO sampled success | GRPO groups with signal |\n|---|---|---|---|"
    )
    for p, g in zip(logs["ppo"], logs["grpo"], strict=True):
        sp = round(p["success_rate"] * p["episodes"])
        sg = round(g["success_rate"] * g["episodes"])
        print(f"| {p['step']} | {ci(sp, p['episodes'])} | {ci(sg, g['episodes'])} | "
              f"{g['groups_with_signal']}/{g['groups']} |")  # fmt: skip
    half = args.updates // 2
    for name, log in logs.items():
        parts = []
        for label, rows in (("first half", log[:half]), ("second half", log[half:])):
            k = sum(round(r["success_rate"] * r["episodes"]) for r in rows)
            parts.append(f"{label} {ci(k, sum(r['episodes'] for r in rows))}")
        print(f"{name} sampled: " + "; ".join(parts) + f"; RL + eval {seconds[name]:.0f} s")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
