import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sftvsrl.cli import main
from sftvsrl.config import ConfigError
from sftvsrl.errors import DataError
from sftvsrl.models.loading import load_checkpoint, load_model
from sftvsrl.training.loop import lr_multiplier
from sftvsrl.training.sft import SFTConfig, train_sft
from sftvsrl.training.sft_data import load_sft_jsonl

REPO = Path(__file__).resolve().parents[2]


def _cfg(train: Path, out: Path, **kw) -> SFTConfig:
    base = {
        "model": "tiny-lm",
        "data": {"train": str(train)},
        "out_dir": str(out),
        "batch_size": 8,
        "lr": 3e-3,
        "warmup_steps": 2,
        "progress": False,
    }
    return SFTConfig.model_validate({**base, **kw})


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_cli_end_to_end_loss_decreases(tmp_path, addition_jsonl):
    """One real tiny SFT run through the command line: logs, FLOPs, checkpoint, lower loss."""
    config = tmp_path / "sft.yaml"
    config.write_text(f"data:\n  train: {addition_jsonl}\nout_dir: {tmp_path / 'run'}\nprogress: false\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sftvsrl",
            "sft",
            "--config",
            str(config),
            "batch_size=16",
            "max_steps=16",
            "lr=3e-3",
            "warmup_steps=2",
            "save_every=8",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = _log(tmp_path / "run")
    assert [r["step"] for r in log] == list(range(1, 17))
    for r in log:
        assert {"step", "flops", "tokens", "time", "loss", "lr", "mfu", "tokens_per_s"} <= set(r)
    first, last = sum(r["loss"] for r in log[:3]) / 3, sum(r["loss"] for r in log[-3:]) / 3
    assert last < 0.6 * first
    ck = load_checkpoint(tmp_path / "run")
    assert ck.state.step == 16
    n = ck.pm.n_params
    assert ck.state.flops["total_flops"] == 6 * n * log[-1]["tokens"] == log[-1]["flops"]


@pytest.mark.parametrize("lora", [None, {"r": 4, "dropout": 0.2}], ids=["full", "lora-dropout"])
def test_resume_is_exact(tmp_path, addition_jsonl, lora):
    """A run interrupted after step 5 (checkpoint at 3) and resumed equals an uninterrupted run.
    With LoRA dropout every step draws random numbers, so RNG restoring is checked too."""
    full = _cfg(addition_jsonl, tmp_path / "full", max_steps=7, save_every=3, lora=lora)
    train_sft(full)

    cut = _cfg(addition_jsonl, tmp_path / "cut", max_steps=7, save_every=3, lora=lora)

    def stop_at_5(record):
        if record["step"] == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_sft(cut, on_log=stop_at_5)
    with pytest.raises(ConfigError, match="--resume"):
        train_sft(cut)  # a second fresh start into the same folder is refused
    train_sft(cut, resume=True)

    a, b = _log(tmp_path / "full"), _log(tmp_path / "cut")
    assert [r["step"] for r in b] == list(range(1, 8))
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    assert [r["flops"] for r in a] == [r["flops"] for r in b]
    timed = ("time", "tokens_per_s", "mfu")  # wall-clock figures; everything else bit for bit
    assert [{k: v for k, v in r.items() if k not in timed} for r in a] == [
        {k: v for k, v in r.items() if k not in timed} for r in b
    ]
    pa = load_checkpoint(tmp_path / "full").pm.model.state_dict()
    pb = load_checkpoint(tmp_path / "cut").pm.model.state_dict()
    assert all(torch.equal(pa[k], pb[k]) for k in pa)


def test_init_checkpoint_carries_flops(tmp_path, addition_jsonl):
    first = train_sft(_cfg(addition_jsonl, tmp_path / "a", max_steps=2))
    prior = load_checkpoint(first).state.flops
    second = train_sft(_cfg(addition_jsonl, tmp_path / "b", max_steps=2, model=str(first)))
    flops = load_checkpoint(second).state.flops
    assert flops["d_init"] == prior["total_tokens"] and flops["init_flops"] == prior["total_flops"]
    assert flops["total_flops"] > prior["total_flops"]


def test_checkpoint_hook_can_stop_training(tmp_path, addition_jsonl):
    seen = []

    def hook(path: Path) -> bool:
        seen.append(path.name)
        return len(seen) == 2  # early stopping decided at the second checkpoint

    final = train_sft(_cfg(addition_jsonl, tmp_path / "run", max_steps=8, save_every=2), on_checkpoint=hook)
    assert seen == ["step-00000002", "step-00000004"] and final.name == "step-00000004"
    assert [r["step"] for r in _log(tmp_path / "run")][-1] == 4


def test_malformed_line_names_file_and_line(tmp_path, make_jsonl):
    data = make_jsonl(tmp_path / "d.jsonl", n=5)
    lines = data.read_text().splitlines()
    lines[3] = '{"prompt": "1+1=", "completion": 2'
    data.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"d\.jsonl:4: not valid JSON"):
        load_sft_jsonl(data)
    lines[3] = '{"prompt": "1+1="}'
    data.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"d\.jsonl:4: 'completion' must be a string"):
        load_sft_jsonl(data)
    with pytest.raises(DataError, match="not found"):
        load_sft_jsonl(tmp_path / "missing.jsonl")


