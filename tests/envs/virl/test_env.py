import json

import gymnasium as gym
import numpy as np
import pytest

import sftvsrl  # noqa: F401  (registers the environments)
from sftvsrl.envs.virl.directions import absolute_direction
from sftvsrl.envs.virl.env import VIRLEnv

CITIES = ["helsinki", "kotka"]
SPACES = ["absolute", "relative"]


def follow_expert(env, seed):
    obs, info = env.reset(seed=seed)
    assert env.observation_space.contains(obs)
    rewards, done = [], False
    while not done:
        obs, reward, terminated, truncated, info = env.step(info["expert_answer"])
        rewards.append(reward)
        done = terminated or truncated
    return rewards, terminated, truncated, info


@pytest.mark.parametrize("city", CITIES)
@pytest.mark.parametrize("action_space", SPACES)
@pytest.mark.parametrize("prompt_style", ["full", "compact"])
def test_expert_succeeds_on_100_routes_language(city, action_space, prompt_style):
    env = gym.make("sftvsrl/VIRL-L-v0", city=city, action_space=action_space, prompt_style=prompt_style)
    for seed in range(100):
        rewards, terminated, truncated, info = follow_expert(env, seed)
        assert terminated and not truncated and info["success"], (seed, info["feedback"])
        assert all(r == 1.0 for r in rewards)
        assert info["outcome"] == "correct"
        assert info["expert_answer"] == ""


@pytest.mark.parametrize("city", CITIES)
@pytest.mark.parametrize("action_space", SPACES)
def test_expert_succeeds_vision_10_routes(city, action_space):
    env = gym.make("sftvsrl/VIRL-VL-v0", city=city, action_space=action_space)
    for seed in range(10):
        rewards, terminated, _, info = follow_expert(env, seed)
        assert terminated and info["success"] and all(r == 1.0 for r in rewards)


@pytest.mark.slow
@pytest.mark.parametrize("city", CITIES)
@pytest.mark.parametrize("action_space", SPACES)
def test_expert_succeeds_vision_100_routes(city, action_space):
    env = gym.make("sftvsrl/VIRL-VL-v0", city=city, action_space=action_space, prompt_style="compact")
    for seed in range(100):
        rewards, terminated, _, info = follow_expert(env, seed)
        assert terminated and info["success"] and all(r == 1.0 for r in rewards)


def test_info_contract_and_headings():
    env = gym.make("sftvsrl/VIRL-L-v0")
    obs, info = env.reset(seed=5)
    for key in ("expert_answer", "position", "heading", "route_id"):
        assert key in info
    lat, lon = info["position"]
    assert 60.0 < lat < 60.3 and 24.8 < lon < 25.1
    done = False
    while not done:
        assert 0.0 <= info["heading"] < 360.0
        assert f"facing {absolute_direction(info['heading'])}" in (
            obs if isinstance(obs, str) else obs["text"]
        )
        obs, reward, terminated, truncated, info = env.step(info["expert_answer"])
        for key in (
            "outcome",
            "feedback",
            "success",
            "turn",
            "expert_answer",
            "position",
            "heading",
            "route_id",
        ):
            assert key in info
        done = terminated or truncated


def test_wrong_action_gives_minus_one_and_feedback_in_next_observation():
    env = gym.make("sftvsrl/VIRL-L-v0", action_space="relative")
    obs, info = env.reset(seed=1)
    expected = json.loads(info["expert_answer"])["action"]
    wrong = "stop()" if expected != "stop()" else "forward()"
    obs2, reward, terminated, truncated, info2 = env.step(json.dumps({"action": wrong}))
    assert reward == -1.0 and info2["outcome"] == "wrong_action"
    assert not terminated and not truncated and info2["turn"] == 1
    assert info2["feedback"] in obs2
    assert obs2.startswith(obs)  # sequential revision: the first prompt, then the attempt
    # The walker did not move: the expert answer is unchanged and still scores.
    assert info2["expert_answer"] == info["expert_answer"]
    assert info2["position"] == info["position"]
    obs3, reward, terminated, truncated, info3 = env.step(info2["expert_answer"])
    assert reward == 1.0 and info3["turn"] == 0
    assert "[Attempt" not in obs3
    assert expected in obs3  # the history records the action taken


