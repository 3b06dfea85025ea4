"""Rollout throughput: HF ``generate`` at batch 1 against the rollout engine, side by side.

    PYTHONPATH=. python benchmarks/bench_rollout.py [--model tiny-lm] [--prompts 32]
        [--group 1] [--batch 64] [--new-tokens 64] [--repeats 3] [--threads 1] [--bf16] [--compile]

Both sides generate ``--new-tokens`` tokens for each GeneralPoints-L compact prompt (eos is
forbidden before that, ``min_new_tokens``, so the token counts match), sampling at
temperature 1. ``--group G`` asks for each hand G times in a row, as a GRPO rollout does
(``--prompts`` rows in all, ``--prompts / G`` hands); the engine prefills a repeated prompt
once. HF ``generate`` at batch 1 does the same work for every row whatever the batch, so it
runs on the first ``--baseline-prompts`` rows (all of them by default) and its tokens/s is
compared. The two are measured alternately (A B A B ...) ``--repeats`` times and the medians
compared, so load from other processes hits both alike. ``--compile`` runs the engine's
decode step under ``torch.compile``; the engine's warm-up run, which compiles, is timed and
printed apart. Prints tokens/s of each and their ratio, with the CPU model, torch threads and
dtype.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def cpu_name() -> str:
    from sftvsrl.models.precision import cpu_model

    return cpu_model()


@torch.no_grad()
def generate_batch1(pm, prompts, new_tokens: int) -> int:
    """The baseline: HF ``model.generate`` on one chat-templated prompt at a time."""
    from sftvsrl.models.encoding import encode_prompts

    n = 0
    for i, p in enumerate(prompts):
        enc = encode_prompts(pm, [p])
        torch.manual_seed(i)
        out = pm.model.generate(
            **enc, max_new_tokens=new_tokens, do_sample=True, top_k=0, top_p=1.0, **pm.generation_kwargs()
        )
        n += out.shape[1] - enc["input_ids"].shape[1]
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny-lm")
    ap.add_argument("--env", default="sftvsrl/GeneralPoints-L-v0")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--group", type=int, default=1, help="rows per hand, in a row (GRPO's group size)")
    ap.add_argument("--baseline-prompts", type=int, default=None, help="rows HF generate runs on")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bf16", action="store_true", help="run the engine under bf16 autocast")
    ap.add_argument("--compile", action="store_true", help="compile the engine's decode step (torch.compile)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from sftvsrl.models.loading import autocast, load_model
    from sftvsrl.rollout import HFRolloutEngine, make_envs

    pm = load_model(args.model)
    pm.model.eval()
    kwargs = {"prompt_style": "compact"} if "GeneralPoints" in args.env else {}
    env = make_envs(args.env, kwargs, 1)[0]
    if args.group < 1 or args.prompts % args.group:
        raise SystemExit(f"--prompts ({args.prompts}) must be a multiple of --group ({args.group})")
    hands = [env.reset(seed=i)[0] for i in range(args.prompts // args.group)]
    prompts = [h for h in hands for _ in range(args.group)]
    base_prompts = prompts[: args.baseline_prompts or len(prompts)]
    pm.model.generation_config.min_new_tokens = args.new_tokens
    engine = HFRolloutEngine(pm, batch_size=args.batch, compile=args.compile)
    gen_kw = dict(max_new_tokens=args.new_tokens, temperature=1.0, do_sample=True)

    def run_engine(seed: int) -> int:
        with autocast(pm.device, args.bf16):
            return sum(len(g.answer_ids) for g in engine.generate(prompts, seed=seed, **gen_kw))

    import warnings

    warnings.filterwarnings("ignore", message=".*length constraints.*")
    generate_batch1(pm, prompts[:1], 4)  # warm-up
    t = time.perf_counter()
    run_engine(0)  # warm-up; with --compile, this call compiles
    warm_up = time.perf_counter() - t
    base, fast = [], []
    for r in range(args.repeats):
        t = time.perf_counter()
        n_base = generate_batch1(pm, base_prompts, args.new_tokens)
        base.append(n_base / (time.perf_counter() - t))
        t = time.perf_counter()
        n_fast = run_engine(r + 1)
        fast.append(n_fast / (time.perf_counter() - t))
    b, f = statistics.median(base), statistics.median(fast)
    dtype = ("bf16 autocast" if args.bf16 else "fp32") + (", compiled step" if args.compile else "")
    print(
        f"{args.model} ({pm.n_params / 1e6:.2f}M params), {args.prompts} prompts ({len(hands)} hands x "
        f"{args.group}) x {args.new_tokens} new tokens, HF generate on {len(base_prompts)} of them; CPU {cpu_name()}, torch threads {torch.get_num_threads()}, engine dtype {dtype}, "
        f"median of {args.repeats} alternating repeats; engine warm-up run {warm_up:.1f} s"
    )
    print(f"{'':38s}{'tokens':>8s}{'tokens/s':>10s}   runs (tokens/s)")
    print(f"{'HF generate, batch 1, fp32':38s}{n_base:8d}{b:10.1f}   {', '.join(f'{x:.0f}' for x in base)}")
    name = f"rollout engine ({'loop' if engine.uses_loop() else 'generate'}), batch {min(args.batch, args.prompts)}"
    print(f"{name:38s}{n_fast:8d}{f:10.1f}   {', '.join(f'{x:.0f}' for x in fast)}")
    pairs = [y / x for x, y in zip(base, fast, strict=True)]
    print(
        f"speed-up over HF generate at batch 1: {f / b:.1f}x (ratio of medians); "
        f"per repeat {', '.join(f'{x:.1f}x' for x in pairs)}, median {statistics.median(pairs):.1f}x"
    )


if __name__ == "__main__":
    main()
