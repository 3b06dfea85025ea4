"""Card values, solvable-hand tables and the train/test split rule."""

import numpy as np
import pytest

from sftvsrl.envs.generalpoints.cards import (
    assign_suits,
    card_value,
    draw_hand,
    eligible_multisets,
    full_deck,
    hand_split,
    parse_card,
    split_table,
)


def test_card_names_and_values():
    assert len(full_deck()) == 52 == len(set(full_deck()))
    assert (
        parse_card("kh") == ("K", "H")
        and parse_card("10") == ("10", None)
        and parse_card("10S") == ("10", "S")
    )
    for bad in ["1", "11", "KX", "", "Joker", 10]:
        with pytest.raises(ValueError):
            parse_card(bad)
    assert [card_value(r, "id") for r in ("A", "7", "10", "J", "Q", "K")] == [1, 7, 10, 10, 10, 10]
    assert [card_value(r, "ood") for r in ("A", "7", "10", "J", "Q", "K")] == [1, 7, 10, 11, 12, 13]
    with pytest.raises(ValueError):
        card_value("K", "other")


def test_solvable_tables_match_known_counts():
    # shared facts: 566 of 715 ID value multisets; 796 of 1105 OOD multisets holding 11..13
    assert len(eligible_multisets("id")) == 566
    ood = eligible_multisets("ood")
    assert len(ood) == 796 and all(max(v) > 10 for v in ood)


@pytest.mark.parametrize(("rule", "train", "test"), [("id", 453, 113), ("ood", 637, 159)])
def test_split_is_disjoint_80_20_and_by_value_multiset(rule, train, test):
    table = split_table(rule)
    sides = list(table.values())
    assert (sides.count("train"), sides.count("test")) == (train, test)
    assert set(table) == set(eligible_multisets(rule))  # every eligible multiset on exactly one side
    if rule == "id":  # ranks sharing a value share a side
        assert hand_split(["10", "J", "2", "2"], "id") == hand_split(["K", "Q", "2", "2"], "id")
    assert hand_split(["A", "A", "A", "A"], rule) is None


@pytest.mark.parametrize("rule", ["id", "ood"])
def test_drawn_hands_respect_split_and_rule(rule):
    rng = np.random.default_rng(0)
    seen = {"train": set(), "test": set()}
    for split in ("train", "test"):
        for _ in range(60):
            hand = draw_hand(rng, rule, 24, split)
            ranks = [parse_card(c)[0] for c in hand]
            assert len(set(hand)) == 4  # four distinct cards of one deck
            assert hand_split(ranks, rule) == split
            if rule == "ood":
                assert any(r in ("J", "Q", "K") for r in ranks)
            seen[split].add(tuple(sorted(card_value(r, rule) for r in ranks)))
    assert not seen["train"] & seen["test"]


def test_colour_variants_choose_suits():
    rng = np.random.default_rng(1)
    for _ in range(20):
        black = draw_hand(rng, "id", 24, "train", "black")
        red = draw_hand(rng, "id", 24, "train", "red")
        assert all(c[-1] in "SC" for c in black) and all(c[-1] in "HD" for c in red)
    assert assign_suits(["7", "7", "KH"], "black", rng)[2] == "KH"  # given suits stay
    assert sorted(assign_suits(["7", "7"], "black", rng)) == ["7C", "7S"]  # distinct while possible
    with pytest.raises(ValueError):
        draw_hand(rng, "id", 24, "train", "green")
    with pytest.raises(ValueError):
        draw_hand(rng, "id", 100_000, "train")  # nothing solvable
