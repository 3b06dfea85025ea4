import pytest

from sftvsrl.evaluation.wilson import wilson_interval


def test_hand_worked_values():
    # 0/10: centre = (z^2/2)/(10+z^2) = 0.13877, half-width 0.13877 -> [0, 0.27753]
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.27753, abs=1e-5)
    # 5/10: centre 0.5, half = z/(10+z^2)*sqrt(2.5+z^2/4) = 0.26341
    assert wilson_interval(5, 10) == pytest.approx((0.23659, 0.76341), abs=1e-5)
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0 and lo == pytest.approx(1 - 0.27753, abs=1e-5)


def test_bounds_and_errors():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)
    lo, hi = wilson_interval(117, 234)
    assert lo < 0.5 < hi and hi - lo < 0.14


def test_newcombe_worked_examples():
    from sftvsrl.evaluation.wilson import newcombe_interval

    # Newcombe (1998), Table II: 56/70 - 48/80 = 0.2000, method 10: [0.0524, 0.3339]
    d, lo, hi = newcombe_interval(56, 70, 48, 80)
    assert d == pytest.approx(0.2) and (lo, hi) == pytest.approx((0.0524, 0.3339), abs=5e-5)
    # 9/10 - 3/10 = 0.6: [0.1705, 0.8090]; 10/10 - 0/10: [0.6075, 1.0000] (same table)
    assert newcombe_interval(9, 10, 3, 10)[1:] == pytest.approx((0.1705, 0.8090), abs=5e-5)
    assert newcombe_interval(10, 10, 0, 10)[1:] == pytest.approx((0.6075, 1.0), abs=5e-5)
    # antisymmetric, and unknown for an empty sample
    d2, lo2, hi2 = newcombe_interval(48, 80, 56, 70)
    assert (d2, lo2, hi2) == pytest.approx((-0.2, -0.3339, -0.0524), abs=5e-5)
    assert newcombe_interval(0, 0, 1, 2)[1:] == (-1.0, 1.0)
