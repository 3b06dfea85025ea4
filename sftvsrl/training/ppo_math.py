"""PPO numerics as small pure functions on tensors, so each can be pinned by a unit test.

Layout conventions used throughout:

* Per-step quantities (one step = one answer of one environment) are ``[T, E]`` tensors:
  ``T`` rollout iterations, ``E`` environments. ``valid`` marks entries that hold a real step.
* Per-token quantities over answers are ``[B, A]`` tensors with a ``[B, A]`` mask that is 1 on
  answer tokens and 0 on padding.
* Sequences fed to the model are ``[left-padded prompt (width P) | right-padded answer]``, so
  the last prompt token of every row sits at column ``P - 1``; answer token ``j`` of a row is at
  column ``P + j`` and is predicted by the logits at column ``P + j - 1``.
"""

from __future__ import annotations

import torch
from torch import nn


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over entries where ``mask`` is true (0 when there are none)."""
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1.0)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def masked_var(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Population variance of ``x`` over the masked entries."""
    mean = masked_mean(x, mask)
    return masked_mean((x - mean) ** 2, mask)


def normalize_advantages(adv: torch.Tensor, valid: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Zero-mean, unit-std advantages using only valid entries; invalid entries become 0."""
    valid = valid.bool()
    mean = masked_mean(adv, valid)
    std = masked_var(adv, valid).sqrt()
    return torch.where(valid, (adv - mean) / (std + eps), torch.zeros_like(adv))


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    gamma: float = 0.9,
    lam: float = 0.95,
    valid: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over ``[T, E]`` steps with exact episode boundaries.

    ``next_values[t, e]`` is V of the observation that followed step ``t`` of env ``e``: the
    next turn's prompt while the episode goes on, the final observation of a truncated episode,
    the current observation at the end of the buffer. It is ignored (treated as 0) after a
    terminated step: no bootstrapping across episode ends. The lambda-chain is cut after
    every terminated *or* truncated step, so nothing leaks from one episode into the next,
    while a truncated step still bootstraps from the value of its last state. Steps with
    ``valid == 0`` get advantage 0 and do not propagate. Returns (advantages, returns).
    """
    T = rewards.shape[0]
    terminated = terminated.bool()
    ended = terminated | truncated.bool()
    if valid is None:
        valid = torch.ones_like(rewards, dtype=torch.bool)
    valid = valid.bool()
    boot = torch.where(terminated, torch.zeros_like(next_values), next_values)
    deltas = rewards + gamma * boot - values
    adv = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(T)):
        carry = torch.where(ended[t], torch.zeros_like(running), running)
        running = torch.where(valid[t], deltas[t] + gamma * lam * carry, torch.zeros_like(running))
        adv[t] = running
    returns = torch.where(valid, adv + values, torch.zeros_like(adv))
    return adv, returns


def answer_mask(prompt_width: int, answer_lengths: torch.Tensor, total_width: int) -> torch.Tensor:
    """``[B, total_width]`` mask of the answer tokens in ``[left-padded prompt | answer]`` rows."""
    cols = torch.arange(total_width, device=answer_lengths.device)
    end = prompt_width + answer_lengths.unsqueeze(1)
    return (cols >= prompt_width) & (cols < end)


def answer_token_logprobs(
    logits: torch.Tensor, input_ids: torch.Tensor, prompt_width: int, answer_width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs and entropies of the answer tokens only.

    ``logits`` is ``[B, L, V]`` for ``input_ids`` ``[B, L]`` laid out as
    ``[prompt (P) | answer (A)]``. Returns two ``[B, A]`` tensors; padding columns hold
    meaningless values and must be masked by the caller.
    """
    pred = logits[:, prompt_width - 1 : prompt_width - 1 + answer_width].float()
    targets = input_ids[:, prompt_width : prompt_width + answer_width]
    logp_all = torch.log_softmax(pred, dim=-1)
    logp = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


def sequence_logprob(token_logp: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted sum of token log-probs: the log-prob of the whole answer as one PPO action.

    ``weights`` is 0 on padding, 1 on action tokens and ``thought_coef`` on thought tokens
    (see :func:`thought_action_weights`).
    """
    return (token_logp * weights).sum(-1)


def thought_action_weights(
    answer_lengths: torch.Tensor, action_starts: torch.Tensor, answer_width: int, thought_coef: float
) -> torch.Tensor:
    """Per-token weights: ``thought_coef`` before ``action_starts[b]``, 1 from there to the end.

    ``action_starts[b]`` is the index of the first answer token that belongs to the action
    (e.g. the token holding the action JSON's opening brace). With ``thought_coef == 1`` the
    weights are just the answer mask.
    """
    cols = torch.arange(answer_width, device=answer_lengths.device).unsqueeze(0)
    in_answer = cols < answer_lengths.unsqueeze(1)
    is_action = cols >= action_starts.unsqueeze(1)
    w = torch.where(is_action, torch.ones((), dtype=torch.float32), torch.full((), float(thought_coef)))
    return w * in_answer


def policy_loss(
    new_logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, clip: float, mask: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO clipped surrogate (to minimise) plus diagnostics: clip fraction and approx. KL."""
    log_ratio = new_logp - old_logp
    ratio = log_ratio.exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip, 1.0 + clip)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        clipfrac = masked_mean(((ratio - 1.0).abs() > clip).float(), mask)
        approx_kl = masked_mean((ratio - 1.0) - log_ratio, mask)
    return loss, {"clipfrac": clipfrac, "approx_kl": approx_kl}


def value_loss(
    new_values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip: float | None = None,
) -> torch.Tensor:
    """0.5 * squared error to the returns; with ``clip`` the pessimistic clipped variant."""
    err = (new_values - returns) ** 2
    if clip is not None:
        v_clipped = old_values + (new_values - old_values).clamp(-clip, clip)
        err = torch.maximum(err, (v_clipped - returns) ** 2)
    return 0.5 * masked_mean(err, mask)


def kl_penalty(policy_logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean per-token KL(policy || reference) by the non-negative k3 estimator on sampled tokens."""
    d = ref_logp - policy_logp
    return masked_mean(d.exp() - d - 1.0, mask)


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """1 - Var(returns - values) / Var(returns) over valid entries (nan when returns are constant)."""
    var_ret = masked_var(returns, mask)
    if var_ret.item() == 0.0:
        return float("nan")
    return float(1.0 - masked_var(returns - values, mask) / var_ret)


class ValueHead(nn.Module):
    """Two-layer MLP mapping the hidden state of the last prompt token to a scalar value."""

    def __init__(self, hidden_size: int, inner: int | None = None) -> None:
        super().__init__()
        inner = inner or hidden_size
        self.net = nn.Sequential(nn.Linear(hidden_size, inner), nn.Tanh(), nn.Linear(inner, 1))
        nn.init.zeros_(self.net[2].weight)
        nn.init.zeros_(self.net[2].bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.net(hidden.to(self.net[0].weight.dtype)).squeeze(-1)
