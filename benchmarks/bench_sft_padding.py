"""SFT on rows of mixed length: ``group_by_length`` against the plain shuffled order, side by side.

    PYTHONPATH=. python benchmarks/bench_sft_padding.py [--task GeneralPoints-L] [--steps 30]
        [--batch-size 32] [--revision 0.2] [--repeats 2] [--threads 1] [--json PATH]

The rows are the study's own expert rows of ``--task`` (compact prompts, a ``--revision``
share of revision rows, which carry an earlier answer and its feedback and are several times
longer). Both orders train the real ``SFTTrainer`` for ``--steps`` steps, alternating
``--repeats`` times; the medians of real (non-padding) tokens per second are compared, and
the padding share of each order's batches is counted. CPU model, threads and dtype are
printed beside the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="GeneralPoints-L")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5, help="steps left out of the timing")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--revision", type=float, default=0.2, help="share of revision rows")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args()
    os.environ.setdefault("ACCELERATE_USE_CPU", "true")
    torch.set_num_threads(args.threads)

    from sftvsrl.envs.tasks import get_task
    from sftvsrl.models.precision import cpu_model
    from sftvsrl.study.tools import write_expert
    from sftvsrl.training.sft import SFTConfig, SFTTrainer

    spec = get_task(args.task)
    results: dict[str, list[float]] = {"shuffled": [], "group_by_length": []}
    padding: dict[str, float] = {}
    dtype = "?"
    with tempfile.TemporaryDirectory() as tmp:
        rows = Path(tmp) / "rows.jsonl"
        write_expert(
            spec, spec.train, args.batch_size * (args.steps + 1) * 4, 0, rows, args.revision, "compact"
        )
        for rep in range(args.repeats):
            for name in results:
                logs: list[dict] = []
                cfg = SFTConfig.model_validate(
                    {
                        "model": "tiny-lm",
                        "data": {"train": str(rows)},
                        "out_dir": str(Path(tmp) / f"{name}-{rep}"),
                        "threads": args.threads,
                        "batch_size": args.batch_size,
                        "max_steps": args.steps,
                        "save_every": 10**9,
                        "progress": False,
                        "group_by_length": name == "group_by_length",
                    }
                )
                trainer = SFTTrainer(cfg, on_log=logs.append)
                if name not in padding:
                    padding[name] = padding_share(trainer, args.steps)
                trainer.train()
                dtype = "bf16 autocast" if trainer.cfg.bf16 else "fp32"
                a, b = logs[args.warmup - 1], logs[-1]
                results[name].append((b["tokens"] - a["tokens"]) / (b["time"] - a["time"]))
    med = {k: statistics.median(v) for k, v in results.items()}
    print(
        f"tiny-lm SFT on {args.task} expert rows ({100 * args.revision:.0f}% revision rows), batch "
        f"{args.batch_size}, {args.steps} steps; CPU {cpu_model()}, torch threads {torch.get_num_threads()}, "
        f"{dtype}; median of {args.repeats} alternating runs"
    )
    print(f"{'order':<18}{'real tokens/s':>14}{'padding':>10}   runs (tokens/s)")
    for name, tps in med.items():
        runs = ", ".join(f"{x:,.0f}" for x in results[name])
        print(f"{name:<18}{tps:>14,.0f}{100 * padding[name]:>9.0f}%   {runs}")
    ratio = med["group_by_length"] / med["shuffled"]
    print(f"group_by_length / shuffled tokens/s: {ratio:.2f}x")
    if args.json:
        report = {"cpu": cpu_model(), "threads": torch.get_num_threads(), "dtype": dtype, "task": args.task}
        report |= {"tokens_per_s": results, "padding": padding, "ratio": ratio}
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")


def padding_share(trainer, steps: int) -> float:
    """Share of padding positions in the first ``steps`` batches (token counts from the tokenizer)."""
    data = trainer.train_data
    pad = total = 0
    for step in range(steps):
        idx = trainer._indices(step, 0)
        batch = trainer._batch(data, idx)
        mask = batch["attention_mask"]
        pad += int((mask == 0).sum())
        total += mask.numel()
    return pad / total


if __name__ == "__main__":
    main()
