"""Score a GeneralPoints answer exactly, without ever evaluating model text as code.

The answer is free text holding a JSON object ``{"cards": [...], "number": [...],
"formula": "..."}``. The formula is read by a hand-written tokenizer and operator-precedence
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
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import NamedTuple

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


class FormulaError(ValueError):
    """The formula is not in the accepted language; the message says why (one line)."""


_OUTSIDE_ALPHABET = re.compile(r"[^0-9+\-*/() ]")
_TOKENS = re.compile(r"\d+|[-+*/()]")  # spaces only separate tokens ("1 2" is two literals)
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "@": 3}  # "@": a call, refused
_NOT_PARSED = "the formula does not parse"


def _screen(formula: str) -> str:
    """Cheap checks that bound everything the parser will see; the formula left of any '='."""
    if len(formula) > MAX_FORMULA_CHARS:
        raise FormulaError(f"the formula is longer than {MAX_FORMULA_CHARS} characters")
    if "=" in formula and formula.count("=") == 1:  # tolerate "... = 24"; the right side is ignored
        formula, claim = formula.split("=")
        if not claim.strip().isdigit() or not claim.strip().isascii():
            raise FormulaError("after '=' only an integer may follow")
    if _OUTSIDE_ALPHABET.search(formula):
        bad = sorted({ch for ch in formula if ch not in ALLOWED_CHARS})
        shown = "".join(ch if ch.isprintable() and ch.isascii() else "?" for ch in bad[:5])
        raise FormulaError(f"illegal characters {shown!r}; use digits, + - * / and parentheses")
    return formula


def _layout_error(formula: str) -> str | None:
    """The first parenthesis or literal-length problem, scanning left to right (slow path:
    only run once a formula has failed, so the message names the first problem)."""
    depth = digits = 0
    for ch in formula:
        if ch == "(":
            depth += 1
            if depth > MAX_PAREN_DEPTH:
                return f"parentheses nested deeper than {MAX_PAREN_DEPTH}"
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return "unbalanced parentheses"
        digits = digits + 1 if ch.isdigit() else 0
        if digits > MAX_LITERAL_DIGITS:
            return f"a number with more than {MAX_LITERAL_DIGITS} digits"
    if depth != 0:
        return "unbalanced parentheses"
    if not formula.strip():
        return "the formula is empty"
    return None


class Expr(NamedTuple):
    """A parsed formula's exact value (an int, or a Fraction when a division is inexact);
    ``zero_division`` when some divisor is 0 (the value is then meaningless)."""

    value: int | Fraction
    zero_division: bool


def _combine(op: str, a: int | Fraction, b: int | Fraction) -> int | Fraction | None:
    """``a op b`` exactly; None for a division by zero. Integers stay integers unless a
    division is inexact, so most formulas never build a Fraction."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "/":
        if not b:
            return None
        if type(a) is int and type(b) is int:
            return a // b if a % b == 0 else Fraction(a, b)
        return a / b  # a Fraction is involved: exact
    return a * b  # "*", or "@" (a call, refused anyway) given a product's value


def _parse(text: str) -> tuple[Expr, list[int]]:
    """Operator precedence parse of screened text, evaluating as it goes (one pass).

    Grammar: expr := term (("+" | "-") term)*, term := atom (("*" | "/") atom)*,
    atom := literal | "(" expr ")"; a literal is ``0``s only or has no leading zero.
    Raises FormulaError with the parser's reason (the caller may name an earlier one).
    Text that Python would read as a unary sign, a call ``2(3)`` or an empty tuple ``()``
    is parsed on to the end and then refused by name, as the first such construct.
    """
    tokens = _TOKENS.findall(text)
    if not tokens:
        raise FormulaError("the formula is empty")
    used: list[int] = []
    vals: list[int | Fraction] = []
    ops: list[str] = []
    depth = 0
    operand = True  # an operand (literal or "(") comes next
    zero = False
    refused = ""  # the first construct outside the language that still parses
    prev = ""
    for tok in tokens:
        if operand:
            if tok == "(":
                depth += 1
                if depth > MAX_PAREN_DEPTH:
                    raise FormulaError(f"parentheses nested deeper than {MAX_PAREN_DEPTH}")
                ops.append(tok)
            elif tok[0] in "0123456789":
                if len(tok) > MAX_LITERAL_DIGITS:
                    raise FormulaError(f"a number with more than {MAX_LITERAL_DIGITS} digits")
                if tok[0] == "0" and tok.strip("0"):
                    raise FormulaError(_NOT_PARSED)  # leading zeros, as Python refuses them
                value = int(tok)
                used.append(value)
                vals.append(value)
                operand = False
            elif tok in "+-":
                refused = refused or "unary signs are not allowed; combine the cards with + - * /"
            elif tok == ")" and prev == "(":  # "()": an empty call or tuple
                ops.pop()
                depth -= 1
                if ops and ops[-1] == "@":
                    ops.pop()  # the call's value stands for the whole call
                else:
                    refused = refused or "not allowed in a formula: Tuple"
                    vals.append(0)
                operand = False
            elif ops and ops[-1] == tok and prev == tok:  # ** or //: one operator to Python
                refused = refused or "only + - * / are allowed"
            else:
                raise FormulaError(_NOT_PARSED)
        elif tok == ")":
            while ops and ops[-1] != "(":
                b_ = vals.pop()
                v = _combine(ops.pop(), vals[-1], b_)
                if v is None:
                    zero, v = True, 0
                vals[-1] = v
            if not ops:
                raise FormulaError("unbalanced parentheses")
            ops.pop()
            depth -= 1
        elif tok in _PRECEDENCE:
            level = _PRECEDENCE[tok]
            while ops and ops[-1] != "(" and _PRECEDENCE[ops[-1]] >= level:
                b_ = vals.pop()
                v = _combine(ops.pop(), vals[-1], b_)
                if v is None:
                    zero, v = True, 0
                vals[-1] = v
            ops.append(tok)
            operand = True
        elif tok == "(":  # "2(3)": Python reads a call
            refused = refused or "not allowed in a formula: Call"
            depth += 1
            if depth > MAX_PAREN_DEPTH:
                raise FormulaError(f"parentheses nested deeper than {MAX_PAREN_DEPTH}")
            ops.append("@")
            ops.append(tok)
            operand = True
        else:  # a literal right after an operand
            raise FormulaError(_NOT_PARSED)
        prev = tok
    if operand:
        raise FormulaError(_NOT_PARSED)
    while ops:
        op = ops.pop()
        if op == "(":
            raise FormulaError("unbalanced parentheses")
        b_ = vals.pop()
        v = _combine(op, vals[-1], b_)
        if v is None:
            zero, v = True, 0
        vals[-1] = v
    if refused:
        raise FormulaError(refused)
    return Expr(vals[0], zero), used


