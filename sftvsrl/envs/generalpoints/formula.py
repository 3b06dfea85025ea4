"""The GeneralPoints formula language, read without ever evaluating text as code.

A hand-written tokenizer and operator-precedence parser over a tiny language: integer literals
(at most ``MAX_LITERAL_DIGITS`` digits, no leading zeros), the binary operators ``+ - * /``,
parentheses (at most ``MAX_PAREN_DEPTH`` deep), spaces, at most ``MAX_FORMULA_CHARS``
characters; no unary plus/minus. Values are exact: Python ints, and a ``fractions.Fraction``
only where a division is inexact. A well-formed formula (checked by one regex) is evaluated in
one pass per operand; anything else goes through the checking parser, which names the problem.
The verifier (verifier.py) scores answers with it.
"""

from __future__ import annotations

import operator
import re
from fractions import Fraction
from typing import NamedTuple

MAX_FORMULA_CHARS = 100
MAX_PAREN_DEPTH = 12
MAX_LITERAL_DIGITS = 6
ALLOWED_CHARS = frozenset("0123456789+-*/() ")


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
