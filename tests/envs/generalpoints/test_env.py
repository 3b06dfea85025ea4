"""The Gymnasium environment: spaces, determinism, splits, revision, termination."""

import json

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sftvsrl  # noqa: F401  (registers the ids)
from sftvsrl.envs.generalpoints import verify
from sftvsrl.envs.generalpoints.cards import hand_split
from sftvsrl.envs.generalpoints.env import GeneralPointsEnv

L, VL = "sftvsrl/GeneralPoints-L-v0", "sftvsrl/GeneralPoints-VL-v0"


@pytest.mark.parametrize("vision", [False, True])
def test_passes_gymnasium_env_checker(vision):
    env = gym.make(VL if vision else L, rule="ood", render_mode="rgb_array").unwrapped
    check_env(env, skip_render_check=False)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    if vision:
        assert obs["image"].shape == (224, 448, 3) and obs["image"].dtype == np.uint8
    # every observation stays in the declared space, even after hostile answers
    for action in ["\u2603 snowman \x00 \udcff" * 200, "x" * 50_000, "{" * 5000]:
        obs, reward, *_ = env.step(action)
        assert reward <= -3.0 and env.observation_space.contains(obs)


def test_registered_ids():
    assert not gym.make(L).unwrapped.vision and gym.make(VL).unwrapped.vision
    assert gym.make(VL, card_color="red").unwrapped.card_color == "red"


@pytest.mark.parametrize("env_id", [L, VL])
def test_reset_is_deterministic_per_seed(env_id):
    a, b = gym.make(env_id), gym.make(env_id)
    hands = []
    for seed in range(8):
        (obs_a, info_a), (obs_b, info_b) = a.reset(seed=seed), b.reset(seed=seed)
        assert info_a == info_b
        if env_id == VL:
            assert obs_a["text"] == obs_b["text"] and (obs_a["image"] == obs_b["image"]).all()
        else:
            assert obs_a == obs_b
        hands.append(tuple(info_a["hand"]))
    assert len(set(hands)) > 4


@pytest.mark.parametrize("rule", ["id", "ood"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_hands_come_from_the_split_and_expert_scores_full(rule, split):
    env = gym.make(VL if rule == "id" else L, rule=rule, split=split)
    for seed in range(25):
        _, info = env.reset(seed=seed)
        assert hand_split(info["cards"], rule) == split
        assert info["rule"] == rule and info["target"] == 24
        if rule == "ood":
            assert set(info["cards"]) & {"J", "Q", "K"}
        v = verify(info["expert_answer"], info["hand"], rule, vision=env.unwrapped.vision)
        assert v.reward == 5.0
        _, reward, terminated, truncated, info = env.step(info["expert_answer"])
        assert (reward, terminated, truncated, info["success"], info["outcome"]) == (
            5.0,
            True,
            False,
            True,
            "correct",
        )


def test_sequential_revision_until_truncation():
    env = gym.make(L, max_turns=3)
    first, info = env.reset(options={"cards": ["K", "Q", "2", "2"]})
    assert "Cards: ['K', 'Q', '2', '2']" in first and "count as 10" in first
    wrong = [
        json.dumps({"cards": info["cards"], "number": [10, 10, 2, 2], "formula": "10*10*2*2"}),
        "I do not know",
    ]
    obs, r1, term, trunc, i1 = env.step(wrong[0])
    assert (r1, term, trunc, i1["outcome"], i1["turn"]) == (-1.0, False, False, "wrong_value", 1)
    assert obs.startswith(first) and wrong[0] in obs and i1["feedback"] in obs
    obs, r2, term, trunc, i2 = env.step(wrong[1])
    assert (r2, i2["outcome"]) == (-3.0, "bad_format")
    assert obs.index(wrong[0]) < obs.index(i1["feedback"]) < obs.index(wrong[1]) < obs.index(i2["feedback"])
    _, _, term, trunc, _ = env.step("still wrong")
    assert (term, trunc) == (False, True)
    with pytest.raises(RuntimeError):
        env.step("one more")


def test_revision_then_success_terminates():
    env = GeneralPointsEnv(vision=True, rule="ood", card_color="mixed")
    obs, info = env.reset(seed=5, options={"cards": "KH 5S 10D AC"})
    assert info["hand"] == ["KH", "5S", "10D", "AC"] and "Cards: shown in the image" in obs["text"]
    assert "K" not in obs["text"].split("[Input]")[1].split("[Output]")[0]  # names not given in -VL
    misread = json.dumps({"cards": ["Q", "5", "10", "A"], "number": [13, 5, 10, 1], "formula": "(13-1)*10/5"})
    _, reward, term, trunc, info = env.step(misread)
    assert (reward, term, info["recognized"], info["outcome"]) == (3.5, False, False, "misrecognized_correct")
    _, reward, term, trunc, info = env.step(info["expert_answer"])
    assert (reward, term, trunc, info["recognized"]) == (5.0, True, False, True)


def test_bad_arguments_and_hands():
    for kwargs in [
        {"rule": "x"},
        {"split": "dev"},
        {"card_color": "blue"},
        {"max_turns": 0},
        {"prompt_style": "tiny"},
        {"target": "24"},
    ]:
        with pytest.raises(ValueError):
            GeneralPointsEnv(**kwargs)
    env = GeneralPointsEnv()
    with pytest.raises(RuntimeError):
        env.step("x")
    with pytest.raises(ValueError):
        env.reset(options={"cards": ["A", "A", "A", "A"]})  # no solution
    with pytest.raises(ValueError):
        env.reset(options={"cards": ["A", "B", "C", "D"]})
    with pytest.raises(ValueError):
        env.reset(options={"cards": ["A", "2"]})
    with pytest.raises(ValueError):
        env.reset(options={"hand": ["A", "2", "3", "4"]})
    env.reset(seed=0)
    with pytest.raises(TypeError):
        env.step(42)


def test_compact_prompt_style():
    env = GeneralPointsEnv(prompt_style="compact", rule="ood")
    obs, _ = env.reset(options={"cards": ["K", "5", "10", "A"]})
    assert obs == "24 A1 J11 Q12 K13|K 5 10 A|{cards,number,formula}="
    env = GeneralPointsEnv(vision=True, prompt_style="compact")
    obs, _ = env.reset(options={"cards": ["K", "5", "10", "A"]})
    assert obs["text"] == "24 A1 J10 Q10 K10|img|{cards,number,formula}="


def test_render_modes():
    env = GeneralPointsEnv(render_mode="rgb_array")
    env.reset(seed=1)
    assert env.render().shape == (224, 448, 3)
    env = GeneralPointsEnv(render_mode="ansi")
    obs, _ = env.reset(seed=1)
    assert env.render() == obs


@pytest.mark.parametrize("color", ["black", "red", "mixed"])
def test_vision_observation_colours_follow_the_variant(color):
    env = gym.make(VL, card_color=color)
    for seed in range(6):
        obs, info = env.reset(seed=seed)
        img = obs["image"].astype(int)
        red = int(((img[..., 0] > 150) & (img[..., 1] < 80) & (img[..., 2] < 80)).sum())
        black = int((img.max(axis=-1) < 60).sum())
        suits = {card[-1] for card in info["hand"]}
        assert (red > 300) == bool(suits & {"H", "D"})
        assert (black > 300) == bool(suits & {"S", "C"})
        if color != "mixed":
            assert suits <= ({"S", "C"} if color == "black" else {"H", "D"})
