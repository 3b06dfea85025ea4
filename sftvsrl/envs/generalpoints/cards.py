"""Cards, card values under each rule, solvable hands and the train/test split.

A card name is a rank (``A``, ``2``..``10``, ``J``, ``Q``, ``K``) optionally followed by a
suit (``S``, ``H``, ``D``, ``C``), e.g. ``"K"`` or ``"KH"``.

Rules: ``"id"`` counts J, Q and K as 10 (the paper's in-distribution rule); ``"ood"`` counts
them as 11, 12 and 13, and an OOD hand always holds at least one J, Q or K (otherwise it
would be scored identically under both rules and say nothing about the rule).

Split rule (documented in docs/generalpoints.md): hands are split by their *value
multiset* under the rule, so ``10 J 2 2`` and ``K Q 2 2`` (both 10,10,2,2 under ID) always
land on the same side. The eligible multisets (solvable for the target, plus the face-card
condition under OOD) are ordered by the SHA-256 of ``"v1,v2,v3,v4"`` (values ascending);
the first 80% (rounded) are ``train``, the rest ``test``. Deterministic, independent of
Python's hash seed, and exactly disjoint.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from functools import cache

import numpy as np

from sftvsrl.envs.generalpoints.solver import solve

RANKS: tuple[str, ...] = ("A", "2", "3", "4", "5", "6", "7", "8", "9", "10", "J", "Q", "K")
SUITS: tuple[str, ...] = ("S", "H", "D", "C")
BLACK_SUITS: tuple[str, ...] = ("S", "C")
RED_SUITS: tuple[str, ...] = ("H", "D")
FACE_RANKS: frozenset[str] = frozenset({"J", "Q", "K"})
RULES: tuple[str, ...] = ("id", "ood")
SPLITS: tuple[str, ...] = ("train", "test", "all")
TRAIN_FRACTION = 0.8
HAND_SIZE = 4


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    return rule


def parse_card(name: str) -> tuple[str, str | None]:
    """Split a card name into (rank, suit or None); raises ValueError on anything else."""
    if not isinstance(name, str):
        raise ValueError(f"a card name must be a string, got {name!r}")
    text = name.strip().upper()
    if text in RANKS:
        return text, None
    if len(text) >= 2 and text[:-1] in RANKS and text[-1] in SUITS:
        return text[:-1], text[-1]
    raise ValueError(f"not a card name: {name!r} (use A, 2..10, J, Q, K, optionally with a suit S/H/D/C)")


def card_value(rank: str, rule: str) -> int:
    """The number a rank stands for under ``rule``."""
    check_rule(rule)
    if rank == "A":
        return 1
    if rank in FACE_RANKS:
        return 10 if rule == "id" else {"J": 11, "Q": 12, "K": 13}[rank]
    if rank in RANKS:
        return int(rank)
    raise ValueError(f"not a rank: {rank!r}")


def hand_values(ranks: Sequence[str], rule: str) -> list[int]:
    return [card_value(r, rule) for r in ranks]


def full_deck() -> list[str]:
    """The 52 cards as rank+suit names, in a fixed order."""
    return [r + s for s in SUITS for r in RANKS]


@cache
def is_solvable(values: tuple[int, ...], target: int = 24) -> bool:
    return solve(values, target) is not None


def value_multiset(ranks: Sequence[str], rule: str) -> tuple[int, ...]:
    return tuple(sorted(hand_values(ranks, rule)))


def rule_values(rule: str) -> tuple[int, ...]:
    """Distinct card values under ``rule``."""
    return tuple(sorted({card_value(r, rule) for r in RANKS}))


def multiset_allowed(values: tuple[int, ...], rule: str) -> bool:
    """OOD multisets must hold a face-card value (11, 12 or 13)."""
    return rule == "id" or any(v > 10 for v in values)


def _split_key(values: tuple[int, ...]) -> str:
    return hashlib.sha256(",".join(map(str, sorted(values))).encode()).hexdigest()


@cache
def eligible_multisets(rule: str, target: int = 24) -> tuple[tuple[int, ...], ...]:
    """Every solvable (and, under OOD, face-holding) value multiset, ascending values."""
    check_rule(rule)
    return tuple(
        combo
        for combo in itertools.combinations_with_replacement(rule_values(rule), HAND_SIZE)
        if multiset_allowed(combo, rule) and is_solvable(combo, target)
    )


@cache
def split_table(rule: str, target: int = 24) -> dict[tuple[int, ...], str]:
    """Value multiset -> "train" or "test", by the rule in this module's docstring."""
    ordered = sorted(eligible_multisets(rule, target), key=_split_key)
    n_train = round(TRAIN_FRACTION * len(ordered))
    return {values: ("train" if i < n_train else "test") for i, values in enumerate(ordered)}


def hand_split(ranks: Sequence[str], rule: str, target: int = 24) -> str | None:
    """ "train"/"test" for an eligible hand, None for a hand no split contains."""
    return split_table(rule, target).get(value_multiset(ranks, rule))


def in_split(ranks: Sequence[str], rule: str, target: int, split: str) -> bool:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    side = hand_split(ranks, rule, target)
    return side is not None and (split == "all" or side == split)


CARD_COLORS: tuple[str, ...] = ("black", "red", "mixed")
MAX_DRAWS = 100_000


def color_suits(card_color: str) -> tuple[str, ...]:
    """Suits a hand may show in a colour variant (visual OOD = train black, test red)."""
    if card_color == "black":
        return BLACK_SUITS
    if card_color == "red":
        return RED_SUITS
    if card_color == "mixed":
        return SUITS
    raise ValueError(f"card_color must be one of {CARD_COLORS}, got {card_color!r}")


def assign_suits(cards: Sequence[str], card_color: str, rng: np.random.Generator) -> list[str]:
    """Give every card without a suit one of the colour variant's suits (given suits stay).

    Cards of the same rank get different suits while the variant has suits left (a
    single-colour variant has two per rank, so a third 7 repeats a suit).
    """
    allowed = color_suits(card_color)
    used: dict[str, set[str]] = {}
    for name in cards:
        rank, suit = parse_card(name)
        if suit is not None:
            used.setdefault(rank, set()).add(suit)
    out = []
    for name in cards:
        rank, suit = parse_card(name)
        taken = used.setdefault(rank, set())
        if suit is None:
            free = [s for s in allowed if s not in taken] or list(allowed)
            suit = free[int(rng.integers(len(free)))]
        taken.add(suit)
        out.append(rank + suit)
    return out


def draw_hand(
    rng: np.random.Generator, rule: str, target: int = 24, split: str = "train", card_color: str = "mixed"
) -> list[str]:
    """Four cards drawn from a shuffled 52-card deck until the hand is in ``split``.

    Rejection keeps the deck's own distribution over hands. Ranks are drawn from the full
    deck for every colour variant (so variants differ only in colour), then suits are
    re-assigned for single-colour variants.
    """
    check_rule(rule)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not any(split in ("all", side) for side in split_table(rule, target).values()):
        raise ValueError(f"no solvable hand for target {target} under rule {rule!r} in split {split!r}")
    deck = full_deck()
    for _ in range(MAX_DRAWS):
        picks = rng.choice(len(deck), size=HAND_SIZE, replace=False)
        cards = [deck[int(i)] for i in picks]
        ranks = [parse_card(c)[0] for c in cards]
        if in_split(ranks, rule, target, split):
            return cards if card_color == "mixed" else assign_suits(ranks, card_color, rng)
    raise RuntimeError(f"no hand found in {MAX_DRAWS} draws (rule={rule}, target={target}, split={split})")