# A formula in the language, parentheses aside: operands (literals wrapped in any "(" and
# ")") alternating with binary operators, spaces between tokens. With the parentheses
# balanced and never closing more than are open, such text is exactly the grammar.
_LITERAL = f"(?:0{{1,{MAX_LITERAL_DIGITS}}}|[1-9][0-9]{{0,{MAX_LITERAL_DIGITS - 1}}})"
_OPERAND = r"(?:\( *)*" + _LITERAL + r"(?: *\))*"
_WELL_FORMED = re.compile(r" *" + _OPERAND + r"(?: *[-+*/] *" + _OPERAND + r")* *")
_BINARY = {"+": operator.add, "-": operator.sub, "*": operator.mul}
_STACKED = {"(": 0, **_PRECEDENCE}
_GROUPS = re.compile(r"(\(*)(\d+)(\)*)([-+*/]?)")  # on well-formed text without spaces


def _divide(a: int | Fraction, b: int | Fraction) -> int | Fraction:
    """``a / b`` exactly (ZeroDivisionError for b = 0); an int when it divides evenly."""
    if type(a) is int and type(b) is int:
        q, r = divmod(a, b)
        return Fraction(a, b) if r else q
    return a / b


def _fast(text: str) -> tuple[Expr, list[int]] | None:
    """The value of a well-formed formula in one tight pass; None for anything else,
    division by zero included (the full parser then decides).

    One step per operand, not per character: the text is read as groups of opening
    parentheses, a literal, closing parentheses and the operator after it.
    """
    if _WELL_FORMED.fullmatch(text) is None or text.count("(") > MAX_PAREN_DEPTH:
        return None
    used: list[int] = []
    vals: list[int | Fraction] = []
    ops: list[str] = []
    try:
        for opens, literal, closes, op in _GROUPS.findall(text.replace(" ", "")):
            if opens:
                ops.extend(opens)
            value = int(literal)
            used.append(value)
            vals.append(value)
            for _ in closes:
                while (top := ops.pop()) != "(":
                    b = vals.pop()
                    vals[-1] = _divide(vals[-1], b) if top == "/" else _BINARY[top](vals[-1], b)
            if op:
                level = _PRECEDENCE[op]
                while ops and _STACKED[ops[-1]] >= level:
                    top = ops.pop()
                    b = vals.pop()
                    vals[-1] = _divide(vals[-1], b) if top == "/" else _BINARY[top](vals[-1], b)
                ops.append(op)
        while ops:
            top = ops.pop()
            if top == "(":
                return None
            b = vals.pop()
            vals[-1] = _divide(vals[-1], b) if top == "/" else _BINARY[top](vals[-1], b)
    except (IndexError, ZeroDivisionError):  # a ")" with no "(" open; x/0: the full parser
        return None
    return Expr(vals[0], False), used


def parse_formula(formula: str) -> tuple[Expr, list[int]]:
    """The formula's exact value and its integer literals (left to right).

    Raises FormulaError (a ValueError) for anything outside the language.
    """
    if len(formula) <= MAX_FORMULA_CHARS:
        fast = _fast(formula)
        if fast is not None:
            return fast
    text = _screen(formula)
    try:
        return _parse(text)
    except FormulaError as exc:
        raise FormulaError(_layout_error(text) or str(exc)) from None


def evaluate(expr: Expr) -> Fraction:
    """Exact value of a formula accepted by ``parse_formula``; ZeroDivisionError on x/0."""
    if expr.zero_division:
        raise ZeroDivisionError("division by zero")
    return Fraction(expr.value)


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
