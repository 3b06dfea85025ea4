"""Measured effects: each method's change from the init, and RL's change minus SFT's, with intervals.

Every quantity is a proportion over the episodes (success) or the answers (a fine metric) of
one evaluation, so each is a count ``k`` out of ``n``:

- a method's *change from the init* on a split and metric is ``p_method - p_init``, with
  Newcombe's hybrid score interval (:func:`sftvsrl.evaluation.wilson.newcombe_interval`);
- *RL's change minus SFT's change* is ``(p_RL - p_init) - (p_SFT - p_init) = p_RL - p_SFT``:
  both methods start from the same init checkpoint and are evaluated on the same episodes,
  so the init term cancels exactly and the difference is that of two final proportions,
  again with Newcombe's interval. It adds no uncertainty of the init's own estimate.

Newcombe's interval treats the two proportions as independent samples. Here both are
measured on the same fixed episodes; when outcomes are positively correlated across models
(easy hands stay easy) the paired interval would be narrower, so this one is conservative.

Two ways of pairing the checkpoints being compared:

- *matched compute*: each method's last evaluation at or below the compute both reached
  (:func:`sftvsrl.study.curves.at_matched_compute`);
- *matched ID gain*: the final RL checkpoint, and the SFT checkpoint whose ``id_seen`` change
  from the init is closest to RL's (ties: the less trained one). Comparing OOD change at the
  same memorisation gain asks which method forgets less for the same ID progress.

Seeds pool by summing counts: successes and n over seeds, Wilson over the total, and the
RL-SFT difference pooled the same way with Newcombe.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from sftvsrl.evaluation.wilson import newcombe_interval, wilson_interval
from sftvsrl.study.curves import (
    METHODS,
    SPLIT_NAMES,
    CurvePoint,
    at_matched_compute,
    present_splits,
    series,
    start_point,
)

SUCCESS = "success"
DENSE = ("rule_following", "valid_action", "step_accuracy", "recognition_acc")
METRIC_NAMES = {
    SUCCESS: "success",
    "rule_following": "rule following",
    "valid_action": "valid action",
    "step_accuracy": "per-step accuracy",
    "recognition_acc": "recognition",
}


def counts(point: CurvePoint | None, metric: str = SUCCESS) -> tuple[int, int] | None:
    """``(k, n)`` behind a point's proportion; None when the point lacks the metric."""
    if point is None:
        return None
    if metric == SUCCESS:
        return round(point.success_rate * point.episodes), point.episodes
    m = point.metric(metric)
    if m is None or not m[3]:
        return None
    return round(m[0] * m[3]), int(m[3])


@dataclass(frozen=True)
class Diff:
    """``a - b`` of two proportions with Newcombe's 95% interval (fractions, not %)."""

    value: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def pts(self) -> str:
        if math.isnan(self.value):
            return "n/a"
        return f"{100 * self.value:+.1f} [{100 * self.low:+.1f}, {100 * self.high:+.1f}]"


def diff_of(a: tuple[int, int] | None, b: tuple[int, int] | None) -> Diff | None:
    if a is None or b is None:
        return None
    return Diff(*newcombe_interval(a[0], a[1], b[0], b[1]))


def pooled(parts: Iterable[tuple[int, int] | None]) -> tuple[int, int] | None:
    """Counts summed over seeds (None when any seed lacks them)."""
    parts = list(parts)
    if not parts or any(p is None for p in parts):
        return None
    return sum(p[0] for p in parts), sum(p[1] for p in parts)  # type: ignore[index]


def fmt_counts(c: tuple[int, int] | None) -> str:
    if c is None or c[1] == 0:
        return "n/a"
    lo, hi = wilson_interval(*c)
    return f"{100 * c[0] / c[1]:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def metrics_of(points: Iterable[CurvePoint]) -> tuple[str, ...]:
    points = list(points)
    return (SUCCESS, *(m for m in DENSE if any(counts(p, m) for p in points)))


