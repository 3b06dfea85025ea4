"""``sftvsrl data generalpoints``: expert GeneralPoints demonstrations as prompt/completion JSONL.

Completions vary: for each row the formula is drawn (seeded) from all canonically
distinct solutions of the hand (``solve_all``), so a hand seen twice is not always
answered with the same string. With ``--multi-turn-fraction p``, a fraction p of rows are
revision rows: a plausible wrong answer (wrong value, a miscounted card, a format slip,
or under -VL a misread card) is played first, so the row's prompt holds that answer and
the verifier's feedback, and the completion is the right answer.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from typing import Any

from sftvsrl.envs.generalpoints.cards import CARD_COLORS, RANKS, RULES, SPLITS
from sftvsrl.envs.generalpoints.prompt import PROMPT_STYLES
from sftvsrl.envs.generalpoints.solver import atom, combine, solve_all
from sftvsrl.envs.generalpoints.verifier import expert_answer

ENV_IDS = {False: "sftvsrl/GeneralPoints-L-v0", True: "sftvsrl/GeneralPoints-VL-v0"}
_OPERATORS = "+-*/"


def varied_expert(info: dict[str, Any], rng: random.Random) -> str:
    """A correct answer whose formula is drawn among all of the hand's solutions."""
    formulas = solve_all(info["values"], info["target"])
    return expert_answer(info["cards"], info["values"], rng.choice(formulas))


def random_formula(values: list[int], rng: random.Random) -> tuple[str, object] | None:
    """A random formula using each value once: (text, exact value or None on x/0)."""
    items = [atom(v) for v in values]
    rng.shuffle(items)
    while len(items) > 1:
        i, j = rng.sample(range(len(items)), 2)
        a, b = items[i], items[j]
        e = combine(a, rng.choice(_OPERATORS), b)
        if e is None:
            return None
        items = [x for k, x in enumerate(items) if k not in (i, j)] + [e]
    return items[0].text, items[0].value


def _wrong_value(values: list[int], target: int, rng: random.Random) -> str | None:
    for _ in range(30):
        made = random_formula(values, rng)
        if made is not None and made[1] != target:
            return made[0]
    return None


def _miscounted(values: list[int], ranks: list[str], rule: str, rng: random.Random) -> list[int]:
    """The card values with one mistake: under OOD a face card counted as 10, else off by one."""
    wrong = list(values)
    faces = [i for i, r in enumerate(ranks) if r in ("J", "Q", "K")]
    if rule == "ood" and faces:
        wrong[rng.choice(faces)] = 10
    else:
        i = rng.randrange(len(wrong))
        wrong[i] = wrong[i] + 1 if wrong[i] < 10 else wrong[i] - 1
    return wrong


def wrong_answer(info: dict[str, Any], rng: random.Random, vision: bool, rule: str) -> str | None:
    """A plausible mistake for a revision row (None if none could be made)."""
    cards, values, target = list(info["cards"]), list(info["values"]), info["target"]
    kinds = ["value", "value", "numbers", "numbers", "format"] + (["recognition"] if vision else [])
    kind = rng.choice(kinds)
    if kind == "value":
        formula = _wrong_value(values, target, rng)
        return None if formula is None else expert_answer(cards, values, formula)
    if kind == "numbers":
        wrong = _miscounted(values, cards, rule, rng)
        formulas = solve_all(wrong, target)
        made = rng.choice(formulas) if formulas else _wrong_value(wrong, target, rng)
        return None if made is None else expert_answer(cards, wrong, made)
    if kind == "recognition":
        misread = list(cards)
        i = rng.randrange(len(misread))
        misread[i] = rng.choice([r for r in RANKS if r != misread[i]])
        return expert_answer(misread, values, rng.choice(solve_all(values, target)))
    formula = rng.choice(solve_all(values, target))
    slips = [
        formula.replace("*", "x"),  # a letter for an operator
        json.dumps({"cards": cards, "formula": formula}),  # a missing field
        formula,  # no JSON at all
    ]
    return rng.choice(slips)


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
    from sftvsrl.data.expert import write_expert_jsonl
    from sftvsrl.errors import UserError

    if args.n < 1:
        raise UserError(f"--n must be at least 1, got {args.n}")
    if not 0.0 <= args.multi_turn_fraction <= 1.0:
        raise UserError(f"--multi-turn-fraction must be in [0, 1], got {args.multi_turn_fraction}")
    if args.max_turns < 2 and args.multi_turn_fraction > 0:
        raise UserError("multi-turn rows need --max-turns of at least 2")
    env_id = ENV_IDS[bool(args.vl)]
    kwargs = env_kwargs_from_args(args)
    try:
        out = write_expert_jsonl(
            args.out,
            env_id,
            kwargs,
            args.n,
            args.seed,
            progress=sys.stderr.isatty(),
            expert_fn=varied_expert,
            wrong_fn=lambda info, rng: wrong_answer(info, rng, bool(args.vl), args.rule),
            multi_turn_fraction=args.multi_turn_fraction,
            row_extra=lambda info: {
                "cards": info["cards"],
                "hand": info["hand"],
                "values": info["values"],
                "rule": info["rule"],
                "target": info["target"],
            },
        )
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    images = f" (images in {out.parent / (out.stem + '_images')})" if args.vl else ""
    print(f"wrote {args.n} rows to {out}{images}")
    return 0
