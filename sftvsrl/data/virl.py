"""``sftvsrl data virl``: V-IRL expert demonstrations as prompt/completion JSONL.

Rows come from ``sftvsrl.data.expert.write_expert_jsonl``; revision rows (``--multi-turn-
fraction``) first play a plausible wrong action (``make_wrong_fn``) and then the expert's
answer to the prompt that carries its feedback. The answer functions are the task
registry's (``sftvsrl.envs.virl.answers``).
"""

from __future__ import annotations

import argparse

FAMILY = "VIRL"  # the registry's tasks this command writes rows for (-L, or -VL with --vl)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = " (default: %(default)s)"
    parser.add_argument("--city", default="helsinki", help="helsinki, kotka or path:<dir>" + d)
    parser.add_argument(
        "--action-space", default="absolute", choices=["absolute", "relative"], help="how turns are named" + d
    )
    parser.add_argument(
        "--split",
        default="train",
        choices=("train", "test", "district", "all"),
        help="which routes: train/test/district for a city map, train/test/all for path:<dir>" + d,
    )
    parser.add_argument("--n", type=int, default=2000, help="number of rows" + d)
    parser.add_argument("--out", required=True, help="output JSONL path (images go to <stem>_images/)")
    parser.add_argument("--vl", action="store_true", help="vision-language variant (-VL) with images")
    parser.add_argument(
        "--multi-turn-fraction",
        type=float,
        default=0.0,
        help="fraction of rows whose prompt holds a wrong action and its feedback" + d,
    )
    parser.add_argument(
        "--prompt-style", default="full", choices=["full", "compact"], help="prompt wording" + d
    )
    parser.add_argument("--max-turns", type=int, default=2, help="answers allowed at each intersection" + d)
    parser.add_argument("--seed", type=int, default=0, help="first route seed" + d)


def run(args: argparse.Namespace) -> int:
    from sftvsrl.data.expert import write_task_jsonl
    from sftvsrl.envs.tasks import variant
    from sftvsrl.errors import UserError

    if args.n < 1:
        raise UserError("--n must be at least 1")
    if not 0.0 <= args.multi_turn_fraction <= 1.0:
        raise UserError("--multi-turn-fraction must be in [0, 1]")
    if args.max_turns < 2 and args.multi_turn_fraction > 0:
        raise UserError("revision rows need --max-turns >= 2")
    env_kwargs = {
        "city": args.city,
        "action_space": args.action_space,
        "split": args.split,
        "max_turns": args.max_turns,
        "prompt_style": args.prompt_style,
    }
    try:
        out = write_task_jsonl(
            args.out,
            variant(FAMILY, bool(args.vl)),
            env_kwargs,
            args.n,
            args.seed,
            multi_turn_fraction=args.multi_turn_fraction,
        )
    except (ValueError, RuntimeError) as exc:
        raise UserError(str(exc)) from exc
    print(f"wrote {args.n} rows to {out}")
    return 0
