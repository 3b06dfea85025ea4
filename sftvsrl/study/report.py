"""``report.md``: the paper's kind of table, the figure, and what this run found.

Findings are worded from the numbers and their intervals, never from expectations: a
difference whose 95% intervals overlap is reported as not resolved by this run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sftvsrl.study.curves import (
    SPLIT_NAMES,
    CurvePoint,
    at_matched_compute,
    fmt_pct,
    present_splits,
    start_point,
)

# The paper's OOD changes (percentage points) from one SFT init, Llama-3.2-Vision-11B.
PAPER_OOD_CHANGE = {"GeneralPoints-L": (-8.1, 3.5), "VIRL-L": (-5.6, 9.3)}


def _change(after: CurvePoint | None, before: CurvePoint | None) -> str:
    if after is None or before is None:
        return "n/a"
    return f"{100 * (after.success_rate - before.success_rate):+.1f}"


def _overlap(a: CurvePoint, b: CurvePoint) -> bool:
    return not (a.ci_low > b.ci_high or b.ci_low > a.ci_high)


def finding(column: str, split: str, init: CurvePoint, sft: CurvePoint, rl: CurvePoint) -> str:
    """One honest sentence comparing SFT and RL on one split at matched compute."""
    name = SPLIT_NAMES.get(split, split)
    d_sft = 100 * (sft.success_rate - init.success_rate)
    d_rl = 100 * (rl.success_rate - init.success_rate)
    text = (
        f"{column}, {name}: from {100 * init.success_rate:.1f}% at init, SFT went {d_sft:+.1f} pts and "
        f"RL {d_rl:+.1f} pts at {sft.gflops:.3g} / {rl.gflops:.3g} GFLOPs."
    )
    if _overlap(sft, rl):
        return text + " Their 95% intervals overlap: this run does not separate the two methods here."
    better = "RL" if rl.success_rate > sft.success_rate else "SFT"
    return text + f" {better} is ahead with non-overlapping 95% intervals."


def build_report(
    points: list[CurvePoint], meta: dict[str, Any], figure: str = "success_vs_gflops.png"
) -> str:
    columns = sorted({p.column for p in points})
    lines = [
        "# SFT vs RL: study report",
        "",
        f"Preset `{meta.get('preset', '?')}`; run time {meta.get('runtime_min', float('nan')):.1f} min; "
        f"seed {meta.get('seed', '?')}.",
        "",
        "Success rates in % with 95% Wilson intervals, at the init checkpoint and, for SFT and RL, at "
        "the last evaluation both methods reached at matched training compute (GFLOPs counted as "
        "X_SFT = 6N(D_init + D_SFT) and X_RL = 6N(D_init + D_RL) + 2N·D_buffer).",
        "",
        "| task | split | init | SFT | SFT change | RL | RL change | paper change SFT / RL |",
        "|---|---|---|---|---|---|---|---|",
    ]
    findings = []
    for column in columns:
        for split in present_splits(p for p in points if p.column == column):
            init = start_point(points, column, split)
            matched = at_matched_compute(points, column, split)
            if init is None or matched is None:
                continue
            sft, rl = matched["SFT"], matched["RL"]
            paper = PAPER_OOD_CHANGE.get(column) if split == "ood" else None
            paper_text = f"{paper[0]:+.1f} / {paper[1]:+.1f}" if paper else ""
            lines.append(
                f"| {column} | {split} | {fmt_pct(init)} | {fmt_pct(sft)} | {_change(sft, init)} | "
                f"{fmt_pct(rl)} | {_change(rl, init)} | {paper_text} |"
            )
            findings.append(finding(column, split, init, sft, rl))
    recognition = [p for p in points if p.recognition_acc is not None]
    if recognition:
        lines += [
            "",
            "Card-recognition accuracy (GeneralPoints-VL), first and last evaluation per method:",
            "",
        ]
        for method in ("SFT", "RL"):
            chosen = sorted((p for p in recognition if p.method == method), key=lambda p: p.gflops)
            if chosen:
                lines.append(
                    f"- {method}: {100 * chosen[0].recognition_acc:.1f}% at {chosen[0].gflops:.3g} GFLOPs -> "
                    f"{100 * chosen[-1].recognition_acc:.1f}% at {chosen[-1].gflops:.3g} GFLOPs"
                )
    lines += ["", f"![success vs GFLOPs]({figure})", "", "## What this run found", ""]
    lines += [f"- {text}" for text in findings] or ["- No task had both methods evaluated."]
    if meta.get("extra_sections"):
        for title, body in meta["extra_sections"]:
            lines += ["", f"## {title}", "", body]
    lines += ["", "## Run", ""]
    for key in ("command", "versions", "seeds"):
        if key in meta:
            lines.append(f"- {key}: `{meta[key]}`")
    if "config" in meta:
        lines += ["", "Config:", "", "```yaml", str(meta["config"]).rstrip(), "```"]
    return "\n".join(lines) + "\n"


def write_report(points: list[CurvePoint], meta: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(build_report(points, meta), encoding="utf-8")
    tmp.replace(path)
    return path
