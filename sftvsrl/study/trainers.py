"""The trainers' configs as the study builds them, and the one place each trainer is called.

A study config's ``sft``/``rl`` sections are *typed partial configs*: the trainer's own config
class less the fields the study sets itself (:data:`SFT_OWNED`, :data:`RL_OWNED`, the one list
of them). A section sets only what the user wrote (``model_dump(exclude_unset=True)``); the
study fills in its own fields, so a section can neither break the study's bookkeeping nor
silently lose a setting.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError, create_model

from sftvsrl.config import ConfigError, StrictModel, format_validation_error
from sftvsrl.runs import TRAINER_STATE, RunDir

if TYPE_CHECKING:
    from sftvsrl.study.config import StudyConfig
    from sftvsrl.training.ppo import PPOConfig
    from sftvsrl.training.sft import SFTConfig

KEEP_ALL = 100_000  # keep every checkpoint: each one is a point on a curve

# What the study sets in every SFT run: the model and data of the stage, where it writes, its
# length and checkpoint/log cadence (curves, validation and the FLOPs rate read them), and
# the study-wide seed, dtype and LoRA settings.
SFT_OWNED = frozenset(
    {
        "model",
        "data",
        "out_dir",
        "seed",
        "dtype",
        "lora",
        "max_steps",
        "epochs",
        "save_every",
        "keep_last",
        "log_every",
        "eval_every",
    }
)
# What the study sets in every RL run: start, task, where it writes, length and checkpoints.
RL_OWNED = frozenset(
    {"init", "out_dir", "env_id", "env_kwargs", "seed", "updates", "save_every", "keep_checkpoints"}
)
# Trainer settings that cannot change a result (left out of the stages' fingerprints).
DISPLAY_ONLY = frozenset({"progress", "tensorboard"})


def _partial(trainer: type[BaseModel], owned: frozenset[str], name: str) -> type[StrictModel]:
    fields: dict[str, Any] = {k: (f.annotation, f) for k, f in trainer.model_fields.items() if k not in owned}
    return create_model(name, __base__=StrictModel, **fields)


@cache
def sft_settings_class() -> type[StrictModel]:
    """SFTConfig less :data:`SFT_OWNED`."""
    from sftvsrl.training.sft import SFTConfig

    return _partial(SFTConfig, SFT_OWNED, "SFTSettings")


@cache
def rl_settings_class() -> type[StrictModel]:
    """PPOConfig less :data:`RL_OWNED`."""
    from sftvsrl.training.ppo import PPOConfig

    return _partial(PPOConfig, RL_OWNED, "RLSettings")


def typed_section(where: str, section: dict[str, Any]) -> StrictModel:
    """The section ``where`` (``corpus.sft``, ``init.sft``, ``stage2.sft``, ``stage2.rl``) as
    a typed partial config; ConfigError naming the section and key on a bad one."""
    rl = where.endswith(".rl")
    owned = RL_OWNED if rl else SFT_OWNED
    clash = sorted(set(section) & owned)
    if clash:
        raise ConfigError(f"invalid config: {where} may not set {clash}: the study sets them itself")
    cls = rl_settings_class() if rl else sft_settings_class()
    try:
        typed = cls.model_validate(section)
        # the trainer's own cross-field checks, with placeholders for the study's fields
        full = _ppo() if rl else _sft()
        full.model_validate({**({} if rl else {"data": {"train": "x"}}), **set_values(typed)})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, where)) from None
    return typed


def set_values(section: StrictModel) -> dict[str, Any]:
    """What a typed section sets (the trainer's defaults apply to the rest)."""
    return section.model_dump(exclude_unset=True)


def check_sections(cfg: StudyConfig) -> StudyConfig:
    """Validate every trainer section of ``cfg`` (before hours of earlier stages have run)."""
    for where, section in sections(cfg).items():
        typed_section(where, section)
    return cfg


def sections(cfg: StudyConfig) -> dict[str, dict[str, Any]]:
    return {
        "corpus.sft": cfg.corpus.sft,
        "init.sft": cfg.init.sft,
        "stage2.sft": cfg.stage2.sft,
        "stage2.rl": cfg.stage2.rl,
    }


def _sft() -> type[SFTConfig]:
    from sftvsrl.training.sft import SFTConfig

    return SFTConfig


def _ppo() -> type[PPOConfig]:
    from sftvsrl.training.ppo import PPOConfig

    return PPOConfig


def sft_config(
    cfg: StudyConfig,
    section: str,
    *,
    model: str,
    train: Path,
    out_dir: Path,
    steps: int,
    save_every: int,
    eval_file: Path | None = None,
    eval_every: int | None = None,
    seed: int | None = None,
) -> SFTConfig:
    """The SFTConfig of one study SFT run: the study's fields plus the section's settings."""
    typed = typed_section(section, sections(cfg)[section])
    is_ckpt = (Path(model) / TRAINER_STATE).is_file()
    return _sft().model_validate(
        {
            "bf16": cfg.bf16,
            "threads": cfg.threads,
            **set_values(typed),
            "model": model,
            "dtype": cfg.dtype,
            "lora": None if is_ckpt or cfg.lora is None else cfg.lora.model_dump(),
            "data": {"train": str(train), "eval": str(eval_file) if eval_file else None},
            "out_dir": str(out_dir),
            "seed": cfg.seed if seed is None else seed,
            "max_steps": steps,
            "save_every": max(1, save_every),
            "keep_last": KEEP_ALL,
            "log_every": 1,
            "eval_every": eval_every,
        }
    )


def rl_config(
    cfg: StudyConfig, *, init: str, out_dir: Path, env_id: str, env_kwargs: dict[str, Any], updates: int
) -> PPOConfig:
    """The PPOConfig of one study RL run (stage 2 or an ablation)."""
    typed = typed_section("stage2.rl", cfg.stage2.rl)
    return _ppo().model_validate(
        {
            "dtype": "float32" if cfg.dtype == "float16" else cfg.dtype,
            "bf16": cfg.bf16,
            "threads": cfg.threads,
            "compile_rollouts": cfg.compile_rollouts,
            **set_values(typed),
            "init": init,
            "out_dir": str(out_dir),
            "env_id": env_id,
            "env_kwargs": env_kwargs,
            "seed": cfg.seed,
            "updates": updates,
            "save_every": max(1, updates // cfg.stage2.evals),
            "keep_checkpoints": KEEP_ALL,
        }
    )


def run_sft(sft: SFTConfig, on_checkpoint=None) -> Path:
    """Train (or resume) one SFT run; its last checkpoint."""
    from sftvsrl.training.sft import train_sft

    resume = RunDir(sft.out_dir).latest() is not None  # a fresh start truncates the old log
    return train_sft(sft, resume=resume, on_checkpoint=on_checkpoint)


def train_rl(rl: PPOConfig, resume: bool) -> None:
    """The one call of the RL trainer (PPO or GRPO, by ``stage2.rl.algorithm``)."""
    from sftvsrl.training.rl import train_rl as train

    train(rl, resume=resume)


def sft_tokens_per_step(sft: SFTConfig, tokens_per_row: float, world: int) -> float:
    """Tokens one optimizer step of ``sft`` trains on over ``world`` processes."""
    return tokens_per_row * sft.batch_size * sft.grad_accum * world
