"""Entry point of the study: :func:`run_study` (the stages live in :mod:`sftvsrl.study.pipeline`)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from sftvsrl.errors import ConfigError, UserError
from sftvsrl.study.config import StudyConfig
from sftvsrl.study.pipeline import Study
from sftvsrl.study.report import rl_summary as _rl_summary  # noqa: F401  (the old name)
from sftvsrl.study.tools import corpus_accuracy, no_gain, write_expert


def run_study(
    cfg: StudyConfig,
    out: str | Path,
    *,
    command: str = "",
    after_stage: Callable[[str], None] | None = None,
    rerun_changed: bool = False,
    jobs: int = 1,
    only_seed: int | None = None,
) -> Path:
    """Run (or resume) the study in ``out``; returns the path of ``report.md``.

    A re-run whose settings differ from the stored stages' raises
    :class:`~sftvsrl.study.fingerprints.StudyChanged` unless ``rerun_changed``.
    ``jobs`` and ``only_seed`` apply to the ``seeds`` option (:func:`run_seeds`).
    """
    if cfg.seeds is not None:
        return run_seeds(
            cfg,
            out,
            command=command,
            after_stage=after_stage,
            rerun_changed=rerun_changed,
            jobs=jobs,
            only_seed=only_seed,
        )
    if jobs != 1 or only_seed is not None:
        raise ConfigError("--jobs and --only-seed need the seeds option, e.g. seeds=[0,1]")
    start = time.time()
    study = Study(
        cfg, out, command=command or " ".join(sys.argv), after_stage=after_stage, rerun_changed=rerun_changed
    )
    report = study.run()
    if study.reused and len(study.reused) == len(study.plan):
        print(
            f"study: every stage was reused from an earlier run in {study.out} (nothing to do); "
            f"report: {report}",
            file=sys.stderr,
        )
    else:
        print(f"study finished in {(time.time() - start) / 60:.1f} min: {report}", file=sys.stderr)
    return report


def run_seeds(
    cfg: StudyConfig,
    out: str | Path,
    *,
    command: str = "",
    after_stage: Callable[[str], None] | None = None,
    rerun_changed: bool = False,
    jobs: int = 1,
    only_seed: int | None = None,
) -> Path:
    """The ``seeds`` option: one study per seed in ``out/seed-<s>/`` and a combined
    ``out/report.md`` (per-seed numbers and intervals pooled over seeds).

    Stage 0 does not depend on the study seed when ``corpus.seed`` is set: it then runs once,
    in ``out/shared/``, and every seed's study reads its base model. ``only_seed``: stage 0
    and that seed only, no combined report (e.g. one seed per machine). ``jobs`` > 1: after
    stage 0, up to ``jobs`` seeds run at once, each in a process of its own with
    ``threads // jobs`` torch threads (one core each on a 2-core machine), logging to
    ``out/seed-<s>.log``; the combined report is written once all have finished."""
    from sftvsrl.study.curves import read_curves

    assert cfg.seeds is not None
    if only_seed is not None and only_seed not in cfg.seeds:
        raise ConfigError(f"--only-seed {only_seed}: not one of seeds {cfg.seeds}")
    if jobs < 1:
        raise ConfigError(f"--jobs {jobs}: must be at least 1")
    out = Path(out)
    command = command or " ".join(sys.argv)
    start = time.time()
    shared = None
    if cfg.pretrain and cfg.corpus.seed is not None:
        shared = Study(
            cfg.model_copy(update={"seeds": None}),
            out / "shared",
            command=command,
            after_stage=after_stage,
            rerun_changed=rerun_changed,
            stage0_only=True,
        )
    if shared is not None:
        shared.run_pretrain()
    if jobs > 1 and only_seed is None:
        run_seed_processes(cfg, out, jobs, rerun_changed)
        # each seed's process wrote its folder (report, curves, figures): read, do not redo
        by_seed = {seed: read_curves(out / f"seed-{seed}" / "curves.csv") for seed in cfg.seeds}
        return write_seeds_report(cfg, out, by_seed, command, start, shared is not None)
    by_seed = {}
    study = None
    for seed in cfg.seeds if only_seed is None else [only_seed]:
        one = cfg.model_copy(update={"seed": seed, "seeds": None})
        study = Study(
            one,
            out / f"seed-{seed}",
            command=command,
            after_stage=after_stage,
            rerun_changed=rerun_changed,
            shared=shared,
        )
        study.run()
        by_seed[seed] = read_curves(study.out / "curves.csv")
    if only_seed is not None:
        assert study is not None
        print(
            f"study: seed {only_seed} finished; run without --only-seed for the combined report",
            file=sys.stderr,
        )
        return study.out / "report.md"
    assert study is not None
    if not study.procs.is_main:
        return out / "report.md"
    return write_seeds_report(cfg, out, by_seed, command, start, shared is not None)


def write_seeds_report(
    cfg: StudyConfig, out: Path, by_seed: dict, command: str, start: float, shared: bool
) -> Path:
    """``out/report.md`` over the seeds' curves (main process only)."""
    from sftvsrl.atomic import atomic_write_text
    from sftvsrl.study.effects import build_seeds_report

    meta = {"preset": cfg.preset, "command": command, "shared": "shared/" if shared else ""}
    report = out / "report.md"
    atomic_write_text(report, build_seeds_report(by_seed, meta))
    print(
        f"study over seeds {cfg.seeds} finished in {(time.time() - start) / 60:.1f} min: {report}",
        file=sys.stderr,
    )
    return report


def run_seed_processes(cfg: StudyConfig, out: Path, jobs: int, rerun_changed: bool) -> None:
    """Run every seed's study as ``sftvsrl study --only-seed <s>`` in its own process, at most
    ``jobs`` at once; a failed seed stops the study with the path of its log."""
    import os
    import subprocess

    from sftvsrl.config import dump_config

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("--jobs runs seeds as separate processes: use it without a multi-process launcher")
    threads = max(1, (cfg.threads or os.cpu_count() or 1) // jobs)
    config = out / "seeds_config.yaml"
    dump_config(cfg, config)
    waiting, running = list(cfg.seeds or []), {}
    failed = []
    while waiting or running:
        while waiting and len(running) < jobs:
            seed = waiting.pop(0)
            log = out / f"seed-{seed}.log"
            argv = [sys.executable, "-m", "sftvsrl", "study", "--config", str(config), "--out", str(out)]
            argv += ["--only-seed", str(seed), *(["--rerun-changed"] * rerun_changed), f"threads={threads}"]
            handle = log.open("w", encoding="utf-8")
            env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
            running[seed] = (
                subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=env),
                log,
                handle,
            )
            print(
                f"study: seed {seed} started in a process of its own, {threads} thread(s); log: {log}",
                file=sys.stderr,
            )
        time.sleep(1.0)
        for seed, (proc, log, handle) in list(running.items()):
            if proc.poll() is not None:
                handle.close()
                del running[seed]
                print(f"study: seed {seed} ended with exit status {proc.returncode}", file=sys.stderr)
                if proc.returncode:
                    failed.append(f"seed {seed} (log: {log})")
    if failed:
        raise UserError("study: " + ", ".join(failed) + " failed; re-running resumes them")


__all__ = ["Study", "corpus_accuracy", "no_gain", "run_seeds", "run_study", "write_expert"]
