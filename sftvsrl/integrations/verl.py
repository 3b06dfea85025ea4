"""verl's custom reward function for the study's tasks (needs only the core package).

Use with ``custom_reward_function.path=<site-packages>/sftvsrl/integrations/verl.py`` and
``custom_reward_function.name=compute_score`` (see docs/scaling.md). verl calls it from a
thread pool, once per rollout, with the row's ``data_source``, the decoded response, the
row's ``reward_model.ground_truth`` and its ``extra_info``.

- Single-turn rollouts: the response is the first answer of the episode that
  ``ground_truth`` names; it is scored by ``env.step`` of that episode.
- Multi-turn rollouts driven by ``sftvsrl.integrations.verl_agent.RevisionAgentLoop``: the
  loop already stepped the environment through every turn and left the episode's score in
  its extra fields, which verl merges into ``extra_info``; that score is returned.
"""

from __future__ import annotations

from typing import Any

from sftvsrl.integrations.common import EpisodeSpec, bad_format_reward, score_answer

EPISODE_SCORE_KEY = "sftvsrl_episode_score"


def compute_score(
    data_source: Any, solution_str: Any, ground_truth: Any, extra_info: dict[str, Any] | None = None, **_: Any
) -> dict[str, Any]:
    """``{"score", "outcome", "correct", "success"}`` (verl logs the keys besides ``score``).

    Never raises on the answer: text that is not an answer earns the task's bad-format
    reward. A ``ground_truth`` that is not an episode spec raises ValueError: that is broken
    data, which a reward of any value would hide.
    """
    spec = EpisodeSpec.parse(ground_truth)
    if isinstance(extra_info, dict) and extra_info.get(EPISODE_SCORE_KEY) is not None:
        try:
            score = float(extra_info[EPISODE_SCORE_KEY])
        except (TypeError, ValueError):
            score = bad_format_reward(spec.env_id)
        return {
            "score": score,
            "outcome": "episode",
            "correct": bool(extra_info.get("sftvsrl_success", False)),
            "success": bool(extra_info.get("sftvsrl_success", False)),
        }
    reward, info = score_answer(spec, solution_str)
    outcome = str(info.get("outcome", ""))
    return {
        "score": reward,
        "outcome": outcome,
        "correct": outcome == "correct",  # the answer is right (a V-IRL route needs more answers)
        "success": bool(info.get("success", False)),  # the episode is won
    }
