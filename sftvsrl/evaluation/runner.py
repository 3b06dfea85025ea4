"""Batched multi-turn evaluation: many environments at once, each at its own turn.

Episode ``i`` is reset with seed ``seed + i``, so a set of ``N`` episodes is fixed by
(env, kwargs, seed, N) and two models are compared on the same episodes. Greedy decoding
is deterministic; sampled decoding draws each batch with a seed derived from ``seed`` and
the batch index.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import gymnasium as gym

from sftvsrl.evaluation.summary import answer_recognized, summarize
from sftvsrl.rollout import EnvPool, RolloutEngine, Sampling, make_envs

# Per-answer verdict flags an env may put in ``info``; each is kept in the turn record when
# present (GeneralPoints: ``rule_following``; V-IRL: ``valid_action``) for the fine metrics.
ANSWER_FLAGS = ("rule_following", "valid_action")


def observation_text(obs: Any) -> str:
    """The prompt text of an observation (-VL observations are ``{"text", "image"}``)."""
    return obs["text"] if isinstance(obs, dict) else str(obs)


def evaluate(
    engine: RolloutEngine,
    env_id: str,
    env_kwargs: dict[str, Any],
    *,
    episodes: int,
    max_turns: int | None = None,
    num_envs: int = 32,
    seed: int = 0,
    do_sample: bool = False,
    temperature: float = 1.0,
    max_new_tokens: int = 128,
    progress: Any = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run ``episodes`` episodes; return per-episode records (by episode index) and a summary."""
    if episodes <= 0:
        raise ValueError("episodes must be positive")
    envs = make_envs(env_id, env_kwargs, min(num_envs, episodes), max_turns)
    vision = isinstance(envs[0].observation_space, gym.spaces.Dict)
    pool = EnvPool(envs, episode_seeds=[seed + i for i in range(episodes)])
    records: dict[int, dict[str, Any]] = {}
    started = time.perf_counter()
    gen_tokens = 0
    sampling = Sampling(max_new_tokens, temperature, do_sample)
    try:
        for transitions in pool.play(engine, sampling, seed=lambda call: seed * 1_000_003 + call):
            for tr in transitions:
                gen_tokens += len(tr.generation.answer_ids)
                rec = records.setdefault(
                    tr.episode,
                    {
                        "episode": tr.episode,
                        "seed": seed + tr.episode,
                        "expert_answer": tr.info.get("expert_answer"),
                        "turns": [],
                    },
                )
                turn = {
                    "prompt": observation_text(tr.observation),
                    "answer": tr.answer,
                    "reward": tr.reward,
                    "outcome": str(tr.info.get("outcome", "")),
                    "success": bool(tr.info.get("success", False)),
                    "feedback": tr.info.get("feedback"),
                    "recognized": answer_recognized(tr.info) if vision else tr.info.get("recognized"),
                }
                turn.update({k: bool(tr.info[k]) for k in ANSWER_FLAGS if tr.info.get(k) is not None})
                rec["turns"].append(turn)
                if tr.done:
                    rec["success"] = rec["turns"][-1]["success"]
                    rec["final_outcome"] = rec["turns"][-1]["outcome"]
                    rec["return"] = sum(t["reward"] for t in rec["turns"])
                    rec["num_turns"] = len(rec["turns"])
                    rec["truncated"] = tr.truncated
                    if progress is not None:
                        progress(1)
    finally:
        pool.close()
    elapsed = time.perf_counter() - started
    ordered = [records[i] for i in sorted(records)]
    summary = summarize(ordered, vision, env_id=env_id)
    summary.update(
        env_id=env_id,
        env_kwargs=env_kwargs,
        max_turns=max_turns,
        seed=seed,
        decoding={
            "do_sample": do_sample,
            "temperature": temperature if do_sample else None,
            "max_new_tokens": max_new_tokens,
        },
        time_s=elapsed,
        episodes_per_s=len(ordered) / elapsed if elapsed > 0 else None,
        generated_tokens=gen_tokens,
    )
    return ordered, summary


def write_results(out_dir: str | Path, records: list[dict[str, Any]], summary: dict[str, Any]) -> Path:
    """``episodes.jsonl`` (one episode per line) and ``summary.json`` in ``out_dir``, each
    written atomically (a failed write leaves an earlier result whole, never half a file);
    the summary goes last, so a present summary always has its episodes beside it."""
    from sftvsrl.atomic import atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "episodes.jsonl", "".join(json.dumps(rec, default=str) + "\n" for rec in records))
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    return out
