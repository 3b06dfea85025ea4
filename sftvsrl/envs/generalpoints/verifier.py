"""Score a GeneralPoints answer exactly, without ever evaluating model text as code.

The answer is free text holding a JSON object ``{"cards": [...], "number": [...],
"formula": "..."}``. The formula is screened *before* any parser sees it (length, a
character whitelist, parenthesis depth, literal size), then parsed by ``ast`` in
``eval`` mode, and only these nodes are accepted: ``Expression``, ``BinOp`` with
``Add``/``Sub``/``Mult``/``Div``, and ``Constant`` integers (parentheses only group).
Unary plus/minus are rejected: every card is a positive number combined by the four
binary operations, the same language the solver searches. The tree is evaluated by a
small recursive walker in exact rational arithmetic (integer numerator/denominator pairs,
reported as ``fractions.Fraction``), so ``8/(3-8/3)`` is exactly 24.

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
"""

from __future__ import annotations

import ast
import json
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from sftvsrl.envs.generalpoints.cards import card_value, check_rule, parse_card
from sftvsrl.envs.jsontext import AnswerTooLong, find_json_object
from sftvsrl.envs.jsontext import answer_text as as_text

CORRECT, WRONG_VALUE, WRONG_NUMBERS, BAD_FORMAT = "correct", "wrong_value", "wrong_numbers", "bad_format"
MISRECOGNIZED_PREFIX = "misrecognized_"
REWARDS: dict[str, float] = {CORRECT: 5.0, WRONG_VALUE: -1.0, WRONG_NUMBERS: -2.0, BAD_FORMAT: -3.0}
RECOGNITION_PENALTY = -1.5
OUTCOMES: tuple[str, ...] = tuple(REWARDS) + tuple(MISRECOGNIZED_PREFIX + o for o in REWARDS)

MAX_FORMULA_CHARS = 100
MAX_PAREN_DEPTH = 12
MAX_LITERAL_DIGITS = 6
ALLOWED_CHARS = frozenset("0123456789+-*/() ")
ANSWER_FORMAT = '{"cards": [...], "number": [...], "formula": "..."}'
_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


@dataclass(frozen=True)
class Verdict:
    """The score of one answer. ``recognized`` is None for text-only (-L) scoring."""

    outcome: str
    reward: float
    feedback: str
    success: bool
    recognized: bool | None
    formula_outcome: str  # the outcome before any recognition failure is applied


class FormulaError(ValueError):
    """The formula is not in the accepted language; the message says why (one line)."""


def _screen(formula: str) -> str:
    """Cheap checks that bound everything the parser will see."""
    if len(formula) > MAX_FORMULA_CHARS:
        raise FormulaError(f"the formula is longer than {MAX_FORMULA_CHARS} characters")
    if formula.count("=") == 1:  # tolerate "... = 24"; the right side is ignored
        formula, claim = formula.split("=")
        if not claim.strip().isdigit() or not claim.strip().isascii():
            raise FormulaError("after '=' only an integer may follow")
    bad = sorted({ch for ch in formula if ch not in ALLOWED_CHARS})
    if bad:
        shown = "".join(ch if ch.isprintable() and ch.isascii() else "?" for ch in bad[:5])
        raise FormulaError(f"illegal characters {shown!r}; use digits, + - * / and parentheses")
    depth = 0
    digits = 0
    for ch in formula:
        if ch == "(":
            depth += 1
            if depth > MAX_PAREN_DEPTH:
                raise FormulaError(f"parentheses nested deeper than {MAX_PAREN_DEPTH}")
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise FormulaError("unbalanced parentheses")
        digits = digits + 1 if ch.isdigit() else 0
        if digits > MAX_LITERAL_DIGITS:
            raise FormulaError(f"a number with more than {MAX_LITERAL_DIGITS} digits")
    if depth != 0:
        raise FormulaError("unbalanced parentheses")
    if not formula.strip():
        raise FormulaError("the formula is empty")
    return formula.strip()


def _walk(node: ast.AST, numbers: list[int]) -> ast.AST:
    """Check that ``node`` uses only allowed syntax; collect integer literals in order."""
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        _walk(node.left, numbers)
        _walk(node.right, numbers)
        return node
    if isinstance(node, ast.Constant) and type(node.value) is int:
        numbers.append(node.value)
        return node
    if isinstance(node, ast.UnaryOp):
        raise FormulaError("unary signs are not allowed; combine the cards with + - * /")
    if isinstance(node, ast.BinOp):
        raise FormulaError("only + - * / are allowed")
    raise FormulaError(f"not allowed in a formula: {type(node).__name__}")


