"""Faults (issue 12): each gets one line naming the file and what is wrong, a non-zero exit,
and every earlier checkpoint, log line and result intact; a folder the trainer did not write
is never deleted."""

import errno
import json
import random
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from toy_env import TOY_ID, register_toy

from sftvsrl import errors, runs, writable
from sftvsrl.cli import main
from sftvsrl.errors import CheckpointError, ConfigError, RunWarning, UserError
from sftvsrl.models.loading import load_checkpoint, load_model, save_model
from sftvsrl.resume import check_resume_config
from sftvsrl.runlog import RunLog
from sftvsrl.runs import RunDir, TrainerState
from sftvsrl.writable import ensure_writable

register_toy()
torch.set_num_threads(1)

TIME_FIELDS = ("time", "tokens_per_s", "mfu", "rollout_tokens_per_s", "train_tokens_per_s")


def _untimed(log):
    return [{k: v for k, v in r.items() if k not in TIME_FIELDS and not k.startswith("time/")} for r in log]


def _write_model(folder):
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights")


def _save(run, step, **kw):
    return run.save_checkpoint(step, write_model=_write_model, state=TrainerState("sft", step), **kw)


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [x for x in err.splitlines() if "error:" in x]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch):
    monkeypatch.setattr(errors, "_warned", set())


# ---------------------------------------------------------------- folders the trainer did not write


def test_foreign_step_folder_is_warned_about_skipped_and_never_deleted(tmp_path):
    run = RunDir(tmp_path)
    for step in (1, 2):
        _save(run, step)
    foreign = run.checkpoint_path(3)
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")  # the newest, but without trainer_state.json
    with pytest.warns(RunWarning, match=r"step-00000003: no trainer_state\.json"):
        assert run.latest() == run.checkpoint_path(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run.checkpoints()  # warned once per folder, not at every listing
    _save(run, 4, keep_last=1)  # pruning deletes complete checkpoints only
    assert [s for s, _ in run.checkpoints()] == [4]
    assert (foreign / "notes.txt").read_text() == "mine"
    with pytest.warns(RunWarning, match="moved to step-00000003.kept-"):
        _save(run, 3, keep_last=1)  # saving over it moves it aside
    (aside,) = tmp_path.glob("checkpoints/step-00000003.kept-*")
    assert (aside / "notes.txt").read_text() == "mine"
    assert [s for s, _ in run.checkpoints()] == [3, 4]  # never the newer one for the older save
    _save(run, 3)  # a complete checkpoint of the same step is replaced
    assert sorted(p.name for p in run.checkpoint_path(3).iterdir()) == [
        "config.json",
        "model.safetensors",
        "rng_state_0.pt",
        "trainer_state.json",
    ]


# ---------------------------------------------------------------- full disk, read-only folders


def _disk_full(*_a, **_k):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_mid_save_removes_the_partial_folder(tmp_path, monkeypatch):
    run = RunDir(tmp_path)
    opt = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1)
    _save(run, 1, optimizer=opt)
    before = {p.name: p.read_bytes() for p in run.checkpoint_path(1).iterdir()}
    with pytest.raises(CheckpointError, match=r"step-00000002: writing the checkpoint failed \(No space"):
        run.save_checkpoint(2, write_model=_disk_full, state=TrainerState("sft", 2))
    # torch.save reports a full disk as RuntimeError: the probe write tells it from a bug
    monkeypatch.setattr(runs, "write_probe", lambda folder: OSError(errno.ENOSPC, "No space left on device"))
    monkeypatch.setattr(
        runs.torch, "save", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("write failed"))
    )
    with pytest.raises(CheckpointError, match="step-00000001 is intact"):
        _save(run, 2, optimizer=opt)
    monkeypatch.setattr(runs, "write_probe", lambda folder: None)
    with pytest.raises(RuntimeError, match="write failed"):  # the disk is fine: a bug keeps its traceback
        _save(run, 2, optimizer=opt)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-00000001"]
    assert {p.name: p.read_bytes() for p in run.checkpoint_path(1).iterdir()} == before


