"""Figures laid out like the paper's: success rate against GFLOPs, ID row over OOD row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sftvsrl.study.curves import METHODS, CurvePoint, present_metrics, present_splits, series  # noqa: E402

METHOD_STYLE = {"SFT": {"color": "#d62728", "marker": "o"}, "RL": {"color": "#1f77b4", "marker": "s"}}
SPLIT_TITLE = {
    "id_seen": "In-distribution,\nseen (training) items",
    "id": "In-distribution,\nheld-out items",
    "ood": "Out-of-distribution (rule)",
    "visual_ood": "Out-of-distribution (visual)",
}


def _save(fig: Any, path: str | Path, *, caption: str | None = None, rect: tuple | None = None) -> Path:
    """Lay out, write (120 dpi) and close a figure; ``caption`` is a small left-aligned line
    above the panels (what the bands are, over how many answers)."""
    if caption is not None:
        fig.suptitle(caption, fontsize=9, x=0.02, ha="left")
        rect = rect or (0, 0, 1, 0.96)
    if rect:
        fig.tight_layout(rect=rect)
    else:
        fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_success_vs_gflops(
    points: list[CurvePoint], path: str | Path, splits: tuple[str, ...] = ("id", "ood")
) -> Path:
    """One column per task variant, one row per split; SFT and RL lines with CI bands."""
    columns = sorted({p.column for p in points})
    if not columns:
        raise ValueError("no curve points to plot")
    fig, axes = plt.subplots(
        len(splits), len(columns), figsize=(3.6 * len(columns) + 0.8, 3.0 * len(splits) + 0.4), squeeze=False
    )
    ns: list[int] = []
    for col, column in enumerate(columns):
        for row, split in enumerate(splits):
            ax = axes[row][col]
            for method in METHODS:
                line = series(points, column, method, split)
                if not line:
                    continue
                x = [p.gflops for p in line]
                ax.plot(x, [100 * p.success_rate for p in line], label=method, **LINE_STYLE[method])
                ax.fill_between(
                    x,
                    [100 * p.ci_low for p in line],
                    [100 * p.ci_high for p in line],
                    color=LINE_STYLE[method]["color"],
                    alpha=0.15,
                    linewidth=0,
                )
                ns += [p.episodes for p in line]
            if row == 0:
                ax.set_title(column)
            if col == 0:
                ax.set_ylabel(f"{SPLIT_TITLE.get(split, split)}\nsuccess rate (%)")
            if row == len(splits) - 1:
                ax.set_xlabel("training GFLOPs")
            ax.grid(alpha=0.3)
            ax.set_ylim(*_success_ylim(points, split))
    if axes[0][0].get_legend_handles_labels()[0]:
        axes[0][0].legend(loc="best", frameon=False)
    fig.suptitle(f"Bands: 95% Wilson intervals over N = {_span(ns)} episodes per point", fontsize=9)
    return _save(fig, path, rect=(0, 0, 1, 0.97))


def _span(ns: list[int]) -> str:
    return f"{min(ns)}-{max(ns)}" if ns and min(ns) != max(ns) else (str(ns[0]) if ns else "?")


# Fine-metric figures: SFT and RL differ in colour, line style and marker (hollow large
# circles over small filled squares), so where the two lines coincide both stay visible.
LINE_STYLE = {
    "SFT": {"color": "#d62728", "marker": "o", "linestyle": "-", "markersize": 8, "markerfacecolor": "none"},
    "RL": {"color": "#1f77b4", "marker": "s", "linestyle": "--", "markersize": 4},
}
METRIC_LABEL = {
    "recognition_acc": "recognition\naccuracy (%)",
    "rule_following": "rule following (%)",
    "valid_action": "valid action (%)",
    "step_accuracy": "per-step\naccuracy (%)",
    "kl_to_base": "KL(base || ckpt)\n(nats/token)",
    "kl_to_init": "KL(init || ckpt)\n(nats/token)",
}
_KL = ("kl_to_base", "kl_to_init")


def plot_metrics_vs_gflops(
    points: list[CurvePoint],
    path: str | Path,
    metrics: tuple[str, ...] | list[str] | None = None,
    splits: tuple[str, ...] | list[str] | None = None,
) -> Path:
    """One figure row per metric, one column per (task variant, split): SFT and RL against
    training GFLOPs with 95% Wilson bands. ``metrics``: names from ``present_metrics``
    (default: all present) or ``share:<outcome>``; ``splits`` default to all present."""
    metrics = tuple(metrics) if metrics else present_metrics(points)
    splits = tuple(splits) if splits else present_splits(points)
    panels = [
        (column, split)
        for column in sorted({p.column for p in points})
        for split in splits
        if any(p.column == column and p.split == split for p in points)
    ]
    if not panels or not metrics:
        raise ValueError("no curve points or metrics to plot")
    fig, axes = plt.subplots(
        len(metrics), len(panels), figsize=(3.4 * len(panels) + 1.0, 2.6 * len(metrics) + 0.9), squeeze=False
    )
    ns: list[int] = []
    for row, name in enumerate(metrics):
        scale = 1.0 if name in _KL else 100.0
        tops = []
        for col, (column, split) in enumerate(panels):
            ax = axes[row][col]
            for method in METHODS:
                line = [(p.gflops, m) for p in series(points, column, method, split) if (m := p.metric(name))]
                if not line:
                    continue
                x = [g for g, _ in line]
                ax.plot(x, [scale * m[0] for _, m in line], label=method, **LINE_STYLE[method])
                banded = [(g, m) for g, m in line if m[1] is not None and m[2] is not None]
                if banded:
                    ax.fill_between(
                        [g for g, _ in banded],
                        [scale * m[1] for _, m in banded],
                        [scale * m[2] for _, m in banded],
                        color=LINE_STYLE[method]["color"],
                        alpha=0.12,
                        linewidth=0,
                    )
                ns += [m[3] for _, m in line if m[3]]
                tops += [scale * (m[2] if m[2] is not None else m[0]) for _, m in line]
            if not ax.lines:
                ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes, color="0.5")
            if row == 0:
                ax.set_title(f"{column}\n{SPLIT_TITLE.get(split, split)}", fontsize=9)
            if col == 0:
                label = METRIC_LABEL.get(name, f"{name.removeprefix('share:')} answers (%)")
                ax.set_ylabel(label)
            if row == len(metrics) - 1:
                ax.set_xlabel("training GFLOPs")
            ax.grid(alpha=0.3)
        top = max(tops, default=0.0)
        for col in range(len(panels)):
            if name in _KL:
                axes[row][col].set_ylim(0.0, max(1.15 * top, 1e-3))
            else:
                axes[row][col].set_ylim(*((-2.0, 102.0) if top > 40 else (-0.5, max(10.0, 1.15 * top))))
    handles, labels = axes[0][0].get_legend_handles_labels()
    if not handles:
        handles, labels = next((ax.get_legend_handles_labels() for ax in axes.flat if ax.lines), ([], []))
    if handles:
        fig.legend(handles, labels, loc="upper right", frameon=False, ncol=2)
    return _save(
        fig,
        path,
        caption=f"Bands: 95% Wilson intervals over the N answers of each point (N = {_span(ns)}); KL rows: no band",
    )


def _success_ylim(points: list[CurvePoint], split: str) -> tuple[float, float]:
    """A row's y range in %: 0-100 when rates are large, zoomed in when they stay small, so
    a change from 1% to 5% is visible; every column of a row shares it."""
    highs = [100 * p.ci_high for p in points if p.split == split]
    top = max(highs, default=100.0)
    if top > 40:
        return -2.0, 102.0
    return -0.5, max(10.0, 1.15 * top)


def _save_single_axis(fig, ax, xlabel: str, ylabel: str, path: str | Path) -> Path:
    """Label, grid and legend a one-axis figure, then write it and free its memory."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return _save(fig, path)


