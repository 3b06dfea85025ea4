"""``sftvsrl eval``: batched multi-turn evaluation of a checkpoint (or a tiny default model)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from sftvsrl.config import ConfigError, parse_override
from sftvsrl.envs.tasks import tasks
from sftvsrl.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = " (default: %(default)s)"
    p.add_argument("--model", required=True, help="checkpoint folder, HF model folder, tiny-lm or tiny-vlm")
    p.add_argument(
        "--env",
        required=True,
        help=f"environment id, one of: {', '.join(t.env_id for t in tasks().values())}",
    )
    p.add_argument(
        "--env-kwargs",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="environment arguments, e.g. rule=ood split=test (default: none)",
    )
    p.add_argument("--episodes", type=int, default=234, help="number of episodes (seeds seed..seed+N-1)" + d)
    p.add_argument("--max-turns", type=int, default=5, help="verification turns per episode" + d)
    p.add_argument("--out", required=True, help="folder for episodes.jsonl and summary.json")
    p.add_argument(
        "--sample", action="store_true", help="sample instead of greedy decoding (default: greedy)"
    )
    p.add_argument("--temperature", type=float, default=0.2, help="sampling temperature (with --sample)" + d)
    p.add_argument("--seed", type=int, default=0, help="first episode seed (and sampling seed)" + d)
    p.add_argument("--num-envs", type=int, default=32, help="environments run at once" + d)
    p.add_argument("--max-new-tokens", type=int, default=128, help="answer length limit in tokens" + d)
    p.add_argument(
        "--kl-base",
        metavar="MODEL",
        help="also report kl_to_base: mean per-token KL(MODEL || --model) on MODEL's answers "
        "(sampled at temperature 1, seed --seed) to the first prompts of the evaluated split",
    )
    p.add_argument("--kl-prompts", type=int, default=16, help="prompts the KL is measured on" + d)
    p.add_argument(
        "--kl-max-new-tokens",
        type=int,
        default=None,
        help="answer length of the KL samples (default: --max-new-tokens)",
    )
    p.add_argument(
        "--dtype", default="float32", choices=("float32", "bfloat16", "float16"), help="weights dtype" + d
    )
    p.add_argument(
        "--bf16",
        default="auto",
        choices=("auto", "true", "false"),
        help="bf16 autocast on the CPU; auto: measured once per CPU model (fp32 where bf16 is slower)" + d,
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's, one per core; 1 on a machine shared with other work)",
    )
    p.add_argument(
        "--compile-rollouts",
        action="store_true",
        help="torch.compile the decode step: a one-off compile (tens of seconds), then faster steps",
    )


def parse_env_kwargs(items: list[str]) -> dict[str, Any]:
    """``["rule=ood", "split=test"]`` -> ``{"rule": "ood", "split": "test"}`` (YAML values)."""
    out: dict[str, Any] = {}
    for item in items:
        keys, value = parse_override(item)
        if len(keys) != 1:
            raise ConfigError(f"env kwarg {item!r}: use plain keys (no dots)")
        out[keys[0]] = value
    return out


def run(args: argparse.Namespace) -> int:
    from sftvsrl.evaluation.runner import evaluate, write_results
    from sftvsrl.models.loading import inference_device, load_model
    from sftvsrl.models.precision import resolve_bf16, resolve_threads
    from sftvsrl.rollout import HFRolloutEngine, make_envs
    from sftvsrl.training.loop import Progress
    from sftvsrl.writable import ensure_writable

    if args.episodes <= 0:
        raise ConfigError("--episodes must be positive")
    if args.max_turns <= 0:
        raise ConfigError("--max-turns must be positive")
    kl_base = getattr(args, "kl_base", None)
    if kl_base and args.kl_prompts <= 0:
        raise ConfigError("--kl-prompts must be positive")
    env_kwargs = parse_env_kwargs(args.env_kwargs)
    make_envs(args.env, env_kwargs, 1, args.max_turns)[0].close()  # fail fast on a bad env/kwargs
    ensure_writable(args.out)  # and on an output folder that cannot take the results
    if args.threads is not None and args.threads < 1:
        raise ConfigError("--threads must be positive")
    threads = resolve_threads(args.threads)
    device = inference_device()
    pm = load_model(args.model, dtype=args.dtype, trainable=False, device=device)
    pm.model.eval()
    setting = {"auto": "auto", "true": True, "false": False}[getattr(args, "bf16", "auto")]
    bf16 = args.dtype == "float32" and resolve_bf16(
        setting, hidden=pm.model.get_input_embeddings().embedding_dim, device=device
    )
    engine = HFRolloutEngine(pm, batch_size=args.num_envs, compile=getattr(args, "compile_rollouts", False))
    # A bar on a terminal; in a log, a plain line every 30 s (episodes done, rate, ETA).
    with autocast(device, bf16), Progress("eval", args.episodes, unit="episodes") as bar:
        records, summary = evaluate(
            engine,
            args.env,
            env_kwargs,
            episodes=args.episodes,
            max_turns=args.max_turns,
            num_envs=args.num_envs,
            seed=args.seed,
            do_sample=args.sample,
            temperature=args.temperature,
            max_new_tokens=args.max_new_tokens,
            progress=bar.advance,
        )
    summary["model"] = str(args.model)
    summary["runtime"] = {"threads": threads, "bf16_autocast": bf16, "compile_rollouts": engine.compile}
    if kl_base:
        with autocast(device, bf16):
            summary.update(kl_summary(args, pm, env_kwargs, "kl_to_base"))
    try:
        out = write_results(args.out, records, summary)
    except OSError as exc:  # e.g. the disk filled during the episodes
        raise UserError(f"{args.out}: writing the results failed ({exc.strerror or exc})") from None
    lo, hi = summary["ci95"]
    line = (
        f"{args.env} {env_kwargs}: success {summary['successes']}/{summary['episodes']} = "
        f"{summary['success_rate']:.3f} (95% CI {lo:.3f}-{hi:.3f}), mean turns {summary['mean_turns']:.2f}"
    )
    if "recognition_n" in summary:
        acc = summary["recognition_accuracy"]
        shown = "n/a" if acc is None else f"{acc:.3f}"
        line += f", recognition {shown} (n={summary['recognition_n']})"
    for key in ("rule_following", "valid_action", "step_accuracy"):
        if summary.get(key) is not None:
            line += f", {key.replace('_', ' ')} {summary[key]:.3f} (n={summary[key + '_n']})"
    if kl_base:
        line += f", KL to base {summary['kl_to_base']:.4f} nats/token"
    print(line)
    print(json.dumps(summary["final_outcomes"]))
    print(f"wrote {out / 'episodes.jsonl'} and {out / 'summary.json'}")
    return 0


def autocast(device: Any, enabled: bool) -> Any:
    """bf16 autocast on ``device`` when ``enabled``, else a no-op context."""
    import contextlib

    import torch

    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def kl_summary(args: argparse.Namespace, pm: Any, env_kwargs: dict[str, Any], key: str) -> dict[str, Any]:
    """``{key: mean per-token KL(--kl-base || model), key + "_cost": {...}}`` on the base's
    answers to the first ``--kl-prompts`` prompts of the evaluated split."""
    from sftvsrl.evaluation.kl import first_prompts, kl_to_reference
    from sftvsrl.models.loading import inference_device, load_model

    base = load_model(args.kl_base, dtype=args.dtype, trainable=False, device=inference_device())
    prompts = first_prompts(args.env, env_kwargs, args.kl_prompts, args.seed)
    max_new = args.kl_max_new_tokens or args.max_new_tokens
    result = kl_to_reference(base, pm, prompts, n=args.kl_prompts, seed=args.seed, max_new_tokens=max_new)
    cost = {
        "reference": str(args.kl_base),
        "prompts": result.prompts,
        "tokens": result.tokens,
        "seed": args.seed,
        "temperature": 1.0,
        "max_new_tokens": max_new,
        "sample_time_s": result.sample_time_s,
        "kl_time_s": result.time_s,
    }
    return {key: result.value, f"{key}_cost": cost}
