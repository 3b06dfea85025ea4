"""RL update throughput against the SFT trainer's, side by side, and where one RL update's time goes.

    PYTHONPATH=. python benchmarks/bench_rl_update.py [--algorithm grpo|ppo] [--sft-steps 30]
        [--updates 4] [--threads 1] [--bf16 auto|true|false] [--json PATH]

Both real trainers run on GeneralPoints-L compact rows from the same model: first
``SFTTrainer`` for ``--sft-steps`` steps on expert rows (its tokens/s, the first steps left out),
then the RL trainer from that SFT checkpoint for ``--updates`` updates (episodes sampled at
temperature 1, 2 turns; for GRPO a small entropy bonus, so that an update whose groups all
score alike still trains). The RL trainer logs each phase of an update (``time/<phase>``); the
table gives their medians over the updates after the first, and the RL update's tokens/s
(prompt + answer tokens trained per second of the ``update_actor`` phase) is compared with
SFT's. Both use the same dtype decision, thread count and micro-batch size. CPU model,
threads and dtype are printed beside the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

import torch


def sft_rows(path: Path, n: int) -> None:
    from sftvsrl.envs.tasks import get_task
    from sftvsrl.study.tools import write_expert

    spec = get_task("GeneralPoints-L")
    write_expert(spec, spec.train, n, 0, path, 0.2, "compact")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--algorithm", choices=["grpo", "ppo"], default="grpo")
    ap.add_argument("--sft-steps", type=int, default=30)
    ap.add_argument("--sft-warmup", type=int, default=5, help="SFT steps left out of the timing")
    ap.add_argument("--updates", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=16, help="SFT batch = RL micro-batch")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bf16", choices=["auto", "true", "false"], default="auto")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args()
    os.environ.setdefault("ACCELERATE_USE_CPU", "true")
    torch.set_num_threads(args.threads)

    from sftvsrl.envs.tasks import get_task
    from sftvsrl.models.precision import cpu_model
    from sftvsrl.runs import RunDir
    from sftvsrl.training.rl import RLConfig, train_rl
    from sftvsrl.training.sft import SFTConfig, SFTTrainer

    bf16 = {"auto": "auto", "true": True, "false": False}[args.bf16]
    with tempfile.TemporaryDirectory() as tmp:
        rows = Path(tmp) / "rows.jsonl"
        sft_rows(rows, args.batch_size * (args.sft_steps + 1))
        sft_cfg = SFTConfig.model_validate(
            {
                "model": "tiny-lm",
                "data": {"train": str(rows)},
                "out_dir": str(Path(tmp) / "sft"),
                "bf16": bf16,
                "threads": args.threads,
                "batch_size": args.batch_size,
                "max_steps": args.sft_steps,
                "lr": 1e-3,
                "save_every": args.sft_steps,
                "keep_last": 1,
                "progress": False,
            }
        )
        logs: list[dict] = []
        trainer = SFTTrainer(sft_cfg, on_log=logs.append)
        trainer.train()
        used_bf16 = bool(trainer.cfg.bf16)
        a, b = logs[min(args.sft_warmup, len(logs) - 2)], logs[-1]
        sft_tps = (b["tokens"] - a["tokens"]) / (b["time"] - a["time"])

        spec = get_task("GeneralPoints-L")
        rl_cfg = RLConfig.model_validate(
            {
                "algorithm": args.algorithm,
                "init": str(RunDir(Path(tmp) / "sft").checkpoints()[-1][1]),
                "out_dir": str(Path(tmp) / "rl"),
                "env_id": spec.env_id,
                "env_kwargs": {**spec.train, "prompt_style": "compact"},
                "max_turns": 2,
                "num_envs": 32,
                "steps_per_env": 2,
                "group_size": 4,
                "updates": args.updates,
                "temperature": 1.0,
                "max_new_tokens": 80,
                "generation_batch_size": 64,
                "epochs": 2,
                "minibatch_size": 32,
                "micro_batch_size": args.batch_size,
                "lr": 2e-5,
                # a short SFT run's answers often all score alike, and GRPO skips an update
                # without signal; a small entropy bonus keeps every update's backward pass
                "ent_coef": 1e-3 if args.algorithm == "grpo" else 0.0,
                "bf16": bf16,
                "threads": args.threads,
                "save_every": 10**6,
                "tensorboard": False,
            }
        )
        train_rl(rl_cfg, resume=False)
        log = [json.loads(x) for x in (Path(tmp) / "rl" / "log.jsonl").read_text().splitlines()]
    later = log[1:] or log
    phases = sorted({k for r in later for k in r if k.startswith("time/")})
    per_update = [r["time"] - p["time"] for p, r in zip(log, log[1:], strict=False)] or [log[0]["time"]]
    med = {k: statistics.median(r.get(k, 0.0) for r in later) for k in phases}
    rl_tps = statistics.median(r["train_tokens_per_s"] for r in later if r.get("train_tokens_per_s"))
    dtype = "bf16 autocast" if used_bf16 else "fp32"
    print(
        f"tiny-lm on GeneralPoints-L compact rows; CPU {cpu_model()}, torch threads {torch.get_num_threads()}, "
        f"{dtype}; SFT {args.sft_steps} steps of {args.batch_size}, {args.algorithm.upper()} {args.updates} updates "
        f"(32 envs, 2 turns, 2 epochs, micro-batch {args.batch_size})"
    )
    update_s = statistics.median(per_update)
    print(f"{'phase of one RL update (median)':40s}{'seconds':>9s}{'share':>8s}")
    for k in phases:
        print(f"{k[5:]:40s}{med[k]:9.2f}{100 * med[k] / update_s:7.0f}%")
    # what the phases do not cover, per update (a median of differences, never below 0)
    rest = statistics.median(
        max(0.0, total - sum(r.get(k, 0.0) for k in phases))
        for total, r in zip(per_update, later, strict=False)
    )
    print(f"{'other (env steps, logging, checkpoint)':40s}{rest:9.2f}{100 * rest / update_s:7.0f}%")
    print(f"{'whole update':40s}{update_s:9.2f}")
    print(f"SFT trainer: {sft_tps:,.0f} tokens/s; RL update phase: {rl_tps:,.0f} tokens/s")
    print(f"RL update / SFT tokens/s: {rl_tps / sft_tps:.2f}x")
    if args.json:
        report = {"cpu": cpu_model(), "threads": torch.get_num_threads(), "dtype": dtype}
        report |= {"sft_tokens_per_s": sft_tps, "rl_update_tokens_per_s": rl_tps, "phases": med}
        report |= {"update_seconds": update_s, "ratio": rl_tps / sft_tps, "algorithm": args.algorithm}
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
