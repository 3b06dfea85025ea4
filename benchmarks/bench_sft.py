"""SFT training throughput: tokens/s and MFU, fp32 vs bf16 autocast side by side.

MFU is measured against the matmul peak of this machine, measured in the same run (a
nominal datasheet peak means little on a shared or throttled CPU). Runs the real trainer
(``SFTTrainer``: encoding, forward, backward, AdamW) on GeneralPoints-shaped rows.

    PYTHONPATH=. python benchmarks/bench_sft.py [--model tiny-lm] [--steps 30] [--batch-size 32]
        [--device auto|cpu|cuda] [--json PATH]

Run it alone on an idle machine: timings collapse when other heavy processes share the cores,
and an MFU above 100% means the peak was measured while something else used the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
from pathlib import Path

import torch

from sftvsrl.flops import measure_matmul_peak
from sftvsrl.training.sft import SFTConfig, SFTTrainer

RANKS = ["A", "2", "3", "4", "5", "6", "7", "8", "9", "10", "J", "Q", "K"]


def write_rows(path: Path, n: int, seed: int = 0) -> None:
    """Rows of GeneralPoints' size (compact prompt + JSON answer, ~90 + ~60 characters)."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            cards = [rng.choice(RANKS) for _ in range(4)]
            nums = [rng.randint(1, 13) for _ in range(4)]
            prompt = f"24 game. J,Q,K=10. Use each card once, + - * / ( ). Cards: {cards}. Answer JSON."
            completion = json.dumps(
                {"cards": cards, "number": nums, "formula": f"({nums[0]}+{nums[1]})*{nums[2]}-{nums[3]}"}
            )
            row = {"prompt": prompt, "completion": completion, "env_id": "bench", "env_kwargs": {}, "seed": i}
            fh.write(json.dumps(row) + "\n")


def run(model: str, data: Path, out: Path, bf16: bool, steps: int, batch_size: int, warmup: int) -> dict:
    cfg = SFTConfig.model_validate(
        {
            "model": model,
            "data": {"train": str(data)},
            "out_dir": str(out),
            "bf16": bf16,
            "batch_size": batch_size,
            "max_steps": steps,
            "save_every": 10**9,
            "keep_last": 1,
            "progress": False,
        }
    )
    records: list[dict] = []
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer = SFTTrainer(cfg, on_log=records.append)
    trainer.train()
    cuda = trainer.acc.device.type == "cuda"
    start, end = records[warmup - 1], records[-1]  # leave the first steps out (allocator warm-up)
    seconds = end["time"] - start["time"]
    tokens = end["tokens"] - start["tokens"]
    flops = end["flops"] - start["flops"]
    return {
        "n_params": trainer.flops.n_params,
        "tokens_per_s": tokens / seconds,
        "flops_per_s": flops / seconds,
        "peak": trainer.peak,
        "device": str(trainer.acc.device),
        "max_memory_allocated": torch.cuda.max_memory_allocated() if cuda else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny-lm")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5, help="steps left out of the timing")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: cuda if available"
    )
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device")
    if device == "cpu":
        os.environ["ACCELERATE_USE_CPU"] = "true"  # the trainer's Accelerator then stays on the CPU
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "rows.jsonl"
        write_rows(data, args.batch_size * (args.steps + 1))
        peaks = {d: measure_matmul_peak(d, device=device, seconds=1.0) for d in ("float32", "bfloat16")}
        results = {}
        for name, bf16 in (("fp32", False), ("bf16 autocast", True)):
            out = Path(tmp) / name.split()[0]
            results[name] = run(args.model, data, out, bf16, args.steps, args.batch_size, args.warmup)
        # the peak is a maximum: measure again after the runs and keep the better reading
        peaks = {d: max(p, measure_matmul_peak(d, device=device, seconds=1.0)) for d, p in peaks.items()}
    for name, r in results.items():
        r["mfu"] = r["flops_per_s"] / peaks["bfloat16" if name.startswith("bf16") else "float32"]
    n = results["fp32"]["n_params"]
    print(f"model {args.model}: {n / 1e6:.2f}M params, batch {args.batch_size}, {args.steps} steps, {device}")
    print(
        f"matmul peak: fp32 {peaks['float32'] / 1e9:.1f} GFLOP/s, bf16 {peaks['bfloat16'] / 1e9:.1f} GFLOP/s"
    )
    print(f"{'mode':<15}{'tokens/s':>12}{'GFLOP/s':>10}{'MFU':>8}")
    for name, r in results.items():
        print(f"{name:<15}{r['tokens_per_s']:>12,.0f}{r['flops_per_s'] / 1e9:>10.2f}{100 * r['mfu']:>7.1f}%")
    ratio = results["bf16 autocast"]["tokens_per_s"] / results["fp32"]["tokens_per_s"]
    print(f"bf16 autocast / fp32 tokens/s: {ratio:.2f}x")
    for name, r in results.items():
        if r["max_memory_allocated"] is not None:
            print(f"{name}: peak CUDA memory allocated {r['max_memory_allocated'] / 2**20:.1f} MiB")
    if args.json:
        report = {"model": args.model, "device": device, "batch_size": args.batch_size, "steps": args.steps}
        report |= {"matmul_peak": peaks, "results": results, "bf16_over_fp32": ratio}
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
