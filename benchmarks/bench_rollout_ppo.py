"""Rollout and PPO-update throughput of the tiny model, against plain HF ``generate`` at batch 1.

    PYTHONPATH=. python benchmarks/bench_rollout_ppo.py [--model tiny-lm] [--batch 32]
        [--prompts 32] [--new-tokens 64] [--threads 1] [--repeats 2] [--device auto|cpu|cuda]
        [--json PATH]

Prints generated tokens/s for (a) a baseline loop of ``model.generate`` on one prompt at a
time and (b) the batched :class:`HFRolloutEngine` over the same prompts, their ratio, and the
PPO update throughput (forward + backward over prompt+answer tokens, with the value head and
the losses, in micro-batches). Prompts are GeneralPoints-L compact prompts of fixed seeds.
Baseline and engine alternate ``--repeats`` times and the medians are compared, so load from
other processes hits both alike; everything runs in fp32. The CPU model (and the GPU on
CUDA), torch threads and dtype are printed beside the numbers. ``--device`` picks where the
model and the value head run (``auto``: CUDA if available; timings are synchronized on CUDA and
the peak memory allocated is reported); ``--json`` also writes the printed numbers.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny-lm")
    ap.add_argument("--env", default="sftvsrl/GeneralPoints-L-v0")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--micro-batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: cuda if available"
    )
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import statistics
    import warnings

    from sftvsrl.models.precision import cpu_model

    warnings.filterwarnings("ignore", message=".*length constraints.*")
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None

    from sftvsrl.models.loading import load_model
    from sftvsrl.rollout import HFRolloutEngine, make_envs
    from sftvsrl.training.ppo import ActorCritic, ValueHead
    from sftvsrl.training.rl_batch import collate
    from sftvsrl.training.rl_math import masked_mean, policy_loss, value_loss

    pm = load_model(args.model)
    pm.model.to(device)
    kwargs = {"prompt_style": "compact"} if "GeneralPoints" in args.env else {}
    env = make_envs(args.env, kwargs, 1)[0]
    prompts = [env.reset(seed=i)[0] for i in range(args.prompts)]
    engine = HFRolloutEngine(pm, batch_size=args.batch)
    gen_kw = dict(max_new_tokens=args.new_tokens, temperature=1.0, do_sample=True)
    # Force full-length answers so both sides generate the same number of tokens.
    pm.model.generation_config.min_new_tokens = args.new_tokens

    engine.generate(prompts[:2], seed=0, **gen_kw)  # warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    base_t, batch_t = [], []
    for rep in range(args.repeats):
        sync()
        t = time.perf_counter()
        n_base = 0
        for i, p in enumerate(prompts):
            n_base += plain_generate(pm, p, i, args.new_tokens)
        sync()
        base_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        gens = engine.generate(prompts, seed=1 + rep, **gen_kw)
        sync()
        batch_t.append(time.perf_counter() - t)
    base_s, batch_s = statistics.median(base_t), statistics.median(batch_t)
    gen_memory = torch.cuda.max_memory_allocated() if device.type == "cuda" else None
    n_batch = sum(len(g.answer_ids) for g in gens)

    head = ValueHead(pm.model.get_input_embeddings().embedding_dim).to(device)
    opt = torch.optim.AdamW(list(pm.model.parameters()) + list(head.parameters()), lr=1e-5)
    pad = pm.tokenizer.pad_token_id
    agent = ActorCritic(pm.model, head, pad, args.micro_batch)
    sync()
    t = time.perf_counter()
    trained = 0
    for i in range(0, len(gens), args.micro_batch):
        batch = collate(gens[i : i + args.micro_batch], pad)
        out, values = agent.logprobs_entropy_and_values(batch, None)
        rows = len(out.seq_logp)
        pg, _ = policy_loss(out.seq_logp, out.seq_logp.detach(), torch.randn(rows, device=device), 0.1)
        loss = pg + 0.5 * value_loss(values, values.detach(), torch.randn(rows, device=device))
        loss = loss - 0.01 * masked_mean(out.entropy, out.mask)
        loss.backward()
        trained += int(batch["attention_mask"].sum())
    opt.step()
    sync()
    train_s = time.perf_counter() - t
    memory = torch.cuda.max_memory_allocated() if device.type == "cuda" else None

    threads = torch.get_num_threads()
    on = f"{device} ({gpu}), " if gpu else f"{device}, "
    print(
        f"model {args.model} ({pm.n_params / 1e6:.2f}M params), {args.prompts} prompts, "
        f"{args.new_tokens} new tokens; {on}CPU {cpu_model()}, torch threads {threads}, fp32, "
        f"rollout times: median of {args.repeats} alternating repeats"
    )
    print(f"{'':34s}{'tokens':>8s}{'seconds':>9s}{'tokens/s':>10s}")
    print(f"{'HF generate, batch 1 (baseline)':34s}{n_base:8d}{base_s:9.2f}{n_base / base_s:10.1f}")
    print(f"{f'rollout engine, batch {args.batch}':34s}{n_batch:8d}{batch_s:9.2f}{n_batch / batch_s:10.1f}")
    print(f"{'PPO update (fwd+bwd, prompt+answer)':34s}{trained:8d}{train_s:9.2f}{trained / train_s:10.1f}")
    print(f"rollout speed-up over baseline: {(n_batch / batch_s) / (n_base / base_s):.1f}x")
    if memory is not None:
        print(
            f"peak CUDA memory allocated: generation {gen_memory / 2**20:.1f} MiB, with the update {memory / 2**20:.1f} MiB"
        )
    if args.json:
        report = {
            "model": args.model,
            "device": str(device),
            "n_params": pm.n_params,
            "prompts": args.prompts,
            "new_tokens": args.new_tokens,
            "batch": args.batch,
            "micro_batch": args.micro_batch,
            "gpu": gpu,
            "cpu": cpu_model(),
            "threads": threads,
            "dtype": "fp32",
            "repeats": args.repeats,
            "baseline": {
                "tokens": n_base,
                "seconds": base_s,
                "tokens_per_s": n_base / base_s,
                "runs_s": base_t,
            },
            "rollout": {
                "tokens": n_batch,
                "seconds": batch_s,
                "tokens_per_s": n_batch / batch_s,
                "runs_s": batch_t,
            },
            "ppo_update": {"tokens": trained, "seconds": train_s, "tokens_per_s": trained / train_s},
            "max_memory_allocated_generation": gen_memory,
            "max_memory_allocated": memory,
        }
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")


@torch.no_grad()
def plain_generate(pm, prompt, seed, new_tokens) -> int:
    """The baseline: ``model.generate`` on one chat-templated prompt; returns new tokens."""
    from sftvsrl.models.encoding import encode_prompts

    enc = {k: v.to(pm.device) for k, v in encode_prompts(pm, [prompt]).items()}
    torch.manual_seed(seed)
    out = pm.model.generate(
        **enc, max_new_tokens=new_tokens, do_sample=True, top_k=0, **pm.generation_kwargs()
    )
    return out.shape[1] - enc["input_ids"].shape[1]


if __name__ == "__main__":
    main()
