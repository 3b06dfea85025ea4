"""Roll any sftvsrl environment with its expert and write SFT rows as JSONL.

Every environment follows one contract (``info["expert_answer"]`` scores full reward now),
so one writer serves every task: a row is the observation the model would see and the
expert's answer to it. With ``multi_turn_fraction`` > 0 some rows are revision turns: a
wrong answer is played first, and the row's prompt carries that answer and the verifier's
feedback, teaching the model to use feedback (the paper's sequential revision).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sftvsrl.envs.tasks import Task, make_env

AnswerFn = Callable[[dict[str, Any], random.Random], str | None]


@dataclass
class ExpertRow:
    observation: str | dict[str, Any]
    completion: str
    seed: int
    turn: int
    step: int
    revision: bool
    extra: dict[str, Any]


class ExpertAnswerFailed(RuntimeError):
    """The expert's answer did not score a positive reward: a bug in a task's oracle."""


def expert_rows(
    env_id: str,
    env_kwargs: dict[str, Any],
    n: int,
    seed: int = 0,
    *,
    expert_fn: AnswerFn | None = None,
    wrong_fn: AnswerFn | None = None,
    multi_turn_fraction: float = 0.0,
    row_extra: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Iterator[ExpertRow]:
    """Yield ``n`` rows from episodes seeded ``seed``, ``seed + 1``, ...

    ``expert_fn(info, rng)`` picks the completion (default ``info["expert_answer"]``), so a
    task can vary it among equally correct answers. ``wrong_fn(info, rng)`` makes the wrong
    answer of a revision row (None skips the revision for that step).
    """
    if not 0.0 <= multi_turn_fraction <= 1.0:
        raise ValueError(f"multi_turn_fraction must be in [0, 1], got {multi_turn_fraction}")
    env = make_env(env_id, **env_kwargs)
    produced = 0
    episode = 0
    try:
        while produced < n:
            episode_seed = seed + episode
            episode += 1
            rng = random.Random(episode_seed)
            obs, info = env.reset(seed=episode_seed)
            step = 0
            done = False
            while not done and produced < n:
                revision = False
                if wrong_fn is not None and rng.random() < multi_turn_fraction:
                    wrong = wrong_fn(info, rng)
                    if wrong is not None:
                        obs, _, terminated, truncated, info = env.step(wrong)
                        if terminated or truncated:
                            break
                        revision = True
                answer = expert_fn(info, rng) if expert_fn else info["expert_answer"]
                yield ExpertRow(
                    observation=obs,
                    completion=answer,
                    seed=episode_seed,
                    turn=int(info.get("turn", 1 if revision else 0)),
                    step=step,
                    revision=revision,
                    extra=row_extra(info) if row_extra else {},
                )
                produced += 1
                obs, reward, terminated, truncated, info = env.step(answer)
                if reward <= 0:
                    raise ExpertAnswerFailed(
                        f"{env_id} seed {episode_seed} step {step}: expert answer {answer!r} scored "
                        f"{reward} ({info.get('outcome')}: {info.get('feedback')})"
                    )
                step += 1
                done = terminated or truncated
    finally:
        env.close()


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def task_answers(task: Task, env_kwargs: dict[str, Any], *, row_extra: bool = True) -> dict[str, Any]:
    """A task's expert, wrong-answer and (optionally) row-extra functions, from the registry:
    the one place the answer wiring of expert data is written."""
    answers: dict[str, Any] = {"expert_fn": task.expert_fn(), "wrong_fn": task.wrong_fn(env_kwargs)}
    if row_extra:
        answers["row_extra"] = task.row_extra_fn()
    return answers


def write_task_jsonl(
    out: str | Path,
    task: Task,
    env_kwargs: dict[str, Any],
    n: int,
    seed: int = 0,
    *,
    row_extra: bool = True,
    **kwargs: Any,
) -> Path:
    """``write_expert_jsonl`` for a registered task, with the task's own answer functions."""
    answers = task_answers(task, env_kwargs, row_extra=row_extra)
    return write_expert_jsonl(out, task.env_id, env_kwargs, n, seed, **answers, **kwargs)


def write_expert_jsonl(
    out: str | Path,
    env_id: str,
    env_kwargs: dict[str, Any],
    n: int,
    seed: int = 0,
    *,
    progress: bool = True,
    **kwargs: Any,
) -> Path:
    """Write ``n`` expert rows to ``out`` (JSONL) atomically; images go to ``<stem>_images/``.

    Rows: ``prompt``, ``completion``, ``env_id``, ``env_kwargs``, ``seed``, ``step``, ``turn``,
    ``revision``, any task extras, and ``images`` (paths relative to the JSONL) for -VL.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    image_dir = out.parent / f"{out.stem}_images"
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    rows = expert_rows(env_id, env_kwargs, n, seed, **kwargs)
    if progress:
        from rich.progress import track

        rows = track(rows, total=n, description=f"writing {out.name}", transient=True)
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            for index, row in enumerate(rows):
                record: dict[str, Any] = {}
                if isinstance(row.observation, dict):
                    image_dir.mkdir(parents=True, exist_ok=True)
                    image_path = image_dir / f"{index:07d}.png"
                    Image.fromarray(np.asarray(row.observation["image"], dtype=np.uint8)).save(image_path)
                    record["prompt"] = row.observation["text"]
                    record["images"] = [image_path.relative_to(out.parent).as_posix()]
                else:
                    record["prompt"] = row.observation
                record.update(
                    completion=row.completion,
                    env_id=env_id,
                    env_kwargs=_jsonable(env_kwargs),
                    seed=row.seed,
                    step=row.step,
                    turn=row.turn,
                    revision=row.revision,
                )
                record.update(_jsonable(row.extra))
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out
