"""``sftvsrl play generalpoints``: play hands in the terminal against the real verifier.

Type a full JSON answer, or just a formula (then the cards and their values are filled in
for you). The shared loop (``sftvsrl.envs.playloop``) adds ``help``, ``hint``, ``show`` and
``quit``, none of them scored. For -VL the card image is written to a PNG file and its path
printed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sftvsrl.envs.generalpoints.cards import CARD_COLORS, RULES, SPLITS
from sftvsrl.envs.generalpoints.prompt import PROMPT_STYLES

_D = " (default: %(default)s)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rule", choices=RULES, default="id", help="how J, Q, K count" + _D)
    parser.add_argument("--vl", action="store_true", help="vision variant: the cards are drawn to a PNG")
    parser.add_argument("--card-color", choices=CARD_COLORS, default="black", help="-VL suit colours" + _D)
    parser.add_argument("--split", choices=SPLITS, default="train", help="which hands are dealt" + _D)
    parser.add_argument("--target", type=int, default=24, help="the number to reach" + _D)
    parser.add_argument("--max-turns", type=int, default=5, help="answers allowed per hand" + _D)
    parser.add_argument("--seed", type=int, default=None, help="seed of the first hand (random if unset)")
    parser.add_argument("--cards", default=None, help='play this hand, e.g. "K Q 2 2" or "KH,QS,2D,2C"')
    parser.add_argument("--prompt-style", choices=PROMPT_STYLES, default="full", help="prompt wording" + _D)
    parser.add_argument("--image-out", default="gp_hand.png", help="where -VL writes the card image" + _D)


def _as_answer(line: str, info: dict) -> str:
    """A bare formula becomes a full answer with the true cards and values."""
    if "{" in line:
        return line
    return json.dumps({"cards": info["cards"], "number": info["values"], "formula": line})


def hint(info: dict) -> str:
    expert = json.loads(info["expert_answer"])
    return (
        f"Values {expert['number']}; a solution: {expert['formula']}\n(full answer: {info['expert_answer']})"
    )


def make_game(args: argparse.Namespace):
    """The GeneralPoints ``Game`` for ``sftvsrl.envs.playloop.play``."""
    from sftvsrl.envs.generalpoints.env import GeneralPointsEnv
    from sftvsrl.envs.generalpoints.render import save_png
    from sftvsrl.envs.playloop import Game
    from sftvsrl.errors import UserError

    try:
        env = GeneralPointsEnv(
            vision=args.vl,
            rule=args.rule,
            target=args.target,
            max_turns=args.max_turns,
            split=args.split,
            card_color=args.card_color,
            prompt_style=args.prompt_style,
        )
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    state = {"seed": args.seed}
    image = Path(args.image_out)

    def text_of(obs) -> str:
        return obs["text"] if args.vl else obs

    def new_episode():
        options = {"cards": args.cards} if args.cards else None
        try:
            obs, info = env.reset(seed=state["seed"], options=options)
        except ValueError as exc:
            raise UserError(str(exc)) from exc
        if state["seed"] is not None:
            state["seed"] += 1
        if args.vl:
            save_png(obs["image"], image)
        return obs, info

    def image_note() -> str:
        return f"\n(The cards are drawn in {image.resolve()} - open it to see your hand.)" if args.vl else ""

    def intro(obs, info) -> str:
        return text_of(obs) + image_note()

    def show_text(obs, info) -> str:
        return text_of(obs) + image_note()

    def status(info) -> str:
        return f"attempt {info['turn'] + 1} of {args.max_turns}"

    def ending(info) -> str:
        if info.get("success"):
            return "Solved!"
        return f"Out of answers. {hint(info).splitlines()[0]}"

    return Game(
        name="generalpoints",
        env=env,
        episode_word="hand",
        answer_help='a formula such as (8-2)*(3+1), or a JSON {"cards": ..., "number": ..., "formula": ...}',
        new_episode=new_episode,
        to_answer=_as_answer,
        hint=hint,
        intro=intro,
        show_text=show_text,
        changed=lambda prev, obs, info: "",
        ending=ending,
        status=status,
        another=not args.cards,
    )


def run(args: argparse.Namespace) -> int:
    from sftvsrl.envs.playloop import play

    return play(make_game(args))
