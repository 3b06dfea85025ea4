"""Parse and score a V-IRL answer. The only source of V-IRL rewards.

The answer is free text holding a JSON object (found with ``find_json_object``) whose
``"action"`` value is an action string. Accepted forms (case-insensitive, surrounding
spaces and quotes ignored):

    forward      forward, forward(), move forward, go forward
    stop         stop, stop()
    turn         turn_direction(X), turn_direction("X"), turn_direction('X'),
                 turn direction(X), turn X
    X absolute   north, north-east, northeast, north east, north_east, NE (all 8 points)
    X relative   left, right, slightly left, slight left, slightly right, slight right,
                 back (turn around), turn around, around, turn back, backward(s), u-turn

-VL answers must also carry ``"landmarks"``: a list of the place names seen in the image
(possibly empty). Naming a place that is not visible at this position is a landmark
detection failure. Rewards (the paper's): +1 correct, -1 wrong action / invalid action /
bad format / out of steps, -1.5 landmark detection failure (-VL only).

``verify`` is total: any input (str, bytes, None, numbers, ...) gets a verdict.
``Verdict.valid_action``: the action parses and belongs to the episode's action space (a
compass word under the relative space is invalid), right or wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sftvsrl.envs.jsontext import AnswerTooLong, answer_text, find_json_object
from sftvsrl.envs.virl.directions import directions_for, normalize_direction
from sftvsrl.envs.virl.oracle import Action

REWARDS = {
    "correct": 1.0,
    "wrong_action": -1.0,
    "invalid_action": -1.0,
    "bad_format": -1.0,
    "out_of_steps": -1.0,
    "landmark_error": -1.5,
}
MAX_ACTION_CHARS = 80

_TURN_CALL = re.compile(r"^turn[\s_]*direction\s*\(\s*(.*?)\s*\)$")
_TURN_WORD = re.compile(r"^turn\s+(.+)$")


class ActionParseError(ValueError):
    """The action string is not one of the accepted forms."""


@dataclass(frozen=True)
class Verdict:
    outcome: str
    reward: float
    feedback: str
    action: Action | None
    # The answer's action parses and belongs to the episode's action space (a compass word
    # under "relative" is invalid), right or wrong, landmarks aside; False without an action.
    valid_action: bool = False

    @property
    def correct(self) -> bool:
        return self.outcome == "correct"


def parse_action(text: str, action_space: str) -> Action:
    """The action an action string names, or ActionParseError saying why not."""
    if len(text) > MAX_ACTION_CHARS:
        raise ActionParseError(f"the action is {len(text)} characters long")
    raw = re.sub(r"\s+", " ", text.strip().strip("'\"`").strip().lower())
    if raw in ("forward", "forward()", "move forward", "go forward", "move_forward", "move_forward()"):
        return Action("forward")
    if raw in ("stop", "stop()"):
        return Action("stop")
    match = _TURN_CALL.match(raw)
    argument = match.group(1) if match else None
    if argument is None:
        word = _TURN_WORD.match(raw)
        argument = word.group(1) if word else None
    if argument is None:
        raise ActionParseError(
            f"{text.strip()[:40]!r} is not forward(), turn_direction(<direction>) or stop()"
        )
    direction = normalize_direction(argument, action_space)
    if direction is None:
        allowed = ", ".join(directions_for(action_space))
        raise ActionParseError(f"{argument.strip()[:30]!r} is not a direction here; use one of: {allowed}")
    return Action("turn", direction)


def _norm_name(name: str) -> str:
    return re.sub(r"\s+", " ", name).strip().casefold()


def verify(
    answer: object,
    expected: Action,
    action_space: str,
    *,
    vision: bool = False,
    visible_landmarks: list[str] | tuple[str, ...] = (),
) -> Verdict:
    """Score ``answer`` against the expert action at this state.

    Total: any input (str, bytes, None, a number, ...) gets a verdict; nothing raises.
    """
    text = answer_text(answer)
    if text is None:
        return Verdict("bad_format", REWARDS["bad_format"], "The answer is not text.", None)
    try:
        obj = find_json_object(text)
    except AnswerTooLong as exc:
        return Verdict("bad_format", REWARDS["bad_format"], f"Answer too long: {exc}.", None)
    if obj is None or "action" not in obj:
        return Verdict(
            "bad_format", REWARDS["bad_format"], 'No JSON object with an "action" field was found.', None
        )
    action: Action | None = None
    value = obj["action"]
    problem = "the action must be a string"
    if isinstance(value, str):
        try:
            action = parse_action(value, action_space)
        except ActionParseError as exc:
            problem = str(exc)
    valid = action is not None
    if vision:
        reported = obj.get("landmarks")
        if not isinstance(reported, list) or not all(isinstance(x, str) for x in reported):
            return Verdict(
                "bad_format",
                REWARDS["bad_format"],
                'List the place names you see in the image as "landmarks": [...] (an empty list if none).',
                None,
                valid,
            )
        visible = {_norm_name(n) for n in visible_landmarks}
        for name in reported:
            if _norm_name(name) not in visible:
                return Verdict(
                    "landmark_error",
                    REWARDS["landmark_error"],
                    f"You reported {name.strip()[:60]!r}, but no such place is visible here.",
                    None,
                    valid,
                )
    if action is None:
        feedback = (
            "The action must be a string." if not isinstance(value, str) else f"Invalid action: {problem}."
        )
        return Verdict("invalid_action", REWARDS["invalid_action"], feedback, None)
    if action == expected:
        return Verdict("correct", REWARDS["correct"], f"Correct: {action.text()}.", action, True)
    return Verdict(
        "wrong_action",
        REWARDS["wrong_action"],
        f"Wrong action: {action.text()} does not follow the instruction from here.",
        action,
        True,
    )
