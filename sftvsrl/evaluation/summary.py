"""Turn per-episode evaluation records into the summary a study reads."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sftvsrl.evaluation.wilson import wilson_interval

# Outcome names that mean "the model misread the image": GeneralPoints-VL's
# ``misrecognized_*`` (wrong cards) and V-IRL-VL's ``landmark_error``.
RECOGNITION_FAILURES = ("recogn", "landmark_error")


def answer_recognized(info: dict[str, Any]) -> bool | None:
    """Whether the answer read the visual input right: ``info["recognized"]`` when the env
    reports it (None = not assessable, e.g. unparsable answer), else False exactly when the
    outcome names a recognition failure."""
    if "recognized" in info:
        value = info["recognized"]
        return None if value is None else bool(value)
    outcome = str(info.get("outcome", "")).lower()
    return not any(marker in outcome for marker in RECOGNITION_FAILURES)


def recognition_metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Share of assessable answers that read the image right, with a 95% Wilson interval:
    a -VL task's metric in the task registry (cards for GeneralPoints, landmarks for V-IRL)."""
    recog = [t["recognized"] for r in records for t in r["turns"] if t.get("recognized") is not None]
    k = sum(1 for x in recog if x)
    return {
        "recognition_accuracy": k / len(recog) if recog else None,
        "recognition_ci95": list(wilson_interval(k, len(recog))) if recog else None,
        "recognition_answers": len(recog),
    }


def summarize(
    records: list[dict[str, Any]], vision: bool = False, *, env_id: str | None = None
) -> dict[str, Any]:
    """Success rate with a 95% Wilson interval, outcome counts, turns, returns, and the task's
    own metrics from the task registry. For an env outside the registry, recognition is
    summarised when it is vision or reports ``recognized``."""
    from sftvsrl.envs.tasks import task_for_env

    n = len(records)
    wins = sum(1 for r in records if r["success"])
    lo, hi = wilson_interval(wins, n)
    final = Counter(r["final_outcome"] for r in records)
    per_answer = Counter(t["outcome"] for r in records for t in r["turns"])
    answers = sum(len(r["turns"]) for r in records)
    out: dict[str, Any] = {
        "episodes": n,
        "successes": wins,
        "success_rate": wins / n if n else 0.0,
        "ci95": [lo, hi],
        "final_outcomes": dict(sorted(final.items())),
        "answer_outcomes": dict(sorted(per_answer.items())),
        "answers": answers,
        "mean_turns": answers / n if n else 0.0,
        "mean_return": sum(r["return"] for r in records) / n if n else 0.0,
    }
    task = task_for_env(env_id) if env_id else None
    if task is not None:
        out.update(task.summary_metrics(records))
    elif vision or any("recognized" in t for r in records for t in r["turns"]):
        out.update(recognition_metrics(records))
    return out
