"""``VIRLEnv``: V-IRL route following on real OpenStreetMap streets (or the original data).

One episode = one route. A step = one action; a wrong answer does not move the walker and
is sent back with feedback (sequential revision, up to ``max_turns`` answers per step).
The episode terminates when the walker stops at the goal and is truncated when a step runs
out of verification turns or the episode runs out of ``max_steps`` answers.
"""

from __future__ import annotations

import string
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sftvsrl.envs.jsontext import answer_text, echo_clip
from sftvsrl.envs.revision import RevisionState
from sftvsrl.envs.virl import prompt as P
from sftvsrl.envs.virl.directions import directions_for, wrap_heading
from sftvsrl.envs.virl.oracle import expert_action
from sftvsrl.envs.virl.render import STYLES, VIEW_H, VIEW_W, render_views, visible_landmarks
from sftvsrl.envs.virl.routes import SPLITS, Route, sample_route
from sftvsrl.envs.virl.verifier import REWARDS, verify

MAX_TEXT_CHARS = 200_000
PROMPT_STYLES = ("full", "compact")


class RouteSource:
    """Routes for a city name or ``path:<dir>``; built once per process and shared."""

    def __init__(self, city: str) -> None:
        self.city = city
        if city.startswith("path:"):
            from sftvsrl.envs.virl.loader import load_virl_dir

            self.dataset = load_virl_dir(city[len("path:") :])
            self.street_map = None
            names = [n for r in self.dataset.routes for n in _route_strings(r)]
        else:
            from sftvsrl.envs.virl.osm import load_city

            self.dataset = None
            self.street_map = load_city(city)
            names = [e.name for e in self.street_map.edges] + [
                p.name + p.kind for p in self.street_map.places
            ]
        self.charset = "".join(sorted(set(string.printable) | set("°…") | {c for n in names for c in n}))

    def route(self, split: str, seed: int) -> Route:
        if self.dataset is not None:
            return self.dataset.route(split, seed)
        assert self.street_map is not None
        return sample_route(self.street_map, split, seed)


def _route_strings(route: Route) -> list[str]:
    out = [route.instruction, *route.streets]
    for group in route.landmarks:
        out.extend(lm.name + lm.kind for lm in group)
    for group in route.cross_streets:
        out.extend(group)
    return out


_SOURCES: dict[str, RouteSource] = {}


def route_source(city: str) -> RouteSource:
    if city not in _SOURCES:
        _SOURCES[city] = RouteSource(city)
    return _SOURCES[city]


