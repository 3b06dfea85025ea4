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
