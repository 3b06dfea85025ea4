"""GeneralPoints prompts in two styles carrying the same information.

``full``: a paper-like task description for real language models: role, rules, how J, Q
and K count under the rule, the target, the cards (text variant) or a pointer to the image
(vision variant), and the JSON answer format.

``compact``: the same facts in few characters, for tiny character-level models trained
from scratch, e.g. ``24 A1 J10 Q10 K10|A 10 K 5|{cards,number,formula}=``.
"""

from __future__ import annotations

from collections.abc import Sequence

from sftvsrl.envs.generalpoints.cards import card_value, check_rule

PROMPT_STYLES: tuple[str, ...] = ("full", "compact")


def face_rule_text(rule: str) -> str:
    check_rule(rule)
    if rule == "id":
        return "'J', 'Q' and 'K' all count as 10"
    return "'J' counts as 11, 'Q' as 12 and 'K' as 13"


def build_prompt(
    ranks: Sequence[str] | None, rule: str, target: int = 24, vision: bool = False, style: str = "full"
) -> str:
    """The first prompt of an episode. ``ranks`` are shown only for the text variant."""
    check_rule(rule)
    if style not in PROMPT_STYLES:
        raise ValueError(f"prompt_style must be one of {PROMPT_STYLES}, got {style!r}")
    if style == "compact":
        faces = " ".join(f"{r}{card_value(r, rule)}" for r in ("A", "J", "Q", "K"))
        shown = "img" if vision else " ".join(ranks or [])
        return f"{target} {faces}|{shown}|{{cards,number,formula}}="
    faces = face_rule_text(rule)
    if vision:
        seen = "You are looking at four playing cards in the image."
        cards_line = "Cards: shown in the image."
        cards_hint = 'the names of the four cards you see, e.g. ["A", "10", "K", "5"]'
    else:
        seen = "You are given four playing cards."
        cards_line = f"Cards: {list(ranks or [])}"
        cards_hint = "the names of the four cards, as given"
    return (
        "[Task]\n"
        f"You are an expert player of the {target}-points card game. {seen} "
        f"Write a formula that equals {target}, using the number of every card exactly once and "
        "only the operators '+', '-', '*', '/' and parentheses. "
        f"'A' counts as 1, number cards count as their number, and {faces}.\n"
        "[Input]\n"
        f"{cards_line}\n"
        "[Output]\n"
        "Answer with one JSON object:\n"
        "{\n"
        f'  "cards": {cards_hint},\n'
        f'  "number": the value of each card under the rule above ({faces}),\n'
        f'  "formula": a formula over those numbers that equals {target}, e.g. "(10-4)*(5-1)"\n'
        "}"
    )
