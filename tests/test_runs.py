import json

import pytest
import torch

from sftvsrl.config import StrictModel
from sftvsrl.errors import CheckpointError, ConfigError
from sftvsrl.flops import FlopsCounter
from sftvsrl.runlog import RunLog
from sftvsrl.runs import (
    RunDir,
    TrainerState,
    export_model,
    lineage_flops,
    lineage_gflops,
    load_extra_module,
    read_trainer_state,
    resolve_checkpoint,
)


def _write_model(folder):
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights")


def _state(step, **extra):
    flops = FlopsCounter(n_params=10, d_train=step * 100).to_dict()
    return TrainerState(
        stage="sft", step=step, flops=flops, elapsed=1.5 * step, config={"lr": 1}, extra=extra
    )


def _save(run, step, **kw):
    return run.save_checkpoint(step, write_model=_write_model, state=_state(step), **kw)


def test_run_log_append_truncate_read(tmp_path):
    log = RunLog(tmp_path / "log.jsonl")
    assert log.read() == [] and log.at(1) is None
    log.truncate(3)  # no log yet: nothing to do
    for step in (1, 2, 3, 4):
        log.append({"step": step, "time": step * 0.5, "flops": 1.0, "tokens": step})
    assert [r["step"] for r in log.read()] == [1, 2, 3, 4]
    assert log.at(2)["time"] == 1.0
    log.truncate(2)
    assert [r["step"] for r in log.read()] == [1, 2]
    log.truncate(0)
    assert log.read() == [] and log.path.read_text() == ""


def test_trainer_state_round_trip_and_old_format(tmp_path):
    state = _state(3, examples=96, data_position={"epoch": 0})
    assert TrainerState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    assert state.tokens == 300
    old = {"stage": "sft", "step": 2, "examples": 64, "elapsed": 3.0, "flops": state.flops, "world_size": 1}
    back = TrainerState.from_dict(old)
    assert back.step == 2 and back.elapsed == 3.0 and back.extra == {"examples": 64, "world_size": 1}
    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "trainer_state.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="trainer_state.json"):
        read_trainer_state(ck)
    (ck / "trainer_state.json").write_text('{"stage": "rl"}')
    with pytest.raises(CheckpointError, match="trainer_state.json.*step"):
        read_trainer_state(ck)
    (ck / "trainer_state.json").write_text('{"step": 1, "flops": {"n_params": 3}}')
    with pytest.raises(CheckpointError, match="flops"):
        read_trainer_state(ck)


def test_save_keep_last_latest_and_resolve(tmp_path):
    run = RunDir(tmp_path)
    head = torch.nn.Linear(2, 1)
    for step in (1, 2, 3):
        _save(run, step, keep_last=2, extra_modules={"value_head": head})
    (tmp_path / "checkpoints" / ".step-00000009.tmp").mkdir()  # a crashed save is never picked
    assert [s for s, _ in run.checkpoints()] == [2, 3]
    assert run.latest() == run.checkpoint_path(3) == resolve_checkpoint(tmp_path)
    state = read_trainer_state(run.latest())
    assert state == _state(3)
    head2 = torch.nn.Linear(2, 1)
    load_extra_module(run.latest(), "value_head", head2)
    assert torch.equal(head2.weight, head.weight)
    assert lineage_flops(tmp_path) == _state(3).flops  # a run folder: its newest checkpoint
    assert lineage_gflops(run.latest()) == pytest.approx(6 * 10 * 300 / 1e9)
    assert lineage_gflops(tmp_path / "checkpoints") == 0.0 and lineage_flops(tmp_path / "nope") is None
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        resolve_checkpoint(tmp_path / "checkpoints")


def test_export_model_drops_trainer_files(tmp_path):
    run = RunDir(tmp_path / "run")
    ck = _save(run, 1, optimizer=torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1))
    dest = export_model(ck, tmp_path / "base")
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "model.safetensors"]
    assert lineage_flops(dest) is None and lineage_gflops(dest) == 0.0
    assert export_model(ck, dest) == dest  # already exported: kept


class _Cfg(StrictModel):
    lr: float = 0.1


def test_guard_refuses_before_writing(tmp_path):
    run = RunDir(tmp_path)
    with pytest.raises(ConfigError, match="--resume: no complete checkpoint"):
        run.start(resume=True)
    assert run.start(resume=False) is None
    run.write_config(_Cfg())
    run.log.append({"step": 1, "time": 0.1, "flops": 1.0, "tokens": 1})
    _save(run, 1)
    before = {p: p.read_bytes() for p in (run.config_path, run.log.path)}
    with pytest.raises(ConfigError, match="already holds a run: pass --resume"):
        run.start(resume=False)
    assert {p: p.read_bytes() for p in before} == before
    assert run.start(resume=True) == run.checkpoint_path(1)
    assert run.config_path.read_text() == "lr: 0.1\n"
