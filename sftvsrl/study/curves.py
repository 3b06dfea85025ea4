"""The study's one table: success against training compute, per task, method and split.

``curves.csv`` has one row per (checkpoint, split) evaluation. Plots and the report are
made from it alone, so a user can re-plot or re-analyse without re-running anything.

Columns: the original eleven first, in their original order (``task`` ... ``episodes``,
``recognition_acc``), then for each fine metric ``<m>``, ``<m>_ci_low``, ``<m>_ci_high``,
``<m>_n`` (the 95% Wilson interval and the number of answers it is over; empty where the
task has no such metric), ``answers``, ``kl_to_base``, ``kl_to_init`` (empty when not
computed), and last one ``share_<outcome>`` column per answer outcome seen in the file.
Older files with only the first eleven columns are still read.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from sftvsrl.evaluation.summary import FINE_METRICS
from sftvsrl.evaluation.wilson import wilson_interval

METHODS = ("SFT", "RL")
# Display order; ``id_seen`` is the training pool (memorisation), ``id`` held-out ID items.
SPLITS = ("id_seen", "id", "ood", "visual_ood")
SPLIT_NAMES = {
    "id_seen": "ID, seen items",
    "id": "in-distribution",
    "ood": "rule-OOD",
    "visual_ood": "visual-OOD",
}


def present_splits(points: Iterable[CurvePoint]) -> tuple[str, ...]:
    """The splits that occur in ``points``, in display order (unknown ones last)."""
    found = {p.split for p in points}
    return tuple(s for s in SPLITS if s in found) + tuple(sorted(found - set(SPLITS)))


@dataclass(frozen=True)
class CurvePoint:
    task: str  # "GeneralPoints" | "VIRL"
    variant: str  # "L" | "VL"
    method: str  # "SFT" | "RL"; the shared start point is written once per method
    step: int
    gflops: float
    split: str  # "id_seen" | "id" | "ood" | "visual_ood"
    success_rate: float
    ci_low: float
    ci_high: float
    episodes: int
    recognition_acc: float | None = None  # the task's ``curve_metric`` (GeneralPoints-VL cards)
    # Fine metrics (None where the task has none): share, 95% Wilson interval, answers (n).
    recognition_acc_ci_low: float | None = None
    recognition_acc_ci_high: float | None = None
    recognition_acc_n: int | None = None
    rule_following: float | None = None  # GeneralPoints
    rule_following_ci_low: float | None = None
    rule_following_ci_high: float | None = None
    rule_following_n: int | None = None
    valid_action: float | None = None  # V-IRL
    valid_action_ci_low: float | None = None
    valid_action_ci_high: float | None = None
    valid_action_n: int | None = None
    step_accuracy: float | None = None  # V-IRL
    step_accuracy_ci_low: float | None = None
    step_accuracy_ci_high: float | None = None
    step_accuracy_n: int | None = None
    answers: int | None = None  # every answer of the evaluation: the n of the outcome shares
    kl_to_base: float | None = None  # mean per-token KL(base || checkpoint), nats
    kl_to_init: float | None = None  # mean per-token KL(init || checkpoint), nats
    outcome_shares: tuple[tuple[str, float], ...] = ()  # (outcome, share of answers), sorted

    def __post_init__(self) -> None:
        shares = self.outcome_shares
        items = shares.items() if isinstance(shares, Mapping) else shares  # JSON gives lists
        object.__setattr__(self, "outcome_shares", tuple(sorted((str(o), float(v)) for o, v in items)))

    @property
    def column(self) -> str:
        return f"{self.task}-{self.variant}"

    @classmethod
    def from_summary(
        cls,
        task: Any,
        method: str,
        step: int,
        gflops: float,
        split: str,
        summary: Mapping[str, Any],
        *,
        kl_to_base: float | None = None,
        kl_to_init: float | None = None,
    ) -> CurvePoint:
        """The point of one evaluation summary (``evaluate(...)[1]``): success, every fine
        metric the summary holds, outcome shares and, unless given here, the summary's own
        ``kl_to_base`` / ``kl_to_init``. ``task`` is the registry's Task (family, variant,
        curve_metric)."""
        lo, hi = summary["ci95"]
        metrics: dict[str, Any] = {}
        for field_name, key in _summary_keys(task).items():
            if summary.get(key) is None:
                continue
            ci_key, n_key = FINE_METRICS.get(key, (f"{key}_ci95", f"{key}_n"))
            m_lo, m_hi = summary.get(ci_key) or (None, None)
            metrics.update(
                {
                    field_name: float(summary[key]),
                    f"{field_name}_ci_low": m_lo,
                    f"{field_name}_ci_high": m_hi,
                    f"{field_name}_n": summary.get(n_key),
                }
            )
        return cls(
            task=task.family,
            variant=task.variant,
            method=method,
            step=step,
            gflops=gflops,
            split=split,
            success_rate=float(summary["success_rate"]),
            ci_low=float(lo),
            ci_high=float(hi),
            episodes=int(summary["episodes"]),
            answers=summary.get("answers"),
            kl_to_base=kl_to_base if kl_to_base is not None else summary.get("kl_to_base"),
            kl_to_init=kl_to_init if kl_to_init is not None else summary.get("kl_to_init"),
            outcome_shares=summary.get("outcome_shares") or {},
            **metrics,
        )

    def metric(self, name: str) -> tuple[float, float | None, float | None, int | None] | None:
        """``(value, ci_low, ci_high, n)`` of a fine metric, ``share:<outcome>`` (interval
        recomputed from the share and ``answers``) or ``kl_to_base``/``kl_to_init`` (no
        interval); None when this point has no value for it."""
        if name.startswith("share:"):
            share = dict(self.outcome_shares).get(name[len("share:") :])
            if share is None or not self.answers:
                return None
            lo, hi = wilson_interval(round(share * self.answers), self.answers)
            return share, lo, hi, self.answers
        if name in ("kl_to_base", "kl_to_init"):
            value = getattr(self, name)
            return None if value is None else (value, None, None, None)
        value = getattr(self, name)
        if value is None:
            return None
        return (
            value,
            getattr(self, f"{name}_ci_low"),
            getattr(self, f"{name}_ci_high"),
            getattr(self, f"{name}_n"),
        )


# curves.csv column of each fine metric -> its summary key (recognition: the task's curve_metric).
FINE_COLUMNS = {
    "rule_following": "rule_following",
    "valid_action": "valid_action",
    "step_accuracy": "step_accuracy",
}
METRICS = ("recognition_acc", *FINE_COLUMNS)  # display order of the fine metrics
BASE_COLUMNS = [
    "task", "variant", "method", "step", "gflops", "split",
    "success_rate", "ci_low", "ci_high", "episodes", "recognition_acc",
]  # fmt: skip
COLUMNS = [f.name for f in fields(CurvePoint) if f.name != "outcome_shares"]
SHARE_PREFIX = "share_"
_INTS = {f.name for f in fields(CurvePoint) if f.name.endswith("_n")} | {"answers"}


def _summary_keys(task: Any) -> dict[str, str]:
    keys = dict(FINE_COLUMNS)
    curve_metric = getattr(task, "curve_metric", None)
    return {"recognition_acc": curve_metric, **keys} if curve_metric else keys


def present_metrics(points: Iterable[CurvePoint]) -> tuple[str, ...]:
    """The fine metrics (then KL) with a value in some point, in display order."""
    points = list(points)
    names = (*METRICS, "kl_to_base", "kl_to_init")
    return tuple(m for m in names if any(p.metric(m) is not None for p in points))


def write_curves(points: Iterable[CurvePoint], path: str | Path) -> Path:
    """Write ``curves.csv`` (atomically); None is written as an empty cell."""
    points = list(points)
    path = Path(path)
    outcomes = sorted({o for p in points for o, _ in p.outcome_shares})
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS + [SHARE_PREFIX + o for o in outcomes])
        writer.writeheader()
        for point in points:
            row = asdict(point)
            shares = dict(row.pop("outcome_shares"))
            row.update({SHARE_PREFIX + o: shares.get(o) for o in outcomes})
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    tmp.replace(path)
    return path


def read_curves(path: str | Path) -> list[CurvePoint]:
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = set(BASE_COLUMNS) - set(header)
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        points = []
        for line, row in enumerate(reader, start=2):
            try:
                points.append(
                    CurvePoint(
                        task=row["task"],
                        variant=row["variant"],
                        method=row["method"],
                        step=int(row["step"]),
                        gflops=float(row["gflops"]),
                        split=row["split"],
                        success_rate=float(row["success_rate"]),
                        ci_low=float(row["ci_low"]),
                        ci_high=float(row["ci_high"]),
                        episodes=int(row["episodes"]),
                        recognition_acc=float(row["recognition_acc"]) if row["recognition_acc"] else None,
                        **{c: _cell(row, c) for c in COLUMNS[len(BASE_COLUMNS) :]},
                        outcome_shares={
                            c[len(SHARE_PREFIX) :]: float(row[c])
                            for c in header
                            if c.startswith(SHARE_PREFIX) and row.get(c)
                        },
                    )
                )
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{path}:{line}: bad row: {exc}") from None
    return points


def _cell(row: dict[str, str], column: str) -> float | int | None:
    """A new column's value: None when the file lacks the column or the cell is empty."""
    text = row.get(column) or ""
    if not text:
        return None
    return int(text) if column in _INTS else float(text)


