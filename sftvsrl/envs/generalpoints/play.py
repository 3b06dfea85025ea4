"""``sftvsrl play generalpoints``: play hands in the terminal against the real verifier.

Type a full JSON answer, or just a formula (then the cards and their values are filled in
for you). ``hint`` shows a solution, ``quit`` (or end of input) stops. For -VL the card
image is written to a PNG file and its path printed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sftvsrl.envs.generalpoints.cards import CARD_COLORS, RULES, SPLITS
from sftvsrl.envs.generalpoints.prompt import PROMPT_STYLES

QUIT = {"quit", "exit", "q"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rule", choices=RULES, default="id", help="how J, Q, K count (default id)")
    parser.add_argument("--vl", action="store_true", help="vision variant: the cards are drawn to a PNG")
    parser.add_argument("--card-color", choices=CARD_COLORS, default="black", help="-VL suit colours")
    parser.add_argument("--split", choices=SPLITS, default="train")
    parser.add_argument("--target", type=int, default=24)
    parser.add_argument("--max-turns", type=int, default=5, help="answers allowed per hand")
    parser.add_argument("--seed", type=int, default=None, help="seed of the first hand (random if unset)")
    parser.add_argument("--cards", default=None, help='play this hand, e.g. "K Q 2 2" or "KH,QS,2D,2C"')
    parser.add_argument("--prompt-style", choices=PROMPT_STYLES, default="full")
    parser.add_argument("--image-out", default="gp_hand.png", help="where -VL writes the card image")


def _as_answer(line: str, info: dict) -> str:
    """A bare formula becomes a full answer with the true cards and values."""
    if "{" in line:
        return line
    return json.dumps({"cards": info["cards"], "number": info["values"], "formula": line})


def run(args: argparse.Namespace) -> int:
    from sftvsrl.envs.generalpoints.env import GeneralPointsEnv
    from sftvsrl.envs.generalpoints.render import save_png
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
    seed = args.seed
    while True:
        options = {"cards": args.cards} if args.cards else None
        try:
            obs, info = env.reset(seed=seed, options=options)
        except ValueError as exc:
            raise UserError(str(exc)) from exc
        seed = None if seed is None else seed + 1
        print(obs["text"] if args.vl else obs)
        if args.vl:
            path = Path(args.image_out)
            save_png(obs["image"], path)
            print(f"\n(The cards are drawn in {path.resolve()} - open it to see your hand.)")
        done = False
        while not done:
            try:
                line = input("\nYour answer (JSON or a formula; 'hint', 'quit'): ").strip()
            except EOFError:
                print("\nBye.")
                return 0
            if line.lower() in QUIT:
                return 0
            if line.lower() == "hint":
                print(f"A solution: {info['expert_answer']}")
                continue
            if not line:
                continue
            _, reward, terminated, truncated, info = env.step(_as_answer(line, info))
            print(f"reward {reward:+g}  outcome {info['outcome']}\n{info['feedback']}")
            done = terminated or truncated
            if truncated:
                print(f"Out of answers. A solution: {info['expert_answer']}")
            elif terminated:
                print("Solved!")
        if args.cards:
            return 0
        try:
            again = input("\nAnother hand? [Y/n] ").strip().lower()
        except EOFError:
            print("\nBye.")
            return 0
        if again in ("n", "no", *QUIT):
            return 0
