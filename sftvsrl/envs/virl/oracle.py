"""The expert: the one right action at every state of a route, in either action space.

An episode's state is the number ``k`` of correct actions taken so far (a wrong action
never moves the walker), so the expert is the route's plan read at ``k``."""

from __future__ import annotations

from dataclasses import dataclass

from sftvsrl.envs.virl.directions import absolute_direction, relative_direction
from sftvsrl.envs.virl.routes import PlanStep, Route


@dataclass(frozen=True)
class Action:
    """A parsed action: kind is forward / turn / stop; direction only for turns."""

    kind: str
    direction: str | None = None

    def text(self) -> str:
        """The canonical action string, as the expert writes it."""
        if self.kind == "turn":
            return f"turn_direction({self.direction})"
        return f"{self.kind}()"


def expert_action(step: PlanStep, action_space: str) -> Action:
    """The right action for a plan step in ``action_space`` ("absolute" or "relative")."""
    if step.action != "turn":
        return Action(step.action)
    assert step.target is not None
    if action_space == "absolute":
        return Action("turn", absolute_direction(step.target))
    if action_space == "relative":
        direction = relative_direction(step.heading, step.target)
        assert direction is not None, "the plan only turns when the angle exceeds the straight threshold"
        return Action("turn", direction)
    raise ValueError(f"action_space must be 'absolute' or 'relative', got {action_space!r}")


def plan_step(route: Route, k: int) -> PlanStep:
    if not 0 <= k < len(route.plan):
        raise IndexError(f"route {route.route_id} has {len(route.plan)} plan steps, asked for {k}")
    return route.plan[k]
