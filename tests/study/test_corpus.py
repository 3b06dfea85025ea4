import itertools
import json
import re
from fractions import Fraction

import pytest

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


LEGEND = re.compile(r"A(\d+) J(\d+) Q(\d+) K(\d+)")


def cards():
    return [r for r in ROWS if r["kind"] == "cards"]


def test_card_rows_read_many_legends_in_the_task_prompts_form():
    legends = set()
    for row in cards():
        head = row["prompt"].split("|")[0].removeprefix(f"{TARGET} ")
        match = LEGEND.fullmatch(head)
        assert match, row
        values = dict(zip("AJQK", map(int, match.groups()), strict=True))
        assert all(1 <= v <= 13 for v in values.values())
        legends.add(head)

        def value(rank, values=values):
            return values[rank] if rank in values else int(rank)

        if row["completion"].startswith("{"):
            answer = json.loads(row["completion"])
            assert list(answer) == ["cards", "number"]
            assert answer["cards"] == row["prompt"].split("|")[1].split()
            assert answer["number"] == [value(c) for c in answer["cards"]]
        else:
            rank = row["prompt"].split("|")[1].removesuffix("=")
            assert int(row["completion"]) == value(rank)
    # many distinct face mappings, the task's two rules among them
    assert len(legends) > 500 and {faces_text("id"), faces_text("ood")} <= legends
    assert faces_text("ood") == "A1 J11 Q12 K13"
    faces = {m for m in (LEGEND.fullmatch(x).groups()[1:] for x in legends)}
    assert len({f[0] for f in faces}) == len({f[1] for f in faces}) == len({f[2] for f in faces}) == 13


def test_card_rows_are_the_task_prompts_card_part_never_a_task_episode():
    from sftvsrl.envs.generalpoints.env import GeneralPointsEnv

    env_prompts = set()
    for rule in ("id", "ood"):
        env = GeneralPointsEnv(rule=rule, split="train", prompt_style="compact")
        for seed in range(200):
            obs, _ = env.reset(seed=seed)
            env_prompts.add(obs)
    one = next(iter(env_prompts))
    legend, shown, fields = one.split("|")
    assert fields == "{cards,number,formula}="  # the task asks for a formula too
    for row in cards():
        assert row["prompt"] not in env_prompts
        assert "formula" not in row["prompt"] + row["completion"]
        if row["completion"].startswith("{"):
            # the same form as the task prompt up to the fields asked for
            assert row["prompt"].endswith("|{cards,number}=") and row["prompt"].startswith(f"{TARGET} A")
            task_prompt = row["prompt"].removesuffix("{cards,number}=") + "{cards,number,formula}="
            assert task_prompt.count("|") == one.count("|")


def expected_word(heading: int, target: int, space: str) -> str | None:
    """An independent computation: nearest compass point, or the signed turn's band."""
    if space == "absolute":
        names = ["north", "north-east", "east", "south-east", "south", "south-west", "west", "north-west"]
        return min(
            names,
            key=lambda n: min((target - 45 * names.index(n)) % 360, (45 * names.index(n) - target) % 360),
        )
    d = (target - heading) % 360
    d = d - 360 if d > 180 else d
    if abs(d) <= 15:
        return None
    if abs(d) > 135:
        return "back"
    side = "right" if d > 0 else "left"
    return side if abs(d) > 60 else f"slightly {side}"


ABBREV = {"north": "N", "north-east": "NE", "east": "E", "south-east": "SE", "south": "S",
          "south-west": "SW", "west": "W", "north-west": "NW"}  # fmt: skip
VOCAB = re.compile(r"h=([NSEW]{1,2})(\d+) X=([a-z|\- ]+) to ([NSEW]{1,2})(\d+)=")


def test_vocabulary_rows_answer_a_listed_word_correctly():
    from sftvsrl.envs.virl.directions import ABSOLUTE_DIRECTIONS, RELATIVE_DIRECTIONS

    spaces = set()
    for row in (r for r in ROWS if r["kind"] == "dirs" and r["prompt"].startswith("h=")):
        match = VOCAB.fullmatch(row["prompt"])
        assert match, row
        heading, vocab, target = int(match[2]), match[3].split("|"), int(match[5])
        assert match[1] == ABBREV[expected_word(0, heading, "absolute")]  # as the V-IRL view writes it
        space = "absolute" if vocab == list(ABSOLUTE_DIRECTIONS) else "relative"
        assert vocab == list(ABSOLUTE_DIRECTIONS if space == "absolute" else RELATIVE_DIRECTIONS)
        spaces.add(space)
        assert row["completion"] in vocab and row["completion"] == expected_word(heading, target, space), row
    assert spaces == {"absolute", "relative"}
    # the wrap: a turn across north is a small one
    assert any(
        abs(int(VOCAB.fullmatch(r["prompt"])[2]) - int(VOCAB.fullmatch(r["prompt"])[5])) > 300
        and r["completion"].startswith("slightly")
        for r in ROWS
        if r["prompt"].startswith("h=")
    )


def test_no_row_is_a_virl_episode():
    from sftvsrl.envs.virl.env import VIRLEnv

    names, prompts = set(), []
    for space in ("absolute", "relative"):
        env = VIRLEnv(split="train", action_space=space, prompt_style="compact")
        for seed in range(100):
            obs, info = env.reset(seed=seed)
            prompts.append(obs)
            route = env.route
            names.update(n for n in route.streets if len(n) > 3)
            names.update(lm.name for group in route.landmarks for lm in group if len(lm.name) > 3)
    env_lines = {line for p in prompts for line in p.split("\n")[1:]}  # instruction, history, view
    for row in ROWS:
        text = row["prompt"] + row["completion"]
        assert "turn_direction" not in text and "forward()" not in text and "stop()" not in text
        assert not any(text.startswith(x) for x in ("I:", "H:", "O:", "Walk"))
        assert row["prompt"] not in env_lines
        assert not any(name in text for name in names), row


def test_directions_wrap_modulo_360():
    dirs = [r for r in ROWS if r["kind"] == "dirs"]
    assert {r["prompt"].split()[0].split("=")[0] for r in dirs} == {"deg", "head", "turn", "h"}
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
