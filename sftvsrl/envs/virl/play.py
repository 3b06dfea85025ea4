"""``sftvsrl play virl``: walk a route in the terminal.

Type an action (``forward``, ``turn_direction(north)``, ``left``, ``stop`` ...) or a full
JSON answer; ``?`` shows the expert's answer; ``q`` or end of input (Ctrl-D) quits.
With ``--vl`` each view grid is saved as a PNG whose path is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sftvsrl.envs.virl.directions import normalize_direction


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--city", default="helsinki", help="helsinki, kotka or path:<dir> (original data)")
    parser.add_argument("--action-space", default="absolute", choices=["absolute", "relative"])
    parser.add_argument("--split", default="train")
    parser.add_argument("--seed", type=int, default=0, help="route seed")
    parser.add_argument("--max-turns", type=int, default=2)
    parser.add_argument("--prompt-style", default="full", choices=["full", "compact"])
    parser.add_argument("--vl", action="store_true", help="vision variant: save the views as PNG files")
    parser.add_argument("--image-dir", default=".", help="where --vl saves view images")


def to_answer(line: str, action_space: str, landmarks: list[str] | None) -> str:
    """Wrap a bare action typed by a person into the JSON answer the verifier reads."""
    text = line.strip()
    if text.startswith("{"):
        return text
    if normalize_direction(text, action_space) is not None:
        text = f"turn_direction({text})"
    obj: dict = {"action": text}
    if landmarks is not None:
        obj = {"landmarks": landmarks, "action": text}
    return json.dumps(obj, ensure_ascii=False)


def run(args: argparse.Namespace) -> int:
    import gymnasium as gym

    import sftvsrl  # noqa: F401  (registers the environments)
    from sftvsrl.errors import UserError

    env_id = "sftvsrl/VIRL-VL-v0" if args.vl else "sftvsrl/VIRL-L-v0"
    try:
        env = gym.make(
            env_id,
            city=args.city,
            action_space=args.action_space,
            split=args.split,
            max_turns=args.max_turns,
            prompt_style=args.prompt_style,
        )
        obs, info = env.reset(seed=args.seed)
    except (ValueError, RuntimeError, OSError) as exc:
        raise UserError(str(exc)) from exc
    image_dir = Path(args.image_dir)
    total, shown = 0.0, 0

    def show(observation) -> None:
        nonlocal shown
        if isinstance(observation, dict):
            from PIL import Image

            image_dir.mkdir(parents=True, exist_ok=True)
            path = image_dir / f"virl_view_{shown:03d}.png"
            Image.fromarray(observation["image"]).save(path)
            print(observation["text"])
            print(f"[views saved to {path}]")
        else:
            print(observation)
        shown += 1

    show(obs)
    while True:
        print("> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line or line.strip().lower() in ("q", "quit", "exit"):
            print("\nbye")
            return 0
        if not line.strip():
            continue
        if line.strip() == "?":
            print(info["expert_answer"])
            continue
        landmarks = None
        if args.vl:
            expert = json.loads(info["expert_answer"])
            landmarks = expert.get("landmarks", [])
        obs, reward, terminated, truncated, info = env.step(to_answer(line, args.action_space, landmarks))
        total += reward
        print(f"[{info['outcome']}] reward {reward:+.1f} (total {total:+.1f}): {info['feedback']}")
        if terminated or truncated:
            print("Route complete!" if info["success"] else "Episode over.")
            return 0
        print()
        show(obs)