def _at(points: list[CurvePoint], column: str, method: str, step: int, split: str) -> CurvePoint | None:
    return next(
        (p for p in points if (p.column, p.method, p.step, p.split) == (column, method, step, split)), None
    )


@dataclass(frozen=True)
class Pairing:
    """The checkpoints compared: init, SFT and RL (method, step) for one task column."""

    label: str
    sft_step: int
    rl_step: int
    note: str = ""


def matched_compute(points: list[CurvePoint], column: str) -> Pairing | None:
    split = "id_seen" if any(p.split == "id_seen" and p.column == column for p in points) else None
    split = split or next(iter(present_splits(p for p in points if p.column == column)), None)
    m = at_matched_compute(points, column, split) if split else None
    if m is None:
        return None
    return Pairing(
        "matched compute",
        m["SFT"].step,
        m["RL"].step,
        f"{m['SFT'].gflops:#.3g} / {m['RL'].gflops:#.3g} GFLOPs",
    )


def id_gain_line(points: list[CurvePoint], column: str, method: str) -> list[tuple[CurvePoint, float]]:
    """Each checkpoint of ``method`` (init first) with its ``id_seen`` success change from the init."""
    init = start_point(points, column, "id_seen")
    if init is None:
        return []
    return [(p, p.success_rate - init.success_rate) for p in series(points, column, method, "id_seen")]


def matched_id_gain(points: list[CurvePoint], column: str) -> Pairing | None:
    rl, sft = id_gain_line(points, column, "RL"), id_gain_line(points, column, "SFT")
    if not rl or not sft:
        return None
    final, gain = rl[-1]
    best, sft_gain = min(sft, key=lambda pg: (abs(pg[1] - gain), pg[0].gflops))
    return Pairing(
        "matched ID gain",
        best.step,
        final.step,
        f"id_seen change RL {100 * gain:+.1f} pts (final), SFT {100 * sft_gain:+.1f} pts (step {best.step})",
    )


@dataclass(frozen=True)
class Effect:
    column: str
    split: str
    metric: str
    init: tuple[int, int] | None
    sft: tuple[int, int] | None
    rl: tuple[int, int] | None

    @property
    def sft_change(self) -> Diff | None:
        return diff_of(self.sft, self.init)

    @property
    def rl_change(self) -> Diff | None:
        return diff_of(self.rl, self.init)

    @property
    def rl_minus_sft(self) -> Diff | None:
        """(RL change) - (SFT change) = p_RL - p_SFT: the init term cancels."""
        return diff_of(self.rl, self.sft)


def effects(points: list[CurvePoint], column: str, pairing: Pairing) -> list[Effect]:
    """Every (split, metric) effect of one task column under one pairing."""
    mine = [p for p in points if p.column == column]
    out = []
    for split in present_splits(mine):
        init = start_point(mine, column, split)
        sft = _at(mine, column, "SFT", pairing.sft_step, split)
        rl = _at(mine, column, "RL", pairing.rl_step, split)
        for metric in metrics_of(p for p in mine if p.split == split):
            out.append(
                Effect(column, split, metric, counts(init, metric), counts(sft, metric), counts(rl, metric))
            )
    return out


def _d(d: Diff | None) -> str:
    return "n/a" if d is None else d.pts()


