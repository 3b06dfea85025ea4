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
from sftvsrl.study.effects import effects_section, task_findings

# The paper's OOD changes (percentage points) from one SFT init, Llama-3.2-Vision-11B.
PAPER_OOD_CHANGE = {"GeneralPoints-L": (-8.1, 3.5), "VIRL-L": (-5.6, 9.3)}


def gflops_text(value: float) -> str:
    """Three significant digits, trailing zeros kept (5.60e+04, not 5.6e+04 beside 5.64e+04)."""
    return f"{float(value):#.3g}"


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
        f"RL {d_rl:+.1f} pts at {gflops_text(sft.gflops)} / {gflops_text(rl.gflops)} GFLOPs."
    )
    for method, point in (("SFT", sft), ("RL", rl)):
        if point.step == 0:
            text += (
                f" (The {method} column is the init itself: {method}'s first checkpoint already used more"
                " compute than the other method's last.)"
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
                    f"- {method}: {100 * chosen[0].recognition_acc:.1f}% at {gflops_text(chosen[0].gflops)} GFLOPs -> "
                    f"{100 * chosen[-1].recognition_acc:.1f}% at {gflops_text(chosen[-1].gflops)} GFLOPs"
                )
    lines += [
        "",
        f"![success vs GFLOPs]({figure})",
        "",
        "_Bands: 95% Wilson intervals over the episodes of each point._",
    ]
    for column, fig_name in sorted(meta.get("metric_figures", {}).items()):
        lines += [
            "",
            f"{column}: dense metrics and KL against training GFLOPs.",
            "",
            f"![metrics]({fig_name})",
        ]
    lines += ["", "## What this run found", ""]
    for column in columns:
        lines += [
            f"- {text}" for text in task_findings(points, column, meta.get("tried", {}).get(column, ""))
        ]
    lines += [f"- {text}" for text in findings] or ["- No task had both methods evaluated."]
    effects = effects_section(points, meta.get("gain_figures"))
    if any(p.method == "RL" for p in points) and any(p.method == "SFT" for p in points):
        lines += ["", "## Changes from the init, and RL − SFT", "", effects]
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


# ----------------------------------------------------------------------------- the study's outputs


def pct(v: list[float]) -> str:
    return f"{100 * v[0]:.1f} [{100 * v[1]:.1f}, {100 * v[2]:.1f}]"


