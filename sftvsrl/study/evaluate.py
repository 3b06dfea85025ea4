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
    from sftvsrl.models.loading import inference_device, load_model
    from sftvsrl.rollout import HFRolloutEngine

    ev = cfg.eval
    pm = load_model(
        str(ckpt),
        dtype=cfg.dtype if cfg.dtype != "float16" else "float32",
        trainable=False,
        device=inference_device(),
    )
    engine = HFRolloutEngine(pm, batch_size=ev.num_envs, compile=cfg.compile_rollouts)
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
    spec: TaskSpec,
    method: str,
    step: int,
    gflops: float,
    split: str,
    s: dict[str, Any],
    *,
    kl_to_base: float | None = None,
    kl_to_init: float | None = None,
) -> CurvePoint:
    """The one builder of a curve point from an evaluation summary (success and every fine
    metric the summary holds) and the checkpoint's KL to the base and init models."""
    return CurvePoint.from_summary(
        spec, method, step, gflops, split, s, kl_to_base=kl_to_base, kl_to_init=kl_to_init
    )


def rate(s: dict[str, Any]) -> list[float]:
    """``[success_rate, ci_low, ci_high]`` of a summary."""
    return [s["success_rate"], *s["ci95"]]


class KLProbe:
    """Distance of checkpoints from reference models (``{"base": path, "init": path}``), per split.

    For each split, the first ``eval.kl_prompts`` prompts of the evaluation episodes (the same
    seeds) get answers sampled once per reference at temperature 1 with a fixed seed
    (:func:`sftvsrl.study.seeds.kl_seed`); a checkpoint's ``kl_to_<ref>`` is the mean per-token
    KL(ref || checkpoint) on them (:func:`sftvsrl.evaluation.kl.mean_token_kl`), scoring at most
    ``eval.max_new_tokens`` tokens per answer. Results are cached one JSON per (checkpoint,
    split), with the seconds they took (sampling included), so a re-run costs nothing and the
    total cost can be reported. References and the current checkpoint stay loaded while used.
    """

    def __init__(self, cfg: StudyConfig, spec: TaskSpec, refs: dict[str, str | Path]) -> None:
        self.cfg, self.spec, self.refs = cfg, spec, {k: str(v) for k, v in refs.items()}
        self._pms: dict[str, Any] = {}
        self._gens: dict[tuple[str, str], list[Any]] = {}
        self._current: tuple[str, Any] | None = None
        self.seconds = 0.0  # total over every point asked for, cached ones included

    @property
    def enabled(self) -> bool:
        return self.cfg.eval.kl_prompts > 0

    def _load(self, path: str) -> Any:
        from sftvsrl.models.loading import inference_device, load_model

        dtype = self.cfg.dtype if self.cfg.dtype != "float16" else "float32"
        return load_model(path, dtype=dtype, trainable=False, device=inference_device())

    def _ref(self, label: str) -> Any:
        if label not in self._pms:
            self._pms[label] = self._load(self.refs[label])
        return self._pms[label]

    def _samples(self, label: str, split: str) -> list[Any]:
        from sftvsrl.evaluation.kl import first_prompts, sample_reference_answers
        from sftvsrl.study.seeds import kl_seed

        if (label, split) not in self._gens:
            ev = self.cfg.eval
            kwargs = {**self.spec.splits[split], "prompt_style": self.cfg.prompt_style}
            prompts = first_prompts(self.spec.env_id, kwargs, ev.kl_prompts, seed=ev.seed)
            self._gens[label, split] = sample_reference_answers(
                self._ref(label), prompts, ev.kl_prompts, kl_seed(ev.seed), ev.max_new_tokens
            )
        return self._gens[label, split]

    def _model(self, ckpt: str) -> Any:
        if self._current is None or self._current[0] != ckpt:
            self._current = None  # free the previous checkpoint first
            self._current = (ckpt, self._load(ckpt))
        return self._current[1]

    def of(self, ckpt: str | Path, split: str, cache: Path) -> dict[str, float | None]:
        """``{"kl_to_<ref>": nats per token}`` of one checkpoint on one split (cached);
        ``{}`` when disabled."""
        import time

        from sftvsrl.evaluation.kl import mean_token_kl

        if not self.enabled:
            return {}
        if cache.is_file():
            stored = json.loads(cache.read_text(encoding="utf-8"))
        else:
            stored = {}
            for label, ref in self.refs.items():
                started = time.perf_counter()
                if Path(ref).resolve() == Path(ckpt).resolve():  # the reference itself: exactly 0
                    stored[f"kl_to_{label}"] = {"value": 0.0, "prompts": 0, "tokens": 0, "time_s": 0.0}
                    continue
                gens = self._samples(label, split)
                res = mean_token_kl(
                    self._ref(label), self._model(str(ckpt)), gens, max_tokens=self.cfg.eval.max_new_tokens
                )
                stored[f"kl_to_{label}"] = {**res.as_dict(), "time_s": time.perf_counter() - started}
            atomic_write_text(cache, json.dumps(stored))
        self.seconds += sum(v["time_s"] for v in stored.values())
        return {k: v["value"] for k, v in stored.items()}
