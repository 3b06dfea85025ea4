"""The study's one table: success against training compute, per task, method and split.

``curves.csv`` has one row per (checkpoint, split) evaluation. Plots and the report are
made from it alone, so a user can re-plot or re-analyse without re-running anything.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

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
    recognition_acc: float | None = None  # -VL GeneralPoints only

    @property
    def column(self) -> str:
        return f"{self.task}-{self.variant}"


COLUMNS = [f.name for f in fields(CurvePoint)]


def write_curves(points: Iterable[CurvePoint], path: str | Path) -> Path:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        for point in points:
            row = asdict(point)
            if row["recognition_acc"] is None:
                row["recognition_acc"] = ""
            writer.writerow(row)
    tmp.replace(path)
    return path


def read_curves(path: str | Path) -> list[CurvePoint]:
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = set(COLUMNS) - set(reader.fieldnames or [])
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
                    )
                )
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{path}:{line}: bad row: {exc}") from None
    return points


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