def series(points: Iterable[CurvePoint], column: str, method: str, split: str) -> list[CurvePoint]:
    """Points of one line in the figure, ordered by compute."""
    chosen = [p for p in points if p.column == column and p.method == method and p.split == split]
    return sorted(chosen, key=lambda p: (p.gflops, p.step))


def at_matched_compute(points: list[CurvePoint], column: str, split: str) -> dict[str, CurvePoint] | None:
    """For each method, the last evaluation at or below the compute both methods reached.

    Comparing final checkpoints would favour whichever method was given more FLOPs; the
    paper compares methods at matched compute, so we cap both at the smaller maximum.
    """
    lines = {m: series(points, column, m, split) for m in METHODS}
    if any(not line for line in lines.values()):
        return None
    budget = min(line[-1].gflops for line in lines.values())
    chosen = {}
    for method, line in lines.items():
        eligible = [p for p in line if p.gflops <= budget * (1 + 1e-9)]
        chosen[method] = eligible[-1] if eligible else line[0]
    return chosen


def start_point(points: list[CurvePoint], column: str, split: str) -> CurvePoint | None:
    """The shared initial checkpoint: the lowest-compute point of either method."""
    candidates = [p for p in points if p.column == column and p.split == split]
    return min(candidates, key=lambda p: (p.gflops, p.step)) if candidates else None


def fmt_pct(point: CurvePoint | None) -> str:
    if point is None or math.isnan(point.success_rate):
        return "n/a"
    return f"{100 * point.success_rate:.1f} [{100 * point.ci_low:.1f}, {100 * point.ci_high:.1f}]"
