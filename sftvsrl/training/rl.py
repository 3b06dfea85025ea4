"""What the RL trainers share: one config with an ``algorithm`` switch, the episode and sampling
seeds, the run's start (:func:`start_rl_run`: run folder, resume check, policy, runtime; then
counters and checkpoints), the cross-process sums of an update, and :func:`train_rl`.

``algorithm: ppo`` (the default, the paper's settings) runs :mod:`sftvsrl.training.ppo`;
``algorithm: grpo`` runs :mod:`sftvsrl.training.grpo`. One config class rather than two keeps
``sftvsrl rl --config <ppo yaml> algorithm=grpo group_size=8`` working: keys that only one
algorithm reads (marked ``ppo:`` / ``grpo:`` below) are ignored by the other, while keys that
neither knows are still errors.
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, model_validator

from sftvsrl.config import StrictModel
from sftvsrl.envs.tasks import get_task
from sftvsrl.errors import ConfigError
from sftvsrl.flops import FlopsCounter
from sftvsrl.models.loading import LoraSettings, autocast, load_checkpoint, load_model, save_model
from sftvsrl.models.precision import apply_runtime
from sftvsrl.resume import check_resume_config
from sftvsrl.runs import RunDir, TrainerState, lineage_flops, read_trainer_state
from sftvsrl.training.loop import cpu_only_launch, resumed_runtime
from sftvsrl.training.rl_math import episode_metrics


class RLConfig(StrictModel):
    """RL settings (validated; every field can be overridden as ``key=value``)."""

    algorithm: Literal["ppo", "grpo"] = Field(
        "ppo", description="ppo (value head + GAE) or grpo (group baseline)"
    )
    init: str = Field("tiny-lm", description="SFT checkpoint folder (or tiny-lm / tiny-vlm)")
    out_dir: str = "runs/rl"
    env_id: str = Field(default_factory=lambda: get_task("GeneralPoints-L").env_id)
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    max_turns: int = Field(5, gt=0)
    # rollout. ppo: each update runs num_envs environments for steps_per_env answers each;
    # grpo: each update plays one complete episode per env, num_envs / group_size groups
    num_envs: int = Field(8, gt=0)
    steps_per_env: int = Field(8, gt=0, description="ppo: answers per env and update")
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
        description="ppo: value head's learning rate (default: lr). The head starts at zero; at a "
        "policy-sized lr it cannot reach returns of a few units within a short run, so its baseline stays useless",
    )
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    warmup_fraction: float = Field(0.0, ge=0, lt=1)
    min_lr_ratio: float = Field(0.0, ge=0, le=1)
    weight_decay: float = Field(0.0, ge=0)
    adam_eps: float = Field(1e-7, gt=0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    # PPO
    gamma: float = Field(0.9, ge=0, le=1, description="ppo: GAE discount")
    lam: float = Field(0.95, ge=0, le=1, description="ppo: GAE lambda")
    clip: float = Field(0.1, gt=0)
    value_clip: float | None = Field(None, gt=0, description="ppo")
    vf_coef: float = Field(0.5, ge=0, description="ppo")
    ent_coef: float = Field(0.0, ge=0)
    kl_coef: float = Field(0.0, ge=0)
    normalize_advantages: bool = Field(True, description="ppo: whiten the buffer's GAE advantages")
    thought_coef: float = Field(1.0, ge=0, le=1)
    action_marker: str = "{"
    value_head_inner: int | None = Field(None, gt=0, description="ppo")
    # GRPO
    group_size: int = Field(8, gt=0, description="grpo: episodes sampled from each start state")
    scale_rewards: Literal["group", "none"] = Field(
        "group", description="grpo: divide by the group's return std (group) or not (none, Dr. GRPO)"
    )
    # runtime
    dtype: Literal["float32", "bfloat16"] = "float32"
    bf16: bool | Literal["auto"] = Field("auto", description="bf16 autocast; auto: measured once per CPU")
    threads: int | None = Field(None, ge=1, description="torch threads; null: capped torch default")
    compile_rollouts: bool = Field(
        False, description="torch.compile the rollouts' decode step (a one-off compile, then faster steps)"
    )
    lora: LoraSettings | None = None
    seed: int = 0
    save_every: int = Field(1, gt=0)
    keep_checkpoints: int = Field(2, gt=0)
    tensorboard: bool = True

    @model_validator(mode="after")
    def _groups_fit(self) -> RLConfig:
        problem = group_problem(self)
        if problem:
            raise ValueError(problem)
        return self


def group_problem(cfg: RLConfig) -> str | None:
    """Why a GRPO config cannot form its groups (None when it can, or for PPO)."""
    if cfg.algorithm != "grpo":
        return None
    if cfg.group_size < 2:
        return (
            f"group_size={cfg.group_size}: GRPO needs group_size >= 2 (a group of one is its own "
            "baseline, so every advantage would be 0 and nothing would be learned)"
        )
    if cfg.num_envs % cfg.group_size:
        return (
            f"num_envs={cfg.num_envs} is not a multiple of group_size={cfg.group_size} "
            "(each process runs num_envs / group_size whole groups)"
        )
    return None


def pool_seed(cfg: RLConfig, update: int, rank: int) -> int:
    """Base seed of an update's episodes on one process (env, or GRPO group, ``i`` resets with
    it plus ``i``)."""
    return (cfg.seed * 7919 + update * 104729 + rank * 15485863) % 2**31


def generate_seed(cfg: RLConfig, update: int, t: int, *, rank: int) -> int:
    """Sampling seed of rollout iteration ``t`` of an update on one process."""
    return (cfg.seed * 1_000_003 + update * 10_007 + t * 101 + rank) % 2**31


def load_policy(cfg: RLConfig, resume_from: Path | None) -> tuple[Any, Any]:
    """(checkpoint or None, policy model): from the resumed checkpoint, else from ``init``."""
    ckpt = load_checkpoint(resume_from, dtype=cfg.dtype) if resume_from is not None else None
    pm = ckpt.pm if ckpt is not None else load_model(cfg.init, dtype=cfg.dtype, lora=cfg.lora, seed=cfg.seed)
    pm.model.train()
    return ckpt, pm


def load_reference(cfg: RLConfig) -> torch.nn.Module | None:
    """The frozen KL reference (always ``init``), or None without a KL term."""
    if cfg.kl_coef == 0:
        return None
    ref_model = load_model(cfg.init, dtype=cfg.dtype, seed=cfg.seed, trainable=False).model.eval()
    ref_model.requires_grad_(False)
    return ref_model


def start_counters(ckpt: Any, init: str, n_params: int) -> tuple[int, float, FlopsCounter]:
    """(first update, elapsed seconds before it, FLOPs counter): continued from the resumed
    checkpoint, or from the init checkpoint's lineage (D_init)."""
    if ckpt is not None:
        return ckpt.state.step, ckpt.state.elapsed, FlopsCounter.from_dict(ckpt.state.flops)
    lineage = lineage_flops(init)
    return 0, 0.0, FlopsCounter.from_dict(lineage).next_stage(n_params) if lineage else FlopsCounter(n_params)


