"""RL numerics pinned on hand-worked examples."""

import math

import pytest
import torch

from sftvsrl.training.ppo import ValueHead
from sftvsrl.training.rl_math import (
    Means,
    answer_token_logprobs,
    compute_gae,
    explained_variance,
    kl_penalty,
    masked_mean,
    normalize_advantages,
    pad_rows,
    policy_loss,
    thought_action_weights,
    value_loss,
)


def t(x):
    return torch.tensor(x, dtype=torch.float32)


def test_gae_episode_end_mid_batch_and_truncation():
    # Columns are envs. Env 0: an episode terminates at t=1, a new one runs to the buffer end.
    # Env 1: truncated at t=0 (bootstraps from its final observation's value 4), then a new
    # episode terminates at t=2. next_values after terminated steps are junk on purpose.
    rewards = t([[1.0, -1.0], [0.0, 1.0], [2.0, 0.0]])
    values = t([[0.5, 2.0], [1.0, 0.0], [1.0, 1.0]])
    next_values = t([[1.0, 4.0], [7.0, 1.0], [2.0, 9.0]])
    terminated = torch.tensor([[0, 0], [1, 0], [0, 1]], dtype=torch.bool)
    truncated = torch.tensor([[0, 1], [0, 0], [0, 0]], dtype=torch.bool)
    adv, ret = compute_gae(rewards, values, next_values, terminated, truncated, gamma=0.5, lam=0.5)
    # Env 0: d2 = 2 + .5*2 - 1 = 2; d1 = 0 - 1 = -1 (no bootstrap); d0 = 1 + .5*1 - .5 = 1,
    # A0 = 1 + .25 * (-1) = 0.75.  Env 1: d2 = -1; A1 = 1.5 + .25*(-1) = 1.25;
    # d0 = -1 + .5*4 - 2 = -1 and the chain is cut after the truncation.
    assert adv.flatten().tolist() == pytest.approx([0.75, -1.0, -1.0, 1.25, 2.0, -1.0])
    assert ret.flatten().tolist() == pytest.approx([1.25, 1.0, 0.0, 1.25, 3.0, 0.0])


def test_gae_matches_per_episode_reference():
    g = torch.Generator().manual_seed(0)
    T, E, gamma, lam = 9, 4, 0.9, 0.95
    rewards = torch.randn(T, E, generator=g)
    values = torch.randn(T, E, generator=g)
    next_values = torch.randn(T, E, generator=g)
    terminated = torch.rand(T, E, generator=g) < 0.25
    truncated = (torch.rand(T, E, generator=g) < 0.2) & ~terminated
    adv, _ = compute_gae(rewards, values, next_values, terminated, truncated, gamma, lam)
    for e in range(E):
        for s in range(T):
            # Direct sum: A_s = sum_k (gamma*lam)^k delta_{s+k} until the episode ends.
            total, k = 0.0, 0
            while s + k < T:
                i = s + k
                boot = 0.0 if terminated[i, e] else next_values[i, e].item()
                delta = rewards[i, e].item() + gamma * boot - values[i, e].item()
                total += (gamma * lam) ** k * delta
                if terminated[i, e] or truncated[i, e]:
                    break
                k += 1
            assert adv[s, e].item() == pytest.approx(total, abs=1e-5)


def test_advantage_normalisation():
    out = normalize_advantages(t([1.0, 3.0]))
    assert out.tolist() == pytest.approx([-1.0, 1.0], abs=1e-6)


def test_masked_mean():
    assert masked_mean(t([1.0, 2.0, 9.0]), torch.tensor([1, 1, 0])).item() == pytest.approx(1.5)
    assert masked_mean(t([1.0]), torch.tensor([0])).item() == 0.0


def test_answer_span_logprobs_and_entropy():
    # Row: prompt [pad, 5] (P=2), answer [2] then padding (A=2).
    input_ids = torch.tensor([[0, 5, 2, 0]])
    logits = torch.zeros(1, 4, 6)
    logits[0, 1, 2] = math.log(6.0)  # p(2) = 6 / (6 + 5) at the last prompt position
    logp, ent = answer_token_logprobs(logits, input_ids, prompt_width=2, answer_width=2, entropy=True)
    assert logp[0, 0].item() == pytest.approx(math.log(6 / 11))
    p = torch.tensor([1, 1, 6, 1, 1, 1]) / 11
    assert ent[0, 0].item() == pytest.approx(float(-(p * p.log()).sum()), abs=1e-6)
    assert answer_token_logprobs(logits, input_ids, 2, 2)[1] is None  # entropy only when asked


def test_thought_action_weights_and_padded_rows():
    w = thought_action_weights(torch.tensor([4, 2]), torch.tensor([2, 0]), 4, thought_coef=0.5)
    assert w.tolist() == [[0.5, 0.5, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]]
    assert pad_rows([t([1.0, 2.0]), t([3.0])], 3).tolist() == [[1.0, 2.0, 0.0], [3.0, 0.0, 0.0]]


def test_policy_loss_clips_both_sides():
    new = t([math.log(1.5), math.log(0.5)])
    old = t([0.0, 0.0])
    adv = t([1.0, -1.0])
    loss, stats = policy_loss(new, old, adv, clip=0.2)
    # Positive advantage: min(1.5, 1.2) -> -1.2; negative: max(0.5, 0.8) -> 0.8.
    assert loss.item() == pytest.approx((-1.2 + 0.8) / 2)
    assert stats["clipfrac"].item() == 1.0
    # The clipped branch carries no gradient, so the loss must not move the policy further.
    new.requires_grad_(True)
    loss, _ = policy_loss(new, old, adv, clip=0.2)
    loss.backward()
    assert new.grad.tolist() == [0.0, 0.0]


def test_value_loss_plain_and_clipped():
    new, old, ret = t([1.0, 3.0]), t([0.0, 0.0]), t([2.0, 2.0])
    assert value_loss(new, old, ret).item() == pytest.approx(0.5)
    assert value_loss(new, old, ret, clip=0.5).item() == pytest.approx(1.125)


def test_kl_penalty_k3():
    m = torch.ones(1)
    assert kl_penalty(t([-1.0]), t([-1.0]), m).item() == 0.0
    expected = 0.5 - math.log(0.5) - 1.0
    assert kl_penalty(t([math.log(0.5)]), t([math.log(0.25)]), m).item() == pytest.approx(expected)


def test_explained_variance():
    assert explained_variance(t([1.0, 2.0, 3.0]), t([1.0, 2.0, 3.0])) == pytest.approx(1.0)
    assert explained_variance(t([0.0, 0.0, 0.0]), t([1.0, 2.0, 3.0])) == pytest.approx(0.0)
    assert explained_variance(t([1.0, 2.0]), t([5.0, 5.0])) is None  # constant returns


def test_means_of_micro_batch_stats():
    m = Means("a", "b")
    m.add(a=torch.tensor(1.0))
    m.add(a=3.0)
    assert m.means() == {"a": 2.0, "b": None}


def test_value_head_starts_at_zero_and_learns():
    head = ValueHead(8)
    h = torch.randn(3, 8)
    assert head(h).tolist() == [0.0, 0.0, 0.0]
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(50):
        loss = ((head(h) - 1.0) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
