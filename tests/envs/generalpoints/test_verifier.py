"""Every reward case on hand-picked hands under both rules, and hostile answers."""

import ast
import builtins
import json
import time

import pytest

from sftvsrl.envs.generalpoints import OUTCOMES, REWARDS, verify
from sftvsrl.envs.generalpoints.formula import parse_formula


def answer(cards, number, formula, prose=False):
    text = json.dumps({"cards": cards, "number": number, "formula": formula})
    return f"Let me think. The answer is:\n```json\n{text}\n```\nDone." if prose else text


@pytest.mark.parametrize("rule", ["id", "ood"])
def test_fraction_solution_is_correct_under_both_rules(rule):
    cards = ["3", "3", "8", "8"]
    v = verify(answer(cards, [3, 3, 8, 8], "8/(3-8/3)", prose=True), cards, rule)
    assert (v.outcome, v.reward, v.success, v.recognized) == ("correct", 5.0, True, None)
    assert "24" in v.feedback and "\n" not in v.feedback


@pytest.mark.parametrize(
    ("formula", "outcome", "reward"),
    [
        ("6*4*(3-2)", "correct", 5.0),
        ("(6*4)/(3-2) = 24", "correct", 5.0),  # a trailing "= N" is tolerated
        ("6+4+3+2", "wrong_value", -1.0),
        ("6*4/(3-3)", "wrong_numbers", -2.0),  # 3 used twice, 2 missing
        ("6*4*1", "wrong_numbers", -2.0),  # a foreign number, cards missing
        ("6*4*(3-2)*1", "wrong_numbers", -2.0),  # a foreign number on top of all cards
        ("6*4", "wrong_numbers", -2.0),
        ("64/(3-2)", "wrong_numbers", -2.0),  # digits glued into another number
        ("6x4x(3-2)", "bad_format", -3.0),
        ("6*4*(3-2", "bad_format", -3.0),
        ("-6*-4*(3-2)", "bad_format", -3.0),  # unary signs are not in the language
        ("6*4*(3-2.0)", "bad_format", -3.0),
        ("6*4*(03-2)", "bad_format", -3.0),
        ("6*4*(3//2)", "bad_format", -3.0),
        ("", "bad_format", -3.0),
    ],
)
def test_reward_cases_on_a_plain_hand(formula, outcome, reward):
    cards = ["6", "4", "3", "2"]
    for rule in ("id", "ood"):
        v = verify(answer(cards, [6, 4, 3, 2], formula), cards, rule)
        assert (v.outcome, v.reward) == (outcome, reward), (formula, rule, v.feedback)
        assert v.success == (outcome == "correct")


def test_trailing_claim_is_not_repeated_in_feedback():
    cards = ["6", "4", "3", "2"]
    v = verify(answer(cards, [6, 4, 3, 2], "6*4*(3-2) = 24"), cards, "id")
    assert v.feedback == "Correct: 6*4*(3-2) = 24."
    assert verify(answer(cards, [6, 4, 3, 2], "6*4*(3-2) = x"), cards, "id").outcome == "bad_format"


def test_division_by_zero_is_a_wrong_value():
    cards = ["6", "2", "3", "3"]
    v = verify(answer(cards, [6, 2, 3, 3], "6*2/(3-3)"), cards, "id")
    assert (v.outcome, v.reward) == ("wrong_value", -1.0) and "zero" in v.feedback


def test_ood_hand_under_id_rule_and_vice_versa():
    cards = ["K", "5", "10", "A"]
    id_answer = answer(cards, [10, 5, 10, 1], "10+10+5-1")
    ood_answer = answer(cards, [13, 5, 10, 1], "(13-1)*10/5")
    assert verify(id_answer, cards, "id").outcome == "correct"
    assert verify(ood_answer, cards, "ood").outcome == "correct"
    # counting K as 10 under the OOD rule (the memorised rule) uses the wrong numbers
    assert (verify(id_answer, cards, "ood").outcome, verify(id_answer, cards, "ood").reward) == (
        "wrong_numbers",
        -2.0,
    )
    assert verify(ood_answer, cards, "id").reward == -2.0


def test_number_field_must_list_the_card_values():
    cards = ["K", "5", "10", "A"]
    v = verify(answer(cards, [10, 5, 10, 1], "(13-1)*10/5"), cards, "ood")
    assert (v.outcome, v.reward) == ("wrong_numbers", -2.0) and "number" in v.feedback
    # numbers written as strings are read leniently
    assert verify(answer(cards, ["13", "5", "10", "1"], "(13-1)*10/5"), cards, "ood").success


