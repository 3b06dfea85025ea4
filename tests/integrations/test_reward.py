"""compute_score agrees with env.step on expert, wrong and hostile answers for every task."""

from __future__ import annotations

import json
import threading

import gymnasium as gym
import pytest

from sftvsrl.integrations.common import bad_format_reward, episode_spec, get_task_spec, task_names
from sftvsrl.integrations.verl import compute_score

from .conftest import HOSTILE, wrong_answer


def _env_reward(spec, answer):
    env = gym.make(spec.env_id, **spec.env_kwargs)
    _, info = env.reset(seed=spec.seed)
    if answer is None:
        answer = info["expert_answer"]
    _, reward, _, _, _ = env.step(answer)
    return reward, info["expert_answer"]


@pytest.mark.parametrize("task", task_names())
def test_expert_and_wrong_answers_agree_with_the_env(task):
    for split in get_task_spec(task).splits:
        for seed in range(2):
            spec = episode_spec(task, split, seed)
            gt = spec.to_json()
            reward, expert = _env_reward(spec, None)
            out = compute_score(f"sftvsrl/{task}", expert, gt, {"split": split})
            assert out["score"] == reward > 0 and out["correct"] is True and out["outcome"] == "correct"
            wrong = wrong_answer(expert)
            assert compute_score(f"sftvsrl/{task}", wrong, gt)["score"] == _env_reward(spec, wrong)[0] < 0


@pytest.mark.parametrize("task", task_names())
def test_hostile_answers_earn_bad_format(task):
    spec = episode_spec(task, "id", 0)
    gt = json.loads(spec.to_json())  # verl may hand the ground truth over as a dict too
    for answer in HOSTILE:
        out = compute_score(f"sftvsrl/{task}", answer, gt)
        assert out["score"] <= bad_format_reward(spec.env_id) or out["score"] == _env_reward(spec, answer)[0]
        if not isinstance(answer, (str, bytes)) or answer in ("", "no json here", "{"):
            assert out["score"] == bad_format_reward(spec.env_id)


def test_multi_turn_score_from_the_agent_loop_wins():
    gt = episode_spec("GeneralPoints-L", "id", 0).to_json()
    out = compute_score("x", "anything", gt, {"sftvsrl_episode_score": 3.0, "sftvsrl_success": True})
    assert out == {"score": 3.0, "outcome": "episode", "correct": True, "success": True}


@pytest.mark.parametrize("bad", ["", "not json", "{}", {"env_id": "CartPole-v1", "seed": 0}, {"env_id": 3}])
def test_broken_ground_truth_raises_value_error(bad):
    with pytest.raises(ValueError):
        compute_score("x", "{}", bad)


def test_threads_share_the_pool_safely():
    spec = episode_spec("GeneralPoints-L", "id", 5)
    expected, expert = _env_reward(spec, None)
    results = []

    def work():
        for _ in range(20):
            results.append(compute_score("x", expert, spec.to_json())["score"])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 80
