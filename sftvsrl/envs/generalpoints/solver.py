"""Exact 24-game solver: every formula over a multiset of integers that hits a target.

Arithmetic is exact (``fractions.Fraction``), so fraction solutions such as ``8/(3-8/3)``
for 3, 3, 8, 8 are found (a float search can miss or mis-round them). Formulas use only
the four binary operations and parentheses, each number exactly once, no unary minus:
the same language the verifier accepts.

How it stays fast: every expression over a sub-multiset is built once and cached by the
sorted sub-multiset, and the top split of the full hand is *inverted* (for ``a op b =
target`` we compute the ``b`` each ``a`` needs and look it up), so a four-number hand costs
about a hundred exact operations once its sub-tables exist. Equivalent formulas
(reordering of sums and products, ``a-(b-c)`` vs ``a-b+c``) are collapsed by a canonical
key so that ``solve_all`` lists genuinely different solutions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction
from functools import cache, lru_cache
from typing import NamedTuple

MAX_NUMBERS = 6

# Precedence of the node's top operator when written: atoms bind tightest.
_ATOM, _MUL, _ADD = 3, 2, 1


class Expr(NamedTuple):
    """One formula: its exact value, its text with minimal parentheses, and a canonical key."""

    value: Fraction
    text: str
    prec: int
    kind: str  # "atom", "sum" or "prod"
    pos: tuple[str, ...]  # canonical keys of added terms / multiplied factors
    neg: tuple[str, ...]  # canonical keys of subtracted terms / divisors
    key: str


def atom(n: int) -> Expr:
    return Expr(Fraction(n), str(n), _ATOM, "atom", (), (), str(n))


def _parts(e: Expr, kind: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Flatten ``e`` into the terms of a sum (or factors of a product) for the canonical key."""
    if e.kind == kind:
        return e.pos, e.neg
    return (e.key,), ()


def _make(kind: str, pos: tuple[str, ...], neg: tuple[str, ...]) -> str:
    return f"{'S' if kind == 'sum' else 'P'}({','.join(sorted(pos))}|{','.join(sorted(neg))})"


def _wrap(e: Expr, need: bool) -> str:
    return f"({e.text})" if need else e.text


def combine(a: Expr, op: str, b: Expr) -> Expr | None:
    """``a op b`` as an Expr, or None for division by zero.

    Parentheses are added only where dropping them would change the value.
    """
    if op == "+":
        value, kind, prec = a.value + b.value, "sum", _ADD
        text = f"{a.text}+{b.text}"
        (pa, na), (pb, nb) = _parts(a, "sum"), _parts(b, "sum")
        pos, neg = pa + pb, na + nb
    elif op == "-":
        value, kind, prec = a.value - b.value, "sum", _ADD
        text = f"{a.text}-{_wrap(b, b.prec == _ADD)}"
        (pa, na), (pb, nb) = _parts(a, "sum"), _parts(b, "sum")
        pos, neg = pa + nb, na + pb
    elif op == "*":
        value, kind, prec = a.value * b.value, "prod", _MUL
        text = f"{_wrap(a, a.prec == _ADD)}*{_wrap(b, b.prec == _ADD)}"
        (pa, na), (pb, nb) = _parts(a, "prod"), _parts(b, "prod")
        pos, neg = pa + pb, na + nb
    elif op == "/":
        if b.value == 0:
            return None
        value, kind, prec = a.value / b.value, "prod", _MUL
        text = f"{_wrap(a, a.prec == _ADD)}/{_wrap(b, b.prec <= _MUL)}"
        (pa, na), (pb, nb) = _parts(a, "prod"), _parts(b, "prod")
        pos, neg = pa + nb, na + pb
    else:
        raise ValueError(f"unknown operator {op!r}")
    return Expr(value, text, prec, kind, pos, neg, _make(kind, pos, neg))


