"""Stage-0 pretraining corpus for a from-scratch tiny model.

A pretrained LM already knows arithmetic, what a "K" is worth, and that "right" of north is
east. A tiny model trained from scratch does not, so SFT on 24-game hands can only memorise
them, and it has no way to learn the OOD rule (J/Q/K = 11/12/13) or relative directions in
principle. This corpus gives it that background knowledge, and nothing of the task itself:

* ``arith``: exact values of 2-4 number expressions over 1..13 with ``+ - * /`` and
  parentheses, e.g. ``12*(3-7)/5=`` -> ``-48/5`` (fractions in lowest terms). No 4-number
  expression whose value is 24 is ever written: that would be a solved hand.
* ``cards``: reading a stated face-card rule, as a skill rather than two memorised rules.
  Each row states a legend in the compact GeneralPoints prompt's own form with J, Q and K
  drawn from 1..13 (the task's two rules, 10/10/10 and 11/12/13, are 1 in 10 rows each; A
  is 1 in most rows), then four cards as the task lists them, and asks for ``{cards,number}``
  only: ``24 A1 J7 Q3 K12|4 10 Q 9|{cards,number}=`` -> ``{"cards":["4","10","Q","9"],
  "number":[4,10,3,9]}``. The completion is the card/number part a task answer begins with,
  closed after the numbers: never a formula, so never a solved hand (the task prompt asks
  for ``{cards,number,formula}``). Single cards too (``A1 J7 Q3 K12|Q=`` -> ``3``).
* ``dirs``: what V-IRL's OOD variant takes for granted. Compass points and degrees, turn
  arithmetic modulo 360 as in :mod:`sftvsrl.envs.virl.directions` (``head north-west,
  right=`` -> ``north-east``; ``turn 350->10=`` -> ``slightly right``), and answering in a
  listed vocabulary: a heading as the compact V-IRL observation writes it, the action
  vocabulary as the V-IRL prompt lists it (absolute or relative words) and a target bearing
  -> the word (``h=E88 X=slightly left|left|back|right|slightly right to N0=`` -> ``left``).
  No route, street, landmark, instruction or action call (``turn_direction(...)``) appears.

Rows are prompt/completion JSONL, so the ordinary SFT trainer pretrains on it.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

from sftvsrl.envs.generalpoints.cards import RANKS, card_value
from sftvsrl.envs.virl.directions import (
    ABSOLUTE_DIRECTIONS,
    absolute_direction,
    directions_for,
    relative_direction,
)

KINDS = ("arith", "cards", "dirs")
NUMBERS = tuple(range(1, 14))
OPS = ("+", "-", "*", "/")
RULES = ("id", "ood")
TARGET = 24  # the task's target: a 4-number expression with this value is a solved hand
FACES = ("A", "J", "Q", "K")
CARD_FIELDS = "{cards,number}"  # the task asks for {cards,number,formula}; rows never hold a formula
_ABBREV = {
    "north": "N", "north-east": "NE", "east": "E", "south-east": "SE",
    "south": "S", "south-west": "SW", "west": "W", "north-west": "NW",
}  # fmt: skip
DEFAULT_MIX = {"arith": 0.45, "cards": 0.3, "dirs": 0.25}
# relative turn word -> signed degrees (the centre of each band in directions.py)
TURN_DEGREES = {"slightly left": -45, "left": -90, "back": 180, "right": 90, "slightly right": 45}


def fmt_fraction(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def _combine(a: tuple[str, Fraction], b: tuple[str, Fraction], op: str) -> tuple[str, Fraction] | None:
    (ta, va), (tb, vb) = a, b
    if op == "/" and vb == 0:
        return None
    value = {"+": va + vb, "-": va - vb, "*": va * vb, "/": va / vb if vb else None}[op]
    return f"({ta}{op}{tb})", value


def random_expression(numbers: list[int], rng: random.Random) -> tuple[str, Fraction] | None:
    """A random fully-bracketed tree over ``numbers`` (in a random order), outer brackets dropped."""
    items: list[tuple[str, Fraction]] = [(str(n), Fraction(n)) for n in numbers]
    rng.shuffle(items)
    while len(items) > 1:
        i = rng.randrange(len(items) - 1)
        merged = _combine(items[i], items[i + 1], rng.choice(OPS))
        if merged is None:
            return None
        items[i : i + 2] = [merged]
    text, value = items[0]
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    return text, value


def arith_row(rng: random.Random) -> dict[str, str] | None:
    count = rng.choice((2, 2, 3, 3, 4, 4))
    numbers = [rng.choice(NUMBERS) for _ in range(count)]
    expr = random_expression(numbers, rng)
    if expr is None:
        return None
    text, value = expr
    if count == 4 and value == TARGET:
        return None  # a solved 24-game hand: never in the corpus
    if abs(value.numerator) > 99_999 or value.denominator > 9_999:
        return None
    return {"prompt": f"{text}=", "completion": fmt_fraction(value)}


def legend_text(values: dict[str, int]) -> str:
    """A face-card legend in the compact GeneralPoints prompt's form, e.g. ``A1 J11 Q12 K13``."""
    return " ".join(f"{r}{values[r]}" for r in FACES)


