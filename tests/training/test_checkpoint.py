import json
import random

import numpy as np
import pytest
import torch

from sftvsrl.errors import CheckpointError
from sftvsrl.models.loading import load_checkpoint, load_model, save_model
from sftvsrl.runs import RunDir, TrainerState


def save_checkpoint(run_dir, step, pm, extra=None, **kw):
    """A model checkpoint the way the trainers write one."""
    state = TrainerState(stage="test", step=step, extra=extra or {})
    return RunDir(run_dir).save_checkpoint(step, write_model=lambda d: save_model(pm, d), state=state, **kw)


@pytest.fixture(scope="module")
def pm():
    return load_model("tiny-lm")


def _opt(pm):
    opt = torch.optim.AdamW(pm.model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    ids = torch.tensor([[1, 20, 30, 2]])
    pm.model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    sched.step()
    opt.zero_grad()
    return opt, sched


def test_save_load_round_trip(pm, tmp_path):
    opt, sched = _opt(pm)
    head = torch.nn.Linear(4, 1)
    torch.manual_seed(123)
    random.seed(5)
    np.random.seed(7)
    path = save_checkpoint(
        tmp_path,
        3,
        pm,
        {"x": [1, 2]},
        optimizer=opt,
        scheduler=sched,
        extra_modules={"value_head": head},
    )
    expected = (torch.rand(3), random.random(), np.random.rand())
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    ck = load_checkpoint(tmp_path)  # a run folder resolves to its latest checkpoint
    assert ck.path == path and ck.state.step == 3 and ck.state.extra == {"x": [1, 2]}
    ck.restore_rng()
    assert torch.equal(torch.rand(3), expected[0]) and random.random() == expected[1]
    assert np.random.rand() == expected[2]
    opt2 = torch.optim.AdamW(ck.pm.model.parameters(), lr=1e-3)
    sched2 = torch.optim.lr_scheduler.LambdaLR(opt2, lambda s: 1.0 / (1 + s))
    ck.load_optimizer(opt2)
    ck.load_scheduler(sched2)
    assert sched2.last_epoch == 1
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert all(torch.equal(s1[k]["exp_avg"], s2[k]["exp_avg"]) for k in s1)
    head2 = torch.nn.Linear(4, 1)
    ck.load_module("value_head", head2)
    assert torch.equal(head2.weight, head.weight)
    for a, b in zip(pm.model.parameters(), ck.pm.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_keep_last_and_latest(pm, tmp_path):
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, pm, keep_last=2)
    # a crashed save leaves only a temporary folder, which is never picked
    (tmp_path / "checkpoints" / ".step-00000009.tmp").mkdir()
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if not p.name.startswith("."))
    assert names == ["step-00000002", "step-00000003"]
    assert RunDir(tmp_path).latest().name == "step-00000003"
    # re-saving the same step replaces it atomically
    path = save_checkpoint(tmp_path, 3, pm, {"again": True})
    assert json.loads((path / "trainer_state.json").read_text())["extra"]["again"]


def test_corrupt_checkpoints_name_the_file(pm, tmp_path):
    path = save_checkpoint(tmp_path, 1, pm, optimizer=_opt(pm)[0])
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope")
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(path)
    path = save_checkpoint(tmp_path, 2, pm, optimizer=_opt(pm)[0])
    (path / "optimizer.pt").write_bytes(b"garbage")
    ck = load_checkpoint(path)
    with pytest.raises(CheckpointError, match="optimizer.pt"):
        ck.load_optimizer(torch.optim.AdamW(ck.pm.model.parameters()))
    (path / "trainer_state.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="trainer_state.json"):
        load_checkpoint(path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        load_checkpoint(tmp_path / "empty")


def test_load_model_accepts_a_run_folder(pm, tmp_path):
    """`sftvsrl eval --model runs/x` takes a run folder and loads its newest checkpoint."""
    for step in (1, 2):
        with torch.no_grad():
            pm.model.lm_head.weight.fill_(float(step))
        save_checkpoint(tmp_path, step, pm)
    loaded = load_model(tmp_path)
    assert torch.all(loaded.model.lm_head.weight == 2.0)
    (tmp_path / "config.json").write_text('{"env_id": "x", "updates": 2}')  # a PPO run's own config
    assert torch.all(load_model(tmp_path).model.lm_head.weight == 2.0)
    with pytest.raises(Exception, match="no config.json"):
        load_model(tmp_path / "checkpoints")
