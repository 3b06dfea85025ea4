import pytest

from sftvsrl.envs.virl.directions import (
    ABSOLUTE_DIRECTIONS,
    RELATIVE_DIRECTIONS,
    absolute_direction,
    needs_turn,
    normalize_direction,
    relative_direction,
    signed_turn,
    wrap_heading,
)


def test_relative_turn_wraps_across_north():
    assert signed_turn(350, 10) == pytest.approx(20)
    assert signed_turn(10, 350) == pytest.approx(-20)
    assert relative_direction(350, 10) == "slightly right"
    assert relative_direction(10, 350) == "slightly left"
    assert relative_direction(359, 1) is None  # 2 degrees: straight on


@pytest.mark.parametrize(
    ("heading", "target", "expected"),
    [
        (0, 15, None),
        (0, 16, "slightly right"),
        (0, 60, "slightly right"),
        (0, 61, "right"),
        (0, 135, "right"),
        (0, 136, "back"),
        (0, 180, "back"),
        (0, 224, "back"),
        (0, 226, "left"),
        (0, 300, "slightly left"),
        (270, 0, "right"),
        (90, 0, "left"),
        (720 + 45, -45, "left"),
    ],
)
def test_relative_thresholds(heading, target, expected):
    assert relative_direction(heading, target) == expected
    assert needs_turn(heading, target) == (expected is not None)


def test_signed_turn_range():
    for h in range(0, 720, 7):
        for t in range(-360, 360, 11):
            d = signed_turn(h, t)
            assert -180 < d <= 180
            assert (h + d - t) % 360 == pytest.approx(0) or (h + d - t) % 360 == pytest.approx(360)


@pytest.mark.parametrize(
    ("bearing", "name"),
    [(0, "north"), (22.4, "north"), (22.6, "north-east"), (359, "north"), (337.6, "north"),
     (337.4, "north-west"), (90, "east"), (180, "south"), (225, "south-west"), (-90, "west"), (405, "north-east")],
)  # fmt: skip
def test_absolute_direction(bearing, name):
    assert absolute_direction(bearing) == name
    assert 0 <= wrap_heading(bearing) < 360


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("north", "north"), ("NORTH", "north"), ("north-east", "north-east"), ("northeast", "north-east"),
     ("north east", "north-east"), ("north_east", "north-east"), ("NE", "north-east"), ("'sw'", "south-west"),
     ('"South-West"', "south-west"), ("nw", "north-west"), ("e", "east")],
)  # fmt: skip
def test_absolute_forms(text, canonical):
    assert normalize_direction(text, "absolute") == canonical
    assert normalize_direction(text, "relative") is None


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("left", "left"), ("Right", "right"), ("slightly left", "slightly left"), ("slight left", "slightly left"),
     ("slightly_right", "slightly right"), ("slight-right", "slightly right"), ("back", "back"),
     ("turn around", "back"), ("around", "back"), ("turn back", "back"), ("backwards", "back"), ("u-turn", "back")],
)  # fmt: skip
def test_relative_forms(text, canonical):
    assert normalize_direction(text, "relative") == canonical
    assert normalize_direction(text, "absolute") is None


def test_every_canonical_direction_round_trips():
    for d in ABSOLUTE_DIRECTIONS:
        assert normalize_direction(d, "absolute") == d
    for d in RELATIVE_DIRECTIONS:
        assert normalize_direction(d, "relative") == d
    with pytest.raises(ValueError):
        normalize_direction("north", "polar")
