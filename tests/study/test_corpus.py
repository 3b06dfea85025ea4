import itertools
import json
import re
from fractions import Fraction

import pytest

from sftvsrl.envs.generalpoints.cards import card_value
from sftvsrl.envs.virl.directions import absolute_direction, relative_direction
from sftvsrl.study.corpus import TARGET, corpus_rows, faces_text, random_expression, write_corpus_jsonl

ROWS = list(corpus_rows(6000, seed=3))
TOKEN = re.compile(r"\d+|[-+*/()]")


def exact_value(text: str) -> Fraction:
    """Evaluate + - * / ( ) over integers exactly, by a tiny recursive-descent parser."""
    tokens = TOKEN.findall(text)
    assert "".join(tokens) == text
    pos = 0

    def atom():
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok == "(":
            value = expr()
            assert tokens[pos] == ")"
            pos += 1
            return value
        return Fraction(int(tok))

    def term():
        nonlocal pos
        value = atom()
        while pos < len(tokens) and tokens[pos] in "*/":
            op = tokens[pos]
            pos += 1
            rhs = atom()
            value = value * rhs if op == "*" else value / rhs
        return value

    def expr():
        nonlocal pos
        value = term()
        while pos < len(tokens) and tokens[pos] in "+-":
            op = tokens[pos]
            pos += 1
            rhs = term()
            value = value + rhs if op == "+" else value - rhs
        return value

    value = expr()
    assert pos == len(tokens)
    return value


def arith():
    return [r for r in ROWS if r["kind"] == "arith"]


def test_arithmetic_is_exact_and_uses_all_numbers_1_to_13():
    seen = set()
    for row in arith():
        text = row["prompt"].removesuffix("=")
        assert exact_value(text) == Fraction(row["completion"])
        seen.update(int(n) for n in re.findall(r"\d+", text))
    assert seen == set(range(1, 14))
    assert any("/" in r["completion"] for r in arith())  # exact fractions, not floats
    assert all("." not in r["completion"] for r in arith())


def test_no_solved_24_hands():
    for row in arith():
        numbers = re.findall(r"\d+", row["prompt"])
        if len(numbers) == 4:
            assert Fraction(row["completion"]) != TARGET, row
    assert not any("formula" in r["prompt"] + r["completion"] for r in ROWS)


def test_card_values_under_both_rules_in_compact_notation():
    cards = [r for r in ROWS if r["kind"] == "cards"]
    legends = {r["prompt"].split("|")[0].removeprefix(f"{TARGET} ") for r in cards}
    assert legends == {faces_text("id"), faces_text("ood")}
    assert faces_text("ood") == "A1 J11 Q12 K13"
    for row in cards:
        rule = "id" if faces_text("id") in row["prompt"] else "ood"
        if row["completion"].startswith("{"):
            answer = json.loads(row["completion"])
            assert set(answer) == {"cards", "number"}
            assert answer["number"] == [card_value(c, rule) for c in answer["cards"]]
        else:
            rank = row["prompt"].split("|")[1].removesuffix("=")
            assert int(row["completion"]) == card_value(rank, rule)


def test_directions_wrap_modulo_360():
    dirs = [r for r in ROWS if r["kind"] == "dirs"]
    assert {r["prompt"].split()[0] for r in dirs} == {"deg", "head", "turn"}
    for row in dirs:
        if row["prompt"].startswith("deg "):
            assert row["completion"] == absolute_direction(int(row["prompt"][4:-1]))
        match = re.fullmatch(r"turn (\d+)->(\d+)=", row["prompt"])
        if match:
            rel = relative_direction(int(match[1]), int(match[2]))
            assert row["completion"] == (rel or "forward")
    assert relative_direction(350, 10) == "slightly right"  # wraps: not a 340-degree left turn
    assert any(r["completion"] == "slightly right" for r in dirs)


def test_deterministic_and_written_atomically(tmp_path):
    path = write_corpus_jsonl(tmp_path / "c.jsonl", 50, seed=1)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines == list(corpus_rows(50, seed=1))
    assert list(tmp_path.iterdir()) == [path]


def test_bad_mix_is_rejected():
    with pytest.raises(ValueError, match="mix"):
        list(corpus_rows(1, mix={"poems": 1.0}))


def test_expression_uses_each_number_once():
    import random

    rng = random.Random(0)
    for numbers in itertools.islice(itertools.product(range(1, 14), repeat=3), 0, 300, 7):
        made = random_expression(list(numbers), rng)
        if made:
            assert sorted(int(n) for n in re.findall(r"\d+", made[0])) == sorted(numbers)
            assert exact_value(made[0]) == made[1]
