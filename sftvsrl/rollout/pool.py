"""Many environments stepped together, and the one loop that plays them with an engine.

:class:`EnvPool` keeps every env at its own turn of its own episode: after every answer the
env's verifier scores it; an episode that ends either resets (training) or drops out when no
episodes are left to run (evaluation). :meth:`EnvPool.play` is the only place that alternates
``engine.generate`` and :meth:`EnvPool.step`; evaluation and the RL trainers both consume it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from sftvsrl.errors import ConfigError
from sftvsrl.rollout.engine import Generation, RolloutEngine


@dataclass(frozen=True)
class Sampling:
    """How answers are decoded during a rollout."""

    max_new_tokens: int
    temperature: float = 1.0
    do_sample: bool = True


@dataclass
class Transition:
    """One answer's result in one environment (with the generation it came from, when played)."""

    env_index: int
    episode: int
    turn: int
    observation: Any
    answer: str
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]
    final_observation: Any = None
    generation: Generation | None = None

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated


class EnvPool:
    """Many environments stepped together, each at its own turn of its own episode.

    ``episode_seeds`` lists the seed of every episode to run, in order; a free env takes the
    next one. With ``episode_seeds=None`` the pool runs forever (training): env ``e`` is
    seeded once with ``base_seed + e`` and later resets continue its own random stream.
    ``env_seeds`` instead gives each env its own list of episode seeds (GRPO: the envs of a
    group share their seeds, so they replay the same hand). Envs with no episode left drop
    out of :meth:`active`.
    """

    def __init__(
        self,
        envs: Sequence[gym.Env],
        *,
        episode_seeds: Sequence[int] | None = None,
        base_seed: int = 0,
        env_seeds: Sequence[Sequence[int]] | None = None,
    ) -> None:
        self.envs = list(envs)
        if episode_seeds is not None and env_seeds is not None:
            raise ValueError("give episode_seeds or env_seeds, not both")
        if env_seeds is not None and len(env_seeds) != len(self.envs):
            raise ValueError(f"env_seeds has {len(env_seeds)} lists for {len(self.envs)} envs")
        self.episode_seeds = list(episode_seeds) if episode_seeds is not None else None
        self.env_seeds = [list(s) for s in env_seeds] if env_seeds is not None else None
        self.base_seed = base_seed
        self.next_episode = 0
        self.obs: list[Any] = [None] * len(self.envs)
        self.info: list[dict[str, Any]] = [{} for _ in self.envs]
        self.episode: list[int | None] = [None] * len(self.envs)
        self.turn = [0] * len(self.envs)
        self._seeded = [False] * len(self.envs)
        for e in range(len(self.envs)):
            self._start(e)

    def _start(self, e: int) -> None:
        if self.env_seeds is not None:
            if not self.env_seeds[e]:
                self.episode[e] = None
                return
            seed: int | None = self.env_seeds[e].pop(0)
        elif self.episode_seeds is not None:
            if self.next_episode >= len(self.episode_seeds):
                self.episode[e] = None
                return
            seed = self.episode_seeds[self.next_episode]
        else:
            seed = None if self._seeded[e] else self.base_seed + e
            self._seeded[e] = True
        self.obs[e], self.info[e] = self.envs[e].reset(seed=seed)
        self.episode[e] = self.next_episode
        self.next_episode += 1
        self.turn[e] = 0

    def active(self) -> list[int]:
        """Indices of envs that are in the middle of an episode."""
        return [e for e, ep in enumerate(self.episode) if ep is not None]

    def step(self, answers: dict[int, str]) -> list[Transition]:
        """Score each env's answer; finished episodes start the next one (or drop out)."""
        results = []
        for e, answer in answers.items():
            if self.episode[e] is None:
                raise ValueError(f"env {e} has no episode running")
            obs = self.obs[e]
            next_obs, reward, terminated, truncated, info = self.envs[e].step(answer)
            results.append(
                Transition(
                    env_index=e,
                    episode=int(self.episode[e]),
                    turn=self.turn[e],
                    observation=obs,
                    answer=answer,
                    reward=float(reward),
                    terminated=bool(terminated),
                    truncated=bool(truncated),
                    info=dict(info),
                    final_observation=next_obs if (terminated or truncated) else None,
                )
            )
            self.turn[e] += 1
            if terminated or truncated:
                self._start(e)
            else:
                self.obs[e], self.info[e] = next_obs, info
        return results

    def play(
        self,
        engine: RolloutEngine,
        sampling: Sampling,
        seed: Callable[[int], int | None],
        steps: int | None = None,
    ) -> Iterator[list[Transition]]:
        """Answer with every active env at once, ``steps`` times (or until no episode is left).

        Call ``k`` samples with ``seed(k)``. Yields each call's transitions in env order, each
        carrying its :class:`Generation`; after a yield, :attr:`obs` already holds every env's
        next prompt (the next episode's first prompt where one ended).
        """
        call = 0
        while (steps is None or call < steps) and (active := self.active()):
            gens = engine.generate(
                [self.obs[e] for e in active],
                max_new_tokens=sampling.max_new_tokens,
                temperature=sampling.temperature,
                do_sample=sampling.do_sample,
                seed=seed(call),
            )
            transitions = self.step({e: g.text for e, g in zip(active, gens, strict=True)})
            for tr, g in zip(transitions, gens, strict=True):
                tr.generation = g
            call += 1
            yield transitions

    def close(self) -> None:
        for env in self.envs:
            env.close()


def make_envs(env_id: str, env_kwargs: dict[str, Any], n: int, max_turns: int | None = None) -> list[gym.Env]:
    """``n`` independent copies of an environment, with errors a user can act on."""
    from sftvsrl.envs.tasks import register_envs

    register_envs()
    kwargs = dict(env_kwargs)
    if max_turns is not None:
        kwargs["max_turns"] = max_turns
    if env_id not in gym.registry:
        known = ", ".join(sorted(k for k in gym.registry if k.startswith("sftvsrl")))
        raise ConfigError(f"unknown environment {env_id!r}; known: {known}")
    try:
        return [gym.make(env_id, disable_env_checker=True, **kwargs) for _ in range(n)]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"cannot create {env_id} with {kwargs}: {exc}") from None
