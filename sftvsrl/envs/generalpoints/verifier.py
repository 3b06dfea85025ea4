"""Score a GeneralPoints answer exactly, without ever evaluating model text as code.

The answer is free text holding a JSON object ``{"cards": [...], "number": [...],
"formula": "..."}``. The formula is read by formula.py's tokenizer and operator-precedence
parser over the tiny language, never by Python: integer literals (at most 6 digits, no
leading zeros), the binary operators ``+ - * /``, parentheses (at most 12 deep), spaces,
at most 100 characters. Unary plus/minus are rejected: every card is a positive number
combined by the four binary operations, the same language the solver searches. Values are
exact: Python ints, and a ``fractions.Fraction`` only where a division is inexact, so
``8/(3-8/3)`` is exactly 24. A well-formed formula (checked by one regex) is evaluated in
one pass per operand; anything else goes through the checking parser, which names the
problem. See docs/verifiers.md for the guarantees and their tests.

Outcomes (``Verdict.outcome``) and rewards, checked in this order:

- ``bad_format`` (-3): no JSON object, a missing or mistyped field, an unparsable or
  illegal formula, text over the size limits;
- ``wrong_numbers`` (-2): the formula's numbers (or the ``number`` field) are not exactly
  the multiset of the cards' values under the rule;
- ``wrong_value`` (-1): exactly the card values, but the formula is not the target
  (division by zero included);
- ``correct`` (+5).

Vision only: if the ``cards`` field names other cards than the hand (ranks compared as a
multiset; suits and order ignored), the card recognition failed: the outcome becomes
``misrecognized_<outcome>`` and -1.5 is added to that outcome's reward. ``success`` means
the full +5. An optional ``= N`` after the formula (N an integer) is tolerated and ignored.

``Verdict.rule_following``: the ``number`` field lists exactly the cards' values under the
episode's rule, whatever the formula (False when there is no readable field).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from sftvsrl.envs.generalpoints.cards import card_value, check_rule, parse_card
from sftvsrl.envs.generalpoints.formula import FormulaError, parse_formula
from sftvsrl.envs.jsontext import AnswerTooLong, find_json_object
from sftvsrl.envs.jsontext import answer_text as as_text

CORRECT, WRONG_VALUE, WRONG_NUMBERS, BAD_FORMAT = "correct", "wrong_value", "wrong_numbers", "bad_format"
MISRECOGNIZED_PREFIX = "misrecognized_"
REWARDS: dict[str, float] = {CORRECT: 5.0, WRONG_VALUE: -1.0, WRONG_NUMBERS: -2.0, BAD_FORMAT: -3.0}
RECOGNITION_PENALTY = -1.5
OUTCOMES: tuple[str, ...] = tuple(REWARDS) + tuple(MISRECOGNIZED_PREFIX + o for o in REWARDS)

ANSWER_FORMAT = '{"cards": [...], "number": [...], "formula": "..."}'


@dataclass(frozen=True)
class Verdict:
    """The score of one answer. ``recognized`` is None for text-only (-L) scoring."""

    outcome: str
    reward: float
    feedback: str
    success: bool
    recognized: bool | None
    formula_outcome: str  # the outcome before any recognition failure is applied
    # The "number" field lists exactly the cards' values under the episode's rule (J/Q/K
    # = 11/12/13 under "ood"), whatever the formula; False when there is no readable field.
    rule_following: bool


def _as_int(x: object) -> int | None:
    if type(x) is int:
        return x
    if isinstance(x, bool):
        return None
    if isinstance(x, int):
        return x
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e6:
        return int(x)
    if isinstance(x, str) and x.strip().isdigit() and x.strip().isascii() and len(x.strip()) <= 6:
        return int(x.strip())
    return None


def _fmt(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


@lru_cache(maxsize=4096)
def _hand(cards: tuple[str, ...], rule: str) -> tuple[tuple[str, ...], tuple[int, ...], list[int]]:
    """Ranks, values and sorted values of a hand (cached: an env scores the same hand every
    turn). The sorted list is shared between calls and never modified."""
    check_rule(rule)
    ranks = tuple(parse_card(c)[0] for c in cards)
    values = tuple(card_value(r, rule) for r in ranks)
    return ranks, values, sorted(values)


_PLAIN_NUMBERS = frozenset({int, float})


def _follows_rule(number: object, want: list[int]) -> bool:
    """Whether a ``number`` field lists exactly the cards' values under the rule (as a
    multiset; integers written as strings are read leniently, as the verdict reads them)."""
    if not isinstance(number, list) or len(number) != len(want):
        return False
    if set(map(type, number)) <= _PLAIN_NUMBERS:  # the common case, without a call per entry
        return sorted(number) == want  # a float equal to a card value is integral and small
    listed = [_as_int(x) for x in number]
    return None not in listed and sorted(listed) == want  # type: ignore[type-var]


def _recognized(named: object, ranks: Sequence[str]) -> bool:
    if not isinstance(named, list):
        return False
    try:
        seen = [parse_card(c)[0] for c in named]
    except ValueError:
        return False
    return sorted(seen) == sorted(ranks)


def _formula_verdict(obj: dict, want: list[int], follows: bool, target: int) -> tuple[str, str]:
    """(outcome, feedback) of the formula and number fields; ``want`` the sorted card values,
    ``follows`` whether the number field lists them (``_follows_rule``)."""
    formula = obj.get("formula")
    if not isinstance(formula, str):
        return BAD_FORMAT, 'the "formula" field is missing or not a string'
    if not isinstance(obj.get("number"), list):
        return BAD_FORMAT, 'the "number" field is missing or not a list'
    if not isinstance(obj.get("cards"), list):
        return BAD_FORMAT, 'the "cards" field is missing or not a list'
    try:
        expr, used = parse_formula(formula)
    except FormulaError as exc:
        return BAD_FORMAT, str(exc)
    if sorted(used) != want:
        return WRONG_NUMBERS, (
            f"the formula uses the numbers {sorted(used)}; it must use the value of each of the "
            f"{len(want)} cards exactly once"
        )
    if not follows:
        return WRONG_NUMBERS, 'the "number" field does not list the values of the cards'
    value, zero = expr
    if zero:
        return WRONG_VALUE, "the formula divides by zero"
    if value != target:
        return WRONG_VALUE, f"the formula equals {_fmt(Fraction(value))}, not {target}"
    return CORRECT, f"{formula.split('=')[0].strip()} = {target}"


def verify(
    answer_text: str, cards: Sequence[str], rule: str, target: int = 24, vision: bool = False
) -> Verdict:
    """Score ``answer_text`` for the hand ``cards`` (names such as "K" or "KH").

    Never raises on model text: every malformed answer is a ``bad_format`` verdict.
    """
    ranks, _, want = _hand(tuple(cards), rule)
    text = as_text(answer_text)
    obj = None
    reason = "no JSON object found"
    if text is None:
        reason = "the answer is not text"
    else:
        try:
            obj = find_json_object(text)
        except AnswerTooLong:
            reason = "the answer is too long"
        except (RecursionError, ValueError):
            obj = None
    if obj is None:
        base, detail, follows = BAD_FORMAT, reason, False
        recognized = False if vision else None
    else:
        follows = _follows_rule(obj.get("number"), want)
        base, detail = _formula_verdict(obj, want, follows, target)
        recognized = _recognized(obj.get("cards"), ranks) if vision else None
    reward = REWARDS[base]
    if base == CORRECT:
        feedback = f"Correct: {detail}."
    elif base == BAD_FORMAT:
        feedback = f"Format error: {detail}. Answer with a JSON object {ANSWER_FORMAT}."
    elif base == WRONG_NUMBERS:
        feedback = f"Wrong numbers: {detail}."
    else:
        feedback = f"Wrong value: {detail}."
    outcome = base
    # A recognition penalty needs a readable "cards" field; with no JSON there is nothing to score.
    if recognized is False and obj is not None and isinstance(obj.get("cards"), list):
        outcome = MISRECOGNIZED_PREFIX + base
        reward += RECOGNITION_PENALTY
        feedback = f"Card recognition failed: the cards you named are not the cards shown. {feedback}"
    success = outcome == CORRECT
    return Verdict(outcome, reward, feedback, success, recognized, base, follows)


def expert_answer(ranks: Sequence[str], values: Sequence[int], formula: str) -> str:
    """The answer text an expert gives (compact JSON, the format the prompt asks for)."""
    return json.dumps(
        {"cards": list(ranks), "number": list(values), "formula": formula}, separators=(",", ":")
    )