def rl_summary(rows: list[dict[str, Any]]) -> str:
    """First and last fifth of the RL updates: the training reward's trend, in numbers."""
    k = max(1, len(rows) // 5)

    def mean(part: list[dict[str, Any]], key: str) -> float:
        values = [r[key] for r in part if r.get(key) is not None]
        return sum(values) / len(values) if values else float("nan")

    head, tail = rows[:k], rows[-k:]
    text = (
        f"{len(rows)} updates. Mean reward per answer {mean(head, 'mean_reward'):.2f} over the first {k} "
        f"-> {mean(tail, 'mean_reward'):.2f} over the last {k}; success of ended episodes "
        f"{100 * mean(head, 'success_rate'):.1f}% -> {100 * mean(tail, 'success_rate'):.1f}%"
    )
    if any(r.get("explained_variance") is not None for r in tail):  # PPO's value head
        text += (
            f"; explained variance of the value head in the last {k}: {mean(tail, 'explained_variance'):.2f}"
        )
    return text + "."


def turns_of(results: dict[str, Any], task: str) -> dict[str, dict[str, dict[str, list[float]]]]:
    """The turns ablation of ``task`` by split ({} when it did not run)."""
    res = results.get(f"{task}.turns")
    return res.by_split if res is not None else {}


def study_sections(results: dict[str, Any], tasks: list[str]) -> list[tuple[str, str]]:
    """The report's sections on the stages, from their typed results."""
    out = []
    pre = results.get("pretrain")
    if pre:
        out.append(
            (
                "Stage 0: pretraining on the generated corpus",
                f"{pre.rows} corpus rows, {gflops_text(pre.gflops)} GFLOPs (not counted in the curves: it "
                "stands in for the paper's pretraining). Base model: `base_model/`. Greedy exact-match "
                "accuracy of the base model on fresh corpus draws (short expressions can repeat "
                "training rows): "
                + ", ".join(f"{k} {100 * v:.0f}%" for k, v in pre.probe_accuracy.items())
                + ".",
            )
        )
    for name in tasks:
        init = results.get(f"{name}.init")
        if init:
            hist = ", ".join(f"step {h.step}: {100 * h.val_success:.1f}%" for h in init.history)
            out.append(
                (
                    f"{name}: stage 1 (SFT init)",
                    f"Validation ID success by checkpoint: {hist}. Selected step {init.step} "
                    f"({init.select}; stopped early: {init.stopped_early}), "
                    f"{gflops_text(init.gflops)} GFLOPs = X at init (6N·D_init).",
                )
            )
        st1 = results.get(f"{name}.init_curves")
        if st1 and st1.points:
            out.append((f"{name}: stage 1 on every split", stage1_text(name, st1, init)))
        sft, rl = results.get(f"{name}.sft"), results.get(f"{name}.rl")
        if sft and rl:
            out.append(
                (
                    f"{name}: stage 2 compute",
                    f"RL: {gflops_text(rl.gflops)} GFLOPs total; SFT: {sft.steps} steps for a stage-2 budget of "
                    f"{gflops_text(sft.budget_gflops)} GFLOPs, {gflops_text(sft.gflops)} GFLOPs total.",
                )
            )
        for split, by_model in turns_of(results, name).items():
            turns = sorted({int(t) for by in by_model.values() for t in by})
            lines = [
                "| model | " + " | ".join(f"{t} turn{'s' if t > 1 else ''}" for t in turns) + " |",
                "|---" * (len(turns) + 1) + "|",
            ]
            for label, by in by_model.items():
                lines.append(f"| {label} | " + " | ".join(pct(by[str(t)]) for t in turns) + " |")
            out.append(
                (
                    f"{name}: verification turns at evaluation ({SPLIT_NAMES.get(split, split)})",
                    "\n".join(lines) + f"\n\n![turns](success_vs_turns_{name}_{split}.png)",
                )
            )
        for label, title in (
            ("rl_from_base", "RL from the base model (no SFT)"),
            ("rl_from_overfit", "RL from an over-fitted SFT checkpoint"),
        ):
            res = results.get(f"{name}.{label}")
            if res:
                r = res.results
                out.append(
                    (
                        f"{name}: {title}",
                        "| | ID | OOD |\n|---|---|---|\n"
                        f"| start | {pct(r['start.id'])} | {pct(r['start.ood'])} |\n"
                        f"| after RL ({gflops_text(res.gflops)} GFLOPs) | {pct(r['after_rl.id'])} | "
                        f"{pct(r['after_rl.ood'])} |",
                    )
                )
    return out


def stage1_text(name: str, st1: Any, init: Any) -> str:
    """Where each split (OOD included) stands at each stage-1 checkpoint, the chosen one marked."""
    points = [CurvePoint(**p) for p in st1.points]
    splits = present_splits(points)
    steps = sorted({p.step for p in points})
    by = {(p.step, p.split): p for p in points}
    lines = [
        f"Every stage-1 checkpoint on {st1.episodes} episodes of each split (the first of the curves' "
        f"episodes); success % [95% Wilson], then rule following / valid action where the task has it, "
        f"and KL to the base (nats/token). The init is still chosen on ID validation only "
        f"({init.select if init else '?'}); chosen step **{st1.chosen_step}**.",
        "",
        "| step | " + " | ".join(splits) + " |",
        "|---" * (len(splits) + 1) + "|",
    ]
    for step in steps:
        cells = []
        for split in splits:
            p = by.get((step, split))
            if p is None:
                cells.append("")
                continue
            parts = [fmt_pct(p)]
            for m in ("rule_following", "valid_action", "step_accuracy"):
                v = p.metric(m)
                if v is not None:
                    parts.append(f"{m.replace('_', ' ')} {100 * v[0]:.0f}%")
            if p.kl_to_base is not None:
                parts.append(f"KL {p.kl_to_base:.3f}")
            cells.append("; ".join(parts))
        mark = " (chosen)" if step == st1.chosen_step else ""
        lines.append(f"| {step}{mark} | " + " | ".join(cells) + " |")
    lines += ["", f"![stage 1](stage1_{name}.png)"]
    if st1.kl_seconds:
        lines += ["", f"KL cost of this stage: {st1.kl_seconds:.1f} s."]
    return "\n".join(lines)


def _versions() -> str:
    import platform

    import torch
    import transformers

    import sftvsrl

    return (
        f"python {platform.python_version()}, torch {torch.__version__}, transformers "
        f"{transformers.__version__}, sftvsrl {getattr(sftvsrl, '__version__', '?')}, {platform.machine()}"
    )


def write_study_outputs(study: Any, points: list[CurvePoint]) -> Path:
    """curves.csv, the figures, study_config.yaml and report.md of a finished ``study``
    (a :class:`sftvsrl.study.pipeline.Study`); written only once every stage agrees."""
    import yaml

    from sftvsrl.atomic import atomic_write_text
    from sftvsrl.study.curves import present_metrics, write_curves
    from sftvsrl.study.plots import (
        plot_metrics_vs_gflops,
        plot_ood_vs_id_gain,
        plot_recognition_vs_gflops,
        plot_rl_training,
        plot_stage1,
        plot_success_vs_gflops,
        plot_success_vs_turns,
        read_ppo_log,
    )
    from sftvsrl.study.seeds import KL_OFFSET, validation_seed

    cfg, out = study.cfg, study.out
    config_text = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
    atomic_write_text(out / "study_config.yaml", config_text)
    write_curves(points, out / "curves.csv")
    plot_success_vs_gflops(points, out / "success_vs_gflops.png", splits=present_splits(points))
    if any(p.recognition_acc is not None for p in points):
        plot_recognition_vs_gflops(points, out / "recognition_vs_gflops.png")
    metric_figures, gain_figures, tried, kl_seconds = {}, {}, {}, {}
    for name in study.specs:
        mine = [p for p in points if p.column == name]
        if mine and present_metrics(mine):
            fig_path = out / f"metrics_vs_gflops_{name}.png"
            plot_metrics_vs_gflops(mine, fig_path, metrics=present_metrics(mine), splits=present_splits(mine))
            metric_figures[name] = fig_path.name
        splits = {p.split for p in mine}
        if "id_seen" in splits and splits & {"ood", "visual_ood"}:
            gain_figures[name] = plot_ood_vs_id_gain(mine, out / f"ood_vs_id_gain_{name}.png", name).name
        st1 = study.results.get(f"{name}.init_curves")
        if st1 is not None and st1.points:
            plot_stage1(
                [CurvePoint(**p) for p in st1.points], out / f"stage1_{name}.png", st1.chosen_step, name
            )
        curves = study.results.get(f"{name}.eval")
        kl_seconds[name] = (curves.kl_seconds if curves else 0.0) + (st1.kl_seconds if st1 else 0.0)
        s2 = study.task_cfg[name].stage2
        rl_res, sft_res = study.results.get(f"{name}.rl"), study.results.get(f"{name}.sft")
        tried[name] = (
            f"{s2.rl_updates} RL updates ({s2.rl.get('algorithm', 'ppo')}) "
            + (f"to {gflops_text(rl_res.gflops)} GFLOPs" if rl_res else "")
            + (f", SFT {sft_res.steps} steps at matched compute" if sft_res else "")
        )
    sections = study_sections(study.results, list(study.specs))
    if cfg.eval.kl_prompts:
        sections.append(
            (
                "Cost of the KL measurements",
                f"KL(base || checkpoint) and KL(init || checkpoint) on {cfg.eval.kl_prompts} prompts per "
                "split (`eval.kl_prompts`; answers sampled once from each reference at temperature 1 "
                f"with seed eval.seed + {KL_OFFSET}): "
                + ", ".join(f"{n} {sec:.1f} s" for n, sec in kl_seconds.items())
                + " (cached evaluations count what they took when made).",
            )
        )
    for name in study.specs:
        algo = str(study.task_cfg[name].stage2.rl.get("algorithm", "ppo")).upper()
        rl_log = out / name / "stage2_rl" / "log.jsonl"
        rows = read_ppo_log(rl_log) if rl_log.is_file() else []
        if rows:
            figure = plot_rl_training(rows, out / f"rl_training_{name}.png", f"{name}: {algo} (stage 2)")
            sections.append(
                (f"{name}: {algo} training", rl_summary(rows) + f"\n\n![{algo} training]({figure.name})")
            )
        for split, by_model in turns_of(study.results, name).items():
            data = {lab: {int(t): tuple(v) for t, v in d.items()} for lab, d in by_model.items()}
            plot_success_vs_turns(
                data, out / f"success_vs_turns_{name}_{split}.png", title=f"{name}, {split}"
            )
    if study.reused:
        sections.append(
            (
                "Stages reused from an earlier invocation",
                "These stages' results were made by an earlier invocation in this folder with the "
                "same settings (their fingerprints match: an interrupted attempt, or this seed's "
                "own process under `--jobs`) and were read back, not run again; their times are "
                "those of the invocation that made them: " + ", ".join(f"`{n}`" for n in study.reused) + ".",
            )
        )
    ev = cfg.eval
    meta = {
        "preset": cfg.preset,
        "runtime_min": sum(r.get("stage_seconds", 0.0) for r in study.records.values()) / 60,
        "seed": cfg.seed,
        "command": study.command,
        "versions": _versions(),
        "seeds": f"training seed {cfg.seed}; eval episodes seeds {ev.seed}.."
        f"{ev.seed + ev.episodes - 1}; validation from {validation_seed(ev.seed)}",
        "config": config_text,
        "extra_sections": sections,
        "metric_figures": metric_figures,
        "gain_figures": gain_figures,
        "tried": tried,
    }
    return write_report(points, meta, out / "report.md")
