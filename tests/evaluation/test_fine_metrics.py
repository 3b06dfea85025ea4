"""Fine metrics of the evaluation summary, on hand-made answers and records."""

import pytest

from sftvsrl.envs.generalpoints.verifier import verify as verify_cards
from sftvsrl.envs.virl.oracle import Action
from sftvsrl.envs.virl.verifier import verify as verify_action
from sftvsrl.evaluation.runner import evaluate
from sftvsrl.evaluation.summary import answer_recognized, recognition_metrics, summarize
from sftvsrl.rollout import Generation

GP_L, GP_VL = "sftvsrl/GeneralPoints-L-v0", "sftvsrl/GeneralPoints-VL-v0"
VIRL_L = "sftvsrl/VIRL-L-v0"


class Fixed:
    """An engine that gives the same answer to every prompt."""

    def __init__(self, text):
        self.text = text

    def generate(self, observations, **_):
        return [Generation(self.text, [1], [2]) for _ in observations]


def record(turns, success=False):
    return {"success": success, "final_outcome": turns[-1]["outcome"], "return": 0.0, "turns": turns}


def test_ood_answer_that_follows_the_rule_with_a_wrong_formula_counts_as_rule_following():
    cards = ["K", "2", "3", "4"]
    follows = verify_cards(
        '{"cards": ["K","2","3","4"], "number": [13,2,3,4], "formula": "13+2+3+4"}', cards, "ood"
    )
    assert follows.outcome == "wrong_value" and follows.rule_following  # 22, not 24: rule followed
    id_values = verify_cards(
        '{"cards": ["K","2","3","4"], "number": [10,2,3,4], "formula": "10+2+3+4"}', cards, "ood"
    )
    assert not id_values.rule_following  # K = 10 is the training rule, not the episode's
    assert not verify_cards("no json", cards, "ood").rule_following
    turns = [
        {"outcome": v.outcome, "rule_following": v.rule_following} for v in (follows, id_values, follows)
    ]
    s = summarize([record(turns)], env_id=GP_L)
    assert s["rule_following"] == pytest.approx(2 / 3) and s["rule_following_n"] == 3
    lo, hi = s["rule_following_ci95"]
    assert 0 < lo < 2 / 3 < hi < 1


def test_the_runner_records_rule_following_from_the_real_env():
    _, s = evaluate(Fixed("not an answer"), GP_L, {"rule": "ood", "split": "test"}, episodes=3, max_turns=2)
    assert s["rule_following"] == 0.0 and s["rule_following_n"] == 6 == s["answers"]
    assert "valid_action" not in s and "recognition_accuracy" not in s  # declared per task


def test_a_compass_word_under_the_relative_space_is_an_invalid_action():
    right = Action("turn", "left")
    compass = verify_action('{"action": "turn_direction(north)"}', right, "relative")
    assert compass.outcome == "invalid_action" and not compass.valid_action
    wrong = verify_action('{"action": "turn_direction(right)"}', right, "relative")
    assert wrong.outcome == "wrong_action" and wrong.valid_action  # valid, though wrong
    good = verify_action('{"action": "turn_direction(left)"}', right, "relative")
    assert good.valid_action and good.outcome == "correct"
    turns = [{"outcome": v.outcome, "valid_action": v.valid_action} for v in (compass, wrong, good, compass)]
    s = summarize([record(turns)], env_id=VIRL_L)
    assert s["valid_action"] == 0.5 and s["valid_action_n"] == 4
    # per-step accuracy: right actions among all answers given (one of four)
    assert s["step_accuracy"] == 0.25 and s["step_accuracy_n"] == 4
    assert "rule_following" not in s


def test_the_runner_records_valid_action_from_the_real_env():
    answer = '{"action": "turn_direction(north)"}'
    _, s = evaluate(
        Fixed(answer), VIRL_L, {"action_space": "relative", "split": "test"}, episodes=2, max_turns=1
    )
    assert s["valid_action"] == 0.0 and s["valid_action_n"] == s["answers"] == 2
    assert s["step_accuracy"] == 0.0 and s["step_accuracy_n"] == 2


def test_card_recognition_leaves_unparsable_answers_out():
    # The case: four bad_format answers are not four recognition failures.
    _, s = evaluate(Fixed("I do not know"), GP_VL, {"prompt_style": "compact"}, episodes=4, max_turns=1)
    assert s["answer_outcomes"] == {"bad_format": 4}
    assert s["recognition_accuracy"] is None and s["recognition_n"] == 0 and s["recognition_ci95"] is None
    # Two parsable answers, one naming the cards shown: 1/2 over n = 2.
    turns = [
        {"outcome": "bad_format", "recognized": False},
        {"outcome": "bad_format", "recognized": False},
        {"outcome": "wrong_value", "recognized": True},
        {"outcome": "misrecognized_wrong_value", "recognized": False},
    ]
    m = recognition_metrics([record(turns)])
    assert m["recognition_accuracy"] == 0.5 and m["recognition_n"] == 2 == m["recognition_answers"]
    # A bad formula with readable, right cards is assessable (and recognised).
    assert (
        recognition_metrics([record([{"outcome": "bad_format", "recognized": True}])])["recognition_n"] == 1
    )


def test_answer_recognized_on_unparsable_answers():
    assert answer_recognized({"outcome": "bad_format", "recognized": False}) is None
    assert answer_recognized({"outcome": "bad_format", "recognized": True}) is True
    assert answer_recognized({"outcome": "misrecognized_bad_format", "recognized": False}) is False
    assert answer_recognized({"outcome": "bad_format"}) is None  # V-IRL-VL: landmarks not read


def test_outcome_shares_sum_to_one_and_have_intervals():
    turns = [{"outcome": o} for o in ("correct", "bad_format", "bad_format", "wrong_value")]
    s = summarize([record(turns[:2]), record(turns[2:])])
    assert s["outcome_shares"] == {"bad_format": 0.5, "correct": 0.25, "wrong_value": 0.25}
    assert sum(s["outcome_shares"].values()) == pytest.approx(1.0) and s["answers"] == 4
    for outcome, (lo, hi) in s["outcome_shares_ci95"].items():
        assert lo <= s["outcome_shares"][outcome] <= hi


def test_no_answers_means_no_share_not_zero():
    s = summarize([record([{"outcome": "correct"}])], env_id=VIRL_L)  # records without the flag
    assert s["valid_action"] is None and s["valid_action_n"] == 0
