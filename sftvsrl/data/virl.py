"""``sftvsrl data virl``: V-IRL expert demonstrations as prompt/completion JSONL.

Rows come from ``sftvsrl.data.expert.write_expert_jsonl``; revision rows (``--multi-turn-
fraction``) first play a plausible wrong action (``wrong_answer``) and then the expert's
answer to the prompt that carries its feedback.
"""

from __future__ import annotations

import argparse
import json
import random
from typing import Any

from sftvsrl.envs.virl.directions import ABSOLUTE_DIRECTIONS, RELATIVE_DIRECTIONS

_TURN_PREFIX = "turn_direction("


def wrong_action_text(action: str, action_space: str, rng: random.Random) -> str:
    """A plausible but wrong action: a neighbouring direction instead of the right turn, a
    turn instead of walking on, walking on instead of stopping."""
    dirs = ABSOLUTE_DIRECTIONS if action_space == "absolute" else RELATIVE_DIRECTIONS
    if action.startswith(_TURN_PREFIX):
        current = action[len(_TURN_PREFIX) : -1]
        choices = [d for d in dirs if d != current]
        if current in dirs and rng.random() < 0.7:
            i = dirs.index(current)
            near = {dirs[(i - 1) % len(dirs)], dirs[(i + 1) % len(dirs)]} - {current}
            choices = sorted(near)
        return f"{_TURN_PREFIX}{rng.choice(choices)})" if rng.random() < 0.85 else "forward()"
    if action == "forward()":
        return f"{_TURN_PREFIX}{rng.choice(dirs)})" if rng.random() < 0.7 else "stop()"
    return "forward()"  # the expert stops: walking on is the classic mistake


def make_wrong_fn(action_space: str):
    def wrong_fn(info: dict[str, Any], rng: random.Random) -> str | None:
        answer = info.get("expert_answer")
        if not answer:
            return None
        obj = json.loads(answer)
        obj["action"] = wrong_action_text(obj["action"], action_space, rng)
        compact = "current instruction" not in obj
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":") if compact else None)

    return wrong_fn


def row_extra(info: dict[str, Any]) -> dict[str, Any]:
    return {"route_id": info["route_id"]}


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
    from sftvsrl.data.expert import write_expert_jsonl
    from sftvsrl.errors import UserError

    if args.n < 1:
        raise UserError("--n must be at least 1")
    if not 0.0 <= args.multi_turn_fraction <= 1.0:
        raise UserError("--multi-turn-fraction must be in [0, 1]")
    if args.max_turns < 2 and args.multi_turn_fraction > 0:
        raise UserError("revision rows need --max-turns >= 2")
    env_id = "sftvsrl/VIRL-VL-v0" if args.vl else "sftvsrl/VIRL-L-v0"
    env_kwargs = {
        "city": args.city,
        "action_space": args.action_space,
        "split": args.split,
        "max_turns": args.max_turns,
        "prompt_style": args.prompt_style,
    }
    try:
        out = write_expert_jsonl(
            args.out,
            env_id,
            env_kwargs,
            args.n,
            args.seed,
            wrong_fn=make_wrong_fn(args.action_space),
            multi_turn_fraction=args.multi_turn_fraction,
            row_extra=row_extra,
        )
    except (ValueError, RuntimeError) as exc:
        raise UserError(str(exc)) from exc
    print(f"wrote {args.n} rows to {out}")
    return 0