def parse_formula(formula: str) -> tuple[ast.AST, list[int]]:
    """The checked expression tree and its integer literals (left to right)."""
    text = _screen(formula)
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise FormulaError("the formula does not parse") from exc
    numbers: list[int] = []
    _walk(tree.body, numbers)
    return tree.body, numbers


def _ratio(node: ast.AST) -> tuple[int, int]:
    """Exact value as an unreduced (numerator, denominator) pair of Python ints.

    Skipping the gcd that ``Fraction`` takes after every operation is faster and still
    exact; the sizes stay small because literals and formula length are bounded.
    """
    if isinstance(node, ast.Constant):
        return node.value, 1
    a, b = _ratio(node.left)  # type: ignore[attr-defined]
    c, d = _ratio(node.right)  # type: ignore[attr-defined]
    op = type(node.op)  # type: ignore[attr-defined]
    if op is ast.Add:
        return a * d + c * b, b * d
    if op is ast.Sub:
        return a * d - c * b, b * d
    if op is ast.Mult:
        return a * c, b * d
    if c == 0:
        raise ZeroDivisionError("division by zero")
    return a * d, b * c


def evaluate(node: ast.AST) -> Fraction:
    """Exact value of a tree accepted by ``parse_formula``; ZeroDivisionError on x/0."""
    num, den = _ratio(node)
    return Fraction(num, den)


def _as_int(x: object) -> int | None:
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
def _hand(cards: tuple[str, ...], rule: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Ranks and values of a hand (cached: an env scores the same hand every turn)."""
    check_rule(rule)
    ranks = tuple(parse_card(c)[0] for c in cards)
    return ranks, tuple(card_value(r, rule) for r in ranks)


def _recognized(named: object, ranks: Sequence[str]) -> bool:
    if not isinstance(named, list):
        return False
    try:
        seen = [parse_card(c)[0] for c in named]
    except ValueError:
        return False
    return sorted(seen) == sorted(ranks)


def _formula_verdict(obj: dict, values: Sequence[int], target: int) -> tuple[str, str]:
    """(outcome, feedback) of the formula and number fields."""
    formula = obj.get("formula")
    number = obj.get("number")
    if not isinstance(formula, str):
        return BAD_FORMAT, 'the "formula" field is missing or not a string'
    if not isinstance(number, list):
        return BAD_FORMAT, 'the "number" field is missing or not a list'
    if not isinstance(obj.get("cards"), list):
        return BAD_FORMAT, 'the "cards" field is missing or not a list'
    try:
        tree, used = parse_formula(formula)
    except FormulaError as exc:
        return BAD_FORMAT, str(exc)
    want = sorted(values)
    if sorted(used) != want:
        return WRONG_NUMBERS, (
            f"the formula uses the numbers {sorted(used)}; it must use the value of each of the "
            f"{len(values)} cards exactly once"
        )
    listed = [_as_int(x) for x in number]
    if None in listed or sorted(listed) != want:  # type: ignore[type-var]
        return WRONG_NUMBERS, 'the "number" field does not list the values of the cards'
    try:
        num, den = _ratio(tree)
    except ZeroDivisionError:
        return WRONG_VALUE, "the formula divides by zero"
    if num != target * den:
        return WRONG_VALUE, f"the formula equals {_fmt(Fraction(num, den))}, not {target}"
    return CORRECT, f"{formula.split('=')[0].strip()} = {target}"


def verify(
    answer_text: str, cards: Sequence[str], rule: str, target: int = 24, vision: bool = False
) -> Verdict:
    """Score ``answer_text`` for the hand ``cards`` (names such as "K" or "KH").

    Never raises on model text: every malformed answer is a ``bad_format`` verdict.
    """
    ranks, values = _hand(tuple(cards), rule)
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
        base, detail = BAD_FORMAT, reason
        recognized = False if vision else None
    else:
        base, detail = _formula_verdict(obj, values, target)
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
    return Verdict(outcome, reward, feedback, success, recognized, base)


def expert_answer(ranks: Sequence[str], values: Sequence[int], formula: str) -> str:
    """The answer text an expert gives (compact JSON, the format the prompt asks for)."""
    return json.dumps(
        {"cards": list(ranks), "number": list(values), "formula": formula}, separators=(",", ":")
    )
