"""The generic expert writer on a toy environment that follows the env contract."""

import json
import random
import string

import gymnasium as gym
import numpy as np
import pytest
from datasets import load_dataset

from sftvsrl.data.expert import ExpertAnswerFailed, expert_rows, write_expert_jsonl
from sftvsrl.envs.revision import RevisionState


class CountEnv(gym.Env):
    """Say the next number, three steps per episode; a wrong answer gets one revision turn."""

    def __init__(self, vision: bool = False, broken_expert: bool = False):
        self.vision = vision
        self.broken_expert = broken_expert
        text = gym.spaces.Text(max_length=10_000, charset=string.printable)
        image = gym.spaces.Box(0, 255, (8, 8, 3), dtype=np.uint8)
        self.observation_space = gym.spaces.Dict({"text": text, "image": image}) if vision else text
        self.action_space = gym.spaces.Text(max_length=10_000, charset=string.printable)

    def _obs(self):
        text = self.state.prompt()
        if self.vision:
            return {"text": text, "image": np.full((8, 8, 3), self.value, dtype=np.uint8)}
        return text

    def _info(self, **more):
        answer = "wrong" if self.broken_expert else str(self.value + 1)
        return {"expert_answer": answer, "turn": self.state.turns, **more}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.value = int(self.np_random.integers(0, 100))
        self.steps = 0
        self.state = RevisionState(f"Say the number after {self.value}.")
        return self._obs(), self._info()

    def step(self, action):
        if action.strip() == str(self.value + 1):
            self.value += 1
            self.steps += 1
            self.state = RevisionState(f"Say the number after {self.value}.")
            done = self.steps == 3
            return (
                self._obs(),
                1.0,
                done,
                False,
                self._info(outcome="correct", feedback="right", success=done),
            )
        self.state.add(action, "wrong number")
        truncated = self.state.turns >= 2
        return (
            self._obs(),
            -1.0,
            False,
            truncated,
            self._info(outcome="wrong", feedback="wrong number", success=False),
        )


gym.register("test/Count-v0", entry_point=CountEnv)


def test_rows_follow_episodes_and_seeds():
    rows = list(expert_rows("test/Count-v0", {}, n=7, seed=10))
    assert len(rows) == 7
    assert [r.seed for r in rows] == [10, 10, 10, 11, 11, 11, 12]
    assert [r.step for r in rows] == [0, 1, 2, 0, 1, 2, 0]
    for row in rows:
        assert row.observation.startswith("Say the number after ")
        assert int(row.completion) == int(row.observation.split()[-1].rstrip(".")) + 1


def test_revision_rows_carry_wrong_answer_and_feedback():
    def wrong(info, rng):
        return "banana"

    rows = list(expert_rows("test/Count-v0", {}, n=30, seed=0, wrong_fn=wrong, multi_turn_fraction=1.0))
    assert all(r.revision for r in rows)
    assert all("banana" in r.observation and "wrong number" in r.observation for r in rows)


def test_expert_fn_varies_completion():
    seen = {
        r.completion
        for r in expert_rows(
            "test/Count-v0", {}, n=5, expert_fn=lambda info, rng: " " + info["expert_answer"]
        )
    }
    assert all(c.startswith(" ") for c in seen)


def test_broken_expert_is_reported():
    with pytest.raises(ExpertAnswerFailed, match="scored -1.0"):
        list(expert_rows("test/Count-v0", {"broken_expert": True}, n=1))


def test_bad_fraction_rejected():
    with pytest.raises(ValueError, match="multi_turn_fraction"):
        list(expert_rows("test/Count-v0", {}, n=1, multi_turn_fraction=1.5))


def test_jsonl_with_images_loads_with_datasets(tmp_path):
    out = write_expert_jsonl(
        tmp_path / "d.jsonl", "test/Count-v0", {"vision": True}, n=4, seed=3, progress=False
    )
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 4
    for line in lines:
        assert (tmp_path / line["images"][0]).is_file()
        assert line["env_id"] == "test/Count-v0" and line["env_kwargs"] == {"vision": True}
    ds = load_dataset("json", data_files=str(out), split="train")
    assert ds.num_rows == 4 and set(ds.column_names) >= {"prompt", "completion", "seed", "images"}
    assert not list(tmp_path.glob(".*tmp*"))


def test_failed_write_keeps_previous_file(tmp_path):
    out = tmp_path / "d.jsonl"
    out.write_text("previous\n")
    with pytest.raises(ExpertAnswerFailed):
        write_expert_jsonl(out, "test/Count-v0", {"broken_expert": True}, n=2, progress=False)
    assert out.read_text() == "previous\n" and not list(tmp_path.glob(".*tmp*"))


def test_rng_is_per_episode():
    rng_calls = []

    def wrong(info, rng: random.Random):
        rng_calls.append(rng.random())
        return None

    list(expert_rows("test/Count-v0", {}, n=6, wrong_fn=wrong, multi_turn_fraction=1.0, seed=5))
    again = []
    list(
        expert_rows(
            "test/Count-v0",
            {},
            n=6,
            wrong_fn=lambda i, r: again.append(r.random()),
            multi_turn_fraction=1.0,
            seed=5,
        )
    )
    assert rng_calls == again
