"""Hostile answers for both verifiers and both env steps: each has its expected outcome and
a time bound (generous, for a loaded 2-core CI machine), and nothing is ever run."""

from __future__ import annotations

import builtins
import json
import time

import pytest

from sftvsrl.envs.generalpoints import verify as gp_verify
from sftvsrl.envs.generalpoints.env import GeneralPointsEnv
from sftvsrl.envs.virl.oracle import Action
from sftvsrl.envs.virl.verifier import verify as virl_verify

CARDS = ["K", "5", "10", "A"]  # OOD values 13 5 10 1, ID values 10 5 10 1
RIGHT = "(13-1)*10/5"
MB = 1_000_000


def gp(formula: object = RIGHT, number: object = (13, 5, 10, 1), cards: object = CARDS, **more) -> str:
    obj = {
        "cards": cards,
        "number": list(number) if isinstance(number, tuple) else number,
        "formula": formula,
    }
    return json.dumps({**obj, **more})


# (answer, expected outcome, seconds)
GP_TABLE = [
    (gp(), "correct", 0.05),
    (gp("__import__('os').system('touch /tmp/sftvsrl-pwned')"), "bad_format", 0.05),
    (gp("9**9**9**9"), "bad_format", 0.05),
    (gp("(lambda: 1)()"), "bad_format", 0.05),
    (gp("(" * 5000 + "13" + ")" * 5000), "bad_format", 0.05),
    (gp("1+" * 3000 + "1"), "bad_format", 0.05),
    ("[" * 100_000 + "]" * 100_000, "bad_format", 0.1),
    ("{" * 10_000 + "}" * 10_000, "bad_format", 0.1),
    ('{"a":' * 3000, "bad_format", 0.1),
    ("x" * MB, "bad_format", 0.05),
    ("x" * (10 * MB), "bad_format", 0.05),
    (gp() + " " * MB, "bad_format", 0.05),  # a right answer drowned in 1 MB: too long
    (gp(RIGHT + "\x00"), "bad_format", 0.05),
    ("\x00" * 1000 + gp(), "correct", 0.05),
    (b'{"cards": [], "number": [13,5,10,1], "formula": "(13-1)*10/5\xff"}', "bad_format", 0.05),
    (b"\xff\xfe" * (5 * MB), "bad_format", 0.05),  # 10 MB of invalid UTF-8
    ("\ud800" + gp(), "correct", 0.05),  # a lone surrogate before the JSON
    (gp(RIGHT + "\ud800"), "bad_format", 0.05),
    (gp("(١٣-١)*١٠/٥"), "bad_format", 0.05),  # Arabic-Indic digits
    (gp("(13-1)*10/5", number=["١٣", "5", "10", "1"]), "wrong_numbers", 0.05),
    ('{"cards": [], "number": [13,5,10,1], "formula": "1+1", "formula": "(13-1)*10/5"}', "correct", 0.05),
    (
        '{"cards": [], "number": [13,5,10,1], "formula": "(13-1)*10/5", "formula": "1+1"}',
        "wrong_numbers",
        0.05,
    ),
    (gp("9" * 100_000), "bad_format", 0.05),
    (gp(10**4000), "bad_format", 0.05),
    ('{"cards": [], "number": [' + "9" * 5000 + '], "formula": "1"}', "bad_format", 0.05),  # int digit limit
    (gp(number=[1e308, 1e308, 1e308, 1e308]), "wrong_numbers", 0.05),
    (gp(number=[float("nan")] * 4), "wrong_numbers", 0.05),
    ('["cards", "number", "formula"]', "bad_format", 0.05),
    ('"(13-1)*10/5"', "bad_format", 0.05),
    ("24", "bad_format", 0.05),
    ("null", "bad_format", 0.05),
    (None, "bad_format", 0.05),
    (24, "bad_format", 0.05),
    (["(13-1)*10/5"], "bad_format", 0.05),
    (gp("13-1)*(10/5"), "bad_format", 0.05),
    (gp("(13-1)*10/(5-5)", number=(13, 5, 10, 1, 5)), "wrong_numbers", 0.05),
    (gp("13*(10-5)/(1-1)", number=(13, 10, 5, 1, 1)), "wrong_numbers", 0.05),
]


@pytest.fixture
def no_eval(monkeypatch):
    """Fail the test if anything reaches eval, exec or compile."""

    def forbidden(*args, **kwargs):
        raise AssertionError("model text reached eval/exec/compile")

    for name in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, name, forbidden)


@pytest.mark.parametrize(("answer", "outcome", "seconds"), GP_TABLE, ids=range(len(GP_TABLE)))
def test_generalpoints_hostile_table(no_eval, answer, outcome, seconds):
    start = time.perf_counter()
    v = gp_verify(answer, CARDS, "ood")
    elapsed = time.perf_counter() - start
    assert v.outcome == outcome, v.feedback
    assert elapsed < seconds, elapsed
    assert "\n" not in v.feedback and len(v.feedback) < 400


def test_generalpoints_division_by_zero_and_exact_fractions():
    cards = ["3", "3", "8", "8"]
    assert gp_verify(gp("8/(3-8/3)", number=(8, 3, 8, 3), cards=cards), cards, "id").outcome == "correct"
    cards = ["6", "2", "3", "3"]
    v = gp_verify(gp("6*2/(3-3)", number=(6, 2, 3, 3), cards=cards), cards, "id")
    assert (v.outcome, v.reward) == ("wrong_value", -1.0) and "zero" in v.feedback


