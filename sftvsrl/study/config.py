"""The study's validated config (``configs/study/*.yaml``).

The study controls what makes the comparison fair (one init checkpoint, matched compute,
fixed eval sets); everything else about a trainer is set in the ``sft``/``rl`` sections,
typed partial trainer configs (:mod:`sftvsrl.study.trainers`) checked at load time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from sftvsrl.config import StrictModel, load_config
from sftvsrl.envs.tasks import Task, get_task, tasks
from sftvsrl.models.loading import LoraSettings

# The study's task table is the task registry: a task variant's env id, training kwargs and
# eval splits (``id_seen``, then the held-out ones) are declared once, in sftvsrl.envs.tasks.
TaskSpec = Task


class _Tasks(Mapping[str, Task]):
    """Read-only view of the registry by name (a task registered later shows up too)."""

    def __getitem__(self, name: str) -> Task:
        return tasks()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(tasks())

    def __len__(self) -> int:
        return len(tasks())


TASKS: Mapping[str, Task] = _Tasks()


class CorpusStage(StrictModel):
    """Stage 0: pretrain a from-scratch tiny model on the generated corpus."""

    enabled: bool = Field(True, description="only used when the model is built from scratch (tiny-lm)")
    rows: int = Field(20000, gt=0)
    mix: dict[str, float] | None = Field(None, description="weights of arith / cards / dirs")
    steps: int = Field(300, gt=0)
    seed: int | None = Field(
        None,
        ge=0,
        description="corpus and pretraining seed (None: the study's seed); fixed, stage 0 is shared by seeds",
    )
    probe_rows: int = Field(256, ge=0, description="fresh corpus rows to check the base model on (0: skip)")
    sft: dict[str, Any] = Field(default_factory=dict, description="SFTConfig settings (lr, batch_size, ...)")


class InitStage(StrictModel):
    """Stage 1: SFT on D_init, the checkpoint picked by early stopping on ID validation."""

    rows: int = Field(4000, gt=0, description="expert rows in D_init")
    multi_turn_fraction: float = Field(0.2, ge=0, le=1, description="share of revision rows")
    steps: int = Field(200, gt=0, description="most optimizer steps")
    eval_every: int = Field(50, gt=0, description="steps between validation checkpoints")
    select: Literal["val_success", "val_loss", "last"] = "val_success"
    val_episodes: int = Field(64, gt=0)
    val_rows: int = Field(256, gt=0, description="held-out expert rows for the validation loss")
    patience: int | None = Field(3, gt=0, description="stop after this many validations without gain")
    curve_episodes: int = Field(
        0, ge=0, description="episodes per split to evaluate every stage-1 checkpoint on (0: off)"
    )
    sft: dict[str, Any] = Field(default_factory=dict)


class ContinueStage(StrictModel):
    """Stage 2: from the one init checkpoint, SFT and RL to matched compute."""

    sft_rows: int = Field(8000, gt=0, description="fresh expert rows for continued SFT")
    rl_updates: int = Field(20, gt=0, description="PPO updates; RL's compute sets the budget")
    budget_gflops: float | None = Field(
        None, gt=0, description="stage-2 GFLOPs for SFT; default: what RL used (matched compute)"
    )
    evals: int = Field(4, gt=0, description="evaluated checkpoints along each method (besides init)")
    sft: dict[str, Any] = Field(default_factory=dict)
    rl: dict[str, Any] = Field(default_factory=dict, description="PPOConfig settings")


class EvalSettings(StrictModel):
    """The fixed evaluation sets: episode ``i`` of a split is reset with seed ``seed + i``."""

    episodes: int = Field(128, gt=0)
    max_turns: int = Field(1, gt=0, description="verification turns per episode at evaluation")
    num_envs: int = Field(64, gt=0)
    max_new_tokens: int = Field(96, gt=0)
    seed: int = Field(1_000_000, ge=0, description="first episode seed (validation uses seed + 500000)")
    kl_prompts: int = Field(
        16,
        ge=0,
        description="prompts per split for the KL of each checkpoint to the base and init models (0: off)",
    )


class Ablations(StrictModel):
    turns: list[int] = Field(default_factory=list, description="verification turns to sweep, e.g. [1,3,5,10]")
    turns_splits: list[str] = Field(
        default_factory=lambda: ["ood"], min_length=1, description="eval splits the turns sweep runs on"
    )
    rl_from_base: bool = False
    rl_from_overfit: bool = False
    overfit_steps: int = Field(400, gt=0, description="extra SFT steps on D_init for the over-fitted start")

    @model_validator(mode="after")
    def _check(self) -> Ablations:
        if any(t < 1 for t in self.turns):
            raise ValueError("ablations.turns must be positive integers")
        return self


class StudyConfig(StrictModel):
    preset: str = "custom"
    model: str = Field(
        "tiny-lm", description="text tasks: tiny-lm, smollm2-135m-instruct or a local HF folder"
    )
    vision_model: str | None = Field(
        None, description="-VL tasks (default: tiny-vlm when model is tiny-lm, else model)"
    )
    tasks: list[str] = Field(
        default_factory=lambda: ["GeneralPoints-L"], min_length=1, description="names in the task registry"
    )
    prompt_style: Literal["compact", "full"] = "compact"
    seed: int = 0
    seeds: list[int] | None = Field(
        None, min_length=1, description="run the study once per seed in DIR/seed-<s>/ (None: just seed)"
    )
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    bf16: bool | Literal["auto"] = Field(
        "auto",
        description="bf16 autocast in every trainer; auto: measured once per CPU (fp32 where bf16 is slower)",
    )
    lora: LoraSettings | None = None
    threads: int | None = Field(None, gt=0, description="torch CPU threads (None: torch's default)")
    compile_rollouts: bool = Field(
        False,
        description="torch.compile the decode step of RL rollouts and evaluations (a one-off compile per process)",
    )
    dist_timeout_min: float = Field(
        360.0,
        gt=0,
        description="multi-process launch: how long the other processes wait while the main one evaluates",
    )
    corpus: CorpusStage = Field(default_factory=CorpusStage)
    init: InitStage = Field(default_factory=InitStage)
    stage2: ContinueStage = Field(default_factory=ContinueStage)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    ablations: Ablations = Field(default_factory=Ablations)
    task_overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="per task, settings of init / stage2 / eval for its stages only, "
        "e.g. {VIRL-L: {init: {steps: 300}}} (tasks whose rows differ in length need different budgets)",
    )

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, names: list[str]) -> list[str]:
        for name in names:
            get_task(name)  # ConfigError (a ValueError) naming the known tasks
        return names

    @model_validator(mode="after")
    def _check_turns_splits(self) -> StudyConfig:
        for task in self.tasks:
            missing = sorted(set(self.ablations.turns_splits) - set(TASKS[task].splits))
            if missing:
                raise ValueError(
                    f"ablations.turns_splits: {task} has no split {missing}; it has {list(TASKS[task].splits)}"
                )
        return self

    @model_validator(mode="after")
    def _check_task_overrides(self) -> StudyConfig:
        for task, settings in self.task_overrides.items():
            if task not in self.tasks:
                raise ValueError(f"task_overrides.{task}: not in tasks {self.tasks}")
            bad = sorted(set(settings) - set(TASK_SECTIONS))
            if bad:
                raise ValueError(
                    f"task_overrides.{task}: {bad} cannot differ by task (only {list(TASK_SECTIONS)} can)"
                )
        return self

    def for_task(self, task: str) -> StudyConfig:
        """This config with ``task_overrides[task]`` merged in: what ``task``'s stages run with."""
        settings = self.task_overrides.get(task)
        if not settings:
            return self
        merged = _deep_merge(self.model_dump(exclude={"task_overrides"}), settings)
        try:
            return StudyConfig.model_validate(merged)
        except ValueError as exc:
            raise ValueError(f"task_overrides.{task}: {exc}") from None

    def model_for(self, spec: TaskSpec) -> str:
        if not spec.vision:
            return self.model
        if self.vision_model:
            return self.vision_model
        return "tiny-vlm" if self.model == "tiny-lm" else self.model

    @model_validator(mode="after")
    def _check_seeds(self) -> StudyConfig:
        if self.seeds is not None and (len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0):
            raise ValueError(f"seeds must be distinct non-negative integers, got {self.seeds}")
        return self

    @property
    def corpus_seed(self) -> int:
        """The seed of stage 0 (corpus rows and pretraining)."""
        return self.seed if self.corpus.seed is None else self.corpus.seed

    @property
    def pretrain(self) -> bool:
        """Stage 0 runs only for a text model built from scratch."""
        return (
            self.corpus.enabled and self.model == "tiny-lm" and any(not TASKS[t].vision for t in self.tasks)
        )


TASK_SECTIONS = ("init", "stage2", "eval")


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def check_trainer_overrides(cfg: StudyConfig) -> StudyConfig:
    """Validate the ``sft``/``rl`` sections as the trainers' typed partial configs
    (:mod:`sftvsrl.study.trainers`), for every task's merged config too, so a typo fails before
    hours of earlier stages have run."""
    from sftvsrl.study.trainers import check_sections

    for task in cfg.task_overrides:
        check_sections(cfg.for_task(task))
    return check_sections(cfg)


def load_study_config(path: str | Path | None, overrides: list[str] | None = None) -> StudyConfig:
    """A validated study config: the file, the ``key=value`` overrides, and the trainer sections."""
    return check_trainer_overrides(load_config(StudyConfig, path, overrides))


def task_spec(name: str) -> TaskSpec:
    """The registered task ``name`` (ConfigError listing the known ones)."""
    return get_task(name)
