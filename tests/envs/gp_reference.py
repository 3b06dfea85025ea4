"""An exact evaluator for GeneralPoints formulas, written apart from the verifier, used by
the hostile and fuzz tests as the reference for every ``correct`` verdict.

It reads the documented language (docs/verifiers.md) with ``ast`` and computes with
``fractions.Fraction``; the verifier shares none of this code. ``ast.parse`` only builds a
tree: nothing is compiled or run.
"""

from __future__ import annotations

import ast
from fractions import Fraction

CHARS = set("0123456789+-*/() ")
OPS = {ast.Add: Fraction.__add__, ast.Sub: Fraction.__sub__, ast.Mult: Fraction.__mul__}


def reference_value(formula: str) -> tuple[Fraction | None, list[int]] | None:
    """(exact value or None on division by zero, literals) of a formula in the language;
    None when the formula is outside it."""
    if len(formula) > 100:
        return None
    if formula.count("=") == 1:
        formula, claim = formula.split("=")
        claim = claim.strip()
        if not (claim.isascii() and claim.isdigit()):
            return None
    if not set(formula) <= CHARS or not formula.strip():
        return None
    depth = run = 0
    for ch in formula:
        depth += (ch == "(") - (ch == ")")
        run = run + 1 if ch.isdigit() else 0
        if depth < 0 or depth > 12 or run > 6:
            return None
    if depth:
        return None
    try:
        tree = ast.parse(formula.strip(), mode="eval").body
    except SyntaxError:
        return None
    literals: list[int] = []

    def value(node: ast.AST) -> Fraction | None:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            literals.append(node.value)
            return Fraction(node.value)
        if not (isinstance(node, ast.BinOp) and type(node.op) in (*OPS, ast.Div)):
            raise ValueError("outside the language")
        left, right = value(node.left), value(node.right)
        if left is None or right is None:
            return None
        if isinstance(node.op, ast.Div):
            return None if right == 0 else left / right
        return OPS[type(node.op)](left, right)

    try:
        result = value(tree)
    except ValueError:
        return None
    return result, literals


def reference_outcome(obj: object, values: list[int], target: int = 24) -> str:
    """The text-only outcome the rules give a parsed answer object (reward order as documented)."""
    if not isinstance(obj, dict):
        return "bad_format"
    formula, number = obj.get("formula"), obj.get("number")
    if not isinstance(formula, str) or not isinstance(number, list) or not isinstance(obj.get("cards"), list):
        return "bad_format"
    parsed = reference_value(formula)
    if parsed is None:
        return "bad_format"
    result, literals = parsed
    if sorted(literals) != sorted(values) or not reference_follows(number, values):
        return "wrong_numbers"
    if result is None or result != target:
        return "wrong_value"
    return "correct"


def reference_follows(number: object, values: list[int]) -> bool:
    """The number field lists the values: ints, integral floats, or digit strings."""
    if not isinstance(number, list):
        return False
    read = []
    for x in number:
        if type(x) is int:
            read.append(x)
        elif type(x) is float and x.is_integer() and abs(x) < 1e6:
            read.append(int(x))
        elif type(x) is str and x.strip().isascii() and x.strip().isdigit() and len(x.strip()) <= 6:
            read.append(int(x.strip()))
        else:
            return False
    return sorted(read) == sorted(values)
