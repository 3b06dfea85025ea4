"""RL numerics as small pure functions on tensors (no models), shared by the RL trainers.

Layout conventions:

* Per-step quantities (one step = one answer of one environment) are ``[T, E]`` tensors:
  ``T`` rollout iterations, ``E`` environments; every entry is a real step.
* Per-token quantities over answers are ``[B, A]`` tensors with a ``[B, A]`` mask that is 1 on
  answer tokens and 0 on padding.
* Sequences fed to the model are ``[left-padded prompt (width P) | right-padded answer]``, so
  the last prompt token of every row sits at column ``P - 1``; answer token ``j`` of a row is at
  column ``P + j`` and is predicted by the logits at column ``P + j - 1``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over entries where ``mask`` is true (0 when there are none)."""
    mask = mask.to(x.dtype)
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def variance(x: torch.Tensor) -> torch.Tensor:
    """Population variance (divides by n, unlike ``torch.var``)."""
    return ((x - x.mean()) ** 2).mean()


def normalize_advantages(adv: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Zero-mean, unit-std advantages over the whole buffer."""
    return (adv - adv.mean()) / (variance(adv).sqrt() + eps)


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    gamma: float = 0.9,
    lam: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over ``[T, E]`` steps with exact episode boundaries.

    ``next_values[t, e]`` is V of the observation that followed step ``t`` of env ``e``: the
    next turn's prompt while the episode goes on, the final observation of a truncated episode,
    the current observation at the end of the buffer. It is ignored (treated as 0) after a
    terminated step: no bootstrapping across episode ends. The lambda-chain is cut after
    every terminated *or* truncated step, so nothing leaks from one episode into the next,
    while a truncated step still bootstraps from the value of its last state.
    Returns (advantages, returns).
    """
    terminated = terminated.bool()
    ended = terminated | truncated.bool()
    boot = torch.where(terminated, torch.zeros_like(next_values), next_values)
    deltas = rewards + gamma * boot - values
    adv = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        carry = torch.where(ended[t], torch.zeros_like(running), running)
        running = deltas[t] + gamma * lam * carry
        adv[t] = running
    return adv, adv + values


def answer_token_logprobs(
    logits: torch.Tensor, input_ids: torch.Tensor, prompt_width: int, answer_width: int, entropy: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs (and, if asked, entropies) of the answer tokens only.

    ``logits`` is ``[B, L, V]`` for ``input_ids`` ``[B, L]`` laid out as
    ``[prompt (P) | answer (A)]``. Returns ``[B, A]`` tensors (entropy None unless asked);
    padding columns hold meaningless values and must be masked by the caller.
    """
    pred = logits[:, prompt_width - 1 : prompt_width - 1 + answer_width].float()
    targets = input_ids[:, prompt_width : prompt_width + answer_width]
    logp_all = torch.log_softmax(pred, dim=-1)
    logp = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    ent = -(logp_all.exp() * logp_all).sum(-1) if entropy else None
    return logp, ent


def thought_action_weights(
    answer_lengths: torch.Tensor, action_starts: torch.Tensor, answer_width: int, thought_coef: float
) -> torch.Tensor:
    """Per-token weights: ``thought_coef`` before ``action_starts[b]``, 1 from there to the end.

    The log-prob of an answer as one action is the weighted sum of its token log-probs.
    ``action_starts[b]`` is the index of the first answer token that belongs to the action
    (e.g. the token holding the action JSON's opening brace). With ``thought_coef == 1`` the
    weights are just the answer mask.
    """
    cols = torch.arange(answer_width, device=answer_lengths.device).unsqueeze(0)
    in_answer = cols < answer_lengths.unsqueeze(1)
    is_action = cols >= action_starts.unsqueeze(1)
    w = torch.where(is_action, torch.ones((), dtype=torch.float32), torch.full((), float(thought_coef)))
    return w * in_answer


def pad_rows(rows: Sequence[torch.Tensor], width: int) -> torch.Tensor:
    """1-D rows of different lengths as one zero-padded ``[len(rows), width]`` float tensor."""
    out = torch.zeros(len(rows), width)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def policy_loss(
    new_logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, clip: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO clipped surrogate (to minimise) plus diagnostics: clip fraction and approx. KL."""
    log_ratio = new_logp - old_logp
    ratio = log_ratio.exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip, 1.0 + clip)
    loss = torch.maximum(unclipped, clipped).mean()
    with torch.no_grad():
        clipfrac = ((ratio - 1.0).abs() > clip).float().mean()
        approx_kl = ((ratio - 1.0) - log_ratio).mean()
    return loss, {"clipfrac": clipfrac, "approx_kl": approx_kl}


def value_loss(
    new_values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, clip: float | None = None
) -> torch.Tensor:
    """0.5 * squared error to the returns; with ``clip`` the pessimistic clipped variant."""
    err = (new_values - returns) ** 2
    if clip is not None:
        v_clipped = old_values + (new_values - old_values).clamp(-clip, clip)
        err = torch.maximum(err, (v_clipped - returns) ** 2)
    return 0.5 * err.mean()


def kl_penalty(policy_logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean per-token KL(policy || reference) by the non-negative k3 estimator on sampled tokens."""
    d = ref_logp - policy_logp
    return masked_mean(d.exp() - d - 1.0, mask)


def explained_variance(values: torch.Tensor, returns: torch.Tensor) -> float | None:
    """1 - Var(returns - values) / Var(returns) (None when the returns are constant)."""
    var_ret = variance(returns)
    if var_ret.item() == 0.0:
        return None
    return float(1.0 - variance(returns - values) / var_ret)


class Means:
    """Running means of named scalars over an update's micro-batches (None when never added)."""

    def __init__(self, *names: str) -> None:
        self.values: dict[str, list[float]] = {n: [] for n in names}

    def add(self, **scalars: torch.Tensor | float) -> None:
        for name, v in scalars.items():
            self.values[name].append(float(v.detach() if isinstance(v, torch.Tensor) else v))

    def means(self) -> dict[str, float | None]:
        return {n: (sum(v) / len(v) if v else None) for n, v in self.values.items()}


def episode_metrics(episodes: Sequence[tuple[bool, int, float]]) -> dict[str, float | None]:
    """Count, success rate, mean turns and mean return of ``(success, turns, return)`` episodes."""
    n = len(episodes)
    return {
        "episodes": n,
        "success_rate": sum(s for s, _, _ in episodes) / n if n else None,
        "mean_turns": sum(k for _, k, _ in episodes) / n if n else None,
        "mean_return": sum(r for _, _, r in episodes) / n if n else None,
    }


def group_advantages(returns: torch.Tensor, scale: str = "group", eps: float = 1e-6) -> torch.Tensor:
    """GRPO advantages of ``[groups, G]`` episode returns: each return minus its group's mean,
    divided by the group's (population) std with ``scale="group"`` or not with ``"none"``
    (Dr. GRPO). A group whose returns are all equal gets exactly 0 (no signal, no gradient)."""
    if returns.dim() != 2 or returns.shape[1] < 2:
        raise ValueError(f"need [groups, G] returns with G >= 2, got shape {tuple(returns.shape)}")
    if scale not in ("group", "none"):
        raise ValueError(f"scale must be 'group' or 'none', got {scale!r}")
    centered = returns - returns.mean(dim=1, keepdim=True)
    std = centered.pow(2).mean(dim=1, keepdim=True).sqrt()
    adv = centered / (std + eps) if scale == "group" else centered
    equal = (returns == returns[:, :1]).all(dim=1, keepdim=True)  # exact, whatever the rounding of the mean
    return torch.where(equal, torch.zeros_like(adv), adv)