def plot_success_vs_turns(
    results: dict[str, dict[int, tuple[float, float, float]]], path: str | Path, title: str | None = None
) -> Path:
    """Success (with CI) against the number of verification turns allowed at evaluation.

    ``results[label][turns] = (rate, ci_low, ci_high)``.
    """
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    order = sorted(results, key=lambda label: (label not in ("init", *METHODS), label != "init", label))
    for label in order:  # init first, then SFT and RL in the colours of the main figure
        by_turns = results[label]
        turns = sorted(by_turns)
        style = METHOD_STYLE.get(
            label, {"color": "0.45", "marker": "^"} if label == "init" else {"marker": "o"}
        )
        ax.plot(turns, [100 * by_turns[t][0] for t in turns], label=label, **style)
        ax.fill_between(
            turns,
            [100 * by_turns[t][1] for t in turns],
            [100 * by_turns[t][2] for t in turns],
            color=style.get("color"),
            alpha=0.15,
            linewidth=0,
        )
    ax.set_xticks(sorted({t for by_turns in results.values() for t in by_turns}))
    if title:
        ax.set_title(title)
    return _save_single_axis(fig, ax, "verification turns at evaluation", "success rate (%)", path)


def plot_recognition_vs_gflops(points: list[CurvePoint], path: str | Path) -> Path:
    """Card-recognition accuracy (-VL) against training GFLOPs, one line per method (ID split)."""
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    for method in METHODS:
        line = [p for p in points if p.method == method and p.split == "id" and p.recognition_acc is not None]
        line.sort(key=lambda p: (p.gflops, p.step))
        if line:
            ax.plot(
                [p.gflops for p in line],
                [100 * p.recognition_acc for p in line],
                label=method,
                **METHOD_STYLE[method],
            )
    return _save_single_axis(fig, ax, "training GFLOPs", "card-recognition accuracy (%)", path)


