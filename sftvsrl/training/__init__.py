"""Trainers: SFT and multi-turn RL (PPO) on one small skeleton (``training/loop.py``).

Public API (imported on first use): ``SFTConfig``, ``train_sft`` (``sftvsrl.training.sft``);
``PPOConfig``, ``train_ppo`` (``sftvsrl.training.ppo``).
"""

from sftvsrl._lazy import lazy_exports

_NAMES = {
    **dict.fromkeys(["SFTConfig", "train_sft"], "sftvsrl.training.sft"),
    "PPOConfig": "sftvsrl.training.ppo",
    "train_ppo": "sftvsrl.training.ppo:train",
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
