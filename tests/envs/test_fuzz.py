"""Seeded fuzz of both verifiers: random text, mutations of correct answers, random JSON.

No input may raise, and every GeneralPoints verdict must agree with the independent exact
evaluator in ``gp_reference.py`` (so every ``correct`` is truly correct, and every answer
the rules call correct is scored correct). 10,000 inputs per verifier in the fast set,
100,000 in the slow set.
"""

from __future__ import annotations

import itertools
import json
import random

import pytest
from gp_reference import reference_follows, reference_outcome

from sftvsrl.envs.generalpoints import OUTCOMES, solve_all
from sftvsrl.envs.generalpoints import verify as gp_verify
from sftvsrl.envs.jsontext import find_json_object
from sftvsrl.envs.virl.oracle import Action
from sftvsrl.envs.virl.verifier import REWARDS as VIRL_REWARDS
from sftvsrl.envs.virl.verifier import verify as virl_verify

RANK = {1: "A", 11: "J", 12: "Q", 13: "K"}
FORMULA_CHARS = "0123456789+-*/() ="
TEXT_CHARS = FORMULA_CHARS + '{}[]":,.\\ \n\tabcxyzAJQK\x00\u00e9\u0663\ud800\U0001f600'


def _hands():
    out = []
    for combo in itertools.combinations_with_replacement(range(1, 14), 4):
        formulas = solve_all(combo)
        if formulas:
            out.append((combo, formulas))
    return out


HANDS = _hands()


def _mutate(rng: random.Random, text: str, alphabet: str) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(chars) + 1)
        kind = rng.random()
        if kind < 0.4 and chars:
            chars[min(i, len(chars) - 1)] = rng.choice(alphabet)
        elif kind < 0.75:
            chars.insert(i, rng.choice(alphabet))
        elif chars:
            del chars[min(i, len(chars) - 1)]
    return "".join(chars)


def _random_json(rng: random.Random, depth: int = 0):
    kind = rng.randrange(8 if depth < 4 else 5)
    if kind == 0:
        return rng.randint(-(10**8), 10**8)
    if kind == 1:
        return rng.choice([0.5, 13.0, 1e308, -0.0, float("inf")])
    if kind == 2:
        return "".join(rng.choice(TEXT_CHARS) for _ in range(rng.randint(0, 12)))
    if kind == 3:
        return rng.choice([None, True, False])
    if kind == 4:
        return rng.choice(["1+2", "(13-1)*10/5", "8/(3-8/3)", "6*4"])
    if kind == 5:
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ["cards", "number", "formula", "x", "action"]
    return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def _gp_case(rng: random.Random):
    """(answer, cards, rule, values): a mix of exact, mutated and random answers."""
    combo, formulas = rng.choice(HANDS)
    rule = rng.choice(["id", "ood"])
    values = [10 if rule == "id" and v > 10 else v for v in combo]
    cards = [RANK.get(v, str(v)) for v in combo]
    formula = rng.choice(formulas)
    number: object = list(combo) if rule == "ood" else values
    kind = rng.random()
    if kind < 0.35:
        formula = _mutate(rng, formula, FORMULA_CHARS)
    elif kind < 0.45:
        number = rng.choice(
            [[str(v) for v in values], [float(v) for v in values], values[:3], [True, 1, 2, 3]]
        )
    elif kind < 0.6:
        text = _mutate(rng, json.dumps({"cards": cards, "number": number, "formula": formula}), TEXT_CHARS)
        return text, cards, rule, values
    elif kind < 0.75:
        return json.dumps(_random_json(rng)), cards, rule, values
    elif kind < 0.85:
        return "".join(rng.choice(TEXT_CHARS) for _ in range(rng.randint(0, 80))), cards, rule, values
    text = json.dumps({"cards": cards, "number": number, "formula": formula})
    if rng.random() < 0.3:
        text = f"Let me see.\n```json\n{text}\n```"
    return text, cards, rule, values


def _check_gp(n: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    seen: dict[str, int] = {}
    for _ in range(n):
        text, cards, rule, values = _gp_case(rng)
        v = gp_verify(text, cards, rule)
        assert v.outcome in OUTCOMES
        seen[v.outcome] = seen.get(v.outcome, 0) + 1
        obj = find_json_object(text)
        expected = reference_outcome(obj, values)
        assert v.outcome == expected, (text, v.feedback)
        assert v.rule_following == (obj is not None and reference_follows(obj.get("number"), values)), text
        assert v.success == (v.outcome == "correct")
    return seen


def _virl_case(rng: random.Random) -> str:
    words = ["forward()", "stop()", "turn_direction(north)", "turn_direction(left)", "turn left",
             "turn_direction(slightly right)", "NE", "turn around", "fly()", ""]  # fmt: skip
    kind = rng.random()
    if kind < 0.4:
        return json.dumps({"action": _mutate(rng, rng.choice(words), TEXT_CHARS) if rng.random() < 0.5
                           else rng.choice(words), "landmarks": rng.choice([[], ["Cafe"], ["Bar"], "x"])})  # fmt: skip
    if kind < 0.7:
        return json.dumps(_random_json(rng))
    return "".join(rng.choice(TEXT_CHARS) for _ in range(rng.randint(0, 80)))


def _check_virl(n: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    seen: dict[str, int] = {}
    for _ in range(n):
        text = _virl_case(rng)
        space = rng.choice(["absolute", "relative"])
        expected = Action("turn", "left") if space == "relative" else Action("turn", "north")
        for vision in (False, True):
            v = virl_verify(text, expected, space, vision=vision, visible_landmarks=["Cafe"])
            assert v.outcome in VIRL_REWARDS and v.reward == VIRL_REWARDS[v.outcome]
            if v.outcome in ("correct", "wrong_action"):
                assert v.valid_action and v.action is not None
            if v.outcome == "invalid_action":
                assert not v.valid_action
            seen[v.outcome] = seen.get(v.outcome, 0) + 1
    return seen


def test_generalpoints_fuzz_fast():
    seen = _check_gp(10_000, seed=12)
    assert {"correct", "wrong_value", "wrong_numbers", "bad_format"} <= set(seen)


def test_virl_fuzz_fast():
    seen = _check_virl(10_000, seed=12)
    assert {"correct", "wrong_action", "invalid_action", "bad_format", "landmark_error"} <= set(seen)


@pytest.mark.slow
def test_generalpoints_fuzz_slow():
    _check_gp(100_000, seed=1312)


@pytest.mark.slow
def test_virl_fuzz_slow():
    _check_virl(100_000, seed=1312)
