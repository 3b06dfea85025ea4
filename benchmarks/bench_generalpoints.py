"""GeneralPoints speed: env steps/s, solver throughput, and our exact verifier side by side
with a straightforward float-``eval`` verifier (the baseline lives only here, and only ever
sees formulas our own solver wrote).

    PYTHONPATH=. python benchmarks/bench_generalpoints.py [--quick]

Prints one line per measurement; ratios > 1 mean ours is faster.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import statistics
import time
from collections.abc import Callable

from sftvsrl.envs.generalpoints import solve, solve_all, verify
from sftvsrl.envs.generalpoints import solver as solver_module
from sftvsrl.envs.generalpoints.cards import is_solvable, split_table
from sftvsrl.envs.generalpoints.env import GeneralPointsEnv

RANK_OF = {1: "A", 11: "J", 12: "Q", 13: "K"}


def float_eval_verify(answer_text: str, values: list[int], target: int = 24) -> float:
    """The baseline: regex the formula out, compare its numbers, float ``eval`` it.

    This is what a quick implementation does (and what the original did): it must never
    see model text, and it misjudges exact fraction answers such as 8/(3-8/3).
    """
    match = re.search(r'"formula"\s*:\s*"([^"]*)"', answer_text)
    if not match:
        return -3.0
    formula = match.group(1)
    if sorted(int(n) for n in re.findall(r"\d+", formula)) != sorted(values):
        return -2.0
    try:
        value = eval(formula, {"__builtins__": {}}, {})  # noqa: S307  (trusted benchmark input only)
    except ZeroDivisionError:
        return -1.0
    return 5.0 if value == target else -1.0


def rate(fn: Callable[[], int], min_seconds: float) -> float:
    """Items per second of ``fn`` (which returns how many items it did), repeated >= min_seconds."""
    done, start = 0, time.perf_counter()
    while True:
        done += fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed


def paired_rates(
    fn_a: Callable[[], int], fn_b: Callable[[], int], rounds: int
) -> tuple[float, float, list[float]]:
    """Items/s of two functions timed in alternating passes (a, b, a, b, ...), so that load
    from other processes hits both alike: the best pass of each, and each round's ratio."""
    best_a = best_b = 0.0
    ratios = []
    for _ in range(rounds):
        start = time.perf_counter()
        done = fn_a()
        rate_a = done / (time.perf_counter() - start)
        start = time.perf_counter()
        done = fn_b()
        rate_b = done / (time.perf_counter() - start)
        best_a, best_b = max(best_a, rate_a), max(best_b, rate_b)
        ratios.append(rate_a / rate_b)
    return best_a, best_b, ratios


def answers_for_all_hands() -> list[tuple[str, list[str], list[int], str]]:
    """(answer text, cards, values, formula) for every formula of every solvable 1..13 hand."""
    out = []
    for combo in itertools.combinations_with_replacement(range(1, 14), 4):
        cards = [RANK_OF.get(v, str(v)) for v in combo]
        for formula in solve_all(combo):
            text = json.dumps({"cards": cards, "number": list(combo), "formula": formula})
            out.append((text, cards, list(combo), formula))
    return out


def bench_solver(quick: bool) -> None:
    combos = list(itertools.combinations_with_replacement(range(1, 14), 4))
    solver_module.expressions.cache_clear()
    solver_module._solutions.cache_clear()
    start = time.perf_counter()
    found = sum(solve(c) is not None for c in combos)
    cold = time.perf_counter() - start
    print(
        f"solver: all {len(combos)} multisets of 1..13 from a cold cache in {cold:.2f} s ({found} solvable)"
    )
    warm = rate(lambda: sum(1 for c in combos if solve(c) is not None) and len(combos), 0.5 if quick else 2)
    print(f"solver: {warm:,.0f} cached hands/s")
    for cached in (solver_module.expressions, solver_module._solutions, is_solvable, split_table):
        cached.cache_clear()
    start = time.perf_counter()
    split_table("id")
    split_table("ood")
    print(f"split tables (id + ood) from cold caches in {time.perf_counter() - start:.2f} s (env start-up)")


def bench_verifier(quick: bool) -> None:
    items = answers_for_all_hands()
    if quick:
        items = items[::20]
    exact = sum(verify(t, c, "ood").reward == 5.0 for t, c, _, _ in items)
    floaty = sum(float_eval_verify(t, v) == 5.0 for t, _, v, _ in items)
    print(
        f"verifier: {len(items)} correct solver answers; exact verifier accepts {exact}, "
        f"float eval accepts {floaty} ({len(items) - floaty} fraction answers wrongly rejected)"
    )
    ours, base, ratios = paired_rates(
        lambda: sum(1 for t, c, _, _ in items if verify(t, c, "ood")),
        lambda: sum(1 for t, _, v, _ in items if float_eval_verify(t, v) is not None),
        rounds=5 if quick else 21,
    )
    print(
        f"verifier: exact {ours:,.0f} answers/s, float eval {base:,.0f} answers/s, ratio {ours / base:.2f} "
        f"(best pass of each; per-round ratios min {min(ratios):.2f} median "
        f"{statistics.median(ratios):.2f} max {max(ratios):.2f}, {len(ratios)} rounds)"
    )


def bench_env(quick: bool) -> None:
    seconds = 0.5 if quick else 3
    for vision in (False, True):
        env = GeneralPointsEnv(vision=vision, rule="id", max_turns=5)
        seed = itertools.count()

        def episode(env=env, seed=seed) -> int:
            _, info = env.reset(seed=next(seed))
            env.step('{"cards": ["A"], "number": [1], "formula": "1+1"}')  # one wrong turn
            env.step(info["expert_answer"])
            return 2

        name = "-VL" if vision else "-L"
        print(
            f"env{name}: {rate(episode, seconds):,.0f} steps/s (one reset per two steps, rendering included)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs, to check the script works")
    args = parser.parse_args()
    bench_solver(args.quick)
    bench_verifier(args.quick)
    bench_env(args.quick)


if __name__ == "__main__":
    main()
