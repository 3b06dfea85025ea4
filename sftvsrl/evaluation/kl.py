"""Distance of a checkpoint from a reference model: mean per-token KL on reference samples.

The forgetting predictor of Shenfeld et al. (2025, "RL's Razor"): how far fine-tuning moved
the policy, measured as KL(ref || model) on answers the *reference* model samples (at
temperature 1, i.e. from the reference policy itself) for a fixed set of prompts.

Estimator. For each sampled answer ``y`` and each of its positions ``t`` the exact KL of the
next-token distributions is taken over the whole vocabulary::

    kl_t = sum_v p_ref(v | x, y<t) * (log p_ref(v | x, y<t) - log p_model(v | x, y<t))

and the result is the mean of ``kl_t`` over all answer tokens of all prompts (eos included
when the answer ended with it). Summed over an answer's positions this is an unbiased,
lower-variance estimate of the sequence-level KL(ref || model) (chain rule), and it is never
negative. Cost: one sampling pass of the reference, then per compared model one forward pass
of the reference and one of the model over the ``[prompt | answer]`` rows, with ``[tokens,
vocab]`` log-probs in memory one micro-batch at a time. Both models must share the tokenizer.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from sftvsrl.rollout import Generation, HFRolloutEngine
from sftvsrl.training.rl_batch import collate


@dataclass(frozen=True)
class KLResult:
    """A mean per-token KL and what it cost."""

    value: float  # nats per answer token
    prompts: int
    tokens: int  # answer tokens averaged over
    time_s: float  # wall time of the KL forward passes (sampling is in ``sample_time_s``)
    sample_time_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def first_prompts(env_id: str, env_kwargs: dict[str, Any], n: int, seed: int = 0) -> list[Any]:
    """The first observation of episodes ``0..n-1`` (reset with seed ``seed + i``): the
    prompts an evaluation of the same (env, kwargs, seed) starts from."""
    from sftvsrl.rollout import make_envs

    env = make_envs(env_id, env_kwargs, 1, None)[0]
    try:
        return [env.reset(seed=seed + i)[0] for i in range(n)]
    finally:
        env.close()


def sample_reference_answers(
    ref_pm: Any,
    prompts: Sequence[Any],
    n: int | None = None,
    seed: int = 0,
    max_new_tokens: int = 64,
    *,
    temperature: float = 1.0,
    batch_size: int = 16,
) -> list[Generation]:
    """Answers of the reference model to the first ``n`` prompts (all when None), sampled
    at ``temperature`` (1: the reference policy itself; top-k/top-p off) with a fixed seed,
    so the same (model, prompts, seed) gives the same answers. The caller's RNG streams are
    left as they were."""
    chosen = list(prompts if n is None else prompts[:n])
    if not chosen:
        return []
    engine = HFRolloutEngine(ref_pm, batch_size=batch_size)
    return engine.generate(
        chosen, max_new_tokens=max_new_tokens, temperature=temperature, do_sample=True, seed=seed
    )


def _pad_id(pm: Any) -> int:
    from sftvsrl.rollout.engine import eos_ids

    tok = pm.tokenizer
    return tok.pad_token_id if tok.pad_token_id is not None else eos_ids(pm)[0]


def _answer_logprobs(model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
    """``[B, A, V]`` float32 log-probs of the next token at every answer position."""
    device = next(model.parameters()).device
    out = model(
        input_ids=batch["input_ids"].to(device),
        attention_mask=batch["attention_mask"].to(device),
        position_ids=batch["position_ids"].to(device),
        use_cache=False,
        **{k: v.to(device) for k, v in batch["extras"].items()},
    )
    P, A = batch["prompt_width"], batch["answer_width"]
    return torch.log_softmax(out.logits[:, P - 1 : P - 1 + A].float(), dim=-1)


@torch.no_grad()
def mean_token_kl(
    ref_pm: Any,
    model_pm: Any,
    generations: Sequence[Generation],
    *,
    max_tokens: int | None = None,
    micro_batch_size: int = 8,
) -> KLResult:
    """Mean over answer tokens of the exact per-token KL(ref || model) (see the module
    docstring) on ``generations`` sampled from ``ref_pm``. ``max_tokens`` bounds the cost:
    only the first ``max_tokens`` tokens of each answer are scored."""
    started = time.perf_counter()
    gens = [g for g in generations if g.answer_ids]
    if max_tokens is not None:
        gens = [Generation(g.text, g.prompt_ids, g.answer_ids[:max_tokens], g.extras) for g in gens]
    total, tokens = 0.0, 0
    pad = _pad_id(ref_pm)
    models = [ref_pm.model, model_pm.model]
    modes = [m.training for m in models]
    try:
        for m in models:
            m.eval()
        for start in range(0, len(gens), micro_batch_size):
            batch = collate(gens[start : start + micro_batch_size], pad)
            ref = _answer_logprobs(ref_pm.model, batch)
            new = _answer_logprobs(model_pm.model, batch).to(ref.device)
            if ref.shape[-1] != new.shape[-1]:
                raise ValueError(f"vocabularies differ: {ref.shape[-1]} vs {new.shape[-1]} tokens")
            kl = (ref.exp() * (ref - new)).sum(-1)  # [B, A]
            mask = (
                torch.arange(kl.shape[1], device=kl.device) < batch["answer_lengths"].to(kl.device)[:, None]
            )
            total += float(kl[mask].double().sum())
            tokens += int(mask.sum())
    finally:
        for m, mode in zip(models, modes, strict=True):
            m.train(mode)
    value = max(total / tokens, 0.0) if tokens else float("nan")  # exact KL >= 0 up to rounding
    return KLResult(value, len(gens), tokens, time.perf_counter() - started)


def kl_to_reference(
    ref_pm: Any,
    model_pm: Any,
    prompts: Sequence[Any],
    *,
    n: int,
    seed: int = 0,
    max_new_tokens: int = 64,
    micro_batch_size: int = 8,
) -> KLResult:
    """Sample the reference's answers to the first ``n`` prompts and return the mean
    per-token KL(ref || model) on them, with the time of both parts."""
    started = time.perf_counter()
    gens = sample_reference_answers(ref_pm, prompts, n, seed, max_new_tokens)
    sampled = time.perf_counter() - started
    result = mean_token_kl(ref_pm, model_pm, gens, micro_batch_size=micro_batch_size)
    return KLResult(result.value, result.prompts, result.tokens, result.time_s, sampled)
