"""``sftvsrl play virl``: walk routes in the terminal.

Type an action (``forward``, ``turn_direction(north)``, ``north``, ``left``, ``stop`` ...)
or a full JSON answer. The shared loop (``sftvsrl.envs.playloop``) adds ``help``, ``hint``
(or ``?``), ``show`` and ``quit``, none of them scored; after a step only the new
observation is printed, not the whole prompt again. With ``--vl`` each view grid is saved
as a PNG whose path is printed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sftvsrl.envs.virl.directions import normalize_direction

_D = " (default: %(default)s)"
SPLIT_CHOICES = ("train", "test", "district", "all")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--city", default="helsinki", help="helsinki, kotka or path:<dir> (original data)" + _D
    )
    parser.add_argument(
        "--action-space",
        default="absolute",
        choices=["absolute", "relative"],
        help="how turns are named" + _D,
    )
    parser.add_argument(
        "--split",
        default="train",
        choices=SPLIT_CHOICES,
        help="which routes: train/test/district for a city map, train/test/all for path:<dir>" + _D,
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the first route (then seed+1, ...)" + _D)
    parser.add_argument("--max-turns", type=int, default=2, help="answers allowed at each intersection" + _D)
    parser.add_argument(
        "--prompt-style", default="full", choices=["full", "compact"], help="prompt wording" + _D
    )
    parser.add_argument("--vl", action="store_true", help="vision variant: save the views as PNG files")
    parser.add_argument("--image-dir", default=".", help="where --vl saves view images" + _D)


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


def current_observation(text: str) -> str:
    """The line of the prompt that describes where the walker is now."""
    for line in text.splitlines():
        if "(current):" in line or line.startswith("O:"):
            return line
    return ""


def hint(info: dict) -> str:
    expert = json.loads(info["expert_answer"])
    action = expert["action"]
    lines = [f"Expert action: {action}"]
    if expert.get("current instruction"):
        lines.append(f"(for: {expert['current instruction']})")
    if expert.get("landmarks") is not None:
        lines.append(f"(landmarks in view: {', '.join(expert['landmarks']) or 'none'})")
    return "\n".join(lines)


def make_game(args: argparse.Namespace):
    """The V-IRL ``Game`` for ``sftvsrl.envs.playloop.play``."""
    from sftvsrl.envs.playloop import Game
    from sftvsrl.envs.tasks import make_env, variant
    from sftvsrl.errors import UserError

    env_id = variant("VIRL", args.vl).env_id
    try:
        env = make_env(
            env_id,
            city=args.city,
            action_space=args.action_space,
            split=args.split,
            max_turns=args.max_turns,
            prompt_style=args.prompt_style,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        raise UserError(str(exc)) from exc
    image_dir = Path(args.image_dir)
    state = {"seed": args.seed, "saved": 0, "route": 0}

    def text_of(obs) -> str:
        return obs["text"] if isinstance(obs, dict) else obs

    def save_view(obs) -> str:
        if not isinstance(obs, dict):
            return ""
        from PIL import Image

        image_dir.mkdir(parents=True, exist_ok=True)
        path = image_dir / f"virl_view_{state['saved']:03d}.png"
        Image.fromarray(obs["image"]).save(path)
        state["saved"] += 1
        state["last_view"] = path
        return f"\n[views saved to {path}]"

    def new_episode():
        try:
            obs, info = env.reset(seed=state["seed"])
        except (ValueError, RuntimeError, OSError) as exc:
            raise UserError(str(exc)) from exc
        state["seed"] += 1
        state["route"] += 1
        return obs, info

    def intro(obs, info) -> str:
        return text_of(obs) + save_view(obs)

    def show_text(obs, info) -> str:
        view = f"\n[views saved to {state['last_view']}]" if "last_view" in state else ""
        return text_of(obs) + view

    def changed(prev, obs, info) -> str:
        now = current_observation(text_of(obs))
        if not now or now == current_observation(text_of(prev)):
            return ""  # a wrong answer: the walker did not move; the feedback said it all
        return f"Now: {now}" + save_view(obs)

    def status(info) -> str:
        return (
            f"route {state['route']}, step {info['step'] + 1}, attempt {info['turn'] + 1} of {args.max_turns}"
        )

    def ending(info) -> str:
        if info.get("success"):
            return "Route complete!"
        return f"Episode over. {hint(info).splitlines()[0]}" if info.get("expert_answer") else "Episode over."

    def answer(line: str, info: dict) -> str:
        landmarks = None
        if args.vl:
            landmarks = json.loads(info["expert_answer"]).get("landmarks", [])
        return to_answer(line, args.action_space, landmarks)

    return Game(
        name="virl",
        env=env,
        episode_word="route",
        answer_help="forward, stop, a direction (north, left ...), turn_direction(x), or a JSON answer",
        new_episode=new_episode,
        to_answer=answer,
        hint=hint,
        intro=intro,
        show_text=show_text,
        changed=changed,
        ending=ending,
        status=status,
    )


def run(args: argparse.Namespace) -> int:
    from sftvsrl.envs.playloop import play

    return play(make_game(args))