def test_ensure_writable_probes_with_a_real_write(tmp_path, monkeypatch):
    assert ensure_writable(tmp_path / "a" / "b").is_dir()
    assert list((tmp_path / "a" / "b").iterdir()) == []  # the probe file is gone
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="exists and is not a folder"):
        ensure_writable(tmp_path / "file")
    with pytest.raises(UserError, match="cannot create the output folder"):
        ensure_writable(tmp_path / "file" / "sub")
    monkeypatch.setattr(writable, "write_probe", lambda folder: OSError(errno.EROFS, "Read-only file system"))
    with pytest.raises(UserError, match=r"not writable \(Read-only file system\)"):
        ensure_writable(tmp_path)


def test_real_probe_fails_in_a_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        probe = writable.write_probe(ro)
        can_write = probe is None
        if not can_write:
            assert isinstance(probe, PermissionError)
    finally:
        ro.chmod(0o700)
    if can_write:
        pytest.skip("running as root: permission bits do not stop writes (the probe tells the truth)")


# ---------------------------------------------------------------- log.jsonl


def test_partial_last_log_line_is_dropped_with_a_warning(tmp_path):
    log = RunLog(tmp_path / "log.jsonl")
    for step in (1, 2):
        log.append({"step": step})
    with log.path.open("a") as fh:
        fh.write('{"step": 3, "lo')  # killed mid-write
    with pytest.warns(RunWarning, match=r"log\.jsonl:3: dropped a partial last line"):
        assert [r["step"] for r in log.read()] == [1, 2]
    with pytest.warns(RunWarning, match="dropped a partial last line"):
        log.append({"step": 3})  # never glued onto the partial line
    assert [r["step"] for r in log.read()] == [1, 2, 3]
    with log.path.open("a") as fh:
        fh.write('{"step": 4}')  # killed just before its newline: a whole record, kept
    log.append({"step": 5})
    assert [r["step"] for r in log.read()] == [1, 2, 3, 4, 5]
    log.truncate(3)
    log.truncate(3)
    assert log.path.read_text() == '{"step": 1}\n{"step": 2}\n{"step": 3}\n'
    log.path.write_text('{"step": 1}\n{"step": 2, "lo\n{"step": 3}\n')  # damage in the middle
    with pytest.raises(CheckpointError, match=r"log\.jsonl:2: not valid JSON"):
        log.read()
    log.path.write_text('{"step": 1}\n[1]\n')
    with pytest.raises(CheckpointError, match=r"log\.jsonl:2: not a log record"):
        log.truncate(1)


# ---------------------------------------------------------------- resume settings


def test_check_resume_config_names_every_refused_change(tmp_path):
    saved = {"lr": 1e-3, "max_steps": 10, "save_every": 5, "data": {"train": "d.jsonl", "eval": None}}
    same_file = {**saved, "data": {"train": str(Path("d.jsonl").resolve()), "eval": None}}
    assert check_resume_config(saved, same_file, allowed=["save_every"], paths=["data.train"]) == []
    changed = {
        **saved,
        "lr": 2e-3,
        "max_steps": 20,
        "save_every": 1,
        "data": {"train": "e.jsonl", "eval": "v"},
    }
    with pytest.raises(ConfigError) as err:
        check_resume_config(saved, changed, allowed=["save_every", "data.eval"], paths=["data.train"])
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("--resume: cannot change lr (0.001 -> 0.002), max_steps (10 -> 20), data.train")
    assert "save_every, data.eval" in msg
    allowed = {**saved, "save_every": 1, "new_key": 3}  # a key the checkpoint does not know
    assert check_resume_config(saved, allowed, allowed=["save_every"]) == ["save_every"]
    assert check_resume_config({}, changed, allowed=[]) == []  # an old checkpoint: not checked


# ---------------------------------------------------------------- through the command line: SFT


