import argparse
import json
import random

import pytest
from datasets import load_dataset

from sftvsrl.cli import UserError
from sftvsrl.data import virl as virl_data
from sftvsrl.envs.virl import answers as virl_answers
from sftvsrl.envs.virl.verifier import parse_action, verify


def run_cli(*argv):
    parser = argparse.ArgumentParser()
    virl_data.add_arguments(parser)
    return virl_data.run(parser.parse_args(list(argv)))


def test_language_rows_load_with_datasets(tmp_path):
    out = tmp_path / "virl_train.jsonl"
    assert run_cli("--n", "40", "--out", str(out), "--multi-turn-fraction", "0.3", "--seed", "3") == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 40
    assert any(r["revision"] for r in rows) and any(not r["revision"] for r in rows)
    for r in rows:
        assert r["env_id"] == "sftvsrl/VIRL-L-v0" and r["route_id"].startswith("helsinki-")
        assert verify(
            r["completion"], parse_action(json.loads(r["completion"])["action"], "absolute"), "absolute"
        ).correct
        if r["revision"]:
            assert "[Attempt 1]" in r["prompt"] and "Feedback: Wrong action" in r["prompt"]
    ds = load_dataset("json", data_files=str(out), split="train")
    assert ds.num_rows == 40 and {"prompt", "completion", "env_kwargs", "seed"} <= set(ds.column_names)


def test_vision_rows_have_images(tmp_path):
    out = tmp_path / "virl_vl.jsonl"
    run_cli("--n", "6", "--out", str(out), "--vl", "--city", "kotka", "--action-space", "relative",
            "--prompt-style", "compact")  # fmt: skip
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    for r in rows:
        (image,) = r["images"]
        assert (tmp_path / image).is_file()
        assert "landmarks" in json.loads(r["completion"])
    ds = load_dataset("json", data_files=str(out), split="train")
    assert ds.num_rows == 6


@pytest.mark.parametrize("space", ["absolute", "relative"])
def test_wrong_actions_are_wrong_and_parse(space):
    rng = random.Random(0)
    from sftvsrl.envs.virl.directions import directions_for

    for right in ["forward()", "stop()", *[f"turn_direction({d})" for d in directions_for(space)]]:
        for _ in range(20):
            wrong = virl_answers.wrong_action_text(right, space, rng)
            assert parse_action(wrong, space) != parse_action(right, space)


def test_bad_arguments(tmp_path):
    with pytest.raises(UserError):
        run_cli("--n", "0", "--out", str(tmp_path / "x.jsonl"))
    with pytest.raises(UserError):
        run_cli("--n", "2", "--out", str(tmp_path / "x.jsonl"), "--city", "atlantis")
