"""Rollouts shared by evaluation and the RL trainers: a generation engine and a pool of envs."""

from sftvsrl.rollout.engine import (
    Generation,
    HFRolloutEngine,
    RolloutEngine,
    cut_at_eos,
    encode_prompt,
    eos_ids,
)
from sftvsrl.rollout.pool import EnvPool, Sampling, Transition, make_envs

__all__ = [
    "EnvPool",
    "Generation",
    "HFRolloutEngine",
    "RolloutEngine",
    "Sampling",
    "Transition",
    "cut_at_eos",
    "encode_prompt",
    "eos_ids",
    "make_envs",
]
