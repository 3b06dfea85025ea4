"""A tiny environment that follows the sftvsrl env contract, for trainer and eval tests.

The prompt asks for one digit; an answer is right when its first character is that digit.
Multi-turn with sequential revision and a turn limit, like the real tasks; the -VL flavour
returns ``{"text", "image"}`` and reports ``recognized``.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from sftvsrl.envs.revision import RevisionState

TOY_ID = "sftvsrl-test/Toy-v0"


class ToyEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, max_turns: int = 3, vision: bool = False, split: str = "train") -> None:
        if split not in ("train", "test"):
            raise ValueError(f"split must be train or test, got {split!r}")
        self.max_turns = max_turns
        self.vision = vision
        self.split = split
        text = gym.spaces.Text(max_length=4000, charset="".join(chr(i) for i in range(32, 127)) + "\n")
        if vision:
            self.observation_space = gym.spaces.Dict(
                {"text": text, "image": gym.spaces.Box(0, 255, (32, 32, 3), np.uint8)}
            )
        else:
            self.observation_space = text
        self.action_space = text
        self.target = 0
        self.state = RevisionState("")

    def _obs(self):
        text = self.state.prompt()
        if not self.vision:
            return text
        image = np.full((32, 32, 3), 25 * self.target, dtype=np.uint8)
        return {"text": text, "image": image}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        # Training draws digits 0-4, the test split 5-9 (a stand-in for disjoint splits).
        low = 0 if self.split == "train" else 5
        self.target = int(self.np_random.integers(low, low + 5))
        self.state = RevisionState(f"Say {self.target}.")
        return self._obs(), {"expert_answer": str(self.target)}

    def step(self, action):
        answer = str(action)
        first = answer[:1]
        if first == str(self.target):
            outcome, reward, feedback = "correct", 5.0, "Correct."
        elif first.isdigit():
            outcome, reward, feedback = "wrong_digit", -1.0, "Wrong digit."
        else:
            outcome, reward, feedback = "no_digit", -3.0, "Start with a digit."
        success = outcome == "correct"
        self.state.add(answer, feedback)
        terminated = success
        truncated = not success and self.state.turns >= self.max_turns
        info = {
            "expert_answer": str(self.target),
            "outcome": outcome,
            "feedback": feedback,
            "success": success,
        }
        if self.vision:
            info["recognized"] = None if outcome == "no_digit" else success
        return self._obs(), reward, terminated, truncated, info


def register_toy() -> None:
    if TOY_ID not in gym.registry:
        gym.register(id=TOY_ID, entry_point=ToyEnv)
    if "sftvsrl-test/Toy-VL-v0" not in gym.registry:
        gym.register(id="sftvsrl-test/Toy-VL-v0", entry_point=ToyEnv, kwargs={"vision": True})