def _data(path: Path, n: int = 48) -> Path:
    rng = random.Random(0)
    rows = []
    for i in range(n):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        rows.append(
            {"prompt": f"{a}+{b}=", "completion": str(a + b), "env_id": "toy", "env_kwargs": {}, "seed": i}
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _sft(tmp_path, out, *extra):
    data = tmp_path / "train.jsonl"
    if not data.exists():
        _data(data)
    base = [f"data.train={data}", f"out_dir={out}", "batch_size=8", "lr=3e-3", "progress=false"]
    return ["sft", *base, "max_steps=4", "save_every=2", *extra]


def _log(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]


def _weights(ckpt: Path) -> dict:
    return load_file(ckpt / "model.safetensors")


def test_sft_kill_mid_log_write_then_resume_matches_bit_for_bit(tmp_path, capsys):
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert main(_sft(tmp_path, full)) == 0
    assert main(_sft(tmp_path, cut)) == 0
    # the process "died" while writing line 4, before checkpoint 4 was renamed into place
    lines = (cut / "log.jsonl").read_text().splitlines(keepends=True)
    (cut / "log.jsonl").write_text("".join(lines[:3]) + lines[3][:20])
    shutil.rmtree(cut / "checkpoints" / "step-00000004")
    with pytest.warns(RunWarning, match="dropped a partial last line"):
        assert main([*_sft(tmp_path, cut), "--resume"]) == 0
    assert _untimed(_log(cut)) == _untimed(_log(full))
    a, b = _weights(full / "checkpoints/step-00000004"), _weights(cut / "checkpoints/step-00000004")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_sft_resume_refuses_settings_it_cannot_honour(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_sft(tmp_path, out, "max_steps=2")) == 0
    log_before = (out / "log.jsonl").read_bytes()
    capsys.readouterr()
    assert main([*_sft(tmp_path, out, "max_steps=6", "lr=1e-3", "save_every=3"), "--resume"]) == 2
    line = _one_line_error(capsys, "cannot change", "lr (0.003 -> 0.001)", "max_steps (2 -> 6)")
    assert "save_every (" not in line and "allowed to change:" in line
    assert (out / "log.jsonl").read_bytes() == log_before
    # bookkeeping may change; with a constant LR the run may also be made longer
    assert main([*_sft(tmp_path, out, "max_steps=2", "save_every=1", "keep_last=3"), "--resume"]) == 0
    assert main(_sft(tmp_path, tmp_path / "c", "max_steps=2", "min_lr_ratio=1.0")) == 0
    assert main([*_sft(tmp_path, tmp_path / "c", "max_steps=3", "min_lr_ratio=1.0"), "--resume"]) == 0
    assert [r["step"] for r in _log(tmp_path / "c")] == [1, 2, 3]


def test_sft_disk_full_at_a_checkpoint_then_resume(tmp_path, capsys, monkeypatch):
    from sftvsrl.training import sft

    out = tmp_path / "run"
    real = sft.save_model

    def fills_at_step_4(pm, folder, state_dict=None):
        real(pm, folder, state_dict=state_dict)
        if json.loads((out / "log.jsonl").read_text().splitlines()[-1])["step"] == 4:
            raise OSError(errno.ENOSPC, "No space left on device", str(folder / "model.safetensors"))

    monkeypatch.setattr(sft, "save_model", fills_at_step_4)
    assert main(_sft(tmp_path, out)) == 2
    _one_line_error(capsys, "step-00000004", "No space left on device", "step-00000002 is intact")
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000002"]
    load_checkpoint(out)  # the previous checkpoint stays loadable
    monkeypatch.undo()
    assert main([*_sft(tmp_path, out), "--resume"]) == 0
    assert [r["step"] for r in _log(out)] == [1, 2, 3, 4]


def test_unwritable_output_fails_before_any_compute(tmp_path, capsys, monkeypatch):
    from sftvsrl.evaluation import runner
    from sftvsrl.training import sft

    monkeypatch.setattr(writable, "write_probe", lambda folder: OSError(errno.EROFS, "Read-only file system"))
    monkeypatch.setattr(sft, "load_model", lambda *a, **k: pytest.fail("loaded a model"))
    assert main(_sft(tmp_path, tmp_path / "ro")) == 2
    _one_line_error(capsys, str(tmp_path / "ro"), "not writable (Read-only file system)")
    monkeypatch.setattr(runner, "evaluate", lambda *a, **k: pytest.fail("ran episodes"))
    eval_args = ["eval", "--model", "tiny-lm", "--env", TOY_ID, "--episodes", "1"]
    assert main([*eval_args, "--out", str(tmp_path / "res")]) == 2
    _one_line_error(capsys, "res: the output folder is not writable")
    monkeypatch.undo()
    (tmp_path / "file").write_text("x")
    monkeypatch.setattr(runner, "evaluate", lambda *a, **k: pytest.fail("ran episodes"))
    assert main([*eval_args, "--out", str(tmp_path / "file")]) == 2
    _one_line_error(capsys, "file: the output path exists and is not a folder")
    assert main(["rl", "init=tiny-lm", f"env_id={TOY_ID}", f"out_dir={tmp_path / 'file'}"]) == 2
    _one_line_error(capsys, "not a folder")


def test_os_errors_are_one_line(tmp_path, capsys, monkeypatch):
    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "log.jsonl"))

    monkeypatch.setattr("sftvsrl.training.sft.train_sft", full)
    assert main(_sft(tmp_path, tmp_path / "r")) == 2
    _one_line_error(capsys, "No space left on device", "log.jsonl")


