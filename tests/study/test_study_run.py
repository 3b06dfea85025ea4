"""End to end: the smoke preset, interrupted after stage 1 and resumed (the CI check)."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sftvsrl.config import ConfigError
from sftvsrl.study.config import load_study_config
from sftvsrl.study.run import run_study

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "configs" / "study" / "smoke.yaml"


def study_cli(out, *overrides) -> list[str]:
    """Arguments after the interpreter (or launcher) that run the smoke study through the CLI."""
    return ["-m", "sftvsrl", "study", "--config", str(SMOKE), "--out", str(out), *overrides]


class Killed(Exception):
    pass


def test_smoke_study_end_to_end_with_interruption(tmp_path):
    torch.set_num_threads(1)
    cfg = load_study_config(SMOKE, ["threads=1"])
    out = tmp_path / "smoke"
    seen = []

    def kill_after_init(name):
        seen.append(name)
        if name == "GeneralPoints-L.init":
            raise Killed

    with pytest.raises(Killed):
        run_study(cfg, out, after_stage=kill_after_init)
    assert seen == ["pretrain", "GeneralPoints-L.data", "GeneralPoints-L.init"]
    assert not (out / "curves.csv").exists()
    init_result = (out / "stages" / "GeneralPoints-L.init.json").read_text()

    rerun = []
    report = run_study(cfg, out, after_stage=rerun.append)
    assert (out / "stages" / "GeneralPoints-L.init.json").read_text() == init_result  # skipped, not redone
    gp = [name for name in rerun if name.startswith("GeneralPoints-L.")]
    assert gp[-3:] == ["GeneralPoints-L.rl", "GeneralPoints-L.sft", "GeneralPoints-L.eval"]
    assert rerun.index("GeneralPoints-L.eval") < rerun.index("VIRL-L.data") < rerun.index("VIRL-L.eval")

    with (out / "curves.csv").open() as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    for column in (
        "task",
        "variant",
        "method",
        "step",
        "gflops",
        "split",
        "success_rate",
        "ci_low",
        "ci_high",
    ):
        assert column in reader.fieldnames
    assert {r["method"] for r in rows} == {"SFT", "RL"}
    assert {r["split"] for r in rows} == {"id_seen", "id", "ood"}
    for method in ("SFT", "RL"):
        gflops = sorted(float(r["gflops"]) for r in rows if r["method"] == method)
        assert gflops[-1] > gflops[0] > 0  # curves start at the init's compute and go on
        assert all(
            0 <= float(r["ci_low"]) <= float(r["success_rate"]) <= float(r["ci_high"]) <= 1 for r in rows
        )
    png = out / "success_vs_gflops.png"
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
    text = report.read_text()
    assert (
        "| GeneralPoints-L | ood |" in text and "## What this run found" in text and "preset: smoke" in text
    )
    assert "| GeneralPoints-L | id_seen |" in text
    assert "| VIRL-L | ood |" in text and {r["task"] for r in rows} == {"GeneralPoints", "VIRL"}
    assert "GeneralPoints-L: PPO training" in text and (out / "rl_training_GeneralPoints-L.png").is_file()
    probe = json.loads((out / "stages" / "pretrain.json").read_text())["probe_accuracy"]
    assert set(probe) <= {"arith", "cards", "dirs"} and all(0 <= v <= 1 for v in probe.values())
    assert "Greedy exact-match accuracy of the base model" in text


def test_cli_rejects_a_bad_override(tmp_path):
    proc = subprocess.run(
        [sys.executable, *study_cli(tmp_path, "init.steps=-3")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "init.steps" in proc.stderr and "Traceback" not in proc.stderr


def test_trainer_section_typo_names_the_section():
    with pytest.raises(ConfigError) as err:
        load_study_config(SMOKE, ["stage2.rl.mixed_precision=bf16"])
    assert "stage2.rl" in str(err.value) and "mixed_precision: unknown key" in str(err.value)
    assert "preset" not in str(err.value)  # names the key, does not dump the whole config


@pytest.mark.slow
def test_ablations_run_and_are_reported(tmp_path):
    """Turns sweep, RL from the base model and RL from an over-fitted start, on a toy budget."""
    torch.set_num_threads(1)
    cfg = load_study_config(
        SMOKE,
        [
            "threads=1",
            "corpus.enabled=false",
            "init.steps=10",
            "init.eval_every=10",
            "stage2.rl_updates=1",
            "eval.episodes=4",
            "eval.num_envs=4",
            "ablations.turns=[1,2]",
            "ablations.turns_splits=[id_seen,ood]",
            "ablations.rl_from_base=true",
            "ablations.rl_from_overfit=true",
            "ablations.overfit_steps=3",
        ],
    )
    out = tmp_path / "abl"
    report = run_study(cfg, out).read_text()
    assert not (out / "stages" / "pretrain.json").exists()  # corpus disabled: base is a fresh tiny-lm
    for split in ("id_seen", "ood"):
        assert (out / f"success_vs_turns_GeneralPoints-L_{split}.png").stat().st_size > 1000
        turns_dir = out / "GeneralPoints-L" / "evals" / "turns" / "init"
        assert (turns_dir / f"{split}-2.json").is_file()
        assert not (
            turns_dir / f"{split}-1.json"
        ).exists()  # eval.max_turns=1: the curve's evaluation is reused
    assert "verification turns at evaluation (rule-OOD)" in report
    assert "verification turns at evaluation (ID, seen items)" in report
    assert "RL from the base model (no SFT)" in report
    assert "RL from an over-fitted SFT checkpoint" in report
    overfit = (out / "GeneralPoints-L" / "ablation_rl_from_overfit" / "sft" / "checkpoints").iterdir()
    assert [p.name for p in overfit] == ["step-00000003"]  # 3 more steps from the init checkpoint


@pytest.mark.slow
def test_two_processes_train_together_and_evaluate_once(tmp_path, torchrun):
    """torchrun with 2 gloo processes: trainers run on both, data/evals/report once, and the
    main process's early-stopping decision ends stage 1 on both (a mismatch would hang)."""
    import os

    out = tmp_path / "two"
    cmd = [
        *torchrun(2),
        *study_cli(out),
        "threads=1",
        "corpus.enabled=false",
        "init.steps=40",
        "init.eval_every=10",
        "init.select=val_success",
        "init.patience=1",
        "init.val_episodes=4",
        "stage2.rl_updates=2",
        "eval.episodes=4",
        "eval.num_envs=4",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-4000:]
    init = json.loads((out / "stages" / "GeneralPoints-L.init.json").read_text())
    # An untrained model scores 0 at every validation: no gain at the 2nd one, so both
    # processes stop at step 20 instead of training to 40.
    assert init["stopped_early"] and [h["step"] for h in init["history"]] == [10, 20]
    stage1 = out / "GeneralPoints-L" / "stage1_init" / "checkpoints"
    assert sorted(p.name for p in stage1.iterdir()) == ["step-00000010", "step-00000020"]
    state = json.loads((stage1 / "step-00000020" / "trainer_state.json").read_text())
    assert state["extra"]["world_size"] == 2
    rl_log = [
        json.loads(x) for x in (out / "GeneralPoints-L" / "stage2_rl" / "log.jsonl").read_text().splitlines()
    ]
    assert [r["processes"] for r in rl_log] == [2, 2]
    with (out / "curves.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {r["method"] for r in rows} == {"SFT", "RL"} and len(rows) == len({tuple(r.items()) for r in rows})
    assert (out / "report.md").read_text().count("# SFT vs RL: study report") == 1
    assert not list(out.rglob(".*tmp*"))  # no half-written files left by racing writers


def test_turns_results_are_read_apart_from_the_runners_own_keys():
    """A turns stage re-run after an interruption carries `attempts_seconds_before` next to
    `stage_seconds` in its file; neither may be taken for a split."""
    from sftvsrl.study.report import study_sections, turns_of
    from sftvsrl.study.results import TurnsResult

    by_model = {"init": {"1": [0.1, 0.0, 0.3], "2": [0.2, 0.1, 0.4]}}
    record = {"by_split": {"ood": by_model}, "stage_seconds": 12.0, "attempts_seconds_before": 5.0}
    results = {"GeneralPoints-L.turns": TurnsResult.from_dict(record)}
    assert turns_of(results, "GeneralPoints-L") == {"ood": by_model}
    titles = [title for title, _ in study_sections(results, ["GeneralPoints-L"])]
    assert titles == ["GeneralPoints-L: verification turns at evaluation (rule-OOD)"]
    assert turns_of(results, "VIRL-L") == {}
