"""Wilson score interval for a success rate: sensible at 0 or n successes and small n,
unlike the normal approximation (which gives [0, 0] for 0/10)."""

from __future__ import annotations

import math


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Two-sided interval for the success probability (95% for the default ``z``)."""
    if n <= 0:
        return (0.0, 1.0)
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, {n}], got {successes}")
    p = successes / n
    denom = 1.0 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo = 0.0 if successes == 0 else max(0.0, center - half)
    hi = 1.0 if successes == n else min(1.0, center + half)
    return (lo, hi)


def newcombe_interval(
    x1: int, n1: int, x2: int, n2: int, z: float = 1.959963984540054
) -> tuple[float, float, float]:
    """``(p1 - p2, low, high)``: Newcombe's hybrid score interval (his method 10, 1998) for
    the difference of two independent proportions ``x1/n1 - x2/n2``, built from the two
    Wilson intervals ``(l1, u1)`` and ``(l2, u2)``::

        low  = d - sqrt((p1 - l1)^2 + (u2 - p2)^2)
        high = d + sqrt((u1 - p1)^2 + (p2 - l2)^2)

    Like Wilson's, it stays inside [-1, 1] and is sensible at 0 or n successes. With an
    empty sample the difference is unknown: ``(nan, -1, 1)``."""
    if n1 <= 0 or n2 <= 0:
        return (math.nan, -1.0, 1.0)
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson_interval(x1, n1, z)
    l2, u2 = wilson_interval(x2, n2, z)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return (d, max(-1.0, low), min(1.0, high))
