"""The study, stage by stage: pretrain (tiny only) -> SFT init -> SFT and RL at matched compute.

Every stage is a :class:`StageRunner` stage (finished ones are skipped on re-run) and every
trainer inside a stage resumes from its own checkpoints, so an interrupted study loses at
most one checkpoint interval. Evaluations are cached one file per (checkpoint, split).

Before anything runs, each stage's fingerprint (:mod:`sftvsrl.study.fingerprints`) is
compared with the one stored with its result: a re-run with other settings stops with a
one-line error, or with ``rerun_changed`` redoes the changed stages and those reading from
them (their old outputs are kept as ``*.old-<n>`` until the study has finished).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sftvsrl.flops import sft_steps_for_budget
from sftvsrl.runs import RunDir, export_model, lineage_gflops, read_trainer_state
from sftvsrl.study import fingerprints as fp
from sftvsrl.study import seeds, trainers
from sftvsrl.study.config import StudyConfig, TaskSpec, task_spec
from sftvsrl.study.curves import CurvePoint
from sftvsrl.study.dist import Processes
from sftvsrl.study.evaluate import KLProbe, curve_point, evaluate, rate
from sftvsrl.study.results import (
    CurvesResult,
    DataResult,
    InitResult,
    PretrainResult,
    RLFromResult,
    RLResult,
    SFTResult,
    Stage1CurvesResult,
    StageResult,
    TurnsResult,
    Validation,
)
from sftvsrl.study.stages import StageRunner
from sftvsrl.study.tools import corpus_accuracy, eval_loss_at, no_gain, sft_rate, write_expert

R = TypeVar("R", bound=StageResult)


class Study:
    def __init__(
        self,
        cfg: StudyConfig,
        out: str | Path,
        *,
        command: str = "",
        after_stage: Callable[[str], None] | None = None,
        rerun_changed: bool = False,
        shared: Study | None = None,
        stage0_only: bool = False,
    ) -> None:
        """``shared``: a study (of the same config but for its seed) whose stage 0 this one
        reads instead of running its own (the ``seeds`` option with a fixed ``corpus.seed``);
        ``stage0_only``: this study is such a shared stage 0 and plans nothing else."""
        self.cfg = trainers.check_sections(cfg)
        self.shared = shared
        self.stage0_only = stage0_only
        self.out = Path(out)
        self.command = command
        self.after_stage = after_stage
        self.rerun_changed = rerun_changed
        self.specs = {name: task_spec(name) for name in cfg.tasks}
        self.task_cfg = {name: trainers.check_sections(cfg.for_task(name)) for name in cfg.tasks}
        self.plan = self._plan()
        self.fingerprints = self._fingerprints()
        self.procs = Processes(cfg.dist_timeout_min)
        self.runner = StageRunner(self.out, plan=list(self.plan), procs=self.procs)
        self.results: dict[str, StageResult] = {}
        self.records: dict[str, dict[str, Any]] = {}  # the stored files, with the runner's keys

    # ------------------------------------------------------------------------- plan

    def _plan(self) -> dict[str, tuple[str, str]]:
        """Stage name -> (kind, task), in running order."""
        own_pretrain = self.cfg.pretrain and self.shared is None
        return fp.stage_plan(self.cfg, own_pretrain=own_pretrain, stage0_only=self.stage0_only)

    def _fingerprints(self) -> dict[str, dict[str, Any]]:
        flat = fp.flatten(self.cfg.model_dump(mode="json"))
        out: dict[str, dict[str, Any]] = {}
        if self.shared is not None and self.cfg.pretrain:
            out["pretrain"] = self.shared.fingerprints["pretrain"]
        for name, (kind, task) in self.plan.items():
            ups = fp.upstream(kind, task, self.cfg.pretrain)
            mine = fp.flatten(self.task_cfg[task].model_dump(mode="json")) if task else flat
            out[name] = fp.fingerprint(fp.settings_of(kind, mine), {u: out[u]["hash"] for u in ups})
        return out

    def outputs(self, name: str) -> list[Path]:
        """What stage ``name`` writes besides its result file."""
        kind, task = self.plan[name]
        return fp.stage_outputs(self.out, kind, task)

    def changes(self) -> list[fp.Change]:
        """Stored stages whose fingerprint differs from this config's."""
        found = []
        for name in self.plan:
            stored = self.runner.stored(name)
            if stored is not None:
                change = fp.compare(name, stored.get("fingerprint"), self.fingerprints[name])
                if change:
                    found.append(change)
        return found

    def check(self) -> None:
        """Stop on changed settings, or (``rerun_changed``) move the changed stages aside."""
        changes = self.changes()
        if not changes:
            return
        if not self.rerun_changed:
            raise fp.StudyChanged(fp.describe(changes, self.out))

        def aside() -> None:
            for c in changes:
                for path in [*self.outputs(c.stage), self.runner.result_path(c.stage)]:
                    fp.move_aside(path)

        self.procs.main_only(aside)

    def drop_old(self) -> None:
        """Delete the outputs moved aside by ``rerun_changed`` (the new ones are complete)."""
        for name in self.plan:
            for path in [*self.outputs(name), self.runner.result_path(name)]:
                fp.delete_aside(path)

    # ------------------------------------------------------------------------- stages

    def stage(self, name: str, fn: Callable[[], R | None], cls: type[R], *, main_only: bool = False) -> R:
        """Run (or skip) a stage; ``main_only`` stages (evaluations) run on the main process,
        and the others receive its stored result."""
        if main_only and not self.procs.is_main:
            fn = lambda: None  # noqa: E731

        def call() -> dict[str, Any]:
            result = fn()
            return {} if result is None else result.to_dict()

        record = self.runner.run(name, call, fingerprint=self.fingerprints[name])
        self.records[name] = record
        result = self.results[name] = cls.from_dict(record)
        if self.after_stage:
            self.after_stage(name)
        return result

    def run_rl(self, cfg: StudyConfig, spec: TaskSpec, init: str, out_dir: Path) -> Path:
        rl = trainers.rl_config(
            cfg,
            init=init,
            out_dir=out_dir,
            env_id=spec.env_id,
            env_kwargs={**spec.train, "prompt_style": cfg.prompt_style},
            updates=cfg.stage2.rl_updates,
        )
        run = RunDir(out_dir)
        resume = run.latest() is not None
        if not resume:  # drop the log of an attempt that never reached a checkpoint
            self.procs.main_only(lambda: run.log.truncate(0))
        trainers.train_rl(rl, resume=resume)
        return run.checkpoints()[-1][1]

    def pretrain(self) -> PretrainResult | None:
        from sftvsrl.study.corpus import write_corpus_jsonl

        c = self.cfg.corpus
        data = self.out / "data" / "corpus.jsonl"
        if not data.is_file():
            seed = self.cfg.corpus_seed
            self.procs.main_only(lambda: write_corpus_jsonl(data, c.rows, seed=seed, mix=c.mix))
        sft = trainers.sft_config(
            self.cfg,
            "corpus.sft",
            model="tiny-lm",
            train=data,
            out_dir=self.out / "stage0_pretrain",
            steps=c.steps,
            save_every=max(1, c.steps // 2),
            seed=self.cfg.corpus_seed,
        )
        ckpt = trainers.run_sft(sft)
        base = self.out / "base_model"
        self.procs.main_only(lambda: export_model(ckpt, base))
        if not self.procs.is_main:
            return None  # the main process's result is stored and shared
        probe = corpus_accuracy(base, c.probe_rows, seed=seeds.probe_seed(self.cfg.corpus_seed), mix=c.mix)
        return PretrainResult(str(base), str(ckpt), lineage_gflops(ckpt), c.rows, probe)

    def task_data(self, name: str, spec: TaskSpec) -> DataResult:
        cfg = self.task_cfg[name]
        i = cfg.init
        folder = self.out / name / "data"
        files = {
            "init": (spec.train, i.rows, seeds.init_data_seed(cfg.seed), i.multi_turn_fraction),
            "more": (
                spec.train,
                cfg.stage2.sft_rows,
                seeds.more_data_seed(cfg.seed),
                i.multi_turn_fraction,
            ),
            "val": (spec.splits["id"], i.val_rows, seeds.validation_seed(cfg.eval.seed), 0.0),
        }

        def write_missing() -> None:
            for key, (kwargs, n, first_seed, mt) in files.items():
                path = folder / f"{key}.jsonl"
                if not path.is_file():
                    write_expert(spec, kwargs, n, first_seed, path, mt, cfg.prompt_style)

        self.procs.main_only(write_missing)
        return DataResult(**{key: str(folder / f"{key}.jsonl") for key in files})

    def init_sft(self, name: str, spec: TaskSpec, base: str, data: DataResult) -> InitResult | None:
        cfg = self.task_cfg[name]
        i = cfg.init
        run_dir = self.out / name / "stage1_init"
        val_dir = self.out / name / "evals" / "validation"
        history: list[Validation] = []
        stopped_early = False

        def validate(path: Path) -> bool:
            """Evaluate one checkpoint (main process only); True: stop training here."""
            nonlocal stopped_early
            step = read_trainer_state(path).step
            summary = evaluate(
                cfg,
                path,
                spec,
                spec.splits["id"],
                val_dir / f"step-{step:08d}.json",
                episodes=i.val_episodes,
                max_turns=1,  # first-answer success: cheap, and what SFT directly trains
                seed=seeds.validation_seed(cfg.eval.seed),
            )
            history.append(
                Validation(
                    step,
                    str(path),
                    summary["success_rate"],
                    lineage_gflops(path),
                    eval_loss_at(run_dir, step),
                )
            )
            stopped_early = stopped_early or (i.select != "last" and no_gain(history, i.select, i.patience))
            return stopped_early

        def replay() -> bool:
            """Validations finished before an interruption; True if they already stop training."""
            for step, path in RunDir(run_dir).checkpoints():
                if (val_dir / f"step-{step:08d}.json").is_file() and validate(path):
                    return True
            return False

        by_loss = i.select == "val_loss"
        sft = trainers.sft_config(
            cfg,
            "init.sft",
            model=base,
            train=Path(data.init),
            out_dir=run_dir,
            steps=i.steps,
            save_every=i.eval_every,
            eval_file=Path(data.val) if by_loss else None,
            eval_every=i.eval_every if by_loss else None,
        )
        if not self.procs.from_main(replay() if self.procs.is_main else False):
            trainers.run_sft(sft, on_checkpoint=validate)  # returns early when validate says stop
        if not self.procs.is_main:
            return None  # the main process's result is stored and shared
        stopped = stopped_early  # the post-training validations below do not count as a stop
        done = {h.step for h in history}
        for step, path in RunDir(run_dir).checkpoints():  # e.g. the final step when not a multiple
            if step not in done:
                validate(path)
        history.sort(key=lambda h: h.step)
        if i.select == "last":
            chosen = history[-1]
        elif by_loss and all(h.val_loss is not None for h in history):
            chosen = min(history, key=lambda h: (h.val_loss, h.step))
        else:  # best validation success; ties go to the earlier (less trained) checkpoint
            chosen = max(history, key=lambda h: (h.val_success, -h.step))
        return InitResult(chosen.checkpoint, chosen.step, chosen.gflops, history, stopped, i.select)

    def stage2_rl(self, name: str, spec: TaskSpec, init: InitResult) -> RLResult:
        cfg = self.task_cfg[name]
        run_dir = self.out / name / "stage2_rl"
        final = self.run_rl(cfg, spec, init.checkpoint, run_dir)
        return RLResult(str(run_dir), str(final), lineage_gflops(final))

    def stage2_sft(self, name: str, init: InitResult, rl: RLResult, data: DataResult) -> SFTResult:
        cfg = self.task_cfg[name]
        s = cfg.stage2
        budget = s.budget_gflops if s.budget_gflops is not None else rl.gflops - init.gflops
        n_params, per_row = sft_rate(self.out / name / "stage1_init")
        batch = trainers.typed_section("stage2.sft", s.sft)
        tokens_per_step = per_row * batch.batch_size * batch.grad_accum * self.procs.count
        steps = sft_steps_for_budget(budget, n_params, tokens_per_step)
        run_dir = self.out / name / "stage2_sft"
        sft = trainers.sft_config(
            cfg,
            "stage2.sft",
            model=init.checkpoint,
            train=Path(data.more),
            out_dir=run_dir,
            steps=steps,
            save_every=max(1, steps // s.evals),
        )
        final = trainers.run_sft(sft)
        return SFTResult(str(run_dir), str(final), steps, budget, lineage_gflops(final))

    def evaluate_curves(self, name: str, spec: TaskSpec, init: InitResult, base: str) -> CurvesResult:
        from rich.progress import Progress

        cfg = self.task_cfg[name]
        kl = KLProbe(cfg, spec, {"base": base, "init": init.checkpoint})
        runs = {
            "SFT": RunDir(self.out / name / "stage2_sft").checkpoints(),
            "RL": RunDir(self.out / name / "stage2_rl").checkpoints(),
        }
        jobs = [("init", 0, Path(init.checkpoint))] + [(m, st, p) for m, pts in runs.items() for st, p in pts]
        points = []
        with Progress(transient=True) as bar:
            task = bar.add_task(f"evaluating {name}", total=len(jobs) * len(spec.splits))
            for method, step, path in jobs:
                for split, kwargs in spec.splits.items():
                    cache = self.out / name / "evals" / method / f"step-{step:08d}" / f"{split}.json"
                    summary = evaluate(cfg, path, spec, kwargs, cache)
                    dist = kl.of(path, split, cache.with_name(f"{split}.kl.json"))
                    bar.advance(task)
                    for m in ("SFT", "RL") if method == "init" else (method,):
                        points.append(
                            curve_point(spec, m, step, lineage_gflops(path), split, summary, **dist)
                        )
        return CurvesResult([p.__dict__ for p in points], kl.seconds)

    def stage1_curves(self, name: str, spec: TaskSpec, init: InitResult, base: str) -> Stage1CurvesResult:
        """Every stage-1 checkpoint on every split with the dense metrics and KL to the base:
        where the OOD skill stands when the init is chosen (selection still uses ID data)."""
        cfg = self.task_cfg[name]
        n = cfg.init.curve_episodes
        kl = KLProbe(cfg, spec, {"base": base})
        points = []
        for step, path in RunDir(self.out / name / "stage1_init").checkpoints():
            for split, kwargs in spec.splits.items():
                cache = self.out / name / "evals" / "stage1" / f"step-{step:08d}" / f"{split}.json"
                summary = evaluate(cfg, path, spec, kwargs, cache, episodes=n)
                dist = kl.of(path, split, cache.with_name(f"{split}.kl.json"))
                points.append(curve_point(spec, "stage1", step, lineage_gflops(path), split, summary, **dist))
        return Stage1CurvesResult([p.__dict__ for p in points], init.step, n, kl.seconds)

    def turns_ablation(
        self, name: str, spec: TaskSpec, init: InitResult, sft: SFTResult, rl: RLResult
    ) -> TurnsResult:
        """Success by verification turns for init, final SFT and final RL, per swept split."""
        cfg = self.task_cfg[name]
        a = cfg.ablations
        out: dict[str, dict[str, dict[str, list[float]]]] = {}
        for split in a.turns_splits:
            for label, path in (("init", init.checkpoint), ("SFT", sft.final), ("RL", rl.final)):
                step = 0 if label == "init" else read_trainer_state(path).step
                curve_eval = self.out / name / "evals" / label / f"step-{step:08d}" / f"{split}.json"
                for turns in a.turns:
                    cache = self.out / name / "evals" / "turns" / label / f"{split}-{turns}.json"
                    if turns == cfg.eval.max_turns and curve_eval.is_file():
                        cache = curve_eval  # the same episodes at the same turns: already evaluated
                    s = evaluate(cfg, path, spec, spec.splits[split], cache, max_turns=turns)
                    out.setdefault(split, {}).setdefault(label, {})[str(turns)] = rate(s)
        return TurnsResult(out)

    def rl_from(self, name: str, spec: TaskSpec, label: str, start: str) -> RLFromResult | None:
        cfg = self.task_cfg[name]
        run_dir = self.out / name / f"ablation_{label}"
        final = self.run_rl(cfg, spec, start, run_dir / "rl")
        if not self.procs.is_main:
            return None  # evaluations run once; the main process's result is stored and shared
        rows = {}
        for tag, path in (("start", start), ("after_rl", final)):
            for split in ("id", "ood"):
                cache = run_dir / "evals" / tag / f"{split}.json"
                rows[f"{tag}.{split}"] = rate(evaluate(cfg, path, spec, spec.splits[split], cache))
        return RLFromResult(start, str(final), lineage_gflops(final), rows)

    def overfit_start(self, name: str, init: InitResult, data: DataResult) -> str:
        cfg = self.task_cfg[name]
        steps = cfg.ablations.overfit_steps
        sft = trainers.sft_config(
            cfg,
            "init.sft",
            model=init.checkpoint,
            train=Path(data.init),
            out_dir=self.out / name / "ablation_rl_from_overfit" / "sft",
            steps=steps,
            save_every=steps,
        )
        return str(trainers.run_sft(sft))

    # ------------------------------------------------------------------------- the study

    def run(self) -> Path:
        from sftvsrl.study.report import write_study_outputs

        if self.cfg.threads:
            import torch

            torch.set_num_threads(self.cfg.threads)
        self.out.mkdir(parents=True, exist_ok=True)
        self.check()
        base_text = self.cfg.model
        if self.cfg.pretrain and self.shared is not None:
            pre = self.shared.run_pretrain()
            self.results["pretrain"], self.records["pretrain"] = pre, self.shared.records["pretrain"]
            base_text = pre.base
        elif self.cfg.pretrain:
            base_text = self.run_pretrain().base
        points: list[CurvePoint] = []
        for name, spec in self.specs.items():
            points += self.run_task(name, spec, base_text if not spec.vision else self.cfg.model_for(spec))
        self.procs.main_only(lambda: (write_study_outputs(self, points), self.drop_old()))
        return self.out / "report.md"

    def run_pretrain(self) -> PretrainResult:
        """Stage 0 alone (run, or skipped when stored): the base model of the text tasks."""
        if "pretrain" not in self.results:
            self.out.mkdir(parents=True, exist_ok=True)
            if self.stage0_only:
                self.check()
            self.stage("pretrain", self.pretrain, PretrainResult)
        return self.results["pretrain"]  # type: ignore[return-value]

    def run_task(self, name: str, spec: TaskSpec, base: str) -> list[CurvePoint]:
        """Stages 1 and 2, the curves and the ablations of one task variant."""
        cfg = self.task_cfg[name]
        data = self.stage(f"{name}.data", lambda: self.task_data(name, spec), DataResult)
        init = self.stage(f"{name}.init", lambda: self.init_sft(name, spec, base, data), InitResult)
        rl = self.stage(f"{name}.rl", lambda: self.stage2_rl(name, spec, init), RLResult)
        sft = self.stage(f"{name}.sft", lambda: self.stage2_sft(name, init, rl, data), SFTResult)
        if cfg.init.curve_episodes > 0:
            self.stage(
                f"{name}.init_curves",
                lambda: self.stage1_curves(name, spec, init, base),
                Stage1CurvesResult,
                main_only=True,
            )
        curves = self.stage(
            f"{name}.eval", lambda: self.evaluate_curves(name, spec, init, base), CurvesResult, main_only=True
        )
        a = cfg.ablations
        if a.turns:
            self.stage(
                f"{name}.turns",
                lambda: self.turns_ablation(name, spec, init, sft, rl),
                TurnsResult,
                main_only=True,
            )
        if a.rl_from_base:
            self.stage(
                f"{name}.rl_from_base", lambda: self.rl_from(name, spec, "rl_from_base", base), RLFromResult
            )
        if a.rl_from_overfit:
            self.stage(
                f"{name}.rl_from_overfit",
                lambda: self.rl_from(name, spec, "rl_from_overfit", self.overfit_start(name, init, data)),
                RLFromResult,
            )
        return [CurvePoint(**p) for p in curves.points]

    @property
    def reused(self) -> list[str]:
        """Stages whose stored result this run reused."""
        return [n for n in self.records if n in self.runner.skipped]
