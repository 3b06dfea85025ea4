"""Typed stage results: what each stage leaves in ``stages/<name>.json``.

Every result is a dataclass with ``to_dict``/``from_dict``; the stage runner adds its own keys
(``stage_seconds``, ``attempts_seconds_before``, ``fingerprint``) next to them in the file,
which ``from_dict`` ignores.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

R = TypeVar("R", bound="StageResult")


@dataclass
class StageResult:
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls: type[R], data: dict[str, Any]) -> R:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass
class PretrainResult(StageResult):
    base: str
    checkpoint: str
    gflops: float
    rows: int
    probe_accuracy: dict[str, float] = field(default_factory=dict)


@dataclass
class DataResult(StageResult):
    init: str
    more: str
    val: str


@dataclass
class Validation:
    step: int
    checkpoint: str
    val_success: float
    gflops: float
    val_loss: float | None = None


@dataclass
class InitResult(StageResult):
    checkpoint: str
    step: int
    gflops: float
    history: list[Validation]
    stopped_early: bool
    select: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InitResult:
        out = super().from_dict(data)
        out.history = [h if isinstance(h, Validation) else Validation(**h) for h in out.history]
        return out


@dataclass
class RLResult(StageResult):
    run_dir: str
    final: str
    gflops: float


@dataclass
class SFTResult(StageResult):
    run_dir: str
    final: str
    steps: int
    budget_gflops: float
    gflops: float


@dataclass
class CurvesResult(StageResult):
    points: list[dict[str, Any]]  # CurvePoint fields
    kl_seconds: float = 0.0  # the KL to base / init of every point (cached ones included)


@dataclass
class Stage1CurvesResult(StageResult):
    """Every stage-1 checkpoint on every split (``init.curve_episodes`` episodes each)."""

    points: list[dict[str, Any]]  # CurvePoint fields, method "stage1", step = stage-1 step
    chosen_step: int
    episodes: int
    kl_seconds: float = 0.0


# {split: {model: {turns: [rate, ci_low, ci_high]}}}, nested so that no runner key looks like a split
TurnsTable = dict[str, dict[str, dict[str, list[float]]]]


@dataclass
class TurnsResult(StageResult):
    by_split: TurnsTable = field(default_factory=dict)


@dataclass
class RLFromResult(StageResult):
    start: str
    final: str
    gflops: float
    results: dict[str, list[float]]  # "start.id", "after_rl.ood", ...: [rate, ci_low, ci_high]
