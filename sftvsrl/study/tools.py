"""Helpers of the stages: expert data, the stage-0 probe, early stopping, the SFT token rate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sftvsrl.runs import RunDir, read_trainer_state
from sftvsrl.study.config import TaskSpec


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
    from sftvsrl.models.loading import inference_device, load_model
    from sftvsrl.rollout import HFRolloutEngine
    from sftvsrl.study.corpus import corpus_rows

    if n <= 0:
        return {}
    rows = list(corpus_rows(n, seed=seed, mix=mix))
    engine = HFRolloutEngine(
        load_model(str(model), trainable=False, device=inference_device()), batch_size=64
    )
    gens = engine.generate([r["prompt"] for r in rows], max_new_tokens=64, do_sample=False)
    hits: dict[str, list[bool]] = {}
    for row, gen in zip(rows, gens, strict=True):
        hits.setdefault(row["kind"], []).append(gen.text.strip() == row["completion"])
    return {kind: sum(v) / len(v) for kind, v in sorted(hits.items())}


def no_gain(history: list[Any], key: str, patience: int | None) -> bool:
    """Early stopping: the last ``patience`` validations did not beat the best before them.

    ``history`` holds dicts or :class:`~sftvsrl.study.results.Validation` objects; ``key`` is
    ``val_success`` (higher is better) or ``val_loss`` (lower is better); a validation without
    a value for ``key`` never triggers a stop.
    """
    if not patience or len(history) <= patience:
        return False
    values = [h.get(key) if isinstance(h, dict) else getattr(h, key, None) for h in history]
    if any(v is None for v in values):
        return False
    sign = 1.0 if key == "val_success" else -1.0
    best = max(sign * v for v in values[:-patience])
    return all(sign * v <= best for v in values[-patience:])


def eval_loss_at(run_dir: Path, step: int) -> float | None:
    rec = RunDir(run_dir).log.at(step)
    return None if rec is None or rec.get("eval_loss") is None else float(rec["eval_loss"])


def sft_rate(init_run: Path) -> tuple[int, float]:
    """(N, tokens per training row), measured from the stage-1 run's log and checkpoint."""
    run = RunDir(init_run)
    lines = run.log.read()
    first, last = lines[0], lines[-1]
    state = read_trainer_state(run.checkpoints()[-1][1])
    n_params = int(state.flops["n_params"])
    examples = last["examples"] - first["examples"]
    tokens = last["tokens"] - first["tokens"]
    per_row = tokens / examples if examples > 0 else last["tokens"] / max(1, last["examples"])
    return n_params, per_row
