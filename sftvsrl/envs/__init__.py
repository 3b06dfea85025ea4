"""Gymnasium environments with rule-based verifiers, one sub-package per task."""

from __future__ import annotations

import gymnasium as gym

ENV_IDS = {
    "sftvsrl/GeneralPoints-L-v0": ("sftvsrl.envs.generalpoints.env:GeneralPointsEnv", {"vision": False}),
    "sftvsrl/GeneralPoints-VL-v0": ("sftvsrl.envs.generalpoints.env:GeneralPointsEnv", {"vision": True}),
    "sftvsrl/VIRL-L-v0": ("sftvsrl.envs.virl.env:VIRLEnv", {"vision": False}),
    "sftvsrl/VIRL-VL-v0": ("sftvsrl.envs.virl.env:VIRLEnv", {"vision": True}),
}


def register_envs() -> None:
    """Register every environment id once (entry points are imported lazily by gymnasium)."""
    for env_id, (entry_point, kwargs) in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, kwargs=kwargs)
