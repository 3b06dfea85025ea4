"""Answers for expert data: varied correct formulas and plausible mistakes (revision rows).

They live beside the env (not in ``sftvsrl.data``) because the task registry names them:
the data CLI and the study read them from there, so the wiring is written once.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from typing import Any

from sftvsrl.envs.generalpoints.cards import RANKS
from sftvsrl.envs.generalpoints.solver import atom, combine, solve_all
from sftvsrl.envs.generalpoints.verifier import expert_answer

AnswerFn = Callable[[dict[str, Any], random.Random], str | None]
_OPERATORS = "+-*/"


def varied_expert(info: dict[str, Any], rng: random.Random) -> str:
    """A correct answer whose formula is drawn among all of the hand's solutions."""
    formulas = solve_all(info["values"], info["target"])
    return expert_answer(info["cards"], info["values"], rng.choice(formulas))


def random_formula(values: list[int], rng: random.Random) -> tuple[str, object] | None:
    """A random formula using each value once: (text, exact value or None on x/0)."""
    items = [atom(v) for v in values]
    rng.shuffle(items)
    while len(items) > 1:
        i, j = rng.sample(range(len(items)), 2)
        a, b = items[i], items[j]
        e = combine(a, rng.choice(_OPERATORS), b)
        if e is None:
            return None
        items = [x for k, x in enumerate(items) if k not in (i, j)] + [e]
    return items[0].text, items[0].value


def _wrong_value(values: list[int], target: int, rng: random.Random) -> str | None:
    for _ in range(30):
        made = random_formula(values, rng)
        if made is not None and made[1] != target:
            return made[0]
    return None


def _miscounted(values: list[int], ranks: list[str], rule: str, rng: random.Random) -> list[int]:
    """The card values with one mistake: under OOD a face card counted as 10, else off by one."""
    wrong = list(values)
    faces = [i for i, r in enumerate(ranks) if r in ("J", "Q", "K")]
    if rule == "ood" and faces:
        wrong[rng.choice(faces)] = 10
    else:
        i = rng.randrange(len(wrong))
        wrong[i] = wrong[i] + 1 if wrong[i] < 10 else wrong[i] - 1
    return wrong


def wrong_answer(info: dict[str, Any], rng: random.Random, vision: bool, rule: str) -> str | None:
    """A plausible mistake for a revision row (None if none could be made)."""
    cards, values, target = list(info["cards"]), list(info["values"]), info["target"]
    kinds = ["value", "value", "numbers", "numbers", "format"] + (["recognition"] if vision else [])
    kind = rng.choice(kinds)
    if kind == "value":
        formula = _wrong_value(values, target, rng)
        return None if formula is None else expert_answer(cards, values, formula)
    if kind == "numbers":
        wrong = _miscounted(values, cards, rule, rng)
        formulas = solve_all(wrong, target)
        made = rng.choice(formulas) if formulas else _wrong_value(wrong, target, rng)
        return None if made is None else expert_answer(cards, wrong, made)
    if kind == "recognition":
        misread = list(cards)
        i = rng.randrange(len(misread))
        misread[i] = rng.choice([r for r in RANKS if r != misread[i]])
        return expert_answer(misread, values, rng.choice(solve_all(values, target)))
    formula = rng.choice(solve_all(values, target))
    slips = [
        formula.replace("*", "x"),  # a letter for an operator
        json.dumps({"cards": cards, "formula": formula}),  # a missing field
        formula,  # no JSON at all
    ]
    return rng.choice(slips)


def make_wrong_fn(env_kwargs: Mapping[str, Any], vision: bool) -> AnswerFn:
    """The wrong-answer function for episodes made with ``env_kwargs`` (its rule decides the
    miscounting mistake; -VL adds misread cards)."""
    rule = str(env_kwargs.get("rule", "id"))
    return lambda info, rng: wrong_answer(info, rng, vision, rule)


def row_extra(info: dict[str, Any]) -> dict[str, Any]:
    """What a data row records besides prompt and completion: the hand and how it counts."""
    return {
        "cards": info["cards"],
        "hand": info["hand"],
        "values": info["values"],
        "rule": info["rule"],
        "target": info["target"],
    }
