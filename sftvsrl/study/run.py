"""The study, stage by stage: pretrain (tiny only) -> SFT init -> SFT and RL at matched compute.

Every stage is a :class:`StageRunner` stage (finished ones are skipped on re-run) and every
trainer inside a stage resumes from its own checkpoints, so an interrupted study loses at
most one checkpoint interval. Evaluations are cached one file per (checkpoint, split).
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from sftvsrl.flops import sft_steps_for_budget
from sftvsrl.runs import TRAINER_STATE, RunDir, export_model, lineage_gflops, read_trainer_state
from sftvsrl.study.config import StudyConfig, TaskSpec, check_trainer_overrides, task_spec
from sftvsrl.study.curves import SPLIT_NAMES, CurvePoint, present_splits, write_curves
from sftvsrl.study.dist import Processes
from sftvsrl.study.stages import StageRunner

KEEP_ALL = 100_000  # keep every checkpoint: each one is a point on a curve


class Study:
    def __init__(
        self,
        cfg: StudyConfig,
        out: str | Path,
        *,
        command: str = "",
        after_stage: Callable[[str], None] | None = None,
    ) -> None:
        self.cfg = check_trainer_overrides(cfg)
        self.out = Path(out)
        self.command = command
        self.after_stage = after_stage
        self.specs = {name: task_spec(name) for name in cfg.tasks}
        self.procs = Processes(cfg.dist_timeout_min)
        self.runner = StageRunner(self.out, total=self._stage_count(), procs=self.procs)
        self.results: dict[str, dict[str, Any]] = {}

    def _stage_count(self) -> int:
        a = self.cfg.ablations
        per_task = 5 + bool(a.turns) + a.rl_from_base + a.rl_from_overfit
        return int(self.cfg.pretrain) + per_task * len(self.cfg.tasks)

    def stage(
        self, name: str, fn: Callable[[], dict[str, Any]], *, main_only: bool = False
    ) -> dict[str, Any]:
        """Run (or skip) a stage; ``main_only`` stages (evaluations) run on the main process,
        and the others receive its stored result."""
        if main_only and not self.procs.is_main:
            fn = dict
        result = self.runner.run(name, fn)
        self.results[name] = result
        if self.after_stage:
            self.after_stage(name)
        return result

    # ------------------------------------------------------------------------- trainers

    def sft_config(
        self,
        model: str,
        train: Path,
        out_dir: Path,
        steps: int,
        save_every: int,
        overrides: dict[str, Any],
        eval_file: Path | None = None,
        eval_every: int | None = None,
    ):
        from sftvsrl.training.sft import SFTConfig

        is_ckpt = (Path(model) / TRAINER_STATE).is_file()
        data = {
            "model": model,
            "dtype": self.cfg.dtype,
            "bf16": self.cfg.bf16,
            "lora": None if is_ckpt or self.cfg.lora is None else self.cfg.lora.model_dump(),
            "data": {"train": str(train), "eval": str(eval_file) if eval_file else None},
            "out_dir": str(out_dir),
            "seed": self.cfg.seed,
            "max_steps": steps,
            "save_every": max(1, save_every),
            "keep_last": KEEP_ALL,
            "log_every": 1,
            "eval_every": eval_every,
            **overrides,
        }
        return SFTConfig.model_validate(data)

    def run_sft(self, cfg, on_checkpoint=None) -> Path:
        from sftvsrl.training.sft import train_sft

        resume = RunDir(cfg.out_dir).latest() is not None  # a fresh start truncates the old log
        return train_sft(cfg, resume=resume, on_checkpoint=on_checkpoint)

    def run_rl(self, spec: TaskSpec, init: str, out_dir: Path, updates: int) -> Path:
        from sftvsrl.training.ppo import PPOConfig
        from sftvsrl.training.ppo import train as ppo_train

        every = max(1, updates // self.cfg.stage2.evals)
        ppo = PPOConfig.model_validate(
            {
                "dtype": "float32" if self.cfg.dtype == "float16" else self.cfg.dtype,
                **self.cfg.stage2.rl,
                "init": init,
                "out_dir": str(out_dir),
                "env_id": spec.env_id,
                "env_kwargs": {**spec.train, "prompt_style": self.cfg.prompt_style},
                "seed": self.cfg.seed,
                "updates": updates,
                "save_every": every,
                "keep_checkpoints": KEEP_ALL,
            }
        )
        run = RunDir(out_dir)
        resume = run.latest() is not None
        if not resume:  # drop the log of an attempt that never reached a checkpoint
            self.procs.main_only(lambda: run.log.truncate(0))
        ppo_train(ppo, resume=resume)
        return run.checkpoints()[-1][1]

    # ------------------------------------------------------------------------- evaluation

    def evaluate(
        self,
        ckpt: str | Path,
        spec: TaskSpec,
        split_kwargs: dict[str, Any],
        cache: Path,
        *,
        episodes: int | None = None,
        max_turns: int | None = None,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """Summary of one evaluation, cached in ``cache`` (re-runs read it back)."""
        if cache.is_file():
            return json.loads(cache.read_text(encoding="utf-8"))
        from sftvsrl.evaluation.runner import evaluate
        from sftvsrl.models.loading import load_model
        from sftvsrl.rollout import HFRolloutEngine

        ev = self.cfg.eval
        pm = load_model(
            str(ckpt), dtype=self.cfg.dtype if self.cfg.dtype != "float16" else "float32", trainable=False
        )
        engine = HFRolloutEngine(pm, batch_size=ev.num_envs)
        _, summary = evaluate(
            engine,
            spec.env_id,
            {**split_kwargs, "prompt_style": self.cfg.prompt_style},
            episodes=episodes or ev.episodes,
            max_turns=max_turns or ev.max_turns,
            num_envs=ev.num_envs,
            seed=ev.seed if seed is None else seed,
            max_new_tokens=ev.max_new_tokens,
        )
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.tmp")
        tmp.write_text(json.dumps(summary, default=str), encoding="utf-8")
        tmp.replace(cache)
        return summary

    # ------------------------------------------------------------------------- stages

    def pretrain(self) -> dict[str, Any]:
        from sftvsrl.study.corpus import write_corpus_jsonl

        c = self.cfg.corpus
        data = self.out / "data" / "corpus.jsonl"
        if not data.is_file():
            self.procs.main_only(lambda: write_corpus_jsonl(data, c.rows, seed=self.cfg.seed, mix=c.mix))
        run_dir = self.out / "stage0_pretrain"
        sft = self.sft_config("tiny-lm", data, run_dir, c.steps, max(1, c.steps // 2), c.sft)
        ckpt = self.run_sft(sft)
        base = self.out / "base_model"
        self.procs.main_only(lambda: export_model(ckpt, base))
        if not self.procs.is_main:
            return {}  # the main process's result is stored and shared
        probe = corpus_accuracy(base, c.probe_rows, seed=self.cfg.seed + 7919, mix=c.mix)
        return {
            "base": str(base),
            "checkpoint": str(ckpt),
            "gflops": lineage_gflops(ckpt),
            "rows": c.rows,
            "probe_accuracy": probe,
        }

    def task_data(self, name: str, spec: TaskSpec) -> dict[str, Any]:
        i = self.cfg.init
        folder = self.out / name / "data"
        seed = self.cfg.seed * 1_000_003
        files = {
            "init": (spec.train, i.rows, seed, i.multi_turn_fraction),
            "more": (spec.train, self.cfg.stage2.sft_rows, seed + 10_000_000, i.multi_turn_fraction),
            "val": (spec.splits["id"], i.val_rows, self.cfg.eval.seed + 500_000, 0.0),
        }

        def write_missing() -> None:
            for key, (kwargs, n, first_seed, mt) in files.items():
                path = folder / f"{key}.jsonl"
                if not path.is_file():
                    write_expert(spec, kwargs, n, first_seed, path, mt, self.cfg.prompt_style)

        self.procs.main_only(write_missing)
        return {key: str(folder / f"{key}.jsonl") for key in files}

    def init_sft(self, name: str, spec: TaskSpec, base: str, data: dict[str, Any]) -> dict[str, Any]:
        i = self.cfg.init
        run_dir = self.out / name / "stage1_init"
        val_dir = self.out / name / "evals" / "validation"
        val_seed = self.cfg.eval.seed + 500_000
        history: list[dict[str, Any]] = []
        stopped_early = False

        def validate(path: Path) -> bool:
            """Evaluate one checkpoint (main process only); True: stop training here."""
            nonlocal stopped_early
            step = read_trainer_state(path).step
            summary = self.evaluate(
                path,
                spec,
                spec.splits["id"],
                val_dir / f"step-{step:08d}.json",
                episodes=i.val_episodes,
                max_turns=1,  # first-answer success: cheap, and what SFT directly trains
                seed=val_seed,
            )
            entry = {
                "step": step,
                "checkpoint": str(path),
                "val_success": summary["success_rate"],
                "gflops": lineage_gflops(path),
                "val_loss": _eval_loss_at(run_dir, step),
            }
            history.append(entry)
            stopped_early = stopped_early or (i.select != "last" and no_gain(history, i.select, i.patience))
            return stopped_early

        def replay() -> bool:
            """Validations finished before an interruption; True if they already stop training."""
            for step, path in RunDir(run_dir).checkpoints():
                if (val_dir / f"step-{step:08d}.json").is_file() and validate(path):
                    return True
            return False

        sft = self.sft_config(
            base,
            Path(data["init"]),
            run_dir,
            i.steps,
            i.eval_every,
            i.sft,
            eval_file=Path(data["val"]) if i.select == "val_loss" else None,
            eval_every=i.eval_every if i.select == "val_loss" else None,
        )
        if not self.procs.from_main(replay() if self.procs.is_main else False):
            self.run_sft(sft, on_checkpoint=validate)  # returns early when validate says stop
        if not self.procs.is_main:
            return {}  # the main process's result is stored and shared
        stopped = stopped_early  # the post-training validations below do not count as a stop
        done = {h["step"] for h in history}
        for step, path in RunDir(run_dir).checkpoints():  # e.g. the final step when not a multiple
            if step not in done:
                validate(path)
        history.sort(key=lambda h: h["step"])
        if i.select == "last":
            chosen = history[-1]
        elif i.select == "val_loss" and all(h["val_loss"] is not None for h in history):
            chosen = min(history, key=lambda h: (h["val_loss"], h["step"]))
        else:  # best validation success; ties go to the earlier (less trained) checkpoint
            chosen = max(history, key=lambda h: (h["val_success"], -h["step"]))
        return {
            "checkpoint": chosen["checkpoint"],
            "step": chosen["step"],
            "gflops": chosen["gflops"],
            "history": history,
            "stopped_early": stopped,
            "select": i.select,
        }

    def stage2_rl(self, name: str, spec: TaskSpec, init: dict[str, Any]) -> dict[str, Any]:
        run_dir = self.out / name / "stage2_rl"
        final = self.run_rl(spec, init["checkpoint"], run_dir, self.cfg.stage2.rl_updates)
        return {"run_dir": str(run_dir), "final": str(final), "gflops": lineage_gflops(final)}

    def stage2_sft(
        self, name: str, spec: TaskSpec, init: dict[str, Any], rl: dict[str, Any], data: dict[str, Any]
    ) -> dict[str, Any]:
        s = self.cfg.stage2
        budget = s.budget_gflops if s.budget_gflops is not None else rl["gflops"] - init["gflops"]
        n_params, tokens_per_step = _sft_rate(self.out / name / "stage1_init", s.sft, self.procs.count)
        steps = sft_steps_for_budget(budget, n_params, tokens_per_step)
        run_dir = self.out / name / "stage2_sft"
        sft = self.sft_config(
            init["checkpoint"], Path(data["more"]), run_dir, steps, max(1, steps // s.evals), s.sft
        )
        final = self.run_sft(sft)
        return {
            "run_dir": str(run_dir),
            "final": str(final),
            "steps": steps,
            "budget_gflops": budget,
            "gflops": lineage_gflops(final),
        }

    def evaluate_curves(self, name: str, spec: TaskSpec, init: dict[str, Any]) -> dict[str, Any]:
        from rich.progress import Progress

        runs = {
            "SFT": RunDir(self.out / name / "stage2_sft").checkpoints(),
            "RL": RunDir(self.out / name / "stage2_rl").checkpoints(),
        }
        jobs = [("init", 0, Path(init["checkpoint"]))] + [
            (m, st, p) for m, pts in runs.items() for st, p in pts
        ]
        points = []
        with Progress(transient=True) as bar:
            task = bar.add_task(f"evaluating {name}", total=len(jobs) * len(spec.splits))
            for method, step, path in jobs:
                for split, kwargs in spec.splits.items():
                    summary = self.evaluate(
                        path,
                        spec,
                        kwargs,
                        self.out / name / "evals" / method / f"step-{step:08d}" / f"{split}.json",
                    )
                    bar.advance(task)
                    methods = ("SFT", "RL") if method == "init" else (method,)
                    for m in methods:
                        points.append(_point(spec, m, step, lineage_gflops(path), split, summary))
        return {"points": [p.__dict__ for p in points]}

    def turns_ablation(self, name: str, spec: TaskSpec, init, sft, rl) -> dict[str, Any]:
        """``{"by_split": {split: {model: {turns: [rate, ci_low, ci_high]}}}}`` for init, final
        SFT and final RL (nested, so the stage runner's own keys never look like a split)."""
        a = self.cfg.ablations
        out: dict[str, dict[str, dict[str, list[float]]]] = {}
        for split in a.turns_splits:
            for label, path in (("init", init["checkpoint"]), ("SFT", sft["final"]), ("RL", rl["final"])):
                step = 0 if label == "init" else read_trainer_state(path).step
                curve_eval = self.out / name / "evals" / label / f"step-{step:08d}" / f"{split}.json"
                for turns in a.turns:
                    cache = self.out / name / "evals" / "turns" / label / f"{split}-{turns}.json"
                    if turns == self.cfg.eval.max_turns and curve_eval.is_file():
                        cache = curve_eval  # the same episodes at the same turns: already evaluated
                    s = self.evaluate(path, spec, spec.splits[split], cache, max_turns=turns)
                    out.setdefault(split, {}).setdefault(label, {})[str(turns)] = [
                        s["success_rate"],
                        *s["ci95"],
                    ]
        return {"by_split": out}

    def rl_from(self, name: str, spec: TaskSpec, label: str, start: str) -> dict[str, Any]:
        run_dir = self.out / name / f"ablation_{label}"
        final = self.run_rl(spec, start, run_dir / "rl", self.cfg.stage2.rl_updates)
        if not self.procs.is_main:
            return {}  # evaluations run once; the main process's result is stored and shared
        rows = {}
        for tag, path in (("start", start), ("after_rl", final)):
            for split in ("id", "ood"):
                s = self.evaluate(path, spec, spec.splits[split], run_dir / "evals" / tag / f"{split}.json")
                rows[f"{tag}.{split}"] = [s["success_rate"], *s["ci95"]]
        return {"start": start, "final": str(final), "gflops": lineage_gflops(final), "results": rows}

    def overfit_start(self, name: str, init: dict[str, Any], data: dict[str, Any]) -> str:
        a = self.cfg.ablations
        run_dir = self.out / name / "ablation_rl_from_overfit" / "sft"
        sft = self.sft_config(
            init["checkpoint"],
            Path(data["init"]),
            run_dir,
            a.overfit_steps,
            a.overfit_steps,
            self.cfg.init.sft,
        )
        return str(self.run_sft(sft))

    # ------------------------------------------------------------------------- the study

    def run(self) -> Path:
        if self.cfg.threads:
            import torch

            torch.set_num_threads(self.cfg.threads)
        self.out.mkdir(parents=True, exist_ok=True)
        self.procs.main_only(
            lambda: (self.out / "study_config.yaml").write_text(
                yaml.safe_dump(self.cfg.model_dump(mode="json"), sort_keys=False), encoding="utf-8"
            )
        )
        base_text = self.cfg.model
        if self.cfg.pretrain:
            base_text = self.stage("pretrain", self.pretrain)["base"]
        points: list[CurvePoint] = []
        for name, spec in self.specs.items():
            points += self.run_task(name, spec, base_text if not spec.vision else self.cfg.model_for(spec))
        self.procs.main_only(lambda: self.write_outputs(points))
        return self.out / "report.md"

    def run_task(self, name: str, spec: TaskSpec, base: str) -> list[CurvePoint]:
        """Stages 1 and 2, the curves and the ablations of one task variant."""
        data = self.stage(f"{name}.data", lambda: self.task_data(name, spec))
        init = self.stage(f"{name}.init", lambda: self.init_sft(name, spec, base, data))
        rl = self.stage(f"{name}.rl", lambda: self.stage2_rl(name, spec, init))
        sft = self.stage(f"{name}.sft", lambda: self.stage2_sft(name, spec, init, rl, data))
        curves = self.stage(f"{name}.eval", lambda: self.evaluate_curves(name, spec, init), main_only=True)
        a = self.cfg.ablations
        if a.turns:
            self.stage(
                f"{name}.turns", lambda: self.turns_ablation(name, spec, init, sft, rl), main_only=True
            )
        if a.rl_from_base:
            self.stage(f"{name}.rl_from_base", lambda: self.rl_from(name, spec, "rl_from_base", base))
        if a.rl_from_overfit:
            self.stage(
                f"{name}.rl_from_overfit",
                lambda: self.rl_from(name, spec, "rl_from_overfit", self.overfit_start(name, init, data)),
            )
        return [CurvePoint(**p) for p in curves["points"]]

    def write_outputs(self, points: list[CurvePoint]) -> Path:
        from sftvsrl.study.plots import (
            plot_recognition_vs_gflops,
            plot_rl_training,
            plot_success_vs_gflops,
            plot_success_vs_turns,
            read_ppo_log,
        )
        from sftvsrl.study.report import write_report

        write_curves(points, self.out / "curves.csv")
        plot_success_vs_gflops(points, self.out / "success_vs_gflops.png", splits=present_splits(points))
        if any(p.recognition_acc is not None for p in points):
            plot_recognition_vs_gflops(points, self.out / "recognition_vs_gflops.png")
        sections = self._sections()
        for name in self.specs:
            rl_log = self.out / name / "stage2_rl" / "log.jsonl"
            rows = read_ppo_log(rl_log) if rl_log.is_file() else []
            if rows:
                figure = plot_rl_training(
                    rows, self.out / f"rl_training_{name}.png", f"{name}: PPO (stage 2)"
                )
                sections.append(
                    (f"{name}: PPO training", _rl_summary(rows) + f"\n\n![PPO training]({figure.name})")
                )
            for split, by_model in self._turns(name).items():
                data = {lab: {int(t): tuple(v) for t, v in d.items()} for lab, d in by_model.items()}
                plot_success_vs_turns(
                    data, self.out / f"success_vs_turns_{name}_{split}.png", title=f"{name}, {split}"
                )
        meta = {
            "preset": self.cfg.preset,
            "runtime_min": sum(r.get("stage_seconds", 0.0) for r in self.results.values()) / 60,
            "seed": self.cfg.seed,
            "command": self.command,
            "versions": _versions(),
            "seeds": f"training seed {self.cfg.seed}; eval episodes seeds {self.cfg.eval.seed}.."
            f"{self.cfg.eval.seed + self.cfg.eval.episodes - 1}; validation from {self.cfg.eval.seed + 500_000}",
            "config": yaml.safe_dump(self.cfg.model_dump(mode="json"), sort_keys=False),
            "extra_sections": sections,
        }
        return write_report(points, meta, self.out / "report.md")

    def _turns(self, name: str) -> dict[str, dict[str, dict[str, list[float]]]]:
        """The turns ablation of task ``name`` by split ({} when it did not run)."""
        return (self.results.get(f"{name}.turns") or {}).get("by_split", {})

    def _sections(self) -> list[tuple[str, str]]:
        out = []
        pre = self.results.get("pretrain")
        if pre:
            out.append(
                (
                    "Stage 0: pretraining on the generated corpus",
                    f"{pre['rows']} corpus rows, {pre['gflops']:.3g} GFLOPs (not counted in the curves: it "
                    "stands in for the paper's pretraining). Base model: `base_model/`. Greedy exact-match "
                    "accuracy of the base model on fresh corpus draws (short expressions can repeat "
                    "training rows): "
                    + ", ".join(f"{k} {100 * v:.0f}%" for k, v in pre.get("probe_accuracy", {}).items())
                    + ".",
                )
            )
        for name in self.specs:
            init = self.results.get(f"{name}.init")
            if init:
                hist = ", ".join(f"step {h['step']}: {100 * h['val_success']:.1f}%" for h in init["history"])
                out.append(
                    (
                        f"{name}: stage 1 (SFT init)",
                        f"Validation ID success by checkpoint: {hist}. Selected step {init['step']} "
                        f"({init['select']}; stopped early: {init['stopped_early']}), "
                        f"{init['gflops']:.3g} GFLOPs = X at init (6N·D_init).",
                    )
                )
            sft, rl = self.results.get(f"{name}.sft"), self.results.get(f"{name}.rl")
            if sft and rl:
                out.append(
                    (
                        f"{name}: stage 2 compute",
                        f"RL: {rl['gflops']:.3g} GFLOPs total; SFT: {sft['steps']} steps for a stage-2 budget of "
                        f"{sft['budget_gflops']:.3g} GFLOPs, {sft['gflops']:.3g} GFLOPs total.",
                    )
                )
            for split, by_model in self._turns(name).items():
                turns = sorted({int(t) for by in by_model.values() for t in by})
                lines = [
                    "| model | " + " | ".join(f"{t} turn{'s' if t > 1 else ''}" for t in turns) + " |",
                    "|---" * (len(turns) + 1) + "|",
                ]
                for label, by in by_model.items():
                    lines.append(f"| {label} | " + " | ".join(_pct(by[str(t)]) for t in turns) + " |")
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
                res = self.results.get(f"{name}.{label}")
                if res:
                    r = res["results"]
                    out.append(
                        (
                            f"{name}: {title}",
                            "| | ID | OOD |\n|---|---|---|\n"
                            f"| start | {_pct(r['start.id'])} | {_pct(r['start.ood'])} |\n"
                            f"| after RL ({res['gflops']:.3g} GFLOPs) | {_pct(r['after_rl.id'])} | "
                            f"{_pct(r['after_rl.ood'])} |",
                        )
                    )
        return out


# ----------------------------------------------------------------------------- functions


def write_expert(
    spec: TaskSpec,
    kwargs: dict[str, Any],
    n: int,
    seed: int,
    out: Path,
    multi_turn_fraction: float,
    prompt_style: str,
) -> Path:
    """Expert rows for a task with the registry's answer functions (varied formulas, revision
    rows); without the data CLI's extra columns, which the study does not read."""
    from sftvsrl.data.expert import write_task_jsonl

    env_kwargs = {**kwargs, "prompt_style": prompt_style, "max_turns": 2}
    return write_task_jsonl(
        out,
        spec,
        env_kwargs,
        n,
        seed,
        row_extra=False,
        progress=False,
        multi_turn_fraction=multi_turn_fraction,
    )


def corpus_accuracy(
    model: str | Path, n: int, seed: int, mix: dict[str, float] | None = None
) -> dict[str, float]:
    """Greedy exact-match accuracy per corpus kind on ``n`` fresh draws: did stage 0 teach anything?"""
    from sftvsrl.models.loading import load_model
    from sftvsrl.rollout import HFRolloutEngine
    from sftvsrl.study.corpus import corpus_rows

    if n <= 0:
        return {}
    rows = list(corpus_rows(n, seed=seed, mix=mix))
    engine = HFRolloutEngine(load_model(str(model), trainable=False), batch_size=64)
    gens = engine.generate([r["prompt"] for r in rows], max_new_tokens=64, do_sample=False)
    hits: dict[str, list[bool]] = {}
    for row, gen in zip(rows, gens, strict=True):
        hits.setdefault(row["kind"], []).append(gen.text.strip() == row["completion"])
    return {kind: sum(v) / len(v) for kind, v in sorted(hits.items())}


def no_gain(history: list[dict[str, Any]], key: str, patience: int | None) -> bool:
    """Early stopping: the last ``patience`` validations did not beat the best before them.

    ``key`` is ``val_success`` (higher is better) or ``val_loss`` (lower is better); a
    validation without a value for ``key`` never triggers a stop.
    """
    if not patience or len(history) <= patience:
        return False
    values = [h.get(key) for h in history]
    if any(v is None for v in values):
        return False
    sign = 1.0 if key == "val_success" else -1.0
    best = max(sign * v for v in values[:-patience])
    return all(sign * v <= best for v in values[-patience:])


def _eval_loss_at(run_dir: Path, step: int) -> float | None:
    rec = RunDir(run_dir).log.at(step)
    return None if rec is None or rec.get("eval_loss") is None else float(rec["eval_loss"])


def _sft_rate(init_run: Path, overrides: dict[str, Any], world: int = 1) -> tuple[int, float]:
    """(N, tokens per optimizer step) for stage-2 SFT over ``world`` processes, measured from
    the stage-1 run's log (tokens per row) and stage 2's batch settings."""
    run = RunDir(init_run)
    lines = run.log.read()
    first, last = lines[0], lines[-1]
    state = read_trainer_state(run.checkpoints()[-1][1])
    n_params = int(state.flops["n_params"])
    examples = last["examples"] - first["examples"]
    tokens = last["tokens"] - first["tokens"]
    per_row = tokens / examples if examples > 0 else last["tokens"] / max(1, last["examples"])
    init_cfg = {**state.config}
    batch = overrides.get("batch_size", init_cfg.get("batch_size", 32)) * overrides.get(
        "grad_accum", init_cfg.get("grad_accum", 1)
    )
    return n_params, per_row * batch * world


def _rl_summary(rows: list[dict[str, Any]]) -> str:
    """First and last fifth of the PPO updates: the training reward's trend, in numbers."""
    k = max(1, len(rows) // 5)

    def mean(part: list[dict[str, Any]], key: str) -> float:
        values = [r[key] for r in part if r.get(key) is not None]
        return sum(values) / len(values) if values else float("nan")

    head, tail = rows[:k], rows[-k:]
    return (
        f"{len(rows)} updates. Mean reward per answer {mean(head, 'mean_reward'):.2f} over the first {k} "
        f"-> {mean(tail, 'mean_reward'):.2f} over the last {k}; success of ended episodes "
        f"{100 * mean(head, 'success_rate'):.1f}% -> {100 * mean(tail, 'success_rate'):.1f}%; explained "
        f"variance of the value head in the last {k}: {mean(tail, 'explained_variance'):.2f}."
    )


def _point(
    spec: TaskSpec, method: str, step: int, gflops: float, split: str, s: dict[str, Any]
) -> CurvePoint:
    lo, hi = s["ci95"]
    return CurvePoint(
        task=spec.family,
        variant=spec.variant,
        method=method,
        step=step,
        gflops=gflops,
        split=split,
        success_rate=float(s["success_rate"]),
        ci_low=float(lo),
        ci_high=float(hi),
        episodes=int(s["episodes"]),
        recognition_acc=s.get(spec.curve_metric) if spec.curve_metric else None,
    )


def _pct(v: list[float]) -> str:
    return f"{100 * v[0]:.1f} [{100 * v[1]:.1f}, {100 * v[2]:.1f}]"


def _versions() -> str:
    import torch
    import transformers

    import sftvsrl

    return (
        f"python {platform.python_version()}, torch {torch.__version__}, transformers "
        f"{transformers.__version__}, sftvsrl {getattr(sftvsrl, '__version__', '?')}, {platform.machine()}"
    )


def run_study(
    cfg: StudyConfig, out: str | Path, *, command: str = "", after_stage: Callable[[str], None] | None = None
) -> Path:
    """Run (or resume) the study in ``out``; returns the path of ``report.md``."""
    start = time.time()
    report = Study(cfg, out, command=command or " ".join(sys.argv), after_stage=after_stage).run()
    print(f"study finished in {(time.time() - start) / 60:.1f} min: {report}", file=sys.stderr)
    return report


__all__ = ["Study", "run_study"]
