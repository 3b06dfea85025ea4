"""The -VL card image: shape, table colour and suit-colour pixels per variant."""

import numpy as np
import pytest

from sftvsrl.envs.generalpoints.render import TABLE_RGB, render_hand


def _red(img):
    r, g, b = (img[..., i].astype(int) for i in range(3))
    return int(((r > 150) & (g < 80) & (b < 80)).sum())


def _black(img):
    return int((img.max(axis=-1) < 60).sum())


def test_image_shape_and_table():
    img = render_hand(["AS", "10H", "KD", "7C"], (448, 224))
    assert img.shape == (224, 448, 3) and img.dtype == np.uint8
    assert tuple(img[2, 2]) == TABLE_RGB == (0x35, 0x65, 0x4D)
    assert (img == TABLE_RGB).all(axis=-1).mean() > 0.3  # mostly green table around the cards


@pytest.mark.parametrize(
    ("hand", "red", "black"),
    [
        (["AS", "10C", "KS", "7C"], False, True),  # black variant
        (["AH", "10D", "KH", "7D"], True, False),  # red variant
        (["AS", "10H", "KD", "7C"], True, True),  # mixed
    ],
)
def test_suit_colour_pixels(hand, red, black):
    img = render_hand(hand)
    assert (_red(img) > 500) == red
    assert (_black(img) > 500) == black


def test_each_card_is_drawn_with_its_own_ink():
    img = render_hand(["AS", "10H", "KD", "7C"], (448, 224))
    quarters = np.array_split(img, 4, axis=1)
    assert [_red(q) > 200 for q in quarters] == [False, True, True, False]
    assert [_black(q) > 200 for q in quarters] == [True, False, False, True]


def test_ranks_and_suits_change_the_picture():
    a, b, c = render_hand(["AS"] * 4), render_hand(["KS"] * 4), render_hand(["AC"] * 4)
    assert (a != b).any() and (a != c).any()
    # a glyph really is drawn (DejaVu has the suits): the spade card has plenty of ink
    assert _black(a) > 2000


def test_too_small_is_an_error():
    with pytest.raises(ValueError):
        render_hand(["AS"] * 4, (10, 10))


@pytest.mark.parametrize("size", [(224, 224), (64, 48), (1024, 300)])
def test_other_sizes(size):
    img = render_hand(["AS", "10H", "KD", "7C"], size)
    assert img.shape == (size[1], size[0], 3) and _red(img) > 0 and _black(img) > 0