def test_vision_recognition_failure_adds_penalty():
    hand = ["KH", "5S", "10D", "AC"]
    ok = answer(["A", "K", "5", "10"], [1, 13, 5, 10], "(13-1)*10/5")  # order/suits do not matter
    v = verify(ok, hand, "ood", vision=True)
    assert (v.outcome, v.reward, v.recognized, v.success) == ("correct", 5.0, True, True)
    misread = answer(["Q", "5", "10", "A"], [13, 5, 10, 1], "(13-1)*10/5")
    v = verify(misread, hand, "ood", vision=True)
    assert (v.outcome, v.reward, v.recognized, v.success) == ("misrecognized_correct", 3.5, False, False)
    assert v.formula_outcome == "correct" and "recognition" in v.feedback.lower()
    v = verify(answer(["Q", "5", "10", "A"], [13, 5, 10, 1], "13+5+10+1"), hand, "ood", vision=True)
    assert (v.outcome, v.reward) == ("misrecognized_wrong_value", -2.5)
    v = verify(answer(["Z", "5"], [13, 5, 10, 1], "13+5+10+1"), hand, "ood", vision=True)
    assert v.outcome == "misrecognized_wrong_value" and v.recognized is False
    # the text variant never scores the cards field
    assert verify(misread, hand, "ood").outcome == "correct"
    # no JSON at all: a format error, and the cards were not recognised
    v = verify("24", hand, "ood", vision=True)
    assert (v.outcome, v.reward, v.recognized) == ("bad_format", -3.0, False)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "no json here",
        "{}",
        '{"cards": [], "number": []}',
        '{"cards": "K", "number": [], "formula": "1"}',
        '{"cards": [], "number": 3, "formula": "1"}',
        '{"cards": [], "number": [], "formula": 24}',
        "[1, 2]",
    ],
)
def test_missing_or_mistyped_fields_are_format_errors(text):
    v = verify(text, ["6", "4", "3", "2"], "id")
    assert (v.outcome, v.reward) == ("bad_format", -3.0)
    assert v.feedback.startswith("Format error") and "\n" not in v.feedback


HOSTILE_FORMULAS = [
    "__import__('os').system('touch {marker}')",
    "9**99999",
    "10**10**10",
    "(" * 10_000 + "1" + ")" * 10_000,
    "1+" * 5000 + "1",
    "[x for x in range(10**9)]",
    "lambda: 1",
    "1 if 1 else 2",
    "6*4*(3-2)\x00",
    "١٢+١٢",  # non-ASCII digits
    "9999999*1",
]


def test_hostile_answers_are_fast_format_errors_and_run_nothing(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"

    real_compile = builtins.compile

    def forbidden(*args, **kwargs):
        raise AssertionError("model text reached eval/exec")

    def ast_only_compile(source, filename, mode, flags=0, *args, **kwargs):
        # ast.parse compiles to a tree only; anything producing code objects is forbidden
        assert flags & ast.PyCF_ONLY_AST, "model text compiled to code"
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(builtins, "compile", ast_only_compile)
    cards = ["6", "4", "3", "2"]
    texts = [answer(cards, [6, 4, 3, 2], f.format(marker=marker)) for f in HOSTILE_FORMULAS]
    texts += [
        "(" * 10_000 + ")" * 10_000,  # raw nesting, no JSON
        "{" * 10_000 + "}" * 10_000,
        "x" * 1_000_000,  # 1 MB of text
        answer(cards, [6, 4, 3, 2], "6*4*(3-2)") + " " * 1_000_000,  # a right answer drowned in 1 MB
        bytes(range(256)).decode("utf-8", errors="surrogateescape"),
        bytes(range(128, 256)).decode("latin-1"),
        b'{"cards": [], "number": [6,4,3,2], "formula": "6*4*(3-2)\xff"}',  # raw bytes
        "{" + '"formula": "' + "1" * 50_000 + '"}',
    ]
    for text in texts:
        start = time.perf_counter()
        v = verify(text, cards, "id")
        assert time.perf_counter() - start < 1.0
        assert (v.outcome, v.reward) == ("bad_format", -3.0), (text[:60], v.feedback)
        assert "\n" not in v.feedback and len(v.feedback) < 400
    assert not marker.exists()


def test_parse_formula_limits():
    _, numbers = parse_formula("((1+2))*(3/4)")
    assert numbers == [1, 2, 3, 4]
    for bad in ["(" * 13 + "1" + ")" * 13, "1234567", "1" + "+1" * 60, "(" * 10_000 + "1" + ")" * 10_000]:
        with pytest.raises(ValueError):
            parse_formula(bad)


def test_outcome_table():
    assert REWARDS == {"correct": 5.0, "wrong_value": -1.0, "wrong_numbers": -2.0, "bad_format": -3.0}
    assert set(OUTCOMES) == set(REWARDS) | {"misrecognized_" + o for o in REWARDS}


def test_exact_values_with_negative_denominators_and_other_targets():
    from fractions import Fraction

    from sftvsrl.envs.generalpoints.formula import evaluate

    assert evaluate(parse_formula("8/(3-8/3)")[0]) == Fraction(24)
    assert evaluate(parse_formula("1/(2-3)")[0]) == Fraction(-1)
    cards = ["Q", "2", "3", "4"]
    neg = answer(cards, [12, 2, 3, 4], "12*2/(3-4)")
    assert verify(neg, cards, "ood", target=-24).outcome == "correct"
    v = verify(neg, cards, "ood")
    assert (v.outcome, v.feedback) == ("wrong_value", "Wrong value: the formula equals -24, not 24.")
    v = verify(answer(cards, [12, 2, 3, 4], "12/(2*3*4)"), cards, "ood")
    assert "equals 1/2" in v.feedback
