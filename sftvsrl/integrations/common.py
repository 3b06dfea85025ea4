"""What every engine adapter shares: the task names, episode specs, a pool of made
environments, single-answer scoring and the sequential-revision driver.

An *episode spec* is everything needed to rebuild one episode anywhere: the env id, its
kwargs and the reset seed. It travels as the verl ``ground_truth`` (a JSON string, so
parquet files of different tasks keep one schema and can be concatenated).

Scoring always goes through ``env.step`` of the real environment, so the rewards are the
verifier's (one verifier per task) and agree with every other place the study scores.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from sftvsrl.envs.tasks import Task, get_task, make_env, task_for_env, tasks

SPEC_VERSION = 1
REVISION_AGENT = "sftvsrl_revision"  # the verl agent-loop name (configs/verl/agent_loop.yaml)
RETRY_INSTRUCTION = "Use the feedback and answer again in the required format."


def task_names() -> list[str]:
    """The registered tasks (``sftvsrl.envs.tasks``): adding a task there adds it here."""
    return list(tasks())


def get_task_spec(name: str) -> Task:
    """A registered task: ``env_id``, ``vision``, ``train`` and ``splits`` (id_seen first)."""
    return get_task(name)


def family_of(env_id: str) -> str:
    """The task family of an env id in lower case (also the verl ``ability`` of a row)."""
    task = task_for_env(env_id)
    if task is None:
        raise ValueError(f"not an sftvsrl environment id: {env_id!r}")
    return task.family.lower()


@functools.cache
def bad_format_reward(env_id: str) -> float:
    """The verifier's reward for an answer with no readable JSON (what hostile text earns),
    read off the task's own environment so that no reward table is written twice."""
    env = make_env(env_id)
    try:
        env.reset(seed=0)
        return float(env.step("")[1])
    finally:
        env.close()


# -- episode specs ----------------------------------------------------------------------


@dataclass(frozen=True)
class EpisodeSpec:
    env_id: str
    env_kwargs: dict[str, Any]
    seed: int
    task: str = ""
    split: str = ""

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": SPEC_VERSION,
                "env_id": self.env_id,
                "env_kwargs": self.env_kwargs,
                "seed": self.seed,
                "task": self.task,
                "split": self.split,
            },
            sort_keys=True,
        )

    @classmethod
    def parse(cls, value: Any) -> EpisodeSpec:
        """From the JSON string (or the dict) that export wrote; ValueError if it is not one."""
        if isinstance(value, EpisodeSpec):
            return value
        if isinstance(value, (str, bytes)):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise ValueError(f"ground_truth is not an sftvsrl episode spec: {str(value)[:80]!r}") from exc
        if not isinstance(value, dict) or not isinstance(value.get("env_id"), str):
            raise ValueError(f"ground_truth is not an sftvsrl episode spec: {value!r:.80}")
        kwargs = value.get("env_kwargs") or {}
        seed = value.get("seed")
        if not isinstance(kwargs, dict) or isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError("ground_truth needs env_kwargs (a dict) and seed (an int)")
        family_of(value["env_id"])
        return cls(
            value["env_id"], dict(kwargs), seed, str(value.get("task", "")), str(value.get("split", ""))
        )


def episode_spec(task: str, split: str, seed: int, **extra_kwargs: Any) -> EpisodeSpec:
    spec = get_task_spec(task)
    if split not in spec.splits:
        raise ValueError(f"task {task} has no split {split!r}; one of {', '.join(spec.splits)}")
    return EpisodeSpec(spec.env_id, {**spec.splits[split], **extra_kwargs}, int(seed), task, split)


# -- a pool of made environments --------------------------------------------------------

_POOL: dict[tuple[str, str], list[gym.Env]] = {}
_POOL_LOCK = threading.Lock()
_POOL_MAX_FREE = 16


def _key(env_id: str, kwargs: dict[str, Any]) -> tuple[str, str]:
    return env_id, json.dumps(kwargs, sort_keys=True, default=str)


@contextlib.contextmanager
def borrow_env(env_id: str, kwargs: dict[str, Any]) -> Iterator[gym.Env]:
    """An environment made once per (env id, kwargs) and reused; one borrower at a time
    (reward workers score from several threads, each borrowing its own)."""
    key = _key(env_id, kwargs)
    with _POOL_LOCK:
        free = _POOL.setdefault(key, [])
        env = free.pop() if free else None
    if env is None:
        env = make_env(env_id, **kwargs)
    try:
        yield env
    finally:
        with _POOL_LOCK:
            free = _POOL.setdefault(key, [])
            if len(free) < _POOL_MAX_FREE:
                free.append(env)
                env = None
        if env is not None:
            env.close()


def reset_episode(env: gym.Env, spec: EpisodeSpec) -> tuple[Any, dict[str, Any]]:
    return env.reset(seed=spec.seed)


