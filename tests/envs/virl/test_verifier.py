import json

import pytest

from sftvsrl.envs.virl.oracle import Action
from sftvsrl.envs.virl.verifier import REWARDS, ActionParseError, parse_action, verify


def answer(action, **more):
    return json.dumps({"action": action, **more})


@pytest.mark.parametrize(
    "text",
    [
        "forward",
        "forward()",
        "FORWARD()",
        " forward ",
        "'forward()'",
        "move forward",
        "go forward",
        "move_forward()",
    ],
)
def test_forward_forms(text):
    assert parse_action(text, "absolute") == Action("forward")
    assert parse_action(text, "relative") == Action("forward")


@pytest.mark.parametrize("text", ["stop", "stop()", "Stop()", '"stop"'])
def test_stop_forms(text):
    assert parse_action(text, "absolute") == Action("stop")


@pytest.mark.parametrize(
    ("text", "direction"),
    [("turn_direction(north)", "north"), ('turn_direction("north-east")', "north-east"),
     ("turn_direction('northeast')", "north-east"), ("turn_direction( NE )", "north-east"),
     ("Turn_Direction(South West)", "south-west"), ("turn direction(west)", "west"), ("turn west", "west"),
     ("turn_direction(north_west)", "north-west")],
)  # fmt: skip
def test_absolute_turn_forms(text, direction):
    assert parse_action(text, "absolute") == Action("turn", direction)


@pytest.mark.parametrize(
    ("text", "direction"),
    [("turn_direction(left)", "left"), ("turn_direction(slightly right)", "slightly right"),
     ('turn_direction("slight left")', "slightly left"), ("turn left", "left"), ("turn around", "back"),
     ("turn back", "back"), ("turn_direction(back)", "back"), ("turn_direction(turn around)", "back"),
     ("turn_direction(u-turn)", "back")],
)  # fmt: skip
def test_relative_turn_forms(text, direction):
    assert parse_action(text, "relative") == Action("turn", direction)


@pytest.mark.parametrize(
    ("text", "space"),
    [("turn_direction(left)", "absolute"), ("turn_direction(north)", "relative"), ("fly()", "absolute"),
     ("turn_direction()", "absolute"), ("forward(2)", "absolute"), ("", "absolute"), ("x" * 200, "absolute")],
)  # fmt: skip
def test_rejected_actions(text, space):
    with pytest.raises(ActionParseError):
        parse_action(text, space)


def test_canonical_text_round_trips():
    for action in (
        Action("forward"),
        Action("stop"),
        Action("turn", "north-west"),
        Action("turn", "slightly left"),
    ):
        space = "relative" if action.direction == "slightly left" else "absolute"
        assert parse_action(action.text(), space) == action


def test_rewards_per_outcome():
    expected = Action("turn", "east")
    ok = verify("I will turn. " + answer("turn_direction(E)") + " done", expected, "absolute")
    assert (ok.outcome, ok.reward) == ("correct", 1.0)
    wrong = verify(answer("forward()"), expected, "absolute")
    assert (wrong.outcome, wrong.reward) == ("wrong_action", -1.0)
    assert "forward()" in wrong.feedback
    invalid = verify(answer("turn_direction(left)"), expected, "absolute")
    assert (invalid.outcome, invalid.reward) == ("invalid_action", -1.0)
    assert "north" in invalid.feedback  # lists the allowed directions
    assert verify("forward", expected, "absolute").outcome == "bad_format"
    assert verify('{"act": "forward"}', expected, "absolute").outcome == "bad_format"
    assert verify(answer(3), expected, "absolute").outcome == "invalid_action"
    too_long = verify("x" * 30_000, expected, "absolute")
    assert (too_long.outcome, too_long.reward) == ("bad_format", -1.0)
    assert REWARDS["landmark_error"] == -1.5


def test_vision_landmark_detection():
    expected = Action("forward")
    visible = ["Hotel Kämp", "Café Esplanad"]
    ok = verify(
        answer("forward()", landmarks=["hotel  kämp"]),
        expected,
        "absolute",
        vision=True,
        visible_landmarks=visible,
    )
    assert ok.outcome == "correct"
    none = verify(
        answer("forward()", landmarks=[]), expected, "absolute", vision=True, visible_landmarks=visible
    )
    assert none.outcome == "correct"  # only false reports are penalised
    false = verify(
        answer("forward()", landmarks=["Hotel Kämp", "Burger Palace"]),
        expected,
        "absolute",
        vision=True,
        visible_landmarks=visible,
    )
    assert (false.outcome, false.reward) == ("landmark_error", -1.5)
    assert "Burger Palace" in false.feedback
    missing = verify(answer("forward()"), expected, "absolute", vision=True, visible_landmarks=visible)
    assert (missing.outcome, missing.reward) == ("bad_format", -1.0)
    bad_type = verify(answer("forward()", landmarks="Hotel Kämp"), expected, "absolute", vision=True)
    assert bad_type.outcome == "bad_format"
    # -L ignores the landmarks field entirely.
    assert verify(answer("forward()", landmarks=["nope"]), expected, "absolute").outcome == "correct"
