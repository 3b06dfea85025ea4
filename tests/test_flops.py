import pytest
import torch

from sftvsrl.flops import FlopsCounter, count_tokens, measure_matmul_peak, mfu, rl_flops, sft_flops


def test_sft_formula_by_hand():
    # N = 1,000 params, 50 init tokens + 100 SFT tokens: 6 * 1000 * 150 = 900,000
    assert sft_flops(1000, 50, 100) == 900_000


def test_rl_formula_by_hand():
    # 6 * 2000 * (10 + 30) + 2 * 2000 * 60 = 480,000 + 240,000
    assert rl_flops(2000, 10, 30, 60) == 720_000


def test_counter_matches_formulas_across_stages():
    sft = FlopsCounter(n_params=1000)
    sft.add_train_tokens(60)
    sft.add_train_tokens(40)
    assert sft.total_flops == sft_flops(1000, 0, 100) == 600_000
    rl = sft.next_stage()
    assert (rl.d_init, rl.init_flops) == (100, 600_000)
    rl.add_train_tokens(30)
    rl.add_buffer_tokens(90)
    # 6 * 1000 * (100 + 30) + 2 * 1000 * 90 = 780,000 + 180,000
    assert rl.total_flops == rl_flops(1000, 100, 30, 90) == 960_000
    again = FlopsCounter.from_dict(rl.to_dict())
    assert again == rl and again.total_flops == 960_000


def test_counter_state_errors_are_clear():
    with pytest.raises(ValueError, match="missing"):
        FlopsCounter.from_dict({"n_params": 3})


def test_count_tokens_ignores_padding():
    mask = torch.tensor([[1, 1, 1, 0], [0, 1, 1, 1], [1, 0, 0, 0]])
    assert count_tokens(mask) == 7
    assert count_tokens([[1, 1, 0], [1, 0, 0]]) == 3


def test_mfu_and_peak():
    assert mfu(1e9, 2.0, 1e9) == 0.5
    assert mfu(1.0, 0.0, 1e9) == 0.0
    assert measure_matmul_peak("float32", size=128, seconds=0.05) > 1e6


def test_sft_steps_for_budget():
    from sftvsrl.flops import sft_steps_for_budget

    # 6 * 1000 params * 500 tokens = 3e6 FLOPs per step; 0.03 GFLOPs = 10 steps
    assert sft_steps_for_budget(0.03, 1000, 500) == 10
    assert sft_steps_for_budget(0.0, 1000, 500) == 1  # always at least one step
