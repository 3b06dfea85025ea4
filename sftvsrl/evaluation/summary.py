"""Turn per-episode evaluation records into the summary a study reads.

Every share in a summary comes with a 95% Wilson interval (``<key>_ci95``, or ``ci95`` for
the success rate) and the number of answers (or episodes) it was computed over
(``<key>_n``): a share over 4 answers and one over 400 must not look alike. Which fine
metrics a task has is declared by the task in :mod:`sftvsrl.envs.tasks` (``Task.metrics``);
the functions here compute them from the per-answer fields the runner records.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sftvsrl.evaluation.wilson import wilson_interval

# Outcome names that mean "the model misread the image": GeneralPoints-VL's
# ``misrecognized_*`` (wrong cards) and V-IRL-VL's ``landmark_error``.
RECOGNITION_FAILURES = ("recogn", "landmark_error")
# An answer with this outcome had no readable visual claim unless the env says it was
# recognised: GeneralPoints-VL prefixes ``misrecognized_`` whenever it could read (and
# reject) the "cards" field, so a plain ``bad_format`` with ``recognized`` False had none;
# V-IRL-VL returns ``bad_format`` before it reads the "landmarks" field.
UNREADABLE = "bad_format"

# The fine metrics: summary key of the share -> (key of its 95% interval, key of its n).
FINE_METRICS: dict[str, tuple[str, str]] = {
    "recognition_accuracy": ("recognition_ci95", "recognition_n"),
    "rule_following": ("rule_following_ci95", "rule_following_n"),
    "valid_action": ("valid_action_ci95", "valid_action_n"),
    "step_accuracy": ("step_accuracy_ci95", "step_accuracy_n"),
}


def share(key: str, hits: int, n: int) -> dict[str, Any]:
    """``{key: hits/n, <ci key>: [lo, hi], <n key>: n}``; the share and interval are None
    when there is nothing to count (n = 0), never a misleading 0.0."""
    ci_key, n_key = FINE_METRICS.get(key, (f"{key}_ci95", f"{key}_n"))
    return {
        key: hits / n if n else None,
        ci_key: list(wilson_interval(hits, n)) if n else None,
        n_key: n,
    }


def answer_recognized(info: dict[str, Any]) -> bool | None:
    """Whether the answer read the visual input right: None when it is not assessable (the
    env says None, or the answer was unparsable and the env did not say it read the image
    right); else ``info["recognized"]`` when the env reports it, else False exactly when the
    outcome names a recognition failure."""
    outcome = str(info.get("outcome", "")).lower()
    if "recognized" in info:
        value = info["recognized"]
        if value is None or (outcome == UNREADABLE and not value):
            return None
        return bool(value)
    if outcome == UNREADABLE:
        return None
    return not any(marker in outcome for marker in RECOGNITION_FAILURES)


def _turns(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for r in records for t in r["turns"]]


def recognition_metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Share of assessable answers that read the image right, with a 95% Wilson interval and
    the number of answers it is over: a -VL task's metric in the task registry (cards for
    GeneralPoints, landmarks for V-IRL). Unparsable answers are left out of the denominator
    (also in records written before the runner did so): with no assessable answer the
    accuracy is None with n = 0."""
    recog = []
    for t in _turns(records):
        value = t.get("recognized")
        if value is None or (t.get("outcome") == UNREADABLE and not value):
            continue
        recog.append(bool(value))
    out = share("recognition_accuracy", sum(recog), len(recog))
    out["recognition_answers"] = len(recog)  # the older name of recognition_n
    return out


def _flag_share(records: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """Share of answers whose per-answer flag ``key`` is true, over the answers that carry it."""
    flags = [bool(t[key]) for t in _turns(records) if t.get(key) is not None]
    return share(key, sum(flags), len(flags))


def rule_following_metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    """GeneralPoints: share of answers whose ``number`` field lists the cards' values under
    the episode's rule, right formula or not (the verifier's ``rule_following``); answers
    with no readable field count as not following."""
    return _flag_share(records, "rule_following")


def valid_action_metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    """V-IRL: share of answers whose action parses and belongs to the episode's action space
    (the verifier's ``valid_action``), right or wrong."""
    return _flag_share(records, "valid_action")


def step_accuracy_metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    """V-IRL: over every answer given (each is one attempted action at the current route
    step; a revision after a wrong action is another attempt), the share that was the right
    action (outcome ``correct``, reward +1)."""
    turns = _turns(records)
    return share("step_accuracy", sum(1 for t in turns if t.get("outcome") == "correct"), len(turns))


def outcome_shares(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Every answer outcome's share of all answers, with 95% Wilson intervals (the shares
    sum to 1; ``answers`` is the n they are over)."""
    counts = Counter(str(t["outcome"]) for t in _turns(records))
    n = sum(counts.values())
    return {
        "outcome_shares": {o: c / n for o, c in sorted(counts.items())},
        "outcome_shares_ci95": {o: list(wilson_interval(c, n)) for o, c in sorted(counts.items())},
    }


def summarize(
    records: list[dict[str, Any]], vision: bool = False, *, env_id: str | None = None
) -> dict[str, Any]:
    """Success rate with a 95% Wilson interval, outcome counts and shares, turns, returns,
    and the task's own metrics from the task registry. For an env outside the registry,
    recognition is summarised when it is vision or reports ``recognized``."""
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
        **outcome_shares(records),
        "mean_turns": answers / n if n else 0.0,
        "mean_return": sum(r["return"] for r in records) / n if n else 0.0,
    }
    task = task_for_env(env_id) if env_id else None
    if task is not None:
        out.update(task.summary_metrics(records))
    elif vision or any("recognized" in t for r in records for t in r["turns"]):
        out.update(recognition_metrics(records))
    return out