# ---------------------------------------------------------------- truncated weights


@pytest.fixture
def truncated_run(tmp_path):
    pm = load_model("tiny-lm")
    run = RunDir(tmp_path / "sft")
    ck = run.save_checkpoint(1, write_model=lambda d: save_model(pm, d), state=TrainerState("sft", 1))
    weights = ck / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return run.path


def test_eval_and_rl_name_a_truncated_weights_file(tmp_path, truncated_run, capsys):
    eval_args = ["eval", "--model", str(truncated_run), "--env", TOY_ID, "--episodes", "1"]
    assert main([*eval_args, "--out", str(tmp_path / "res")]) == 2
    _one_line_error(capsys, "step-00000001/model.safetensors: corrupt weights file")
    rl = [
        "rl",
        f"init={truncated_run}",
        f"env_id={TOY_ID}",
        f"out_dir={tmp_path / 'rl'}",
        "tensorboard=false",
    ]
    assert main(rl) == 2
    _one_line_error(capsys, "step-00000001/model.safetensors: corrupt weights file")
    assert not (tmp_path / "rl" / "checkpoints").exists()


# ---------------------------------------------------------------- through the command line: PPO

PPO = [
    "init=tiny-lm",
    f"env_id={TOY_ID}",
    "max_turns=1",
    "num_envs=2",
    "steps_per_env=1",
    "max_new_tokens=2",
    "epochs=1",
    "minibatch_size=2",
    "micro_batch_size=2",
    "tensorboard=false",
]


def test_rl_resume_refuses_a_new_schedule(tmp_path, capsys):
    out = tmp_path / "rl"
    rl = ["rl", *PPO, f"out_dir={out}"]
    assert main([*rl, "updates=1"]) == 0
    capsys.readouterr()
    assert main([*rl, "updates=20", "--resume"]) == 2
    _one_line_error(capsys, "--resume: cannot change updates (1 -> 20)", "allowed to change: out_dir")
    assert [r["step"] for r in _log(out)] == [1]
    assert main([*rl, "updates=1", "save_every=3", "--resume"]) == 0  # bookkeeping may change
    const = ["rl", *PPO, f"out_dir={tmp_path / 'c'}", "lr_schedule=constant"]
    assert main([*const, "updates=1"]) == 0
    assert main([*const, "updates=2", "--resume"]) == 0  # a constant LR: the run may grow
    assert [r["step"] for r in _log(tmp_path / "c")] == [1, 2]


def test_full_disk_while_logging_or_writing_results_names_the_file(tmp_path, capsys, monkeypatch):
    from sftvsrl.evaluation import runner

    log = RunLog(tmp_path / "log.jsonl")
    log.append({"step": 1})
    monkeypatch.setattr(RunLog, "_append", _disk_full)
    with pytest.raises(UserError, match=r"log\.jsonl: appending to the log failed \(No space left"):
        log.append({"step": 2})
    monkeypatch.setattr(runner, "write_results", _disk_full)
    args = ["eval", "--model", "tiny-lm", "--env", TOY_ID, "--episodes", "1", "--max-new-tokens", "2"]
    assert main([*args, "--out", str(tmp_path / "res")]) == 2
    _one_line_error(capsys, "res: writing the results failed (No space left on device)")


def test_sft_resume_with_a_corrupt_middle_log_line_is_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_sft(tmp_path, out, "max_steps=2", "save_every=1")) == 0
    lines = (out / "log.jsonl").read_text().splitlines(keepends=True)
    (out / "log.jsonl").write_text(lines[0][:10] + "\n" + lines[1])
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main([*_sft(tmp_path, out, "max_steps=2", "save_every=1"), "--resume"]) == 2
    _one_line_error(capsys, "log.jsonl:1: not valid JSON")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