def read_ppo_log(path: str | Path) -> list[dict]:
    """The per-update records of a PPO run's ``log.jsonl`` (blank lines skipped)."""
    import json

    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_rl_training(rows: list[dict], path: str | Path, title: str = "PPO") -> Path:
    """Mean reward per answer (left axis) and success of the episodes that ended in each
    update (right axis) against the PPO update: did RL learn on its training data at all?"""
    if not rows:
        raise ValueError("no PPO updates to plot")
    from matplotlib.ticker import MaxNLocator

    steps = [r["step"] for r in rows]
    rewards = [r["mean_reward"] for r in rows]
    fig, ax1 = plt.subplots(figsize=(6, 3.5))
    h1 = ax1.plot(steps, rewards, color="tab:blue", marker="o", markersize=4, label="mean reward per answer")
    ax1.set_xlabel("RL update")
    ax1.set_ylabel("mean reward per answer", color="tab:blue")
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))  # updates are whole numbers
    lo, hi = min(rewards), max(rewards)
    pad = max(0.1 * (hi - lo), 0.05 * max(abs(lo), abs(hi)), 0.05)
    ax1.set_ylim(lo - pad, hi + pad)
    ax1.grid(alpha=0.3)
    ax2 = ax1.twinx()
    ended = [(r["step"], 100 * r["success_rate"]) for r in rows if r.get("success_rate") is not None]
    h2 = ax2.plot(
        [s for s, _ in ended],
        [v for _, v in ended],
        color="tab:green",
        linestyle="--",
        marker="s",
        markersize=4,
        label="success of episodes ended (%)",
    )
    ax2.set_ylabel("success of episodes ended (%)", color="tab:green")
    top = max(10.0, 1.15 * max((v for _, v in ended), default=0.0))
    ax2.set_ylim(-0.04 * top, top)  # a line at 0 stays visible above the axis
    ax1.legend(handles=h1 + h2, loc="upper left", frameon=False, fontsize=8)
    ax1.set_title(title)
    return _save(fig, path)


