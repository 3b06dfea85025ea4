"""Prompt and expert-answer text for V-IRL, in two styles.

"full": a paper-like prompt for real LMs (task, action space, instruction, the history of
observations and actions, the current observation, the answer format).
"compact": the same information in few characters for tiny char-level models, bounded in
length so that every prompt of a route (plus a revision turn and the answer) fits a
1024-position char-level model: with ``window=k`` (the env's ``compact_window``, default
:data:`COMPACT_WINDOW`) it shows the last ``k`` (observation, action) pairs in a short form
(where the walker stood and faced, without the landmarks), the instruction's sentences from
the one the last action executed to :data:`SENTENCE_WINDOW` sentences on (``..`` marks cut
sentences), the action space and the whole current observation; older pairs are dropped
further if the prompt would exceed :data:`COMPACT_MAX_CHARS`. ``window=None`` shows the
whole instruction and history (the unbounded compact form, for longer-context models).
In -VL the current observation's landmarks and street signs are only in the image; the
text keeps the heading and the earlier (already verified) observations.
"""

from __future__ import annotations

import json

from sftvsrl.envs.virl.directions import absolute_direction, directions_for
from sftvsrl.envs.virl.routes import Route, side_of

SIDES = ("front", "left", "right", "back")
COMPACT_WINDOW = 2  # earlier (observation, action) pairs a bounded compact prompt shows
SENTENCE_WINDOW = 3  # instruction sentences shown: the last action's one and the next two
COMPACT_MAX_CHARS = 570  # first prompt of a step; drops history pairs beyond it
_ABBREV = {
    "north": "N", "north-east": "NE", "east": "E", "south-east": "SE",
    "south": "S", "south-west": "SW", "west": "W", "north-west": "NW",
}  # fmt: skip


def landmarks_by_side(route: Route, point: int, heading: float) -> dict[str, list[str]]:
    """Names of the places at ``point`` grouped by where they appear for this heading."""
    groups: dict[str, list[str]] = {s: [] for s in SIDES}
    for lm in route.landmarks[point]:
        groups[side_of(heading, route.points[point], (lm.lat, lm.lon))].append(lm.name)
    return groups


def current_street(route: Route, point: int) -> str:
    return route.streets[point - 1] if point > 0 else route.streets[0]


def observation_text(
    route: Route, point: int, heading: float, style: str, vision: bool = False, short: bool = False
) -> str:
    """What the walker perceives at ``point`` facing ``heading`` (text form); ``short``
    (compact only): where it stands and faces, without the landmarks (history entries)."""
    compass = absolute_direction(heading)
    deg = int(round(heading)) % 360
    if short and style == "compact":
        return f"@{'/'.join(route.cross_streets[point])} on {current_street(route, point)} h={_ABBREV[compass]}{deg}"
    if vision:
        if style == "compact":
            return f"h={_ABBREV[compass]}{deg} see image"
        return f"You are facing {compass} ({deg} degrees); your surroundings are in the image."
    groups = landmarks_by_side(route, point, heading)
    streets = route.cross_streets[point]
    street = current_street(route, point)
    if style == "compact":
        marks = " ".join(f"{s[0].upper()}:{'|'.join(groups[s]) or '-'}" for s in SIDES)
        return f"@{'/'.join(streets)} on {street} h={_ABBREV[compass]}{deg} {marks}"
    where = streets[0] if len(streets) == 1 else ", ".join(streets[:-1]) + " and " + streets[-1]
    marks = "; ".join(f"{s}: {', '.join(groups[s]) or 'none'}" for s in SIDES)
    return (
        f"You are on {street} at the meeting of {where}, facing {compass} ({deg} degrees). "
        f"Landmarks: {marks}."
    )


