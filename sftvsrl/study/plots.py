"""Figures laid out like the paper's: success rate against GFLOPs, ID row over OOD row."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sftvsrl.study.curves import METHODS, CurvePoint, series  # noqa: E402

METHOD_STYLE = {"SFT": {"color": "#d62728", "marker": "o"}, "RL": {"color": "#1f77b4", "marker": "s"}}
SPLIT_TITLE = {
    "id_seen": "In-distribution,\nseen (training) items",
    "id": "In-distribution,\nheld-out items",
    "ood": "Out-of-distribution (rule)",
    "visual_ood": "Out-of-distribution (visual)",
}


def plot_success_vs_gflops(
    points: list[CurvePoint], path: str | Path, splits: tuple[str, ...] = ("id", "ood")
) -> Path:
    """One column per task variant, one row per split; SFT and RL lines with CI bands."""
    columns = sorted({p.column for p in points})
    if not columns:
        raise ValueError("no curve points to plot")
    fig, axes = plt.subplots(
        len(splits), len(columns), figsize=(3.6 * len(columns) + 0.8, 3.0 * len(splits)), squeeze=False
    )
    for col, column in enumerate(columns):
        for row, split in enumerate(splits):
            ax = axes[row][col]
            for method in METHODS:
                line = series(points, column, method, split)
                if not line:
                    continue
                x = [p.gflops for p in line]
                ax.plot(x, [100 * p.success_rate for p in line], label=method, **METHOD_STYLE[method])
                ax.fill_between(
                    x,
                    [100 * p.ci_low for p in line],
                    [100 * p.ci_high for p in line],
                    color=METHOD_STYLE[method]["color"],
                    alpha=0.15,
                    linewidth=0,
                )
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
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


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
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


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
    steps = [r["step"] for r in rows]
    fig, ax1 = plt.subplots(figsize=(6, 3.5))
    ax1.plot(steps, [r["mean_reward"] for r in rows], color="tab:blue")
    ax1.set_xlabel("PPO update")
    ax1.set_ylabel("mean reward per answer", color="tab:blue")
    ax1.grid(alpha=0.3)
    ax2 = ax1.twinx()
    ended = [(r["step"], 100 * r["success_rate"]) for r in rows if r.get("success_rate") is not None]
    ax2.plot([s for s, _ in ended], [v for _, v in ended], color="tab:green")
    ax2.set_ylabel("success of episodes ended (%)", color="tab:green")
    ax2.set_ylim(0, max(10.0, 1.15 * max((v for _, v in ended), default=0.0)))
    ax1.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
