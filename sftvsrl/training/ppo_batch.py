"""Turning generated answers into training tensors, and the one forward pass PPO needs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from sftvsrl.training.ppo_math import answer_token_logprobs, thought_action_weights
from sftvsrl.rollout import Generation


def action_start_token(tokenizer: Any, answer_ids: Sequence[int], text: str, marker: str) -> int:
    """Index of the first answer token of the *action* part of an answer.

    The action starts at the first occurrence of ``marker`` in the decoded answer text (for
    JSON answers, the opening ``{``); everything before is the *thought*. The token is found by
    bisecting on the decoded length of token prefixes, so it works for any tokenizer. No
    marker: the whole answer is the action (returns 0).
    """
    split = text.find(marker) if marker else -1
    if split <= 0:
        return 0
    lo, hi = 1, len(answer_ids)
    # smallest k whose decoded prefix reaches past the split character
    while lo < hi:
        mid = (lo + hi) // 2
        if len(tokenizer.decode(list(answer_ids[:mid]), skip_special_tokens=True)) > split:
            hi = mid
        else:
            lo = mid + 1
    return lo - 1


def collate(gens: Sequence[Generation], pad_id: int) -> dict[str, Any]:
    """``[left-padded prompt | right-padded answer]`` rows plus per-row extras (pixel values).

    Position ids count real tokens only, so a left-padded row sees the same positions as it
    did during generation.
    """
    P = max(len(g.prompt_ids) for g in gens)
    A = max(max(len(g.answer_ids) for g in gens), 1)
    B = len(gens)
    ids = torch.full((B, P + A), pad_id, dtype=torch.long)
    mask = torch.zeros((B, P + A), dtype=torch.long)
    for i, g in enumerate(gens):
        p, a = len(g.prompt_ids), len(g.answer_ids)
        ids[i, P - p : P] = torch.tensor(g.prompt_ids, dtype=torch.long)
        mask[i, P - p : P] = 1
        if a:
            ids[i, P : P + a] = torch.tensor(g.answer_ids, dtype=torch.long)
            mask[i, P : P + a] = 1
    extras: dict[str, torch.Tensor] = {}
    for key in gens[0].extras:
        extras[key] = torch.cat([g.extras[key] for g in gens], dim=0)
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "position_ids": (mask.cumsum(-1) - 1).clamp(min=0),
        "prompt_width": P,
        "answer_width": A,
        "answer_lengths": torch.tensor([len(g.answer_ids) for g in gens], dtype=torch.long),
        "extras": extras,
    }


def collate_prompts(gens: Sequence[Generation], pad_id: int) -> dict[str, Any]:
    """Prompt-only rows (for values of bootstrap states that have no answer)."""
    return collate([Generation(g.text, g.prompt_ids, [], g.extras) for g in gens], pad_id)


def forward_policy_value(
    model: torch.nn.Module,
    value_head: torch.nn.Module,
    batch: dict[str, Any],
    weights: torch.Tensor | None = None,
    with_entropy: bool = True,
) -> dict[str, torch.Tensor]:
    """One forward pass: per-token answer log-probs (and entropy), the weighted sequence
    log-prob, and the value of the last prompt token's hidden state."""
    device = next(model.parameters()).device
    P, A = batch["prompt_width"], batch["answer_width"]
    out = model(
        input_ids=batch["input_ids"].to(device),
        attention_mask=batch["attention_mask"].to(device),
        position_ids=batch["position_ids"].to(device),
        output_hidden_states=True,
        use_cache=False,
        **{k: v.to(device) for k, v in batch["extras"].items()},
    )
    hidden = out.hidden_states[-1][:, P - 1]
    values = value_head(hidden).float()
    logp, entropy = answer_token_logprobs(out.logits, batch["input_ids"].to(device), P, A)
    lengths = batch["answer_lengths"].to(device)
    mask = torch.arange(A, device=device).unsqueeze(0) < lengths.unsqueeze(1)
    if weights is None:
        weights = mask.float()
    seq_logp = (logp * weights.to(device)).sum(-1)
    result = {"token_logp": logp, "seq_logp": seq_logp, "values": values, "mask": mask}
    if with_entropy:
        result["entropy"] = entropy
    return result


def answer_weights(
    tokenizer: Any, gens: Sequence[Generation], answer_width: int, thought_coef: float, marker: str
) -> torch.Tensor:
    """Per-token weights of a batch: ``thought_coef`` on thought tokens, 1 on action tokens."""
    lengths = torch.tensor([len(g.answer_ids) for g in gens], dtype=torch.long)
    if thought_coef == 1.0:
        starts = torch.zeros_like(lengths)
    else:
        starts = torch.tensor(
            [action_start_token(tokenizer, g.answer_ids, g.text, marker) for g in gens], dtype=torch.long
        )
    return thought_action_weights(lengths, starts, answer_width, thought_coef)
