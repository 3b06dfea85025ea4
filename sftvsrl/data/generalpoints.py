"""``sftvsrl data generalpoints``: expert GeneralPoints demonstrations as prompt/completion JSONL.

Completions vary: for each row the formula is drawn (seeded) from all canonically
distinct solutions of the hand (``solve_all``), so a hand seen twice is not always
answered with the same string. The answer functions are the task registry's
(``sftvsrl.envs.generalpoints.answers``). With ``--multi-turn-fraction p``, a fraction p of rows are
revision rows: a plausible wrong answer (wrong value, a miscounted card, a format slip,
or under -VL a misread card) is played first, so the row's prompt holds that answer and
the verifier's feedback, and the completion is the right answer.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sftvsrl.envs.generalpoints.cards import CARD_COLORS, RULES, SPLITS
from sftvsrl.envs.generalpoints.prompt import PROMPT_STYLES

FAMILY = "GeneralPoints"  # the registry's tasks this command writes rows for (-L, or -VL with --vl)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = " (default: %(default)s)"
    parser.add_argument("--rule", choices=RULES, default="id", help="how J, Q, K count" + d)
    parser.add_argument("--split", choices=SPLITS, default="train", help="which hands" + d)
    parser.add_argument("--n", type=int, default=5000, help="number of rows" + d)
    parser.add_argument("--out", required=True, help="output JSONL path (images go beside it)")
    parser.add_argument("--vl", action="store_true", help="vision variant: card images, names not in text")
    parser.add_argument("--card-color", choices=CARD_COLORS, default="black", help="-VL suit colours" + d)
    parser.add_argument("--target", type=int, default=24, help="the number to reach" + d)
    parser.add_argument("--max-turns", type=int, default=5, help="verification turns per episode" + d)
    parser.add_argument(
        "--multi-turn-fraction",
        type=float,
        default=0.0,
        help="fraction of rows whose prompt holds a wrong answer and its feedback" + d,
    )
    parser.add_argument("--prompt-style", choices=PROMPT_STYLES, default="full", help="prompt wording" + d)
    parser.add_argument(
        "--seed", type=int, default=0, help="first episode seed (episodes use seed, seed+1, ...)" + d
    )


def env_kwargs_from_args(args: argparse.Namespace) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "rule": args.rule,
        "target": args.target,
        "max_turns": args.max_turns,
        "split": args.split,
        "prompt_style": args.prompt_style,
    }
    if args.vl:
        kwargs["card_color"] = args.card_color
    return kwargs


def run(args: argparse.Namespace) -> int:
    from sftvsrl.data.expert import write_task_jsonl
    from sftvsrl.envs.tasks import variant
    from sftvsrl.errors import UserError

    if args.n < 1:
        raise UserError(f"--n must be at least 1, got {args.n}")
    if not 0.0 <= args.multi_turn_fraction <= 1.0:
        raise UserError(f"--multi-turn-fraction must be in [0, 1], got {args.multi_turn_fraction}")
    if args.max_turns < 2 and args.multi_turn_fraction > 0:
        raise UserError("multi-turn rows need --max-turns of at least 2")
    try:
        out = write_task_jsonl(
            args.out,
            variant(FAMILY, bool(args.vl)),
            env_kwargs_from_args(args),
            args.n,
            args.seed,
            progress=sys.stderr.isatty(),
            multi_turn_fraction=args.multi_turn_fraction,
        )
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    images = f" (images in {out.parent / (out.stem + '_images')})" if args.vl else ""
    print(f"wrote {args.n} rows to {out}{images}")
    return 0
