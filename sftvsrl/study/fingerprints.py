"""What each stage's result depends on, so a re-run with other settings never reuses it.

Every stage kind declares the config keys it reads (:data:`SETTINGS`, dotted prefixes of the
study config) and the stages it reads from (:func:`upstream`). A stage's fingerprint is a
hash of those keys' values and of its upstream stages' fingerprints, computed from the config
alone before anything runs, and stored in the stage's result file. Settings that cannot
change a result (``threads``, ``compile_rollouts``, ``dist_timeout_min``, progress display,
tensorboard) are in no table: like a thread count, a compiled step changes only the rounding.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sftvsrl.errors import ConfigError
from sftvsrl.study.trainers import DISPLAY_ONLY

_EVAL = ("eval", "dtype", "prompt_style")
_RL = ("stage2.rl", "stage2.rl_updates", "stage2.evals", "seed", "dtype", "bf16", "prompt_style")

SETTINGS: dict[str, tuple[str, ...]] = {
    "pretrain": ("corpus", "seed", "bf16", "dtype", "lora"),
    "data": (
        "init.rows",
        "init.multi_turn_fraction",
        "init.val_rows",
        "stage2.sft_rows",
        "prompt_style",
        "seed",
        "eval.seed",
    ),
    "init": (
        "init.steps",
        "init.eval_every",
        "init.select",
        "init.val_episodes",
        "init.patience",
        "init.sft",
        "model",
        "vision_model",
        "seed",
        "dtype",
        "bf16",
        "lora",
        "prompt_style",
        "eval.seed",
        "eval.num_envs",
        "eval.max_new_tokens",
    ),
    "rl": _RL,
    "sft": ("stage2.sft", "stage2.budget_gflops", "stage2.evals", "seed", "dtype", "bf16"),
    "eval": _EVAL,  # eval.kl_prompts included: the KL columns are made here
    "init_curves": ("init.curve_episodes", *_EVAL),
    "turns": ("ablations.turns", "ablations.turns_splits", *_EVAL),
    "rl_from_base": (*_RL, *_EVAL, "model", "vision_model"),
    "rl_from_overfit": (*_RL, *_EVAL, "ablations.overfit_steps", "init.sft", "bf16"),
}


def upstream(kind: str, task: str, pretrain: bool) -> list[str]:
    """The stages a stage of ``kind`` for ``task`` reads from."""
    pre = ["pretrain"] if pretrain else []
    t = f"{task}."
    return {
        "pretrain": [],
        "data": [],
        "init": [t + "data", *pre],
        "rl": [t + "init"],
        "sft": [t + "init", t + "rl", t + "data"],
        "eval": [t + "init", t + "rl", t + "sft"],
        "init_curves": [t + "init", *pre],
        "turns": [t + "init", t + "rl", t + "sft", t + "eval"],
        "rl_from_base": pre,
        "rl_from_overfit": [t + "init", t + "data"],
    }[kind]


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


# Keys added after study results had been stored, with the default that means "as before":
# at that value they are left out of a fingerprint, so older run folders keep matching.
ADDED_LATER: dict[str, Any] = {"corpus.seed": None, "init.curve_episodes": 0}


def settings_of(kind: str, flat: dict[str, Any]) -> dict[str, Any]:
    """The flattened config keys a stage of ``kind`` depends on, with their values."""
    wanted = SETTINGS[kind]
    if kind == "pretrain" and flat.get("corpus.seed") is not None:
        wanted = tuple(w for w in wanted if w != "seed")  # a fixed corpus seed: shared by study seeds
    return {
        k: v
        for k, v in sorted(flat.items())
        if any(k == w or k.startswith(w + ".") for w in wanted)
        and k.rsplit(".", 1)[-1] not in DISPLAY_ONLY
        and not (k in ADDED_LATER and v == ADDED_LATER[k])
    }


def fingerprint(settings: dict[str, Any], upstream_hashes: dict[str, str]) -> dict[str, Any]:
    body = {"settings": settings, "upstream": upstream_hashes}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {"hash": digest, **body}


@dataclass
class Change:
    stage: str
    keys: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # key -> (old, new)
    upstream: list[str] = field(default_factory=list)  # upstream stages that changed


_UNSET = "(unset)"


def compare(stage: str, old: dict[str, Any] | None, new: dict[str, Any]) -> Change | None:
    """None when ``old`` (a stored fingerprint; None for a result from before fingerprints)
    matches ``new``."""
    if old is None or old.get("hash") == new["hash"]:
        return None
    a, b = old.get("settings", {}), new["settings"]
    keys = {
        k: (a.get(k, _UNSET), b.get(k, _UNSET))
        for k in sorted(set(a) | set(b))
        if a.get(k, _UNSET) != b.get(k, _UNSET)
    }
    ua, ub = old.get("upstream", {}), new["upstream"]
    ups = sorted(k for k in set(ua) | set(ub) if ua.get(k) != ub.get(k))
    return Change(stage, keys, ups)


def describe(changes: list[Change], out: Path) -> str:
    """One line: the changed keys, old -> new, with the stages they change, and what to do."""
    by_key: dict[tuple[str, str, str], list[str]] = {}
    follow = []
    for c in changes:
        for k, (old, new) in c.keys.items():
            by_key.setdefault((k, json.dumps(old, default=str), json.dumps(new, default=str)), []).append(
                c.stage
            )
        if not c.keys:
            follow.append(c.stage)
    parts = [f"{k} {o} -> {n} ({', '.join(st)})" for (k, o, n), st in by_key.items()]
    if follow:
        parts.append(f"and the stages that read from them ({', '.join(follow)})")
    return (
        f"{out} holds study results made with other settings: {'; '.join(parts)}. Use a new --out, "
        "or add --rerun-changed to redo the changed stages and every stage that reads from them"
    )


class StudyChanged(ConfigError):
    """A re-run's settings differ from those the stored stage results were made with."""


