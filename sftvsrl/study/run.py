"""Entry point of the study: :func:`run_study` (the stages live in :mod:`sftvsrl.study.pipeline`)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

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
) -> Path:
    """Run (or resume) the study in ``out``; returns the path of ``report.md``.

    A re-run whose settings differ from the stored stages' raises
    :class:`~sftvsrl.study.fingerprints.StudyChanged` unless ``rerun_changed``.
    """
    if cfg.seeds is not None:
        return run_seeds(cfg, out, command=command, after_stage=after_stage, rerun_changed=rerun_changed)
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
) -> Path:
    """The ``seeds`` option: one study per seed in ``out/seed-<s>/`` and a combined
    ``out/report.md`` (per-seed numbers and intervals pooled over seeds).

    Stage 0 does not depend on the study seed when ``corpus.seed`` is set: it then runs once,
    in ``out/shared/``, and every seed's study reads its base model."""
    from sftvsrl.atomic import atomic_write_text
    from sftvsrl.study.curves import read_curves
    from sftvsrl.study.effects import build_seeds_report

    assert cfg.seeds is not None
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
    by_seed = {}
    study = None
    for seed in cfg.seeds:
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
    meta = {"preset": cfg.preset, "command": command, "shared": "shared/" if shared else ""}
    report = out / "report.md"
    assert study is not None
    study.procs.main_only(lambda: atomic_write_text(report, build_seeds_report(by_seed, meta)))
    print(
        f"study over seeds {cfg.seeds} finished in {(time.time() - start) / 60:.1f} min: {report}",
        file=sys.stderr,
    )
    return report


__all__ = ["Study", "corpus_accuracy", "no_gain", "run_seeds", "run_study", "write_expert"]