@dataclass
class RLStart:
    """What an RL loop starts from: the accelerator, the run folder, the resolved config
    (the checkpoint's precision on a resume, ``bf16`` a bool, threads applied), the resumed
    checkpoint (None when fresh) and the policy model."""

    accelerator: Any
    run: RunDir
    cfg: RLConfig
    ckpt: Any
    pm: Any

    def amp(self) -> Any:
        """bf16 autocast as configured. It is ours, not accelerate's mixed_precision: accelerate
        fixes that setting once per process, and several runs (tests, a study) may share one."""
        return autocast(self.accelerator.device, enabled=self.cfg.bf16)

    def resume(
        self, optimizer: Any, scheduler: Any, modules: dict[str, torch.nn.Module] | None = None
    ) -> tuple[int, float, FlopsCounter]:
        """(first update, elapsed seconds before it, FLOPs counter), see :func:`start_counters`;
        a resume also loads ``modules`` (by checkpoint name), the optimizer, the scheduler and
        this process's RNG. Log records after the first update are dropped (they are redone)."""
        ckpt, accelerator = self.ckpt, self.accelerator
        start, elapsed_before, flops = start_counters(ckpt, self.cfg.init, self.pm.n_params)
        if ckpt is not None:
            for name, module in (modules or {}).items():
                ckpt.load_module(name, module)
            ckpt.load_optimizer(optimizer)
            ckpt.load_scheduler(scheduler)
            ckpt.restore_rng(accelerator.process_index)
            accelerator.print(f"resumed from {ckpt.path} after update {start}")
        if accelerator.is_main_process:
            self.run.log.truncate(start)
        return start, elapsed_before, flops

    def save(
        self,
        step: int,
        flops: FlopsCounter,
        elapsed: float,
        optimizer: Any,
        scheduler: Any,
        modules: dict[str, torch.nn.Module] | None = None,
    ) -> None:
        """Checkpoint ``step`` (every process calls it): the policy, the trainer state with the
        resolved config, optimizer, scheduler and ``modules``; keeps ``keep_checkpoints``."""
        pm, cfg = self.pm, self.cfg
        self.run.save_checkpoint(
            step,
            write_model=lambda folder: save_model(pm, folder),
            state=TrainerState("rl", step, flops.to_dict(), elapsed, cfg.model_dump(mode="json")),
            optimizer=optimizer,
            scheduler=scheduler,
            extra_modules=modules,
            dist=self.accelerator,
            keep_last=cfg.keep_checkpoints,
        )