# ----------------------------------------------------------------------------- old outputs


def move_aside(path: Path) -> Path | None:
    """Rename ``path`` to ``<name>.old-<n>`` (the first free n); None when it does not exist."""
    if not path.exists():
        return None
    n = 1
    while (target := path.with_name(f"{path.name}.old-{n}")).exists():
        n += 1
    path.rename(target)
    return target


def delete_aside(path: Path) -> None:
    """Delete the ``.old-<n>`` copies of ``path`` (once the new results are complete)."""
    for old in path.parent.glob(f"{path.name}.old-*"):
        if old.is_dir():
            shutil.rmtree(old)
        else:
            old.unlink()


def stage_plan(cfg: Any, *, own_pretrain: bool, stage0_only: bool) -> dict[str, tuple[str, str]]:
    """Stage name -> (kind, task) of a study config, in running order."""
    plan: dict[str, tuple[str, str]] = {"pretrain": ("pretrain", "")} if own_pretrain else {}
    if stage0_only:
        return plan
    a = cfg.ablations
    for task in cfg.tasks:
        curves = cfg.for_task(task).init.curve_episodes > 0
        kinds = ["data", "init"] + ["init_curves"] * curves + ["rl", "sft", "eval"]
        kinds += ["turns"] * bool(a.turns) + ["rl_from_base"] * a.rl_from_base
        kinds += ["rl_from_overfit"] * a.rl_from_overfit
        plan.update({f"{task}.{k}": (k, task) for k in kinds})
    return plan


def stage_outputs(out: Path, kind: str, task: str) -> list[Path]:
    """What a stage of ``kind`` writes besides its result file (moved aside on a re-run)."""
    t = out / task
    return {
        "pretrain": [out / "data" / "corpus.jsonl", out / "stage0_pretrain", out / "base_model"],
        "data": [t / "data"],
        "init": [t / "stage1_init", t / "evals" / "validation"],
        "init_curves": [t / "evals" / "stage1"],
        "rl": [t / "stage2_rl"],
        "sft": [t / "stage2_sft"],
        "eval": [t / "evals" / m for m in ("init", "SFT", "RL")],
        "turns": [t / "evals" / "turns"],
        "rl_from_base": [t / "ablation_rl_from_base"],
        "rl_from_overfit": [t / "ablation_rl_from_overfit"],
    }[kind]
