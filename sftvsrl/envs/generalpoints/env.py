"""GeneralPoints as a Gymnasium environment (-L: text, -VL: text + card image).

One episode = one hand. The action is the model's raw answer text; the verifier scores it.
A wrong answer does not end the episode: the next observation is the first prompt plus
every earlier (answer, feedback) pair (sequential revision), until the answer is right
(``terminated``) or ``max_turns`` answers were given (``truncated``).
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sftvsrl.envs.generalpoints.cards import (
    CARD_COLORS,
    HAND_SIZE,
    SPLITS,
    assign_suits,
    check_rule,
    draw_hand,
    hand_values,
    is_solvable,
    parse_card,
)
from sftvsrl.envs.generalpoints.prompt import PROMPT_STYLES, build_prompt
from sftvsrl.envs.generalpoints.render import DEFAULT_SIZE, render_hand
from sftvsrl.envs.generalpoints.solver import solve
from sftvsrl.envs.generalpoints.verifier import expert_answer, verify
from sftvsrl.envs.jsontext import MAX_TEXT_CHARS, answer_text, echo_clip
from sftvsrl.envs.revision import MAX_ECHOED_ANSWER_CHARS, RevisionState

TEXT_CHARSET = string.printable
# Worst case one revision turn adds to the observation: markers, the clipped answer (with its
# "... [N more characters cut]" note) and a one-line feedback.
_TURN_CHARS = MAX_ECHOED_ANSWER_CHARS + 600
_BASE_CHARS = 3000


_OUTSIDE_CHARSET = re.compile("[^" + re.escape(TEXT_CHARSET) + "]")


def to_charset(text: str) -> str:
    """Replace characters outside the observation charset, so observations stay in the space."""
    return _OUTSIDE_CHARSET.sub("?", text)


def _cards_option(value: Any) -> list[str]:
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, (list, tuple)) or len(value) != HAND_SIZE:
        raise ValueError(f'options["cards"] must name {HAND_SIZE} cards, got {value!r}')
    for name in value:
        parse_card(name)  # raises a clear ValueError
    return [str(name).strip().upper() for name in value]


class GeneralPointsEnv(gym.Env):
    """The 24-points card game with rule variants (ID/OOD) and colour variants (-VL)."""

    metadata = {"render_modes": ["rgb_array", "ansi"], "render_fps": 1}

    def __init__(
        self,
        vision: bool = False,
        rule: str = "id",
        target: int = 24,
        max_turns: int = 5,
        split: str = "train",
        card_color: str = "black",
        prompt_style: str = "full",
        image_size: Sequence[int] = DEFAULT_SIZE,
        render_mode: str | None = None,
    ) -> None:
        check_rule(rule)
        if isinstance(target, bool) or not isinstance(target, int):
            raise ValueError(f"target must be an integer, got {target!r}")
        if isinstance(max_turns, bool) or not isinstance(max_turns, int) or max_turns < 1:
            raise ValueError(f"max_turns must be a positive integer, got {max_turns!r}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if card_color not in CARD_COLORS:
            raise ValueError(f"card_color must be one of {CARD_COLORS}, got {card_color!r}")
        if prompt_style not in PROMPT_STYLES:
            raise ValueError(f"prompt_style must be one of {PROMPT_STYLES}, got {prompt_style!r}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None")
        self.vision = bool(vision)
        self.rule, self.target, self.max_turns, self.split = rule, target, max_turns, split
        self.card_color, self.prompt_style, self.render_mode = card_color, prompt_style, render_mode
        self.image_size = (int(image_size[0]), int(image_size[1]))

        text_space = spaces.Text(
            max_length=_BASE_CHARS + max_turns * _TURN_CHARS, min_length=1, charset=TEXT_CHARSET
        )
        if self.vision:
            width, height = self.image_size
            image_space = spaces.Box(0, 255, shape=(height, width, 3), dtype=np.uint8)
            self.observation_space = spaces.Dict({"text": text_space, "image": image_space})
        else:
            self.observation_space = text_space
        self.action_space = spaces.Text(max_length=MAX_TEXT_CHARS, min_length=0, charset=TEXT_CHARSET)

        self.hand: list[str] = []
        self.ranks: list[str] = []
        self.values: list[int] = []
        self._image: np.ndarray | None = None
        self._revision: RevisionState | None = None
        self._expert = ""
        self._done = True

    # -- episode -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Deal a hand (drawn per seed from ``split``, or ``options["cards"]``)."""
        super().reset(seed=seed)
        options = options or {}
        unknown = set(options) - {"cards"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; the only option is 'cards'")
        if "cards" in options:
            names = _cards_option(options["cards"])
            color = self.card_color if self.vision else "mixed"
            hand = assign_suits(names, color, self.np_random)
            values = hand_values([parse_card(c)[0] for c in hand], self.rule)
            if not is_solvable(tuple(sorted(values)), self.target):
                raise ValueError(
                    f"the hand {names} has no solution for {self.target} under rule {self.rule!r}"
                )
        else:
            color = self.card_color if self.vision else "mixed"
            hand = draw_hand(self.np_random, self.rule, self.target, self.split, color)
        self.hand = hand
        self.ranks = [parse_card(c)[0] for c in hand]
        self.values = hand_values(self.ranks, self.rule)
        formula = solve(self.values, self.target)
        assert formula is not None  # eligibility was checked above
        self._expert = expert_answer(self.ranks, self.values, formula)
        self._image = render_hand(hand, self.image_size) if self.vision else None
        first = build_prompt(self.ranks, self.rule, self.target, self.vision, self.prompt_style)
        self._revision = RevisionState(first)
        self._done = False
        return self._observation(), self._info()

    def step(self, action: str):
        """Score one answer; the episode goes on with the feedback until right or out of turns."""
        if self._revision is None:
            raise RuntimeError("call reset() before step()")
        if self._done:
            raise RuntimeError("the episode is over; call reset() to deal a new hand")
        text = answer_text(action)  # bytes: decoded from a bounded prefix
        if text is None:
            raise TypeError(f"the action must be the answer text (str), got {type(action).__name__}")
        verdict = verify(text, self.hand, self.rule, self.target, self.vision)
        # Clip before the charset filter: a 50 MB answer costs what a short one does.
        self._revision.add(to_charset(echo_clip(text)), to_charset(verdict.feedback))
        terminated = verdict.success
        truncated = not terminated and self._revision.turns >= self.max_turns
        self._done = terminated or truncated
        info = self._info()
        info.update(
            outcome=verdict.outcome,
            feedback=verdict.feedback,
            success=verdict.success,
            formula_outcome=verdict.formula_outcome,
            rule_following=verdict.rule_following,
        )
        if self.vision:
            info["recognized"] = verdict.recognized
        return self._observation(), float(verdict.reward), terminated, truncated, info

    # -- views ---------------------------------------------------------------------------
    @property
    def expert_answer(self) -> str:
        return self._expert

    def _observation(self):
        assert self._revision is not None
        text = self._revision.prompt()
        if self.vision:
            assert self._image is not None
            return {"text": text, "image": self._image.copy()}
        return text

    def _info(self) -> dict[str, Any]:
        assert self._revision is not None
        return {
            "cards": list(self.ranks),
            "hand": list(self.hand),
            "values": list(self.values),
            "target": self.target,
            "rule": self.rule,
            "split": self.split,
            "turn": self._revision.turns,
            "expert_answer": self._expert,
        }

    def render(self):
        if self.render_mode == "ansi":
            return self._revision.prompt() if self._revision else ""
        if self.render_mode == "rgb_array":
            if not self.hand:
                return None
            return self._image.copy() if self._image is not None else render_hand(self.hand, self.image_size)
        return None