def plot_ood_vs_id_gain(points: list[CurvePoint], path: str | Path, column: str) -> Path:
    """Change from the init on the OOD split (y) against the change on ``id_seen`` (x), one
    marker per checkpoint per method, in percentage points; a second panel shows the OOD
    change of the task's dense metric (rule following / valid action) when present."""
    from sftvsrl.study.curves import start_point

    mine = [p for p in points if p.column == column]
    ood = next((s for s in ("ood", "visual_ood") if any(p.split == s for p in mine)), None)
    if ood is None or not any(p.split == "id_seen" for p in mine):
        raise ValueError(f"{column}: no id_seen and OOD points to plot")
    dense = next((m for m in ("rule_following", "valid_action") if any(p.metric(m) for p in mine)), None)
    panels = [("success_rate", "success")] + ([(dense, METRIC_LABEL[dense].split(" (")[0])] if dense else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.8), squeeze=False)
    base_x = start_point(mine, column, "id_seen")
    base_y = start_point(mine, column, ood)
    for ax, (metric, label) in zip(axes[0], panels, strict=True):

        def value(p: CurvePoint | None, metric: str = metric) -> float | None:
            if p is None:
                return None
            if metric == "success_rate":
                return p.success_rate
            m = p.metric(metric)
            return None if m is None else m[0]

        y0 = value(base_y)
        for method in METHODS:
            xs, ys = [], []
            for p in series(mine, column, method, "id_seen"):
                q = next(
                    (o for o in mine if o.method == method and o.step == p.step and o.split == ood), None
                )
                y = value(q)
                if y is None or y0 is None:
                    continue
                xs.append(100 * (p.success_rate - base_x.success_rate))
                ys.append(100 * (y - y0))
            if xs:
                ax.plot(xs, ys, label=method, **LINE_STYLE[method])
        ax.axhline(0.0, color="0.3", linewidth=0.8)
        ax.axvline(0.0, color="0.7", linewidth=0.6)
        ax.set_xlabel("ID-seen success change from init (pts)")
        ax.set_ylabel(f"{SPLIT_TITLE.get(ood, ood)}\n{label} change from init (pts)")
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8)
    fig.suptitle(f"{column}: OOD change vs ID-seen change, one marker per checkpoint", fontsize=9)
    return _save(fig, path)


def plot_stage1(
    points: list[CurvePoint], path: str | Path, chosen_step: int, title: str = "stage 1 (SFT init)"
) -> Path:
    """Every stage-1 checkpoint: success and the dense metrics (one row each) against the
    stage-1 step, one column per split, 95% Wilson bands; the chosen init is marked."""
    from matplotlib.ticker import MaxNLocator

    splits = present_splits(points)
    metrics = ("success_rate", *(m for m in present_metrics(points) if m != "kl_to_init"))
    if not points or not splits:
        raise ValueError("no stage-1 points to plot")
    fig, axes = plt.subplots(
        len(metrics), len(splits), figsize=(3.4 * len(splits) + 1.0, 2.4 * len(metrics) + 0.9), squeeze=False
    )
    ns: list[int] = []
    for row, name in enumerate(metrics):
        scale = 1.0 if name in _KL else 100.0
        for col, split in enumerate(splits):
            ax = axes[row][col]
            line = sorted((p for p in points if p.split == split), key=lambda p: p.step)
            vals = []
            for p in line:
                if name == "success_rate":
                    vals.append((p.step, (p.success_rate, p.ci_low, p.ci_high, p.episodes)))
                elif (m := p.metric(name)) is not None:
                    vals.append((p.step, m))
            if vals:
                x = [s for s, _ in vals]
                ax.plot(x, [scale * m[0] for _, m in vals], color="0.25", marker="o", markersize=4)
                banded = [(s, m) for s, m in vals if m[1] is not None and m[2] is not None]
                if banded:
                    ax.fill_between(
                        [s for s, _ in banded],
                        [scale * m[1] for _, m in banded],
                        [scale * m[2] for _, m in banded],
                        color="0.5",
                        alpha=0.18,
                        linewidth=0,
                    )
                ns += [m[3] for _, m in vals if m[3]]
                top = max(scale * (m[2] if m[2] is not None else m[0]) for _, m in vals)
                if name in _KL:
                    ax.set_ylim(0.0, max(1.15 * top, 1e-3))
                else:
                    ax.set_ylim(*((-2.0, 102.0) if top > 40 else (-0.5, max(10.0, 1.15 * top))))
            else:
                ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes, color="0.5")
            ax.axvline(chosen_step, color="tab:orange", linestyle=":", linewidth=1.5, label="chosen init")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if row == 0:
                ax.set_title(SPLIT_TITLE.get(split, split), fontsize=9)
            if col == 0:
                ax.set_ylabel("success (%)" if name == "success_rate" else METRIC_LABEL.get(name, name))
            if row == len(metrics) - 1:
                ax.set_xlabel("stage-1 step")
            ax.grid(alpha=0.3)
    axes[0][-1].legend(loc="best", frameon=False, fontsize=8)
    return _save(
        fig,
        path,
        caption=f"{title}: bands are 95% Wilson intervals over N = {_span(ns)}; chosen step {chosen_step}",
    )