def observation_parts(obs: Any) -> tuple[str, Any]:
    """(text, image or None) of an observation."""
    if isinstance(obs, dict):
        return str(obs["text"]), obs.get("image")
    return str(obs), None


def as_answer_text(answer: Any) -> str | None:
    """The answer as text, or None when it cannot be one (scored as bad format)."""
    if isinstance(answer, bytes):
        return answer.decode("utf-8", errors="replace")
    if isinstance(answer, str):
        return answer
    return None


def score_answer(spec: EpisodeSpec, answer: Any) -> tuple[float, dict[str, Any]]:
    """The reward ``env.step`` gives ``answer`` as the first answer of the episode.

    Total in ``answer``: anything that is not text, or that the environment refuses,
    earns the task's bad-format reward. A broken spec raises ValueError (a data error).
    """
    text = as_answer_text(answer)
    if text is None:
        return bad_format_reward(spec.env_id), {"outcome": "bad_format", "feedback": "the answer is not text"}
    with borrow_env(spec.env_id, spec.env_kwargs) as env:
        reset_episode(env, spec)
        try:
            _, reward, _, _, info = env.step(text)
        except Exception as exc:  # a verifier bug must not stop a training run
            return bad_format_reward(spec.env_id), {"outcome": "bad_format", "feedback": f"refused: {exc}"}
    return float(reward), info


# -- sequential revision ----------------------------------------------------------------


@dataclass
class Turn:
    """What one answer did: its reward and verdict, whether the episode is over, and (when
    it is not) the next user message and, for a new V-IRL step of a -VL task, its image."""

    reward: float
    outcome: str
    feedback: str
    done: bool
    success: bool
    next_user: str | None = None
    next_image: Any = None


@dataclass
class RevisionEpisode:
    """Drive one episode as a chat: the first observation is the first user turn; after each
    answer the verifier's feedback (and, when the walker moved, the next observation) is the
    next user turn, until the episode ends or ``max_answers`` answers were given.

    ``score`` is the episode return (the sum of the turn rewards, what the study's PPO
    optimises); ``reward_mode="last"`` scores the last answer only.
    """

    spec: EpisodeSpec
    max_answers: int | None = None
    reward_mode: str = "return"
    turns: list[Turn] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.reward_mode not in ("return", "last"):
            raise ValueError(f"reward_mode must be 'return' or 'last', got {self.reward_mode!r}")
        self._env = make_env(self.spec.env_id, **self.spec.env_kwargs)
        obs, info = reset_episode(self._env, self.spec)
        self.first_text, self.first_image = observation_parts(obs)
        self.expert_answer = str(info.get("expert_answer", ""))
        self.done = False

    @property
    def first_messages(self) -> list[dict[str, Any]]:
        return [{"role": "user", "content": self.first_text}]

    def respond(self, answer: Any) -> Turn:
        if self.done:
            raise RuntimeError("the episode is over")
        text = as_answer_text(answer)
        if text is None:
            text = ""  # not text: the verifier scores the empty answer (bad format)
        try:
            obs, reward, terminated, truncated, info = self._env.step(text)
        except Exception as exc:
            turn = Turn(bad_format_reward(self.spec.env_id), "bad_format", f"refused: {exc}", True, False)
            self.turns.append(turn)
            self.done = True
            return turn
        self.expert_answer = str(info.get("expert_answer", ""))
        done = bool(terminated or truncated)
        if self.max_answers is not None and len(self.turns) + 1 >= self.max_answers:
            done = True
        turn = Turn(float(reward), str(info.get("outcome", "")), str(info.get("feedback", "")), done,
                    bool(info.get("success", False)))  # fmt: skip
        if not done:
            obs_text, image = observation_parts(obs)
            if int(info.get("turn", 1)) == 0:  # a new V-IRL step: show the new observation
                turn.next_user = f"Feedback: {turn.feedback}\n\n{obs_text}"
                turn.next_image = image
            else:
                turn.next_user = f"Feedback: {turn.feedback}\n\n{RETRY_INSTRUCTION}"
        self.turns.append(turn)
        self.done = done
        return turn

    def score(self) -> float:
        if not self.turns:
            return 0.0
        if self.reward_mode == "last":
            return self.turns[-1].reward
        return float(sum(t.reward for t in self.turns))

    def summary(self) -> dict[str, Any]:
        """What the engines log and hand to the reward function."""
        return {
            "sftvsrl_episode_score": self.score(),
            "sftvsrl_turn_rewards": [t.reward for t in self.turns],
            "sftvsrl_outcomes": [t.outcome for t in self.turns],
            "sftvsrl_success": bool(self.turns and self.turns[-1].success),
        }

    def close(self) -> None:
        self._env.close()
