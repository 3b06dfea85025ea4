"""Mean per-token KL(ref || model) on the reference's own samples."""

import copy
import math

import pytest
import torch

from sftvsrl.evaluation.kl import first_prompts, kl_to_reference, mean_token_kl, sample_reference_answers
from sftvsrl.models.loading import load_model


@pytest.fixture(scope="module")
def base():
    return load_model("tiny-lm", trainable=False)


@pytest.fixture(scope="module")
def prompts():
    return first_prompts("sftvsrl/GeneralPoints-L-v0", {"rule": "id", "split": "test"}, 3, seed=0)


def perturbed(pm, scale=0.05, seed=1):
    other = copy.copy(pm)
    other.model = copy.deepcopy(pm.model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in other.model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))
    return other


def test_kl_of_a_model_to_itself_is_zero_and_to_a_perturbed_copy_positive(base, prompts):
    gens = sample_reference_answers(base, prompts, n=3, seed=0, max_new_tokens=6)
    assert len(gens) == 3
    same = mean_token_kl(base, base, gens)
    assert same.value == pytest.approx(0.0, abs=1e-6)
    assert same.tokens == sum(len(g.answer_ids) for g in gens) and same.prompts == 3
    moved = mean_token_kl(base, perturbed(base), gens)
    assert moved.value > 1e-4 and moved.time_s >= 0
    assert mean_token_kl(base, perturbed(base), gens, max_tokens=2).tokens <= 6  # bounded cost


def test_fixed_seed_is_reproducible(base, prompts):
    other = perturbed(base)
    a = kl_to_reference(base, other, prompts, n=2, seed=7, max_new_tokens=5)
    b = kl_to_reference(base, other, prompts, n=2, seed=7, max_new_tokens=5)
    assert a.value == b.value and a.tokens == b.tokens and a.prompts == 2
    ids = [g.answer_ids for g in sample_reference_answers(base, prompts, 2, seed=7, max_new_tokens=5)]
    assert ids == [g.answer_ids for g in sample_reference_answers(base, prompts, 2, seed=7, max_new_tokens=5)]


def test_eval_cli_reports_kl_to_base(tmp_path):
    import json

    from sftvsrl.cli import main

    out = tmp_path / "ev"
    rc = main(
        [
            "eval", "--model", "tiny-lm", "--env", "sftvsrl/GeneralPoints-L-v0", "--env-kwargs", "split=test",
            "--episodes", "2", "--max-turns", "1", "--max-new-tokens", "4", "--out", str(out),
            "--kl-base", "tiny-lm", "--kl-prompts", "2",
        ]
    )  # fmt: skip
    assert rc == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["kl_to_base"] == pytest.approx(0.0, abs=1e-6)  # the base against itself
    cost = s["kl_to_base_cost"]
    assert (
        cost["prompts"] == 2 and cost["tokens"] > 0 and cost["kl_time_s"] >= 0 and cost["temperature"] == 1.0
    )
    assert s["rule_following_n"] == 2


def test_no_answers_give_nan(base):
    empty = mean_token_kl(base, base, [])
    assert math.isnan(empty.value) and empty.tokens == 0