def _splits(values: tuple[int, ...]) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Every way to cut a sorted multiset into two non-empty parts, each unordered pair once."""
    n = len(values)
    seen: set[tuple[tuple[int, ...], tuple[int, ...]]] = set()
    out = []
    for mask in range(1, 1 << n):
        if not mask & 1 or mask == (1 << n) - 1:  # element 0 always on the left: no mirror pairs
            continue
        left = tuple(values[i] for i in range(n) if mask >> i & 1)
        right = tuple(values[i] for i in range(n) if not mask >> i & 1)
        if (left, right) not in seen and (right, left) not in seen:
            seen.add((left, right))
            out.append((left, right))
    return out


def _pair_results(a: Expr, b: Expr) -> Iterable[Expr]:
    """All distinct binary combinations of two sub-formulas (both orders for - and /)."""
    for op, x, y in (("+", a, b), ("*", a, b), ("-", a, b), ("-", b, a), ("/", a, b), ("/", b, a)):
        e = combine(x, op, y)
        if e is not None:
            yield e


@cache
def expressions(values: tuple[int, ...]) -> dict[Fraction, tuple[Expr, ...]]:
    """Every canonically distinct formula over the sorted multiset ``values``, by value."""
    if len(values) == 1:
        return {Fraction(values[0]): (atom(values[0]),)}
    table: dict[Fraction, dict[str, Expr]] = {}
    for left, right in _splits(values):
        for group_a in expressions(left).values():
            for a in group_a:
                for group_b in expressions(right).values():
                    for b in group_b:
                        for e in _pair_results(a, b):
                            table.setdefault(e.value, {}).setdefault(e.key, e)
    return {v: tuple(d.values()) for v, d in table.items()}


def _needed(a: Fraction, target: Fraction) -> Iterable[tuple[str, Fraction, bool]]:
    """For each operator, the other operand ``b`` with ``a op b == target`` (or ``b op a``).

    Yields (operator, b, a_is_left). ``a == 0`` is handled by the caller (then ``a*b`` and
    ``a/b`` hit the target for every ``b`` or for none).
    """
    yield "+", target - a, True
    yield "-", a - target, True  # a - b = t
    yield "-", a + target, False  # b - a = t
    yield "/", target * a, False  # b / a = t
    if a != 0:
        yield "*", target / a, True
        if target != 0:
            yield "/", a / target, True  # a / b = t


def _check_numbers(numbers: Sequence[int]) -> tuple[int, ...]:
    if not 1 <= len(numbers) <= MAX_NUMBERS:
        raise ValueError(f"need 1 to {MAX_NUMBERS} numbers, got {len(numbers)}")
    for n in numbers:
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"numbers must be integers, got {n!r}")
    return tuple(sorted(numbers, reverse=True))


@lru_cache(maxsize=65536)
def _solutions(values: tuple[int, ...], target: Fraction) -> tuple[str, ...]:
    if len(values) == 1:
        return (str(values[0]),) if values[0] == target else ()
    found: dict[str, str] = {}
    for left, right in _splits(values):
        # Iterate over the side with fewer formulas, look the other up by value.
        small, big = (left, right) if len(left) <= len(right) else (right, left)
        big_table = expressions(big)
        for group in expressions(small).values():
            for a in group:
                candidates = [
                    (op, b, a_left)
                    for op, b_value, a_left in _needed(a.value, target)
                    for b in big_table.get(b_value, ())
                ]
                if a.value == 0 and target == 0:  # 0*b and 0/b are 0 for every b
                    candidates += [(op, b, True) for g in big_table.values() for b in g for op in "*/"]
                for op, b, a_left in candidates:
                    e = combine(a, op, b) if a_left else combine(b, op, a)
                    if e is not None and e.value == target:
                        found.setdefault(e.key, e.text)
    return tuple(sorted(found.values(), key=lambda s: (len(s), s)))


def solve_all(numbers: Sequence[int], target: int = 24) -> list[str]:
    """Every canonically distinct formula using each number once that equals ``target``.

    Sorted shortest first, so the list (and ``solve``) is deterministic.
    """
    return list(_solutions(_check_numbers(numbers), Fraction(target)))


def solve(numbers: Sequence[int], target: int = 24) -> str | None:
    """One formula using each number exactly once that equals ``target``, or None."""
    sols = _solutions(_check_numbers(numbers), Fraction(target))
    return sols[0] if sols else None
