"""SFT training throughput: tokens/s and MFU, fp32 vs bf16 autocast side by side.

MFU is measured against the matmul peak of this machine, measured in the same run (a
nominal datasheet peak means little on a shared or throttled CPU). Runs the real trainer
(``SFTTrainer``: encoding, forward, backward, AdamW) on GeneralPoints-shaped rows.

    PYTHONPATH=. python benchmarks/bench_sft.py [--model tiny-lm] [--steps 30] [--batch-size 32]
        [--repeats 2] [--threads 1] [--device auto|cpu|cuda] [--json PATH]

fp32 and bf16 runs alternate (fp32, bf16, fp32, bf16, ...) ``--repeats`` times and the medians
are compared, so load from other processes hits both alike. The CPU model (and the GPU on
CUDA), torch threads and dtype are printed beside every number. ``--device`` picks where the
trainer runs (``auto``: CUDA if available); the matmul peak is measured on that device, and on
CUDA the peak memory allocated is reported. ``--json`` also writes the printed numbers.

Run it alone on an idle machine: timings collapse when other heavy processes share the cores.
An MFU above 100% is flagged: the square-matmul peak then does not stand for the run's kernels
(bf16 on a CPU without native bf16 matmuls) or was measured under load; compare tokens/s.
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


def run(
    model: str, data: Path, out: Path, bf16: bool, steps: int, batch_size: int, warmup: int, threads: int
) -> dict:
    cfg = SFTConfig.model_validate(
        {
            "model": model,
            "data": {"train": str(data)},
            "out_dir": str(out),
            "bf16": bf16,
            "threads": threads,
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
    ap.add_argument("--repeats", type=int, default=2, help="alternating fp32/bf16 runs of each")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: cuda if available"
    )
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args()
    import statistics

    from sftvsrl.models.precision import cpu_model

    torch.set_num_threads(args.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device")
    if device == "cpu":
        os.environ["ACCELERATE_USE_CPU"] = "true"  # the trainer's Accelerator then stays on the CPU
    gpu = torch.cuda.get_device_name() if device == "cuda" else None
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "rows.jsonl"
        write_rows(data, args.batch_size * (args.steps + 1))
        peaks = {d: measure_matmul_peak(d, device=device, seconds=1.0) for d in ("float32", "bfloat16")}
        runs: dict[str, list[dict]] = {"fp32": [], "bf16 autocast": []}
        for rep in range(args.repeats):
            for name, bf16 in (("fp32", False), ("bf16 autocast", True)):
                out = Path(tmp) / f"{name.split()[0]}_{rep}"
                runs[name].append(
                    run(args.model, data, out, bf16, args.steps, args.batch_size, args.warmup, args.threads)
                )
        results = {}
        for name, rs in runs.items():
            results[name] = dict(rs[0])
            for key in ("tokens_per_s", "flops_per_s"):
                results[name][key] = statistics.median(r[key] for r in rs)
            results[name]["runs"] = [r["tokens_per_s"] for r in rs]
            mems = [r["max_memory_allocated"] for r in rs if r["max_memory_allocated"] is not None]
            results[name]["max_memory_allocated"] = max(mems) if mems else None
        # the peak is a maximum: measure again after the runs and keep the better reading
        peaks = {d: max(p, measure_matmul_peak(d, device=device, seconds=1.0)) for d, p in peaks.items()}
    for name, r in results.items():
        r["mfu"] = r["flops_per_s"] / peaks["bfloat16" if name.startswith("bf16") else "float32"]
    n = results["fp32"]["n_params"]
    threads = torch.get_num_threads()
    on = f"{device} ({gpu}), " if gpu else f"{device}, "
    print(
        f"model {args.model}: {n / 1e6:.2f}M params, batch {args.batch_size}, {args.steps} steps; {on}"
        f"CPU {cpu_model()}, torch threads {threads}, median of {args.repeats} alternating runs"
    )
    print(
        f"matmul peak: fp32 {peaks['float32'] / 1e9:.1f} GFLOP/s, bf16 {peaks['bfloat16'] / 1e9:.1f} GFLOP/s"
    )
    print(f"{'mode':<15}{'tokens/s':>12}{'GFLOP/s':>10}{'MFU':>8}   runs (tokens/s)")
    for name, r in results.items():
        each = ", ".join(f"{x:,.0f}" for x in r["runs"])
        flag = "*" if r["mfu"] > 1.0 else " "
        print(
            f"{name:<15}{r['tokens_per_s']:>12,.0f}{r['flops_per_s'] / 1e9:>10.2f}"
            f"{100 * r['mfu']:>7.1f}%{flag}  {each}"
        )
    if any(r["mfu"] > 1.0 for r in results.values()):
        print(
            "* MFU above 100%: the square matmul peak does not stand for this run's kernels (e.g. bf16 on a"
            " CPU without native bf16 matmuls, which is slow at large square shapes) or it was measured"
            " while other processes used the cores; compare tokens/s instead"
        )
    ratio = results["bf16 autocast"]["tokens_per_s"] / results["fp32"]["tokens_per_s"]
    print(f"bf16 autocast / fp32 tokens/s: {ratio:.2f}x")
    for name, r in results.items():
        if r["max_memory_allocated"] is not None:
            print(f"{name}: peak CUDA memory allocated {r['max_memory_allocated'] / 2**20:.1f} MiB")
    if args.json:
        report = {"model": args.model, "device": device, "batch_size": args.batch_size, "steps": args.steps}
        report |= {"gpu": gpu, "cpu": cpu_model(), "threads": threads, "repeats": args.repeats}
        report |= {"matmul_peak": peaks, "results": results, "bf16_over_fp32": ratio}
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