def effects_table(points: list[CurvePoint], column: str, pairing: Pairing) -> list[str]:
    lines = [
        f"{column}, {pairing.label} ({pairing.note}); % and percentage points, 95% intervals "
        "(Wilson for a value, Newcombe for a change):",
        "",
        "| split | metric | init | SFT | SFT change | RL | RL change | RL − SFT |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in effects(points, column, pairing):
        mark = " *" if e.rl_minus_sft is not None and e.rl_minus_sft.excludes_zero else ""
        lines.append(
            f"| {e.split} | {METRIC_NAMES.get(e.metric, e.metric)} | {fmt_counts(e.init)} | {fmt_counts(e.sft)} | "
            f"{_d(e.sft_change)} | {fmt_counts(e.rl)} | {_d(e.rl_change)} | {_d(e.rl_minus_sft)}{mark} |"
        )
    return lines


def effects_section(points: list[CurvePoint], figures: dict[str, str] | None = None) -> str:
    """The report section: change tables at matched compute and at matched ID gain."""
    figures = figures or {}
    body = [
        "Each method's change from the init, and RL's change minus SFT's. Since both methods start "
        "from the same init and are evaluated on the same episodes, (RL change) − (SFT change) = "
        "p_RL − p_SFT exactly (the init cancels); its interval is Newcombe's hybrid score interval "
        "for a difference of two proportions (conservative here: the episodes are shared). `*`: the "
        "RL − SFT interval excludes 0.",
        "",
    ]
    for column in sorted({p.column for p in points}):
        for pairing in (matched_compute(points, column), matched_id_gain(points, column)):
            if pairing is not None:
                body += [*effects_table(points, column, pairing), ""]
        if column in figures:
            body += [
                f"OOD change against ID-seen change from the init, one marker per checkpoint: a method "
                f"whose points lie higher at the same x forgets less for the same gain.\n\n"
                f"![OOD vs ID gain]({figures[column]})",
                "",
            ]
    return "\n".join(body).rstrip()


# ----------------------------------------------------------------------------- findings


def _pct(c: tuple[int, int] | None) -> str:
    return "n/a" if c is None or not c[1] else f"{100 * c[0] / c[1]:.1f}%"


def task_findings(points: list[CurvePoint], column: str, tried: str = "") -> list[str]:
    """Plain statements, from the numbers, of what this run did and did not reproduce on one
    task: OOD change of each method with intervals, RL − SFT (Newcombe) and the init's dense
    diagnostics when nothing moved."""
    pairing = matched_compute(points, column)
    if pairing is None:
        return [f"{column}: not both methods were evaluated; nothing to compare."]
    by = {(e.split, e.metric): e for e in effects(points, column, pairing)}
    out = []
    for split in [s for s in ("ood", "visual_ood") if (s, SUCCESS) in by]:
        e = by[split, SUCCESS]
        sc, rc, d = e.sft_change, e.rl_change, e.rl_minus_sft
        if sc is None or rc is None or d is None:
            continue
        name = SPLIT_NAMES.get(split, split)
        text = (
            f"**{column}, {name}** (matched compute, {pairing.note}): from {_pct(e.init)} at the init, SFT "
            f"changed {sc.pts()} pts and RL {rc.pts()} pts; RL − SFT = {d.pts()} pts (Newcombe 95%). "
        )
        if d.excludes_zero and d.value > 0 and sc.value <= 0 <= rc.value:
            text += "The paper's claim (SFT loses OOD success, RL gains it) is reproduced here: "
            text += "RL − SFT's interval lies above 0."
        elif d.excludes_zero and d.value > 0:
            text += "RL ends above SFT with an interval that excludes 0 (the paper's direction), "
            text += "but not with the paper's signs of both changes."
        elif d.excludes_zero:
            text += "SFT ends above RL with an interval that excludes 0: the paper's claim is not reproduced."
        else:
            text += "The interval includes 0: this run does not resolve the paper's claim on this split."
        if not sc.excludes_zero and not rc.excludes_zero:
            diag = []
            for metric in DENSE:
                m = by.get((split, metric))
                if m is not None:
                    diag.append(f"{METRIC_NAMES[metric]} at the init {_pct(m.init)}")
            init_pt = start_point([p for p in points if p.column == column], column, split)
            if init_pt is not None and init_pt.outcome_shares:
                top = sorted(init_pt.outcome_shares, key=lambda kv: -kv[1])[:3]
                diag.append("init answers: " + ", ".join(f"{o} {100 * v:.0f}%" for o, v in top))
            text += f" Neither method moved {name} success (both change intervals include 0)"
            text += f"; tried: {tried}" if tried else ""
            text += f". Diagnostics: {'; '.join(diag)}." if diag else "."
        out.append(text)
    gain = matched_id_gain(points, column)
    if gain is not None:
        g = {(e.split, e.metric): e for e in effects(points, column, gain)}.get(("ood", SUCCESS))
        if g is not None and g.rl_minus_sft is not None:
            out.append(
                f"{column}, rule-OOD at matched ID gain ({gain.note}): RL − SFT = {g.rl_minus_sft.pts()} pts"
                + (" (excludes 0)." if g.rl_minus_sft.excludes_zero else " (includes 0).")
            )
    return out


# ----------------------------------------------------------------------------- seeds


def seeds_table(by_seed: dict[int, list[CurvePoint]], metric: str = SUCCESS) -> list[str]:
    """Per task and split: each seed's init / SFT / RL ``metric`` at matched compute and
    RL − SFT, then the pooled row (counts summed over seeds)."""
    lines = [
        "| task | split | seed | init | SFT | RL | RL − SFT (Newcombe) |",
        "|---|---|---|---|---|---|---|",
    ]
    columns = sorted({p.column for pts in by_seed.values() for p in pts})
    for column in columns:
        splits = present_splits(p for pts in by_seed.values() for p in pts if p.column == column)
        for split in splits:
            rows: dict[str, list[tuple[int, int] | None]] = {"init": [], "SFT": [], "RL": []}
            block: list[str] = []
            for seed, pts in sorted(by_seed.items()):
                m = at_matched_compute(pts, column, split)
                init = counts(start_point(pts, column, split), metric)
                sft, rl = (counts(m["SFT"], metric), counts(m["RL"], metric)) if m else (None, None)
                for k, v in (("init", init), ("SFT", sft), ("RL", rl)):
                    rows[k].append(v)
                block.append(
                    f"| {column} | {split} | {seed} | {fmt_counts(init)} | {fmt_counts(sft)} | "
                    f"{fmt_counts(rl)} | {_d(diff_of(rl, sft))} |"
                )
            if all(c is None for cs in rows.values() for c in cs):
                continue  # a metric this task does not have (valid action on GeneralPoints)
            lines += block
            pi, ps, pr = (pooled(rows[k]) for k in ("init", *METHODS))
            lines.append(
                f"| {column} | {split} | **pooled** | {fmt_counts(pi)} | {fmt_counts(ps)} | {fmt_counts(pr)} | "
                f"{_d(diff_of(pr, ps))} |"
            )
    return lines


def build_seeds_report(by_seed: dict[int, list[CurvePoint]], meta: dict[str, str]) -> str:
    lines = [
        "# SFT vs RL: study report over seeds",
        "",
        f"Preset `{meta.get('preset', '?')}`; seeds {sorted(by_seed)}; each seed's full report is in "
        "`seed-<s>/report.md`"
        + (f"; stage 0 shared from `{meta['shared']}`" if meta.get("shared") else "")
        + ".",
        "",
        "Success in % with 95% Wilson intervals at matched compute, per seed; RL − SFT in points "
        "with Newcombe's interval (= RL's change minus SFT's change, the init cancels). Pooled: "
        "successes and episodes summed over seeds, Wilson over the total, Newcombe for the pooled "
        "difference (seed-to-seed variation of training is not in these intervals; compare the rows).",
        "",
        *seeds_table(by_seed),
        "",
    ]
    everything = [p for pts in by_seed.values() for p in pts]
    for metric in metrics_of(everything)[1:]:  # the fine metrics, in % of the answers they count
        lines += [f"### {METRIC_NAMES[metric]} (% of answers)", "", *seeds_table(by_seed, metric), ""]
    if meta.get("command"):
        lines += ["## Run", "", f"- command: `{meta['command']}`", ""]
    return "\n".join(lines)
