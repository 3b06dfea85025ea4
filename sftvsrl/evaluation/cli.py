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
        "--dtype", default="float32", choices=("float32", "bfloat16", "float16"), help="weights dtype" + d
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
    from rich.progress import Progress

    from sftvsrl.evaluation.runner import evaluate, write_results
    from sftvsrl.models.loading import load_model
    from sftvsrl.rollout import HFRolloutEngine, make_envs
    from sftvsrl.runs import ensure_writable

    if args.episodes <= 0:
        raise ConfigError("--episodes must be positive")
    if args.max_turns <= 0:
        raise ConfigError("--max-turns must be positive")
    env_kwargs = parse_env_kwargs(args.env_kwargs)
    make_envs(args.env, env_kwargs, 1, args.max_turns)[0].close()  # fail fast on a bad env/kwargs
    ensure_writable(args.out)  # and on an output folder that cannot take the results
    pm = load_model(args.model, dtype=args.dtype, trainable=False)
    pm.model.eval()
    engine = HFRolloutEngine(pm, batch_size=args.num_envs)
    with Progress(transient=True) as bar:
        task = bar.add_task(f"eval {args.env}", total=args.episodes)
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
            progress=lambda n: bar.advance(task, n),
        )
    summary["model"] = str(args.model)
    try:
        out = write_results(args.out, records, summary)
    except OSError as exc:  # e.g. the disk filled during the episodes
        raise UserError(f"{args.out}: writing the results failed ({exc.strerror or exc})") from None
    lo, hi = summary["ci95"]
    line = (
        f"{args.env} {env_kwargs}: success {summary['successes']}/{summary['episodes']} = "
        f"{summary['success_rate']:.3f} (95% CI {lo:.3f}-{hi:.3f}), mean turns {summary['mean_turns']:.2f}"
    )
    if summary.get("recognition_accuracy") is not None:
        line += f", recognition {summary['recognition_accuracy']:.3f}"
    print(line)
    print(json.dumps(summary["final_outcomes"]))
    print(f"wrote {out / 'episodes.jsonl'} and {out / 'summary.json'}")
    return 0
