"""sftvsrl export: verl parquet rows and JSONL rows, read back with pandas and datasets."""

from __future__ import annotations

import io
import json

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from datasets import load_dataset
from PIL import Image

from sftvsrl.cli import main
from sftvsrl.integrations.common import REVISION_AGENT, EpisodeSpec, get_task_spec, task_names


def _check_row(row: dict, task: str, split: str, index: int) -> EpisodeSpec:
    spec = get_task_spec(task)
    assert row["data_source"] == f"sftvsrl/{task}"
    assert row["ability"] == ("generalpoints" if "GeneralPoints" in task else "virl")
    assert row["agent_name"] == REVISION_AGENT
    assert row["reward_model"]["style"] == "rule"
    ep = EpisodeSpec.parse(row["reward_model"]["ground_truth"])
    assert (ep.env_id, ep.env_kwargs, ep.seed, ep.task, ep.split) == (
        spec.env_id, spec.splits[split], index, task, split,
    )  # fmt: skip
    extra = row["extra_info"]
    assert (extra["split"], extra["index"], extra["seed"]) == (split, index, index)
    assert extra["interaction_kwargs"]["name"] == REVISION_AGENT
    assert EpisodeSpec.parse(extra["interaction_kwargs"]["episode"]) == ep
    prompt = list(row["prompt"])
    assert len(prompt) == 1 and prompt[0]["role"] == "user"
    obs, _ = gym.make(ep.env_id, **ep.env_kwargs).reset(seed=ep.seed)
    text = obs["text"] if isinstance(obs, dict) else obs
    assert prompt[0]["content"] == ("<image>" + text if spec.vision else text)
    return ep


@pytest.mark.parametrize("task,split", [("GeneralPoints-L", "ood"), ("GeneralPoints-VL", "visual_ood")])
def test_verl_parquet_reads_back(tmp_path, task, split, capsys):
    assert main(["export", "--task", task, "--split", split, "--n", "3", "--out", str(tmp_path)]) == 0
    path = tmp_path / f"{task}-{split}.parquet"
    assert str(path) in capsys.readouterr().out
    frame = pd.read_parquet(path)
    assert len(frame) == 3
    hf = load_dataset("parquet", data_files=str(path), split="train")
    assert len(hf) == 3
    for i in range(3):
        ep = _check_row(frame.iloc[i].to_dict(), task, split, i)
        _check_row(hf[i], task, split, i)
        if get_task_spec(task).vision:
            expected = gym.make(ep.env_id, **ep.env_kwargs).reset(seed=ep.seed)[0]["image"]
            for images in (frame.iloc[i]["images"], hf[i]["images"]):
                assert len(images) == 1
                got = np.asarray(Image.open(io.BytesIO(images[0]["bytes"])).convert("RGB"))
                np.testing.assert_array_equal(got, expected)
        else:
            assert "images" not in frame.columns


def test_jsonl_with_image_files_and_split_kwargs(tmp_path):
    args = ["export", "--task", "GeneralPoints-VL", "--split", "id", "--format", "jsonl", "--n", "2"]
    assert main([*args, "--seed", "7", "--max-turns", "3", "--out", str(tmp_path)]) == 0
    rows = [json.loads(line) for line in (tmp_path / "GeneralPoints-VL-id.jsonl").read_text().splitlines()]
    assert [r["extra_info"]["seed"] for r in rows] == [7, 8]
    ep = EpisodeSpec.parse(rows[0]["reward_model"]["ground_truth"])
    assert ep.env_kwargs == {"rule": "id", "split": "test", "card_color": "black", "max_turns": 3}
    image = rows[1]["images"][0]["image"]
    assert image == "images/GeneralPoints-VL-id-1.png" and (tmp_path / image).is_file()


def test_every_task_and_split_exports(tmp_path):
    for task in task_names():
        for split in get_task_spec(task).splits:
            assert main(["export", "--task", task, "--split", split, "--n", "1", "--out", str(tmp_path)]) == 0
    frames = [pd.read_parquet(p) for p in sorted(tmp_path.glob("*-id*.parquet")) if "VL" not in p.name]
    # text tasks of both families share one schema, so verl can concatenate their files
    assert len(pd.concat(frames)) == len(frames)


def test_bad_split_is_a_user_error(tmp_path, capsys):
    assert main(["export", "--task", "GeneralPoints-L", "--split", "visual_ood", "--out", str(tmp_path)]) == 2
    assert "no split 'visual_ood'" in capsys.readouterr().err
