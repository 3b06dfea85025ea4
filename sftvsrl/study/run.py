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


__all__ = ["Study", "corpus_accuracy", "no_gain", "run_study", "write_expert"]
