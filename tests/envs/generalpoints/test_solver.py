"""The solver against an independent brute force on every multiset of four values in 1..13."""

import itertools
import json
from fractions import Fraction
from functools import cache

import pytest

from sftvsrl.envs.generalpoints import solve, solve_all, verify

RANK_OF = {1: "A", 11: "J", 12: "Q", 13: "K"}


@cache
def reachable(values: tuple[Fraction, ...]) -> frozenset[Fraction]:
    """All values of formulas over ``values``: repeatedly replace two numbers by a result.

    A different algorithm from the solver's (pairwise reduction, not splits of the
    multiset), so agreement means something.
    """
    if len(values) == 1:
        return frozenset(values)
    out: set[Fraction] = set()
    for i, j in itertools.combinations(range(len(values)), 2):
        a, b = values[i], values[j]
        rest = [values[k] for k in range(len(values)) if k not in (i, j)]
        results = {a + b, a - b, b - a, a * b}
        if b:
            results.add(a / b)
        if a:
            results.add(b / a)
        for r in results:
            out |= reachable(tuple(sorted(rest + [r])))
    return frozenset(out)


def _answer(values, formula):
    cards = [RANK_OF.get(v, str(v)) for v in values]
    return cards, json.dumps({"cards": cards, "number": list(values), "formula": formula})


def test_agrees_with_brute_force_on_all_1820_multisets():
    solvable = 0
    for combo in itertools.combinations_with_replacement(range(1, 14), 4):
        brute = Fraction(24) in reachable(tuple(sorted(Fraction(v) for v in combo)))
        formula = solve(combo)
        assert (formula is not None) == brute, combo
        if formula is None:
            assert solve_all(combo) == []
            continue
        solvable += 1
        for f in solve_all(combo):  # every returned formula verifies under the OOD values
            cards, text = _answer(combo, f)
            assert verify(text, cards, "ood").outcome == "correct", (combo, f)
        assert formula == solve_all(combo)[0]
    assert solvable == 1362  # shared fact: 1362 of 1820 multisets over 1..13


def test_fraction_solution_found():
    assert solve([3, 3, 8, 8]) == "8/(3-8/3)"
    assert solve([8, 3, 8, 3]) == "8/(3-8/3)"  # order of the input does not matter
    assert solve_all([1, 5, 5, 5]) == ["5*(5-1/5)"]


def test_unsolvable_and_other_targets():
    assert solve([1, 1, 1, 1]) is None
    assert solve([1, 1, 1, 1], target=4) == "1+1+1+1"
    assert solve([5, 5], target=0) in ("5-5",)
    assert solve([7], target=7) == "7"


def test_solve_all_lists_distinct_formulas():
    sols = solve_all([2, 3, 4, 10])
    assert len(sols) == len(set(sols)) >= 3
    # reorderings of one sum are one solution, not several
    assert sum(1 for s in solve_all([10, 10, 2, 2]) if "*" not in s) == 1


@pytest.mark.parametrize("bad", [[], [1] * 7, [1.5, 2, 3, 4], [True, 2, 3, 4], ["3", 3, 8, 8]])
def test_rejects_bad_input(bad):
    with pytest.raises((ValueError, TypeError)):
        solve(bad)
