"""Shared helpers: a scripted model's wrong answers for each task family."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="session", autouse=True)
def _virl_cache(tmp_path_factory: pytest.TempPathFactory):
    """Parse each V-IRL city at most once per session, into a private cache folder."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SFTVSRL_CACHE", str(tmp_path_factory.mktemp("sftvsrl-cache")))
    yield
    mp.undo()


def wrong_answer(expert: str) -> str:
    """A well-formed but wrong answer: for GeneralPoints the right numbers in a formula that
    does not make 24 (or a wrong one), for V-IRL a different action."""
    obj = json.loads(expert)
    if "formula" in obj:
        nums = obj["number"]
        obj["formula"] = "+".join(str(n) for n in nums)
        if sum(nums) == 24:
            obj["formula"] = "*".join(str(n) for n in nums)
        return json.dumps(obj)
    obj["action"] = "stop()" if obj["action"] != "stop()" else "forward()"
    return json.dumps(obj)


HOSTILE = [
    "",
    "no json here",
    "{",
    '{"cards": "x"}',
    "{" * 5000,
    "x" * 200_000,
    '{"formula": "__import__(\'os\').system(\'true\')", "number": [1], "cards": []}',
    '{"action": "' + "a" * 10_000 + '"}',
    "\ud800\x00\u202e",
    None,
    12,
    b"\xff\xfe",
    ["a"],
]
