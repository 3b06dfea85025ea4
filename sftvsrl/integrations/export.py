"""``sftvsrl export``: write a task's episodes as another engine's dataset.

``--format verl`` writes ``DIR/<task>-<split>.parquet`` with verl's RL dataset columns:
``data_source``, ``prompt`` (a chat message list), ``ability``, ``reward_model``
(``style: rule``; ``ground_truth``: the episode spec as JSON: env id, kwargs, seed),
``extra_info`` (split, index, seed and ``interaction_kwargs`` naming the revision loop) and
``agent_name`` (the verl agent loop that drives multi-turn revision). -VL rows put an
``<image>`` placeholder in the user content and the PNG bytes in ``images`` (verl's
multimodal rows). ``--format jsonl`` writes the same rows as JSON lines, with each image
saved as ``images/<task>-<split>-<index>.png`` next to it and named by that path.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

from sftvsrl.errors import UserError

FORMATS = ("verl", "jsonl")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from sftvsrl.integrations.common import task_names

    d = " (default: %(default)s)"
    p.add_argument("--task", required=True, choices=task_names(), help="task name")
    p.add_argument("--split", default="id_seen", help="id_seen (train), id, ood or visual_ood (-VL)" + d)
    p.add_argument("--format", default="verl", choices=FORMATS, help="verl parquet or plain JSON lines" + d)
    p.add_argument("--n", type=int, default=1000, help="number of episodes (seeds seed..seed+n-1)" + d)
    p.add_argument("--seed", type=int, default=0, help="first episode seed" + d)
    p.add_argument(
        "--max-turns", type=int, default=None, help="verification turns per answer (default: the env's)"
    )
    p.add_argument("--prompt-style", default=None, help="the env's prompt_style (default: the env's)")
    p.add_argument("--out", required=True, help="output folder")


def _png(image: Any) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def build_rows(
    task: str,
    split: str,
    n: int,
    seed: int = 0,
    max_turns: int | None = None,
    prompt_style: str | None = None,
) -> list[dict[str, Any]]:
    """One verl row per episode (images as PNG bytes under ``images`` for -VL tasks)."""
    from sftvsrl.envs.tasks import make_env
    from sftvsrl.integrations.common import (
        REVISION_AGENT,
        episode_spec,
        family_of,
        get_task_spec,
        observation_parts,
        reset_episode,
    )

    task_spec = get_task_spec(task)
    extra: dict[str, Any] = {}
    if max_turns is not None:
        extra["max_turns"] = int(max_turns)
    if prompt_style is not None:
        extra["prompt_style"] = prompt_style
    first = episode_spec(task, split, seed, **extra)
    env = make_env(first.env_id, **first.env_kwargs)
    rows = []
    try:
        for index in range(n):
            spec = episode_spec(task, split, seed + index, **extra)
            obs, _ = reset_episode(env, spec)
            text, image = observation_parts(obs)
            spec_json = spec.to_json()
            row: dict[str, Any] = {
                "data_source": f"sftvsrl/{task}",
                "prompt": [{"role": "user", "content": ("<image>" + text) if task_spec.vision else text}],
                "ability": family_of(spec.env_id),
                "reward_model": {"style": "rule", "ground_truth": spec_json},
                "extra_info": {
                    "split": split,
                    "index": index,
                    "seed": spec.seed,
                    "interaction_kwargs": {"name": REVISION_AGENT, "episode": spec_json},
                },
                "agent_name": REVISION_AGENT,
            }
            if task_spec.vision:
                row["images"] = [{"bytes": _png(image)}]
            rows.append(row)
    finally:
        env.close()
    return rows


def write(rows: list[dict[str, Any]], out: Path, stem: str, fmt: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "verl":
        from datasets import Dataset

        path = out / f"{stem}.parquet"
        Dataset.from_list(rows).to_parquet(str(path))
        return path
    path = out / f"{stem}.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            if "images" in row:
                row = dict(row)
                (out / "images").mkdir(exist_ok=True)
                names = []
                for k, img in enumerate(row["images"]):
                    name = f"images/{stem}-{row['extra_info']['index']}" + (f"-{k}" if k else "") + ".png"
                    (out / name).write_bytes(img["bytes"])
                    names.append({"image": name})
                row["images"] = names
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def run(args: argparse.Namespace) -> int:
    from sftvsrl.integrations.common import get_task_spec

    spec = get_task_spec(args.task)
    if args.split not in spec.splits:
        raise UserError(f"task {args.task} has no split {args.split!r}; one of {', '.join(spec.splits)}")
    if args.n <= 0:
        raise UserError("--n must be positive")
    if args.max_turns is not None and args.max_turns <= 0:
        raise UserError("--max-turns must be positive")
    try:
        rows = build_rows(args.task, args.split, args.n, args.seed, args.max_turns, args.prompt_style)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    path = write(rows, Path(args.out), f"{args.task}-{args.split}", args.format)
    print(f"wrote {len(rows)} episodes of {args.task} ({args.split}) to {path}")
    return 0