def faces_text(rule: str) -> str:
    """The face-card legend exactly as the compact GeneralPoints prompt writes it for ``rule``."""
    return legend_text({r: card_value(r, rule) for r in FACES})


def random_legend(rng: random.Random) -> dict[str, int]:
    """Face values for one row: the task's two rules now and then, else J, Q and K each drawn
    from 1..13 (A mostly 1), as a pretrained model has seen rules stated in many ways."""
    u = rng.random()
    if u < 0.1:
        return {r: card_value(r, "id") for r in FACES}
    if u < 0.2:
        return {r: card_value(r, "ood") for r in FACES}
    ace = 1 if rng.random() < 0.8 else rng.choice(NUMBERS)
    return {"A": ace, **{r: rng.choice(NUMBERS) for r in ("J", "Q", "K")}}


def value_under(rank: str, legend: dict[str, int]) -> int:
    return legend[rank] if rank in legend else int(rank)


def cards_row(rng: random.Random) -> dict[str, str]:
    legend = random_legend(rng)
    if rng.random() < 0.2:
        rank = rng.choice(RANKS)
        return {"prompt": f"{legend_text(legend)}|{rank}=", "completion": str(value_under(rank, legend))}
    # Face cards are drawn more often than in a deck, so that every row reads the legend.
    ranks = [rng.choice(FACES[1:]) if rng.random() < 0.4 else rng.choice(RANKS) for _ in range(4)]
    prompt = f"{TARGET} {legend_text(legend)}|{' '.join(ranks)}|{CARD_FIELDS}="
    answer = {"cards": ranks, "number": [value_under(r, legend) for r in ranks]}
    return {"prompt": prompt, "completion": json.dumps(answer, separators=(",", ":"))}


def heading_text(deg: int) -> str:
    """A heading as the compact V-IRL observation writes it (``h=SE130``)."""
    return f"{_ABBREV[absolute_direction(deg)]}{deg % 360}"


def vocab_row(rng: random.Random) -> dict[str, str]:
    """Heading, the action vocabulary listed as the V-IRL prompt lists it, a target bearing ->
    the vocabulary word for it (relative words: the turn modulo 360, never straight on)."""
    heading = rng.randrange(360)
    space = rng.choice(("absolute", "relative"))
    while True:
        target = rng.randrange(360)
        word = absolute_direction(target) if space == "absolute" else relative_direction(heading, target)
        if word:
            break
    vocab = "|".join(directions_for(space))
    return {"prompt": f"h={heading_text(heading)} X={vocab} to {heading_text(target)}=", "completion": word}


def dirs_row(rng: random.Random) -> dict[str, str]:
    kind = rng.randrange(6)
    if kind >= 4:
        return vocab_row(rng)
    if kind == 0:  # degrees -> compass point
        deg = rng.randrange(360)
        return {"prompt": f"deg {deg}=", "completion": absolute_direction(deg)}
    if kind == 1:  # heading + relative turn -> compass point
        heading = rng.choice(ABSOLUTE_DIRECTIONS)
        turn = rng.choice(tuple(TURN_DEGREES))
        deg = ABSOLUTE_DIRECTIONS.index(heading) * 45 + TURN_DEGREES[turn]
        return {"prompt": f"head {heading}, {turn}=", "completion": absolute_direction(deg)}
    if kind == 2:  # compass -> compass: which relative turn
        a, b = rng.choice(ABSOLUTE_DIRECTIONS), rng.choice(ABSOLUTE_DIRECTIONS)
        rel = relative_direction(ABSOLUTE_DIRECTIONS.index(a) * 45, ABSOLUTE_DIRECTIONS.index(b) * 45)
        return {"prompt": f"turn {a}->{b}=", "completion": rel or "forward"}
    a, b = rng.randrange(360), rng.randrange(360)  # degrees -> degrees, wrapped modulo 360
    return {"prompt": f"turn {a}->{b}=", "completion": relative_direction(a, b) or "forward"}


_MAKERS = {"arith": arith_row, "cards": cards_row, "dirs": dirs_row}


def corpus_rows(n: int, seed: int = 0, mix: dict[str, float] | None = None) -> Iterator[dict[str, str]]:
    """``n`` rows drawn with weights ``mix`` (default :data:`DEFAULT_MIX`)."""
    mix = mix or DEFAULT_MIX
    unknown = set(mix) - set(KINDS)
    if unknown or not mix or any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
        raise ValueError(f"corpus mix must weight some of {KINDS} with non-negative numbers, got {mix}")
    rng = random.Random(seed)
    kinds, weights = zip(*mix.items(), strict=True)
    produced = 0
    while produced < n:
        kind = rng.choices(kinds, weights)[0]
        row = _MAKERS[kind](rng)
        if row is None:
            continue
        produced += 1
        yield {**row, "env_id": "corpus", "kind": kind, "seed": seed}


def write_corpus_jsonl(out: str | Path, n: int, seed: int = 0, mix: dict[str, float] | None = None) -> Path:
    """Write the corpus atomically (temporary name, then rename)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in corpus_rows(n, seed, mix):
            fh.write(json.dumps(row) + "\n")
    tmp.replace(out)
    return out