def test_out_of_verification_turns_truncates():
    env = gym.make("sftvsrl/VIRL-L-v0", max_turns=2)
    _, info = env.reset(seed=2)
    _, r1, te, tr, _ = env.step("no json here")
    assert (r1, te, tr) == (-1.0, False, False)
    _, r2, te, tr, info = env.step('{"action": "fly()"}')
    assert r2 == -1.0 and tr and not te and not info["success"]
    assert info["outcome"] == "invalid_action"
    with pytest.raises(RuntimeError):
        env.step(info["expert_answer"])


def test_out_of_steps():
    env = gym.make("sftvsrl/VIRL-L-v0", max_steps=2, max_turns=5)
    _, info = env.reset(seed=3)
    _, r, te, tr, info = env.step(info["expert_answer"])
    assert r == 1.0 and not tr
    _, r, te, tr, info = env.step(info["expert_answer"])
    assert (r, te, tr, info["outcome"]) == (-1.0, False, True, "out_of_steps")
    assert "Out of steps" in info["feedback"]


def test_vision_observation_and_landmark_error():
    env = gym.make("sftvsrl/VIRL-VL-v0")
    obs, info = env.reset(seed=3)
    assert set(obs) == {"text", "image"}
    assert obs["image"].dtype == np.uint8 and obs["image"].ndim == 3 and obs["image"].shape[2] == 3
    assert env.observation_space.contains(obs)
    expert = json.loads(info["expert_answer"])
    assert "landmarks" in expert
    for name in expert["landmarks"]:
        assert name not in obs["text"].split("[Observations and actions]")[1]  # only in the image
    lie = dict(expert, landmarks=["Definitely Not Here Bistro"])
    obs2, reward, _, _, info2 = env.step(json.dumps(lie))
    assert reward == -1.5 and info2["outcome"] == "landmark_error"
    assert info2["feedback"] in obs2["text"]


def test_render_styles_differ_between_cities():
    a = gym.make("sftvsrl/VIRL-VL-v0", city="helsinki")
    b = gym.make("sftvsrl/VIRL-VL-v0", city="kotka")
    ia = a.reset(seed=0)[0]["image"]
    ib = b.reset(seed=0)[0]["image"]
    assert ia.shape == ib.shape
    # Sky colour at the top of the front view: day vs dusk.
    assert ia[2, 100].tolist() != ib[2, 100].tolist()
    c = gym.make("sftvsrl/VIRL-VL-v0", city="helsinki", render_style="dusk")
    assert c.reset(seed=0)[0]["image"][2, 100].tolist() == ib[2, 100].tolist()


def test_same_seed_same_episode_and_compact_is_shorter():
    full = VIRLEnv(prompt_style="full")
    compact = VIRLEnv(prompt_style="compact")
    o1, i1 = full.reset(seed=7)
    o2, _ = full.reset(seed=7)
    assert o1 == o2
    oc, ic = compact.reset(seed=7)
    assert ic["route_id"] == i1["route_id"] and len(oc) < len(o1)
    assert len(ic["expert_answer"]) < len(i1["expert_answer"])


@pytest.mark.parametrize(
    "kwargs",
    [{"action_space": "polar"}, {"split": "validation"}, {"prompt_style": "tiny"}, {"max_turns": 0},
     {"max_steps": 0}, {"render_style": "noir"}, {"city": "atlantis"}],
)  # fmt: skip
def test_bad_kwargs(kwargs):
    with pytest.raises((ValueError, RuntimeError)):
        VIRLEnv(**kwargs)


def test_hostile_answers_do_not_crash():
    env = VIRLEnv()
    _, info = env.reset(seed=0)
    for answer in ["{" * 10_000, "x" * 50_000, '{"action": null}', '{"action": {"a": 1}}', "\x00\x01", "[]",
                   '{"action": "turn_direction(北)"} 🚶', '{"action": "\u2603"}']:  # fmt: skip
        env.reset(seed=0)
        obs, reward, *_ = env.step(answer)
        assert reward == -1.0
        assert env.observation_space.contains(obs)


@pytest.mark.parametrize("vision", [False, True])
def test_gymnasium_env_checker(vision):
    import warnings

    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(VIRLEnv(vision=vision), skip_render_check=True)
