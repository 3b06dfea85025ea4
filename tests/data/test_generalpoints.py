"""``sftvsrl data generalpoints``: rows load with datasets, verify, vary and revise."""

import argparse
import json
from collections import defaultdict

import pytest
from datasets import load_dataset

from sftvsrl.cli import UserError
from sftvsrl.data import generalpoints as gp
from sftvsrl.envs.generalpoints import answers as gp_answers
from sftvsrl.envs.generalpoints import verify
from sftvsrl.envs.generalpoints.cards import hand_split


def _run(argv):
    parser = argparse.ArgumentParser()
    gp.add_arguments(parser)
    return gp.run(parser.parse_args(argv))


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_text_rows_load_verify_and_vary(tmp_path):
    out = tmp_path / "gp_l_train.jsonl"
    assert _run(["--rule", "id", "--split", "train", "--n", "120", "--out", str(out), "--seed", "7"]) == 0
    ds = load_dataset("json", data_files=str(out), split="train")
    assert len(ds) == 120 and {"prompt", "completion", "env_id", "env_kwargs", "seed", "cards"} <= set(
        ds.column_names
    )
    rows = _rows(out)
    formulas = defaultdict(set)
    for row in rows:
        assert row["env_id"] == "sftvsrl/GeneralPoints-L-v0" and row["env_kwargs"]["rule"] == "id"
        assert f"Cards: {row['cards']}" in row["prompt"]
        assert verify(row["completion"], row["hand"], "id").success
        assert hand_split(row["cards"], "id") == "train"
        formulas[tuple(sorted(row["values"]))].add(json.loads(row["completion"])["formula"])
    assert any(len(f) > 1 for f in formulas.values())  # one hand, several answers
    # deterministic per seed
    again = tmp_path / "again.jsonl"
    _run(["--rule", "id", "--n", "120", "--out", str(again), "--seed", "7"])
    assert again.read_text() == out.read_text()


def test_vision_rows_with_images_and_revisions(tmp_path):
    out = tmp_path / "vl" / "gp_vl.jsonl"
    argv = [
        "--vl",
        "--card-color",
        "red",
        "--rule",
        "ood",
        "--n",
        "40",
        "--out",
        str(out),
        "--multi-turn-fraction",
        "0.5",
        "--prompt-style",
        "compact",
    ]
    assert _run(argv) == 0
    ds = load_dataset("json", data_files=str(out), split="train")
    assert len(ds) == 40 and "images" in ds.column_names
    rows = _rows(out)
    revisions = [r for r in rows if r["revision"]]
    assert 5 <= len(revisions) <= 35
    for row in rows:
        (image,) = row["images"]
        assert (out.parent / image).is_file()
        assert all(c[-1] in "HD" for c in row["hand"])
        assert verify(row["completion"], row["hand"], "ood", vision=True).success
    for row in revisions:
        assert "[Attempt 1]" in row["prompt"] and "Feedback:" in row["prompt"] and row["turn"] >= 1
        wrong = row["prompt"].split("Your answer: ")[1].split("\nFeedback:")[0]
        assert not verify(wrong, row["hand"], "ood", vision=True).success


def test_wrong_answers_cover_every_mistake():
    import random

    rng = random.Random(0)
    info = {"cards": ["K", "5", "10", "A"], "values": [13, 5, 10, 1], "target": 24}
    outcomes = set()
    for _ in range(200):
        text = gp_answers.wrong_answer(info, rng, vision=True, rule="ood")
        if text is not None:
            outcomes.add(verify(text, ["K", "5", "10", "A"], "ood", vision=True).outcome)
    assert {"wrong_value", "wrong_numbers", "bad_format", "misrecognized_correct"} <= outcomes
    assert "correct" not in outcomes


@pytest.mark.parametrize("argv", [["--n", "0"], ["--multi-turn-fraction", "2"]])
def test_user_errors(tmp_path, argv):
    with pytest.raises(UserError):
        _run([*argv, "--out", str(tmp_path / "x.jsonl")])


def test_command_line(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "cli.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "sftvsrl", "data", "generalpoints", "--n", "5", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(_rows(out)) == 5 and "wrote 5 rows" in proc.stdout
