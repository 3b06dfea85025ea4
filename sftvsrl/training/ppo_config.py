"""PPO settings (validated; every field can be overridden as ``key=value``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from sftvsrl.config import StrictModel
from sftvsrl.models.loading import LoraSettings


class PPOConfig(StrictModel):
    init: str = Field("tiny-lm", description="SFT checkpoint folder (or tiny-lm / tiny-vlm)")
    out_dir: str = "runs/rl"
    env_id: str = "sftvsrl/GeneralPoints-L-v0"
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    max_turns: int = Field(5, gt=0)
    # rollout: each update runs num_envs environments for steps_per_env answers each
    num_envs: int = Field(8, gt=0)
    steps_per_env: int = Field(8, gt=0)
    updates: int = Field(20, gt=0)
    temperature: float = Field(0.2, gt=0)
    max_new_tokens: int = Field(512, gt=0)
    generation_batch_size: int = Field(64, gt=0)
    # optimisation
    epochs: int = Field(4, gt=0)
    minibatch_size: int = Field(16, gt=0)
    micro_batch_size: int = Field(16, gt=0)
    lr: float = Field(1e-6, gt=0)
    value_lr: float | None = Field(
        None,
        gt=0,
        description="value head's learning rate (default: lr). The head starts at zero; at a policy-sized "
        "lr it cannot reach returns of a few units within a short run, so its baseline stays useless",
    )
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    warmup_fraction: float = Field(0.0, ge=0, lt=1)
    min_lr_ratio: float = Field(0.0, ge=0, le=1)
    weight_decay: float = Field(0.0, ge=0)
    adam_eps: float = Field(1e-7, gt=0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    # PPO
    gamma: float = Field(0.9, ge=0, le=1)
    lam: float = Field(0.95, ge=0, le=1)
    clip: float = Field(0.1, gt=0)
    value_clip: float | None = Field(None, gt=0)
    vf_coef: float = Field(0.5, ge=0)
    ent_coef: float = Field(0.0, ge=0)
    kl_coef: float = Field(0.0, ge=0)
    normalize_advantages: bool = True
    thought_coef: float = Field(1.0, ge=0, le=1)
    action_marker: str = "{"
    value_head_inner: int | None = Field(None, gt=0)
    # runtime
    dtype: Literal["float32", "bfloat16"] = "float32"
    bf16: bool = Field(False, description="bf16 autocast (about 3x faster on CPU from ~10M params up)")
    lora: LoraSettings | None = None
    seed: int = 0
    save_every: int = Field(1, gt=0)
    keep_checkpoints: int = Field(2, gt=0)
    stop_after: int | None = Field(None, gt=0, description="stop after this many updates (for tests)")
    tensorboard: bool = True