class VIRLEnv(gym.Env):
    """V-IRL navigation. See docs/virl.md for the task, rewards and thresholds."""

    metadata = {"render_modes": ["rgb_array", "ansi"]}

    def __init__(
        self,
        vision: bool = False,
        city: str = "helsinki",
        action_space: str = "absolute",
        split: str = "train",
        max_turns: int = 2,
        max_steps: int | None = None,
        prompt_style: str = "full",
        compact_window: int | None = P.COMPACT_WINDOW,
        render_style: str | None = None,
        render_mode: str | None = None,
    ) -> None:
        directions_for(action_space)  # validates
        if prompt_style not in PROMPT_STYLES:
            raise ValueError(f"prompt_style must be one of {PROMPT_STYLES}, got {prompt_style!r}")
        if city.startswith("path:"):
            if split not in ("train", "test", "all"):
                raise ValueError(f"split for original data must be train, test or all, got {split!r}")
        elif split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if compact_window is not None and (isinstance(compact_window, bool) or int(compact_window) < 0):
            raise ValueError(f"compact_window must be >= 0 or None, got {compact_window!r}")
        if max_turns < 1:
            raise ValueError(f"max_turns must be >= 1, got {max_turns}")
        if max_steps is not None and max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or None, got {max_steps}")
        if render_style is not None and render_style not in STYLES:
            raise ValueError(f"render_style must be one of {sorted(STYLES)}, got {render_style!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}")
        self.vision = bool(vision)
        self.city = city
        self.action_space_name = action_space
        self.split = split
        self.max_turns = int(max_turns)
        self.max_steps = max_steps
        self.prompt_style = prompt_style
        self.compact_window = None if compact_window is None else int(compact_window)
        self.render_style = render_style
        self.render_mode = render_mode
        self.source = route_source(city)
        self._charset = frozenset(self.source.charset)
        text = spaces.Text(max_length=MAX_TEXT_CHARS, charset=self.source.charset)
        if self.vision:
            image = spaces.Box(0, 255, shape=(2 * VIEW_H, 2 * VIEW_W, 3), dtype=np.uint8)
            if self.source.dataset is not None:
                image = spaces.Box(0, 255, shape=self.source.dataset.image_shape, dtype=np.uint8)
            self.observation_space = spaces.Dict({"text": text, "image": image})
        else:
            self.observation_space = text
        self.action_space = spaces.Text(max_length=MAX_TEXT_CHARS, charset=string.printable)
        self.route: Route | None = None
        self._k = 0
        self._steps = 0
        self._done = True
        self._history: list[tuple[str, str]] = []
        self._revision = RevisionState("")
        self._image: np.ndarray | None = None

    # --- state ------------------------------------------------------------------------

    def _state(self) -> tuple[int, float]:
        assert self.route is not None
        k = min(self._k, len(self.route.plan) - 1)
        step = self.route.plan[k]
        return step.point, wrap_heading(step.heading)

    def _current_text(self) -> str:
        point, heading = self._state()
        return P.observation_text(self.route, point, heading, self.prompt_style, self.vision)

    def _history_text(self) -> str:
        """How an earlier observation is echoed in the history (always the text form; the
        bounded compact style keeps where the walker stood and faced, not the landmarks)."""
        point, heading = self._state()
        short = self.compact_window is not None
        return P.observation_text(self.route, point, heading, self.prompt_style, vision=False, short=short)

    def _observation_echo(self) -> str:
        """The current observation in text form, as the full answer's "current observation"."""
        point, heading = self._state()
        return P.observation_text(self.route, point, heading, self.prompt_style, vision=False)

    def _start_step(self) -> None:
        first = P.build_prompt(
            self.route,
            self._history,
            self._current_text(),
            self.action_space_name,
            self.prompt_style,
            self.vision,
            self.compact_window,
        )
        self._revision = RevisionState(first)
        self._image = None

    def _observation(self) -> str | dict[str, Any]:
        text = self._revision.prompt()
        if not self._charset.issuperset(text):
            # Echoed model answers may hold any character; keep the observation inside its space.
            text = "".join(c if c in self._charset else "?" for c in text)
        text = text[-MAX_TEXT_CHARS:]
        if not self.vision:
            return text
        if self._image is None:
            point, heading = self._state()
            self._image = render_views(self.route, point, heading, self.render_style)
        return {"text": text, "image": self._image.copy()}  # callers may keep or modify it

    def _expected(self):
        return expert_action(self.route.plan[self._k], self.action_space_name)

    def expert_answer(self) -> str:
        """The answer that scores +1 now ('' once the episode is over)."""
        if self.route is None or self._done:
            return ""
        point, heading = self._state()
        step = self.route.plan[self._k]
        sentences = self.route.sentences
        if self.prompt_style == "compact" and self.route.compact_sentences:
            sentences = self.route.compact_sentences
        sentence = sentences[step.sentence] if sentences else self.route.instruction
        return P.expert_answer_text(
            self._expected().text(),
            self.prompt_style,
            self.vision,
            self._observation_echo(),
            sentence,
            visible_landmarks(self.route, point),
        )

    def _info(self) -> dict[str, Any]:
        point, heading = self._state()
        return {
            "expert_answer": self.expert_answer(),
            "position": tuple(self.route.points[point]),
            "heading": heading,
            "route_id": self.route.route_id,
            "step": self._k,
            "turn": self._revision.turns,
            "instruction": self.route.instruction,
            "expert_steps": len(self.route.plan),
        }

    # --- gymnasium API ----------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        route_seed = seed if seed is not None else int(self.np_random.integers(0, 2**31 - 1))
        if options and "route_seed" in options:
            route_seed = int(options["route_seed"])
        self.route = self.source.route(self.split, route_seed)
        self._k = 0
        self._steps = 0
        self._done = False
        self._history = []
        self._start_step()
        return self._observation(), self._info()

    def step(self, action: str):
        if self.route is None or self._done:
            raise RuntimeError("the episode is over; call reset()")
        text = answer_text(action)  # bytes: decoded from a bounded prefix; other types: None
        echo = echo_clip(text) if text is not None else f"<not text: {type(action).__name__}>"
        self._steps += 1
        point, _ = self._state()
        verdict = verify(
            text,
            self._expected(),
            self.action_space_name,
            vision=self.vision,
            visible_landmarks=visible_landmarks(self.route, point),
        )
        reward, outcome, feedback = verdict.reward, verdict.outcome, verdict.feedback
        terminated = truncated = success = False
        if verdict.correct:
            self._history.append((self._history_text(), verdict.action.text()))
            if self.route.plan[self._k].action == "stop":
                terminated = success = True
                feedback = "Correct: you stopped at the destination. Route complete."
            self._k += 1
            if not terminated:
                self._start_step()
        else:
            self._revision.add(echo, feedback)
            if self._revision.turns >= self.max_turns:
                truncated = True
                feedback += f" Out of verification turns ({self.max_turns}) for this step."
        limit = self.max_steps if self.max_steps is not None else len(self.route.plan) * self.max_turns
        if not (terminated or truncated) and self._steps >= limit:
            truncated = True
            reward, outcome = REWARDS["out_of_steps"], "out_of_steps"
            feedback = f"Out of steps: the route was not finished within {limit} answers."
        self._done = terminated or truncated
        info = self._info()
        info.update(
            outcome=outcome,
            feedback=feedback,
            success=success,
            reward=reward,
            valid_action=verdict.valid_action,
        )
        return self._observation(), float(reward), terminated, truncated, info

    def render(self):
        if self.route is None:
            return None
        if self.render_mode == "ansi":
            return self._revision.prompt()
        point, heading = self._state()
        return render_views(self.route, point, heading, self.render_style)