def start_rl_run(cfg: RLConfig, resume: bool, algorithm: str) -> RLStart:
    """Start a run of ``algorithm``, before any compute: refuse a config it cannot run, refuse
    a fresh launch into an existing run (or a resume without one) before writing anything,
    check the resumed settings, prove the output folder writable, write the config, seed this
    process, load the policy and apply the runtime settings (threads; ``bf16: auto`` -> bool)."""
    from accelerate import Accelerator

    if cfg.algorithm != algorithm:
        raise ConfigError(f"algorithm={cfg.algorithm}: run it with sftvsrl.training.rl.train_rl")
    if problem := group_problem(cfg):  # also for a config built without validation
        raise ConfigError(problem)
    accelerator = Accelerator(cpu=cpu_only_launch())
    run = RunDir(cfg.out_dir)
    resume_from = run.start(resume)  # refuses a fresh launch into a run before writing anything
    if resume_from is not None:
        cfg = check_resume(cfg, resume_from)
    run.check_writable()  # a read-only output folder fails before any compute
    if accelerator.is_main_process:
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_config(cfg)
    torch.manual_seed(cfg.seed + accelerator.process_index)
    ckpt, pm = load_policy(cfg, resume_from)
    cfg = apply_runtime(cfg, pm, accelerator.device)
    return RLStart(accelerator, run, cfg, ckpt, pm)


def gather_update(
    accelerator: Any,
    local: Sequence[float],
    outcomes: Counter,
    episodes: Sequence[tuple[bool, int, float]],
) -> tuple[list[float], dict[str, int], dict[str, float | None]]:
    """Sums of ``local`` counters over processes, all processes' outcome counts, and the
    metrics of every process's finished episodes."""
    from accelerate.utils import gather_object

    totals = torch.tensor(list(local), dtype=torch.float64, device=accelerator.device)
    totals = accelerator.reduce(totals, reduction="sum").tolist()
    merged: Counter = Counter()
    for part in gather_object([dict(outcomes)]):
        merged.update(part)
    metrics = episode_metrics([x for part in gather_object([list(episodes)]) for x in part])
    return totals, dict(sorted(merged.items())), metrics


def per_s(tokens: float, seconds: float, world: int) -> float | None:
    return tokens / seconds / world if seconds > 0 else None


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


# The RL algorithms by ``cfg.algorithm``: "module:function" entry points, imported when run
# (each trainer imports this module for the shared pieces). Adding an algorithm is adding an
# entry here and a value to ``RLConfig.algorithm``.
ALGORITHMS = {"ppo": "sftvsrl.training.ppo:train", "grpo": "sftvsrl.training.grpo:train"}


def train_rl(cfg: RLConfig, resume: bool = False) -> Path:
    """Run the configured algorithm (the entry point the CLI and the study call)."""
    module, _, function = ALGORITHMS[cfg.algorithm].partition(":")
    return getattr(importlib.import_module(module), function)(cfg, resume)


# Settings a resume can take new values of: bookkeeping only, never the trained numbers.
RESUMABLE = ("out_dir", "save_every", "keep_checkpoints", "tensorboard", "threads")


def check_resume(cfg: RLConfig, checkpoint: Path) -> RLConfig:
    """Refuse a resume that changes the LR schedule, episodes, model or numerics of the run
    (``updates`` sets the cosine schedule's length; with a constant LR it may change); returns
    ``cfg`` with the checkpoint's resolved precision when it asks for ``bf16: auto``."""
    saved = read_trainer_state(checkpoint).config
    cfg = resumed_runtime(cfg, saved)
    allowed = list(RESUMABLE)
    if saved.get("lr_schedule") == "constant" and not saved.get("warmup_fraction"):
        allowed.append("updates")
    check_resume_config(
        saved, cfg.model_dump(mode="json"), allowed=allowed, paths=("init",), where=checkpoint
    )
    return cfg
