"""Generated steps as model inputs, and the policy-only scoring every RL trainer needs.

:class:`Policy` scores ``[prompt | answer]`` rows with a causal LM: the per-token log-probs of
the answer (the KL reference uses only this), their weighted sum as the action's log-prob,
and optionally entropies and the last prompt token's hidden state (PPO's value head reads it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from sftvsrl.rollout import Generation
from sftvsrl.training.rl_math import answer_token_logprobs, pad_rows, thought_action_weights


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


def answer_weights(
    tokenizer: Any, gens: Sequence[Generation], thought_coef: float, marker: str
) -> list[torch.Tensor]:
    """Per-token weights of each answer: ``thought_coef`` on thought tokens, 1 on action tokens."""
    lengths = torch.tensor([len(g.answer_ids) for g in gens], dtype=torch.long)
    if thought_coef == 1.0:
        starts = torch.zeros_like(lengths)
    else:
        starts = torch.tensor(
            [action_start_token(tokenizer, g.answer_ids, g.text, marker) for g in gens], dtype=torch.long
        )
    width = max(int(lengths.max()) if len(gens) else 0, 1)
    rows = thought_action_weights(lengths, starts, width, thought_coef)
    return [row[:n] for row, n in zip(rows, lengths.tolist(), strict=True)]


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
    extras = {key: torch.cat([g.extras[key] for g in gens], dim=0) for key in gens[0].extras}
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


@dataclass
class Scores:
    """One forward pass over a collated batch: ``[B, A]`` token log-probs and their mask,
    ``[B]`` weighted sequence log-probs; entropy and last-prompt hidden state when asked."""

    token_logp: torch.Tensor
    seq_logp: torch.Tensor
    mask: torch.Tensor
    entropy: torch.Tensor | None = None
    hidden: torch.Tensor | None = None


class Policy:
    """A causal LM scored on generated steps, in micro-batches of ``micro_batch_size``."""

    def __init__(self, model: torch.nn.Module, pad_id: int, micro_batch_size: int) -> None:
        self.model, self.pad_id, self.micro_batch_size = model, pad_id, micro_batch_size

    def chunks(self, n: int) -> list[slice]:
        return [slice(i, i + self.micro_batch_size) for i in range(0, n, self.micro_batch_size)]

    def forward(
        self,
        batch: dict[str, Any],
        weights: torch.Tensor | None = None,
        *,
        entropy: bool = False,
        hidden: bool = False,
    ) -> Scores:
        """Score one collated batch (with grad unless the caller disables it)."""
        device = next(self.model.parameters()).device
        P, A = batch["prompt_width"], batch["answer_width"]
        out = self.model(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
            position_ids=batch["position_ids"].to(device),
            output_hidden_states=hidden,
            use_cache=False,
            **{k: v.to(device) for k, v in batch["extras"].items()},
        )
        logp, ent = answer_token_logprobs(out.logits, batch["input_ids"].to(device), P, A, entropy)
        mask = torch.arange(A, device=device).unsqueeze(0) < batch["answer_lengths"].to(device).unsqueeze(1)
        w = mask.float() if weights is None else weights.to(device)
        last_prompt = out.hidden_states[-1][:, P - 1] if hidden else None
        return Scores(logp, (logp * w).sum(-1), mask, ent, last_prompt)

    @torch.no_grad()
    def logprobs(self, gens: Sequence[Generation], weights: Sequence[torch.Tensor]) -> torch.Tensor:
        """Each answer's weighted log-prob (on the CPU): the old log-probs of a policy-only trainer."""
        out = [torch.zeros(0)]
        for part in self.chunks(len(gens)):
            batch = collate(gens[part], self.pad_id)
            out.append(self.forward(batch, weight_batch(weights[part], batch)).seq_logp.float().cpu())
        return torch.cat(out)

    @torch.no_grad()
    def token_logprobs(self, gens: Sequence[Generation]) -> list[torch.Tensor]:
        """Each answer's per-token log-probs (on the CPU), e.g. of a frozen KL reference."""
        out: list[torch.Tensor] = []
        for part in self.chunks(len(gens)):
            batch = collate(gens[part], self.pad_id)
            logp = self.forward(batch).token_logp
            out += [row[:n].float().cpu() for row, n in zip(logp, batch["answer_lengths"], strict=True)]
        return out


def weight_batch(weights: Sequence[torch.Tensor], batch: dict[str, Any]) -> torch.Tensor:
    """Per-answer weight rows padded to a collated batch's answer width."""
    return pad_rows(weights, batch["answer_width"])
