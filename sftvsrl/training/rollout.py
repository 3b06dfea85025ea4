"""Batched multi-turn rollouts: a small generation interface and a pool of environments.

``RolloutEngine`` is the one thing a faster backend has to implement: given a batch of
observations (prompt text, or ``{"text", "image"}`` for -VL), return one :class:`Generation`
per observation with the exact prompt and answer token ids, because PPO recomputes
log-probs on those ids. :class:`HFRolloutEngine` (Hugging Face ``generate``) is the default
and runs everywhere. A vLLM engine would implement the same method on GPUs: build the chat
prompts with the same tokenizer/chat template (pass the ``prompt_token_ids`` so both sides
agree on tokens), sample with ``SamplingParams(temperature, max_tokens, seed)``, return the
output ``token_ids`` as ``answer_ids``, and load the policy's current weights before each
rollout (``llm.llm_engine.model_executor`` weight loading, or saving a checkpoint and
restarting the engine). It is not shipped because vLLM cannot be installed on CPU machines.

:class:`EnvPool` steps many environments at once, each at its own turn: after every answer
the env's verifier scores it; an episode that ends either resets (training) or drops out
when no episodes are left to run (evaluation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym
import torch


@dataclass
class Generation:
    """One generated answer with the token ids it was sampled as.

    ``answer_ids`` ends with the eos token when the model stopped by itself (so the stop
    decision is part of the action's log-prob); ``extras`` holds this row's other model
    inputs (e.g. ``pixel_values``), each with a leading batch dimension of 1.
    """

    text: str
    prompt_ids: list[int]
    answer_ids: list[int]
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


class RolloutEngine(Protocol):
    """Anything that turns observations into answers with their token ids."""

    def generate(
        self,
        observations: Sequence[Any],
        *,
        max_new_tokens: int,
        temperature: float,
        do_sample: bool,
        seed: int | None,
    ) -> list[Generation]: ...


EncodeFn = Callable[[Any, Sequence[Any]], dict[str, torch.Tensor]]


def default_encode(pm: Any, observations: Sequence[Any]) -> dict[str, torch.Tensor]:
    """Left-padded, chat-templated prompts (incl. pixel values for VLMs) from the models package."""
    from sftvsrl.models.encoding import encode_prompts

    return dict(encode_prompts(pm, list(observations)))


def eos_ids(pm: Any) -> list[int]:
    """Every token id that ends an answer (the tokenizer's eos and the generation config's)."""
    ids: set[int] = set()
    tok = pm.tokenizer
    if tok.eos_token_id is not None:
        ids.add(int(tok.eos_token_id))
    cfg_eos = getattr(getattr(pm.model, "generation_config", None), "eos_token_id", None)
    if isinstance(cfg_eos, int):
        ids.add(cfg_eos)
    elif cfg_eos:
        ids.update(int(i) for i in cfg_eos)
    return sorted(ids)


class HFRolloutEngine:
    """Batched Hugging Face ``generate``: left-padded prompts, stop at eos, image token suppressed."""

    def __init__(self, pm: Any, *, batch_size: int = 64, encode_fn: EncodeFn | None = None) -> None:
        self.pm = pm
        self.batch_size = batch_size
        self.encode_fn = encode_fn or default_encode
        self.eos = eos_ids(pm)
        self.image_token = getattr(pm, "image_token_id", None)
        tok = pm.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else self.eos[0]

    @torch.no_grad()
    def generate(
        self,
        observations: Sequence[Any],
        *,
        max_new_tokens: int,
        temperature: float = 1.0,
        do_sample: bool = True,
        seed: int | None = None,
    ) -> list[Generation]:
        out: list[Generation] = []
        model = self.pm.model
        was_training = model.training
        model.eval()
        try:
            # Seeded sampling must not disturb the caller's RNG streams (CPU and the model's GPU).
            device = next(model.parameters()).device
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                if seed is not None:
                    torch.manual_seed(seed)
                for start in range(0, len(observations), self.batch_size):
                    chunk = observations[start : start + self.batch_size]
                    out.extend(self._generate_chunk(chunk, max_new_tokens, temperature, do_sample))
        finally:
            model.train(was_training)
        return out

    def encode_generation(self, observation: Any) -> Generation:
        """A prompt-only record for an observation (e.g. a state whose value is needed)."""
        enc = self.encode_fn(self.pm, [observation])
        ids = enc["input_ids"][0][enc["attention_mask"][0].bool()].tolist()
        extras = {
            k: v[:1].detach().cpu()
            for k, v in enc.items()
            if k not in ("input_ids", "attention_mask") and isinstance(v, torch.Tensor)
        }
        return Generation("", ids, [], extras)

    def _generate_chunk(
        self, observations: Sequence[Any], max_new_tokens: int, temperature: float, do_sample: bool
    ) -> list[Generation]:
        model = self.pm.model
        enc = self.encode_fn(self.pm, observations)
        device = next(model.parameters()).device
        enc = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in enc.items()}
        kwargs: dict[str, Any] = dict(
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            pad_token_id=self.pad_id,
            eos_token_id=self.eos,
        )
        if do_sample:
            kwargs.update(temperature=max(temperature, 1e-5), top_k=0, top_p=1.0)
        else:
            kwargs.update(temperature=None, top_k=None, top_p=None)
        if self.image_token is not None:
            kwargs["suppress_tokens"] = [self.image_token]
        seqs = model.generate(**enc, **kwargs)
        width = enc["input_ids"].shape[1]
        extras = {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask")}
        gens = []
        for row in range(seqs.shape[0]):
            prompt_ids = enc["input_ids"][row][enc["attention_mask"][row].bool()].tolist()
            answer_ids = seqs[row, width:].tolist()
            answer_ids = cut_at_eos(answer_ids, self.eos)
            text = self.pm.tokenizer.decode(answer_ids, skip_special_tokens=True)
            row_extras = {
                k: v[row : row + 1].detach().cpu()
                for k, v in extras.items()
                if isinstance(v, torch.Tensor) and v.shape[:1] == seqs.shape[:1]
            }
            gens.append(Generation(text, prompt_ids, answer_ids, row_extras))
        return gens


def cut_at_eos(ids: list[int], eos: Sequence[int]) -> list[int]:
    """Answer ids up to and including the first eos; everything after it is padding."""
    for i, token in enumerate(ids):
        if token in eos:
            return ids[: i + 1]
    return ids


@dataclass
class Transition:
    """One answer's result in one environment."""

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

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated


class EnvPool:
    """Many environments stepped together, each at its own turn of its own episode.

    ``episode_seeds`` lists the seed of every episode to run, in order; a free env takes the
    next one. With ``episode_seeds=None`` the pool runs forever (training): env ``e`` is
    seeded once with ``base_seed + e`` and later resets continue its own random stream.
    Envs with no episode left drop out of :meth:`active`.
    """

    def __init__(
        self,
        envs: Sequence[gym.Env],
        *,
        episode_seeds: Sequence[int] | None = None,
        base_seed: int = 0,
    ) -> None:
        self.envs = list(envs)
        self.episode_seeds = list(episode_seeds) if episode_seeds is not None else None
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
        if self.episode_seeds is not None:
            if self.next_episode >= len(self.episode_seeds):
                self.episode[e] = None
                return
            seed: int | None = self.episode_seeds[self.next_episode]
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

    def close(self) -> None:
        for env in self.envs:
            env.close()


def make_envs(env_id: str, env_kwargs: dict[str, Any], n: int, max_turns: int | None = None) -> list[gym.Env]:
    """``n`` independent copies of an environment, with errors a user can act on."""
    from sftvsrl.config import ConfigError
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
