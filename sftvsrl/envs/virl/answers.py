"""Plausible wrong actions for V-IRL revision rows, named by the task registry.

They live beside the env (not in ``sftvsrl.data``) so that the data CLI and the study read
one wiring from the registry.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from typing import Any

from sftvsrl.envs.virl.directions import ABSOLUTE_DIRECTIONS, RELATIVE_DIRECTIONS

AnswerFn = Callable[[dict[str, Any], random.Random], str | None]
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


def make_wrong_fn(env_kwargs: Mapping[str, Any], vision: bool = False) -> AnswerFn:
    """The wrong-answer function for episodes made with ``env_kwargs``: the expert's answer
    with its action replaced by a plausible mistake in the episode's action space."""
    action_space = str(env_kwargs.get("action_space", "absolute"))

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
    """What a data row records besides prompt and completion: the route it was cut from."""
    return {"route_id": info["route_id"]}
