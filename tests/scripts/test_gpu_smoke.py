"""scripts/gpu_smoke.sh and its driver, checked on the CPU: the dry run (``--cpu --quick``)
writes a summary with every part, its status and its numbers; the wheel install keeps
preinstalled packages; a part that fails, hangs or writes no result fails the check; and
without a GPU the script stops with exit status 2."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu_smoke.sh"
DRIVER = ROOT / "scripts" / "gpu_smoke.py"
PARTS = ["env", "study", "sft_bench", "rollout_bench"]


def load_driver():
    spec = importlib.util.spec_from_file_location("gpu_smoke", DRIVER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHON": sys.executable, **extra}


def make_wheel(folder: Path, name: str, version: str, module: str) -> Path:
    """A minimal pure-Python wheel holding ``module/__init__.py``."""
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": "VALUE = 42\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{f},,\n" for f in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as z:
        for f, text in files.items():
            z.writestr(f, text)
    return path


def test_wheel_names_are_normalized():
    d = load_driver()
    assert d.wheel_name(Path("PyYAML-6.0.3-cp312-cp312-manylinux_2_17_x86_64.whl")) == "pyyaml"
    assert d.wheel_name(Path("typing_extensions-4.15.0-py3-none-any.whl")) == "typing-extensions"


def test_wheels_install_only_what_is_missing(tmp_path):
    wheels = tmp_path / "whl"
    wheels.mkdir()
    make_wheel(wheels, "sftvsrl_smoke_probe", "0.1", "sftvsrl_smoke_probe")
    make_wheel(wheels, "rich", "99.0", "rich_fake")  # rich is installed here: kept, not shadowed
    site = tmp_path / "site"
    cmd = [sys.executable, str(DRIVER), "wheels", "--dir", str(wheels), "--target", str(site)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert (site / "sftvsrl_smoke_probe" / "__init__.py").is_file()
    assert not (site / "rich_fake").exists()
    assert "preinstalled, kept: rich" in result.stdout


def test_wheels_from_an_empty_folder_fail(tmp_path):
    cmd = [sys.executable, str(DRIVER), "wheels", "--dir", str(tmp_path), "--target", str(tmp_path / "s")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "no wheels" in result.stdout


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has nvidia-smi")
def test_without_a_gpu_the_script_exits_2(tmp_path):
    result = subprocess.run(
        ["bash", str(SCRIPT), "--no-wheels", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env(),
    )
    assert result.returncode == 2
    assert "no NVIDIA GPU" in result.stderr and "--cpu" in result.stderr
    assert not (tmp_path / "summary.json").exists()


@pytest.mark.skipif(any((ROOT / ".whl").glob("*.whl")), reason=".whl/ holds wheels here")
def test_without_wheels_the_script_exits_2_and_names_them(tmp_path):
    result = subprocess.run(
        ["bash", str(SCRIPT), "--cpu", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env(),
    )
    assert result.returncode == 2
    assert "--no-wheels" in result.stderr and "gymnasium==" in result.stderr


def test_an_unknown_option_exits_2():
    result = subprocess.run(["bash", str(SCRIPT), "--bogus"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "unknown option" in result.stderr


def test_a_part_that_hangs_fails_or_writes_nothing_is_not_ok(tmp_path):
    d = load_driver()
    (tmp_path / "logs").mkdir()
    (tmp_path / "parts").mkdir()
    hang = d.run_part("hang", [sys.executable, "-c", "import time; time.sleep(60)"], 1, tmp_path, env())
    assert hang["status"] == "timeout" and hang["seconds"] < 30
    fail = d.run_part("fail", [sys.executable, "-c", "raise SystemExit(3)"], 30, tmp_path, env())
    assert fail["status"] == "failed" and fail["rc"] == 3
    silent = d.run_part("silent", [sys.executable, "-c", "print('hi')"], 30, tmp_path, env())
    assert silent["status"] == "failed" and "was not written" in silent["error"]
    assert (tmp_path / "logs" / "silent.log").read_text() == "hi\n"
    (tmp_path / "parts" / "good.json").write_text('{"x": 1}')
    good = d.run_part("good", [sys.executable, "-c", "pass"], 30, tmp_path, env())
    assert good["status"] == "ok" and good["result"] == {"x": 1}


@pytest.mark.slow
def test_cpu_dry_run_writes_every_part(tmp_path):
    """The whole check on the CPU with tiny budgets (about 2 minutes on 2 shared cores)."""
    result = subprocess.run(
        ["bash", str(SCRIPT), "--cpu", "--quick", "--no-wheels", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=500,
        env=env(),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "PASSED" in result.stdout and "tokens/s" in result.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["ok"] and summary["device"] == "cpu" and summary["quick"]
    assert summary["wheels"] == "skipped"
    assert list(summary["parts"]) == PARTS
    for name, part in summary["parts"].items():
        assert part["status"] == "ok", name
        assert 0 < part["seconds"] <= part["limit_s"], name
        assert Path(part["log"]).is_file(), name

    env_part = summary["parts"]["env"]["result"]
    assert env_part["missing"] == [] and env_part["bf16_matmul_ok"]
    assert env_part["sftvsrl"] == str(ROOT / "sftvsrl")

    study = summary["parts"]["study"]["result"]
    assert study["seconds"] > 0 and study["max_memory_allocated"] is None  # no CUDA in a dry run
    assert [s["stage"] for s in study["stages"]][0] == "pretrain" and len(study["stages"]) == 6
    assert (tmp_path / "study" / "report.md").is_file()
    generate = study["devices"]["generate"]
    assert {"sftvsrl.evaluation.runner", "sftvsrl.study.tools", "sftvsrl.training.ppo"} <= set(generate)
    for entry in generate.values():
        assert entry["device"] == ["cpu"] and entry["tokens"] > 0 and entry["tokens_per_s"] > 0
    assert study["devices"]["sft_trainer"] == {"cpu": 3}  # stage 0, init, stage-2 SFT
    runs = study["runs"]
    assert runs["stage0_pretrain"]["tokens_per_s"] > 0
    assert runs["GeneralPoints-L/stage2_rl"]["rollout_tokens_per_s"] > 0

    sft = summary["parts"]["sft_bench"]["result"]
    assert sft["device"] == "cpu"
    for mode in ("fp32", "bf16 autocast"):
        assert sft["results"][mode]["tokens_per_s"] > 0 and sft["results"][mode]["device"] == "cpu"
        assert sft["results"][mode]["max_memory_allocated"] is None

    rollout = summary["parts"]["rollout_bench"]["result"]
    assert rollout["device"] == "cpu"
    for key in ("baseline", "rollout", "ppo_update"):
        assert rollout[key]["tokens_per_s"] > 0

    assert summary["gpu_paths"]["on_gpu"] == []
    assert "PPO rollouts" in summary["gpu_paths"]["not_on_gpu"]
