import time

import pytest

from sftvsrl.envs.jsontext import AnswerTooLong, find_json_object


def test_finds_object_in_prose_and_fences():
    text = 'Sure! Here it is:\n```json\n{"cards": ["A", "2"], "formula": "1+2"}\n```\nDone {not json}'
    assert find_json_object(text) == {"cards": ["A", "2"], "formula": "1+2"}


def test_skips_non_objects_and_braces_inside_strings():
    assert find_json_object('{bad} then {"a": "}{"}') == {"a": "}{"}
    assert find_json_object("[1, 2]") is None
    assert find_json_object("no json here") is None


def test_bounded_on_hostile_input():
    with pytest.raises(AnswerTooLong):
        find_json_object("{" * 1_000_000)
    start = time.perf_counter()
    assert find_json_object("{" * 10_000) is None
    assert find_json_object('{"a":' * 3000) is None
    assert time.perf_counter() - start < 0.5
