"""Compass and relative directions, always computed modulo 360 degrees.

Thresholds on the signed turn angle d = (target - heading) wrapped into (-180, 180]
(positive = clockwise = to the right):

    |d| <= 15           straight on: no turn needed, the right action is forward()
    15 < |d| <= 60      slightly left / slightly right
    60 < |d| <= 135     left / right
    |d| > 135           turn around: the direction word is "back"

So heading 350 -> target 10 is d = +20, a slight right; 10 -> 350 is d = -20, a slight
left (the original V-IRL code compared raw headings and got these wrong).
Absolute directions are the 8 compass points, each owning a 45-degree sector centred on it.
"""

from __future__ import annotations

import re

ABSOLUTE_DIRECTIONS = (
    "north", "north-east", "east", "south-east", "south", "south-west", "west", "north-west",
)  # fmt: skip
RELATIVE_DIRECTIONS = ("slightly left", "left", "back", "right", "slightly right")
STRAIGHT_MAX_DEG = 15.0
SLIGHT_MAX_DEG = 60.0
TURN_MAX_DEG = 135.0

_ABS_ALIASES = {
    "n": "north", "ne": "north-east", "e": "east", "se": "south-east",
    "s": "south", "sw": "south-west", "w": "west", "nw": "north-west",
}  # fmt: skip
_REL_ALIASES = {
    "slightly left": "slightly left", "slight left": "slightly left", "left slightly": "slightly left",
    "slightly right": "slightly right", "slight right": "slightly right", "right slightly": "slightly right",
    "left": "left", "right": "right",
    "back": "back", "turn around": "back", "around": "back", "backward": "back", "backwards": "back",
    "u turn": "back", "turn back": "back",
}  # fmt: skip


def wrap_heading(deg: float) -> float:
    """Heading in [0, 360)."""
    return float(deg) % 360.0


def signed_turn(heading: float, target: float) -> float:
    """Signed angle from ``heading`` to ``target`` in (-180, 180]; positive turns right."""
    d = (float(target) - float(heading)) % 360.0
    return d - 360.0 if d > 180.0 else d


def needs_turn(heading: float, target: float) -> bool:
    return abs(signed_turn(heading, target)) > STRAIGHT_MAX_DEG


def absolute_direction(bearing: float) -> str:
    """The compass point whose 45-degree sector holds ``bearing``."""
    return ABSOLUTE_DIRECTIONS[int((wrap_heading(bearing) + 22.5) // 45.0) % 8]


def relative_direction(heading: float, target: float) -> str | None:
    """The relative turn from ``heading`` to ``target``; None when straight on."""
    d = signed_turn(heading, target)
    a = abs(d)
    if a <= STRAIGHT_MAX_DEG:
        return None
    if a > TURN_MAX_DEG:
        return "back"
    side = "right" if d > 0 else "left"
    return f"slightly {side}" if a <= SLIGHT_MAX_DEG else side


def _squash(text: str) -> str:
    text = text.strip().strip("'\"`").strip().lower()
    text = re.sub(r"[\s_\-]+", " ", text)
    return text.strip()


def normalize_direction(text: str, action_space: str) -> str | None:
    """Canonical direction for ``text`` in ``action_space`` ("absolute"/"relative"), else None.

    Absolute accepts: north, north-east, northeast, north east, north_east, NE (any case),
    likewise for all 8 points. Relative accepts: left, right, slightly left/right,
    slight left/right, and for turning around: back, turn around, around,
    turn back, backward(s), u-turn.
    """
    key = _squash(text)
    if action_space == "absolute":
        if key in _ABS_ALIASES:
            return _ABS_ALIASES[key]
        joined = key.replace(" ", "")
        for name in ABSOLUTE_DIRECTIONS:
            if joined == name.replace("-", ""):
                return name
        return None
    if action_space == "relative":
        return _REL_ALIASES.get(key)
    raise ValueError(f"action_space must be 'absolute' or 'relative', got {action_space!r}")


def directions_for(action_space: str) -> tuple[str, ...]:
    if action_space == "absolute":
        return ABSOLUTE_DIRECTIONS
    if action_space == "relative":
        return RELATIVE_DIRECTIONS
    raise ValueError(f"action_space must be 'absolute' or 'relative', got {action_space!r}")
