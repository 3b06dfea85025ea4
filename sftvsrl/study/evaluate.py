"""Cached evaluations (one JSON file per checkpoint and split) and the curve-point builder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sftvsrl.atomic import atomic_write_text
from sftvsrl.study.config import StudyConfig, TaskSpec
from sftvsrl.study.curves import CurvePoint


def evaluate(
    cfg: StudyConfig,
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
    from sftvsrl.evaluation.runner import evaluate as run_eval
    from sftvsrl.models.loading import load_model
    from sftvsrl.rollout import HFRolloutEngine

    ev = cfg.eval
    pm = load_model(str(ckpt), dtype=cfg.dtype if cfg.dtype != "float16" else "float32", trainable=False)
    engine = HFRolloutEngine(pm, batch_size=ev.num_envs)
    _, summary = run_eval(
        engine,
        spec.env_id,
        {**split_kwargs, "prompt_style": cfg.prompt_style},
        episodes=episodes or ev.episodes,
        max_turns=max_turns or ev.max_turns,
        num_envs=ev.num_envs,
        seed=ev.seed if seed is None else seed,
        max_new_tokens=ev.max_new_tokens,
    )
    atomic_write_text(cache, json.dumps(summary, default=str))
    return summary


def curve_point(
    spec: TaskSpec, method: str, step: int, gflops: float, split: str, s: dict[str, Any]
) -> CurvePoint:
    """The one builder of a curve point from an evaluation summary (success and every fine
    metric the summary holds)."""
    return CurvePoint.from_summary(spec, method, step, gflops, split, s)


def rate(s: dict[str, Any]) -> list[float]:
    """``[success_rate, ci_low, ci_high]`` of a summary."""
    return [s["success_rate"], *s["ci95"]]