def test_cli_reports_bad_data_without_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n[1, 2]\n')
    assert main(["sft", f"data.train={bad}", f"out_dir={tmp_path / 'r'}"]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl:2: a row must be a JSON object" in err and "Traceback" not in err
    assert main(["sft", f"data.train={bad}", "no_such_key=1"]) == 2
    assert "no_such_key: unknown key" in capsys.readouterr().err


def test_vlm_sft_runs(tmp_path, make_jsonl):
    data = make_jsonl(tmp_path / "vl" / "train.jsonl", n=16, images=True)
    path = train_sft(_cfg(data, tmp_path / "run", model="tiny-vlm", max_steps=3, batch_size=4))
    ck = load_checkpoint(path)
    assert ck.pm.is_vision and ck.state.step == 3
    with pytest.raises(DataError, match="needs an image"):
        train_sft(_cfg(make_jsonl(tmp_path / "l.jsonl", n=16), tmp_path / "r2", model="tiny-vlm"))


def test_lr_schedule_warmup_then_cosine():
    assert lr_multiplier(0, 10, 2, 0.1) == 0.5
    assert lr_multiplier(1, 10, 2, 0.1) == 1.0
    assert lr_multiplier(2, 10, 2, 0.1) == pytest.approx(1.0)
    assert lr_multiplier(10, 10, 2, 0.1) == pytest.approx(0.1)
    assert lr_multiplier(6, 10, 2, 0.1) == pytest.approx(0.55)


def test_two_gloo_processes_match_one_process(tmp_path, addition_jsonl, free_port):
    """`accelerate launch` with 2 CPU processes (gloo) trains the same model as one process
    that accumulates the same 2 micro-batches per step."""
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(REPO / "configs" / "accelerate" / "cpu_2proc.yaml"),
        "--main_process_port",
        str(free_port),
        "-m",
        "sftvsrl",
        "sft",
        f"data.train={addition_jsonl}",
        f"out_dir={run}",
        "batch_size=8",
        "max_steps=4",
        "save_every=2",
        "progress=false",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ck = load_checkpoint(run)
    assert ck.state.extra["world_size"] == 2
    assert ck.state.extra["data_position"]["global_batch"] == 16
    assert {"rng_state_0.pt", "rng_state_1.pt"} <= set(ck.files)
    log = _log(run)
    assert [r["step"] for r in log] == [1, 2, 3, 4] and log[-1]["examples"] == 64

    single = train_sft(
        _cfg(addition_jsonl, tmp_path / "one", max_steps=4, grad_accum=2, lr=1e-3, warmup_steps=0)
    )
    one_log = _log(tmp_path / "one")
    assert [r["loss"] for r in log] == pytest.approx([r["loss"] for r in one_log], rel=1e-4)
    pa, pb = ck.pm.model.state_dict(), load_checkpoint(single).pm.model.state_dict()
    assert all(torch.allclose(pa[k], pb[k], atol=1e-5) for k in pa)


def test_lora_sft_updates_only_adapters_and_eval_loss_is_logged(tmp_path, addition_jsonl, make_jsonl):
    held_out = make_jsonl(tmp_path / "eval.jsonl", n=10, seed=1)
    cfg = _cfg(
        addition_jsonl,
        tmp_path / "run",
        max_steps=2,
        lora={"r": 4},
        data={"train": str(addition_jsonl), "eval": str(held_out)},
        eval_every=1,
    )
    path = train_sft(cfg)
    assert (path / "adapter" / "adapter_config.json").is_file()
    base = load_checkpoint(path).pm.model
    fresh = load_model("tiny-lm")
    trained = {
        k.replace("base_model.model.", "").replace(".base_layer", ""): v for k, v in base.state_dict().items()
    }
    for k, v in fresh.model.state_dict().items():
        assert torch.equal(trained[k], v), k  # frozen base weights are untouched
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in base.state_dict().items())
    log = _log(tmp_path / "run")
    assert all(r["eval_loss"] > 0 for r in log)


def test_group_by_length_keeps_each_epochs_rows_and_cuts_padding(tmp_path):
    from sftvsrl.training.sft import SFTTrainer

    rows = tmp_path / "mixed.jsonl"
    with rows.open("w") as fh:  # one row in five is four times longer (like revision rows)
        for i in range(512):
            prompt = ("history " * 30 if i % 5 == 0 else "") + f"{i % 9}+1="
            fh.write(json.dumps({"prompt": prompt, "completion": str(i % 9 + 1)}) + "\n")

    def padding_and_rows(group: bool) -> tuple[float, list[int]]:
        t = SFTTrainer(_cfg(rows, tmp_path / f"run{group}", max_steps=8, group_by_length=group))
        lengths = [
            len(p) + len(c) for p, c in zip(t.train_data.prompts, t.train_data.completions, strict=True)
        ]
        pad, seen = 0, []
        for step in range(t.steps_per_epoch):
            idx = t._indices(step, 0)
            pad += sum(max(lengths[i] for i in idx) - lengths[i] for i in idx)
            seen += idx
        again = SFTTrainer(_cfg(rows, tmp_path / f"again{group}", max_steps=8, group_by_length=group))
        assert [again._indices(s, 0) for s in range(3)] == [t._indices(s, 0) for s in range(3)]  # resumable
        return pad / sum(lengths[i] for i in seen), sorted(seen)

    plain_pad, plain_rows = padding_and_rows(False)
    grouped_pad, grouped_rows = padding_and_rows(True)
    assert grouped_rows == plain_rows  # the same rows, each once per epoch
    assert plain_pad > 1.0 and grouped_pad < 0.1 * plain_pad