def compact_instruction_window(route: Route, done: int, size: int = SENTENCE_WINDOW) -> str:
    """The compact instruction from the sentence of the last executed action (``done``
    actions so far) to ``size`` sentences on; ``..`` stands for the sentences cut."""
    sentences = route.compact_sentences or route.sentences or [route.instruction]
    start = route.plan[done - 1].sentence if done > 0 else 0
    start = max(0, min(start, len(sentences) - 1))
    shown = sentences[start : start + size]
    head = ".." if start > 0 else ""
    tail = ".." if start + size < len(sentences) else ""
    return "; ".join([x for x in (head, *shown, tail) if x])


def _compact_prompt(
    route: Route,
    history: list[tuple[str, str]],
    current: str,
    dirs: tuple[str, ...],
    vision: bool,
    window: int | None,
) -> str:
    fmt = '{"landmarks":[...],"action":A}' if vision else '{"action":A}'
    head = f"Walk the route. A=forward()|turn_direction(X)|stop() X={'|'.join(dirs)}\n"
    if window is None:
        instruction = route.compact_instruction
        first = 1
    else:
        instruction = compact_instruction_window(route, len(history))
        first = max(1, len(history) - window + 1)
    while True:
        shown = history[first - 1 :]
        hist = " ".join(f"O{i}:{o} A{i}:{a}" for i, (o, a) in enumerate(shown, first))
        if first > 1:
            hist = f".. {hist}" if hist else ".."
        text = f"{head}I:{instruction}\nH:{hist or '-'}\nO:{current}\n{fmt}"
        if window is None or len(text) <= COMPACT_MAX_CHARS or first > len(history):
            return text
        first += 1  # over the bound: drop the oldest pair shown


def build_prompt(
    route: Route,
    history: list[tuple[str, str]],
    current: str,
    action_space: str,
    style: str,
    vision: bool,
    window: int | None = COMPACT_WINDOW,
) -> str:
    """The first prompt of a step: instruction, earlier (observation, action) pairs, now.

    ``history`` holds one pair per executed action (so ``len(history)`` actions are done);
    ``window`` bounds the compact style (see the module docstring); the full style ignores it."""
    dirs = directions_for(action_space)
    if style == "compact":
        return _compact_prompt(route, history, current, dirs, vision, window)
    lines = [
        "[Task] You are walking through a city, following route instructions. At each step you get "
        "your current observation and your earlier observations and actions. Work out which "
        "sentence of the instruction you are executing, then choose the next action.",
        "[Action space] "
        '"forward()": walk along the street you face to the next intersection; '
        f'"turn_direction(x)": turn to face x, where x is one of {", ".join(dirs)}; '
        '"stop()": you have arrived at the destination.',
        f"[Instruction] {route.instruction}",
        "[Observations and actions]",
    ]
    for i, (obs, act) in enumerate(history, 1):
        lines.append(f"O_{i}: {obs}\nA_{i}: {act}")
    lines.append(f"O_{len(history) + 1} (current): {current}")
    if vision:
        lines.append(
            "[Image] Four views around you in a 2x2 grid: front (top left), left (top right), "
            "right (bottom left), back (bottom right)."
        )
        fmt = (
            '{"current observation": "what you see", "landmarks": ["names of places you see"], '
            '"current instruction": "the sentence you are executing", "action": "your action"}'
        )
    else:
        fmt = (
            '{"current observation": "what you see", "current instruction": "the sentence you are '
            'executing", "action": "your action"}'
        )
    lines.append(f"[Output] Answer with one JSON object: {fmt}")
    return "\n".join(lines)


def expert_answer_text(
    action_text: str,
    style: str,
    vision: bool,
    observation: str,
    sentence: str,
    landmarks: list[str],
) -> str:
    """The expert's JSON answer in the style the prompt asks for."""
    if style == "compact":
        obj: dict = {"landmarks": landmarks, "action": action_text} if vision else {"action": action_text}
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    obj = {"current observation": observation}
    if vision:
        obj["landmarks"] = landmarks
    obj["current instruction"] = sentence
    obj["action"] = action_text
    return json.dumps(obj, ensure_ascii=False)