VIRL_EXPECTED = Action("turn", "left")


def act(action: object, **more) -> str:
    return json.dumps({"action": action, **more})


VIRL_TABLE = [
    (act("turn_direction(left)"), "relative", "correct", True),
    (act("turn_direction(north)"), "relative", "invalid_action", False),  # compass word, relative space
    (act("turn_direction(left)"), "absolute", "invalid_action", False),
    (act("turn_direction(right)"), "relative", "wrong_action", True),
    (act("__import__('os').system('x')"), "relative", "invalid_action", False),
    (act("9**9**9**9"), "relative", "invalid_action", False),
    (act("x" * MB), "relative", "bad_format", False),  # the whole answer is too long
    (act("turn_direction(" + "l" * 10_000 + ")"), "relative", "invalid_action", False),
    ("x" * (10 * MB), "relative", "bad_format", False),
    ("[" * 100_000, "relative", "bad_format", False),
    (act("turn_direction(left)\x00"), "relative", "invalid_action", False),
    (act("turn_direction(l\u0435ft)"), "relative", "invalid_action", False),  # Cyrillic e
    (act("turn_direction(left)\ud800"), "relative", "invalid_action", False),
    (b'{"action": "turn_direction(left)"}', "relative", "correct", True),
    (b"\xff" * (10 * MB), "relative", "bad_format", False),
    ('{"action": "forward()", "action": "turn left"}', "relative", "correct", True),
    (act(None), "relative", "invalid_action", False),
    (act(["left"]), "relative", "invalid_action", False),
    (act(10**4000), "relative", "invalid_action", False),
    ('{"action": ' + "9" * 5000 + "}", "relative", "bad_format", False),  # over the int digit limit
    ('["turn_direction(left)"]', "relative", "bad_format", False),
    (None, "relative", "bad_format", False),
    (3, "relative", "bad_format", False),
    (3.5, "relative", "bad_format", False),
    (object(), "relative", "bad_format", False),
]


@pytest.mark.parametrize(("answer", "space", "outcome", "valid"), VIRL_TABLE, ids=range(len(VIRL_TABLE)))
def test_virl_hostile_table(no_eval, answer, space, outcome, valid):
    start = time.perf_counter()
    v = virl_verify(answer, VIRL_EXPECTED if space == "relative" else Action("turn", "west"), space)
    assert time.perf_counter() - start < 0.05
    assert (v.outcome, v.valid_action) == (outcome, valid), v.feedback
    assert "\n" not in v.feedback and len(v.feedback) < 400


def test_virl_landmark_error_keeps_action_validity():
    lie = act("turn_direction(left)", landmarks=["Nowhere"])
    v = virl_verify(lie, VIRL_EXPECTED, "relative", vision=True, visible_landmarks=["Cafe"])
    assert (v.outcome, v.valid_action) == ("landmark_error", True)
    v = virl_verify(act("north", landmarks=[]), VIRL_EXPECTED, "relative", vision=True)
    assert (v.outcome, v.valid_action) == ("invalid_action", False)


# --- fine metrics (issue 13) --------------------------------------------------------------


def test_rule_following_counts_the_number_field_whatever_the_formula():
    follows_wrong_formula = gp("13+5+10+1", number=(13, 5, 10, 1))
    v = gp_verify(follows_wrong_formula, CARDS, "ood")
    assert (v.outcome, v.rule_following) == ("wrong_value", True)
    ten_for_king = gp("10+5+10-1", number=(10, 5, 10, 1))
    v = gp_verify(ten_for_king, CARDS, "ood")
    assert (v.outcome, v.rule_following) == ("wrong_numbers", False)
    assert gp_verify(ten_for_king, CARDS, "id").rule_following  # the same answer follows the ID rule
    assert gp_verify(gp("(1+", number=["13", 5, 10, 1.0]), CARDS, "ood").rule_following  # bad formula
    for unreadable in ("no json", gp(number="13 5 10 1"), gp(number=[13, 5, 10]), None, b"\xff"):
        assert gp_verify(unreadable, CARDS, "ood").rule_following is False
    assert gp_verify(gp(), CARDS, "ood").rule_following


@pytest.mark.parametrize("vision", [False, True])
def test_env_info_carries_the_fine_metrics(vision):
    env = GeneralPointsEnv(rule="ood", vision=vision)
    env.reset(options={"cards": CARDS})
    _, _, _, _, info = env.step(gp("13+5+10+1", cards=["K", "5", "10", "A"]))
    assert (info["outcome"], info["rule_following"]) == ("wrong_value", True)
    _, _, _, _, info = env.step(gp("10+5+10-1", number=(10, 5, 10, 1)))
    assert info["rule_following"] is False


# --- env steps: cost independent of the answer's size --------------------------------------


@pytest.mark.parametrize("size", [10 * MB, 50 * MB])
def test_generalpoints_env_step_is_bounded(size):
    env = GeneralPointsEnv(max_turns=10)
    env.reset(seed=0)
    for answer in ("x" * size, " " * size, "\u00e9" * size, b"\xff" * size):
        start = time.perf_counter()
        obs, reward, *_, info = env.step(answer)
        assert time.perf_counter() - start < 0.5
        assert (reward, info["outcome"]) == (-3.0, "bad_format")
        assert env.observation_space.contains(obs) and len(obs) < 20_000
