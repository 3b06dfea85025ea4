"""The GPU smoke check's driver (run it through ``scripts/gpu_smoke.sh``; docs/scaling.md).

    python scripts/gpu_smoke.py [--cpu] [--quick] [--out DIR] [--budget SECONDS]

runs four parts, each in its own process with its own time limit, and writes
``summary.json`` to ``--out`` (default ``$OUT``, else ``runs/gpu_smoke``):

- ``env``: Python, torch, CUDA and package versions, where each package was imported from,
  the GPU, and one bf16 matmul on the device;
- ``study``: ``sftvsrl study --config configs/study/smoke.yaml`` in-process, timed per stage,
  with the peak CUDA memory and the device every part of the study ran on (recorded by
  wrapping ``HFRolloutEngine.generate`` and ``SFTTrainer.train``; nothing else changes);
- ``sft_bench``: ``benchmarks/bench_sft.py`` (tokens/s, MFU, peak memory; fp32 and bf16);
- ``rollout_bench``: ``benchmarks/bench_rollout_ppo.py`` (rollout and PPO-update tokens/s).

It exits 0 only if every part passed. ``--cpu`` runs the same parts on the CPU (every
CUDA device hidden), ``--quick`` on tiny budgets: what the tests run.

Internal subcommands (one per part process): ``env-part``, ``study-part``; ``wheels`` installs
``.whl/*.whl`` that the interpreter does not already have into a target folder.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# Imported by the smoke study (needed) and by other parts of the project (reported only).
NEEDED = [
    "torch",
    "transformers",
    "accelerate",
    "peft",
    "tokenizers",
    "numpy",
    "gymnasium",
    "pydantic",
    "yaml",
    "rich",
    "safetensors",
    "PIL",
    "matplotlib",
    "datasets",
]
OTHER = ["osmium", "pyrosm"]  # V-IRL's maps: not used by the smoke study
DISTRIBUTIONS = {"yaml": "PyYAML", "PIL": "pillow"}
# What each caller of HFRolloutEngine.generate is, in the study.
CALLERS = {
    "sftvsrl.evaluation.runner": "evaluation and validation episodes",
    "sftvsrl.study.tools": "stage-0 probe",
    "sftvsrl.training.ppo": "PPO rollouts",
    "sftvsrl.training.grpo": "GRPO rollouts",
}

# Part time limits in seconds: (full, quick). Full: 490 s together; the wheel install before
# them has 90 s, and scripts/gpu_smoke.sh gives the parts what is left of 570 s (--budget).
LIMITS = {"env": (60, 60), "study": (255, 150), "sft_bench": (100, 90), "rollout_bench": (75, 60)}

# The study with every budget shrunk (--quick): the same stages, seconds on one CPU core.
QUICK_STUDY = [
    "corpus.rows=200",
    "corpus.steps=2",
    "corpus.probe_rows=4",
    "corpus.sft.batch_size=8",
    "init.rows=64",
    "init.steps=4",
    "init.eval_every=2",
    "init.val_episodes=2",
    "init.val_rows=8",
    "init.sft.batch_size=8",
    "stage2.sft_rows=64",
    "stage2.sft.batch_size=8",
    "stage2.rl_updates=1",
    "stage2.rl.num_envs=2",
    "stage2.rl.max_new_tokens=16",
    "eval.episodes=2",
    "eval.num_envs=2",
    "eval.max_new_tokens=16",
]


def mib(n: float | None) -> str:
    return "-" if n is None else f"{n / 2**20:.1f} MiB"


# ------------------------------------------------------------------------------ the wheels


def wheel_name(path: Path) -> str:
    """The distribution name of a wheel file, normalized (PEP 503)."""
    return re.sub(r"[-_.]+", "-", path.name.split("-", 1)[0]).lower()


def install_wheels(wheel_dir: Path, target: Path) -> int:
    """Install the wheels of ``wheel_dir`` whose distribution this interpreter lacks into
    ``target`` (offline, no dependency resolution); the preinstalled ones are kept."""
    from importlib import metadata

    wheels = sorted(wheel_dir.glob("*.whl"))
    if not wheels:
        print(f"no wheels in {wheel_dir}: fill it as docs/scaling.md says, or pass --no-wheels")
        return 2
    have = {re.sub(r"[-_.]+", "-", d.metadata["Name"] or "").lower() for d in metadata.distributions()}
    todo = [w for w in wheels if wheel_name(w) not in have]
    kept = sorted({wheel_name(w) for w in wheels} - {wheel_name(w) for w in todo})
    print(f"wheels: {len(wheels)} in {wheel_dir}; preinstalled, kept: {', '.join(kept) or 'none'}")
    if not todo:
        return 0
    print(f"installing into {target}: {', '.join(w.name for w in todo)}")
    target.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--target", str(target)]
    try:
        has_pip = (
            subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode == 0
        )
    except OSError:
        has_pip = False
    if has_pip:
        return subprocess.run([*pip, "--disable-pip-version-check", "-q", *map(str, todo)]).returncode
    # No pip on the machine: a wheel is a zip archive laid out for site-packages.
    import zipfile

    print("no pip here: unpacking the wheels instead")
    for w in todo:
        with zipfile.ZipFile(w) as z:
            z.extractall(target)
    return 0


# ------------------------------------------------------------------------------ the parts


def env_part(device: str, out: Path) -> dict[str, Any]:
    import importlib
    import platform
    from importlib import metadata

    info: dict[str, Any] = {"python": platform.python_version(), "executable": sys.executable}
    packages, missing = {}, []
    for name in NEEDED + OTHER:
        try:
            mod = importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - any import failure is reported, not raised
            packages[name] = {"error": f"{type(exc).__name__}: {exc}"}
            if name in NEEDED:
                missing.append(name)
            continue
        where = str(Path(getattr(mod, "__file__", "") or "?").parent.parent)
        try:
            version = metadata.version(DISTRIBUTIONS.get(name, name))
        except metadata.PackageNotFoundError:
            version = str(getattr(mod, "__version__", "?"))
        packages[name] = {"version": version, "from": where}
    info["packages"] = packages
    import torch

    info["torch_cuda"] = torch.version.cuda
    info["cuda_available"] = torch.cuda.is_available()
    if device == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("torch.cuda.is_available() is False")
        p = torch.cuda.get_device_properties(0)
        info["gpu"] = {
            "name": p.name,
            "capability": f"{p.major}.{p.minor}",
            "memory": p.total_memory,
            "count": torch.cuda.device_count(),
            "bf16": torch.cuda.is_bf16_supported(),
        }
    a = torch.randn(512, 512, device=device, dtype=torch.bfloat16)
    info["bf16_matmul_ok"] = bool(torch.isfinite((a @ a).float()).all())
    import sftvsrl

    info["sftvsrl"] = str(Path(sftvsrl.__file__).parent)
    info["missing"] = missing
    print(f"python {info['python']} ({sys.executable})")
    print(
        f"torch {torch.__version__} (CUDA {torch.version.cuda}), cuda available: {torch.cuda.is_available()}"
    )
    if "gpu" in info:
        g = info["gpu"]
        print(
            f"GPU: {g['name']} (sm {g['capability']}, {g['memory'] / 2**30:.0f} GiB, {g['count']} device(s))"
        )
    for name, p in packages.items():
        print(f"  {name:<13}{p.get('version', p.get('error', '')):<22}{p.get('from', '')}")
    if missing:
        raise SystemExit(f"packages the smoke study needs are missing: {', '.join(missing)}")
    return info


class DeviceLog:
    """Which device each part of the study ran on: generation calls by calling module, SFT runs."""

    def __init__(self) -> None:
        self.generate: dict[str, dict[str, Any]] = {}
        self.sft: dict[str, int] = {}

    def install(self) -> None:
        import inspect

        from sftvsrl.rollout import engine as engine_mod
        from sftvsrl.training import sft as sft_mod

        log = self
        generate, train = engine_mod.HFRolloutEngine.generate, sft_mod.SFTTrainer.train

        def caller() -> str:
            for frame in inspect.stack()[2:]:
                mod = frame.frame.f_globals.get("__name__", "")
                if mod.startswith("sftvsrl.") and not mod.startswith("sftvsrl.rollout"):
                    return mod
            return "?"

        def timed_generate(self, observations, **kwargs):
            t = time.perf_counter()
            gens = generate(self, observations, **kwargs)
            entry = log.generate.setdefault(
                caller(), {"device": set(), "calls": 0, "answers": 0, "tokens": 0, "seconds": 0.0}
            )
            entry["device"].add(str(next(self.pm.model.parameters()).device))
            entry["calls"] += 1
            entry["answers"] += len(gens)
            entry["tokens"] += sum(len(g.answer_ids) for g in gens)
            entry["seconds"] += time.perf_counter() - t
            return gens

        def logged_train(self, *args, **kwargs):
            key = str(self.acc.device)
            log.sft[key] = log.sft.get(key, 0) + 1
            return train(self, *args, **kwargs)

        engine_mod.HFRolloutEngine.generate = timed_generate
        sft_mod.SFTTrainer.train = logged_train

    def as_dict(self) -> dict[str, Any]:
        gen = {}
        for mod, e in sorted(self.generate.items()):
            rate = e["tokens"] / e["seconds"] if e["seconds"] else None
            gen[mod] = {**e, "device": sorted(e["device"]), "tokens_per_s": rate}
        return {"generate": gen, "sft_trainer": self.sft}


def run_logs(study_out: Path) -> dict[str, Any]:
    """Tokens/s of every training run of the study, from its ``log.jsonl``."""
    out = {}
    for log in sorted(study_out.rglob("log.jsonl")):
        records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not records:
            continue
        last = records[-1]
        name = str(log.parent.relative_to(study_out))
        entry: dict[str, Any] = {"steps": last.get("step"), "tokens": last.get("tokens")}
        if "rollout_tokens_per_s" in last:  # RL: per update
            for key in ("rollout_tokens_per_s", "train_tokens_per_s"):
                vals = [r[key] for r in records if r.get(key) is not None]
                entry[key] = sum(vals) / len(vals) if vals else None
        elif last.get("time"):  # SFT: cumulative tokens and seconds
            entry["tokens_per_s"] = last["tokens"] / last["time"]
        out[name] = entry
    return out


def study_part(device: str, quick: bool, out: Path, threads: int | None) -> dict[str, Any]:
    import shutil

    import torch

    from sftvsrl.study.config import load_study_config
    from sftvsrl.study.run import run_study

    study_out = out / "study"
    shutil.rmtree(study_out, ignore_errors=True)  # a fresh study: a resumed one would measure nothing
    overrides = list(QUICK_STUDY if quick else [])
    if threads:
        overrides.append(f"threads={threads}")
    config = ROOT / "configs" / "study" / "smoke.yaml"
    cfg = load_study_config(str(config), overrides)
    devlog = DeviceLog()
    devlog.install()
    cuda = device == "cuda"
    stages: list[dict[str, Any]] = []
    clock = [time.perf_counter()]

    def after_stage(name: str) -> None:
        now = time.perf_counter()
        peak = torch.cuda.max_memory_allocated() if cuda else None
        stages.append({"stage": name, "seconds": now - clock[0], "max_memory_allocated": peak})
        print(f"[gpu_smoke] stage {name}: {now - clock[0]:.1f} s, peak CUDA memory {mib(peak)}", flush=True)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        clock[0] = now

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    command = f"sftvsrl study --config {config} --out {study_out} " + " ".join(overrides)
    start = time.perf_counter()
    report = run_study(cfg, study_out, command=command, after_stage=after_stage)
    seconds = time.perf_counter() - start
    peaks = [s["max_memory_allocated"] for s in stages if s["max_memory_allocated"] is not None]
    devices = devlog.as_dict()
    print(f"study finished in {seconds:.1f} s: {report}")
    for mod, e in devices["generate"].items():
        rate = "-" if e["tokens_per_s"] is None else f"{e['tokens_per_s']:.0f}"
        what = CALLERS.get(mod, mod)
        print(
            f"  {what:<36} on {','.join(e['device']):<8} {e['tokens']:>7} tokens generated, {rate} tokens/s"
        )
    for dev, n in devices["sft_trainer"].items():
        print(f"  SFT trainer runs on {dev}: {n}")
    return {
        "overrides": overrides,
        "seconds": seconds,
        "report": str(report),
        "stages": stages,
        "max_memory_allocated": max(peaks) if peaks else None,
        "devices": devices,
        "runs": run_logs(study_out),
        "imported_other": [m for m in OTHER if m in sys.modules],
    }


# ------------------------------------------------------------------------------ the driver


def part_commands(device: str, quick: bool, out: Path, threads: int | None) -> dict[str, list[str]]:
    me = [sys.executable, str(Path(__file__).resolve())]
    parts = out / "parts"
    common = ["--device", device]
    study = [*me, "study-part", *common, "--out", str(out), "--json", str(parts / "study.json")]
    if quick:
        study.append("--quick")
    if threads:
        study += ["--threads", str(threads)]
    sft = ["--steps", "3", "--warmup", "1", "--batch-size", "4"] if quick else ["--steps", "30"]
    rollout = ["--prompts", "4", "--batch", "4", "--new-tokens", "8", "--micro-batch", "4"] if quick else []
    if threads:
        rollout += ["--threads", str(threads)]
    bench = ROOT / "benchmarks"
    return {
        "env": [*me, "env-part", *common, "--json", str(parts / "env.json")],
        "study": study,
        "sft_bench": [
            sys.executable,
            str(bench / "bench_sft.py"),
            *common,
            *sft,
            "--json",
            str(parts / "sft_bench.json"),
        ],
        "rollout_bench": [
            sys.executable,
            str(bench / "bench_rollout_ppo.py"),
            *common,
            *rollout,
            "--json",
            str(parts / "rollout_bench.json"),
        ],
    }


def run_part(name: str, cmd: list[str], limit: float, out: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run one part in its own process group, killed at ``limit`` seconds; its output goes to
    the terminal and to ``logs/NAME.log``."""
    log = out / "logs" / f"{name}.log"
    print(f"\n=== {name} (limit {limit:.0f} s): {' '.join(cmd)}", flush=True)
    start = time.perf_counter()
    status, rc = "ok", None
    with log.open("w", encoding="utf-8") as fh:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )

        def copy() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                fh.write(line)
                sys.stdout.write(line)
                sys.stdout.flush()

        reader = threading.Thread(target=copy, daemon=True)
        reader.start()
        try:
            proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            status = "timeout"
        reader.join(timeout=10)
        rc = proc.returncode
    if status == "ok" and rc != 0:
        status = "failed"
    result: dict[str, Any] = {"status": status, "rc": rc, "seconds": time.perf_counter() - start}
    result |= {"limit_s": limit, "log": str(log)}
    data = out / "parts" / f"{name}.json"
    if data.is_file():
        result["result"] = json.loads(data.read_text(encoding="utf-8"))
    elif status == "ok":
        result["status"] = "failed"
        result["error"] = f"{data} was not written"
    if result["status"] != "ok":
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:]
        print(f"--- {name}: {result['status']} (rc {rc}); last lines of {log}:", *tail, sep="\n")
    return result


def headline(name: str, r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(what, tokens/s, peak memory) rows of one part's result."""
    res = r.get("result") or {}
    if name == "study":
        rows = [(f"study ({res.get('seconds', 0):.0f} s)", "", mib(res.get("max_memory_allocated")))]
        for run, e in (res.get("runs") or {}).items():
            if "tokens_per_s" in e:
                rows.append((f"study {run} (SFT)", f"{e['tokens_per_s']:,.0f}", ""))
            else:
                rate = e.get("rollout_tokens_per_s") or 0, e.get("train_tokens_per_s") or 0
                rows.append((f"study {run} (RL rollout / update)", f"{rate[0]:,.0f} / {rate[1]:,.0f}", ""))
        return rows
    if name == "sft_bench":
        return [
            (f"SFT bench {mode}", f"{v['tokens_per_s']:,.0f}", mib(v.get("max_memory_allocated")))
            for mode, v in (res.get("results") or {}).items()
        ]
    if name == "rollout_bench" and res:
        return [
            ("rollout bench, HF generate batch 1", f"{res['baseline']['tokens_per_s']:,.0f}", ""),
            (
                "rollout bench, engine",
                f"{res['rollout']['tokens_per_s']:,.0f}",
                mib(res.get("max_memory_allocated_generation")),
            ),
            (
                "rollout bench, PPO update",
                f"{res['ppo_update']['tokens_per_s']:,.0f}",
                mib(res.get("max_memory_allocated")),
            ),
        ]
    return []


def gpu_paths(device: str, parts: dict[str, Any]) -> dict[str, list[str]]:
    """The parts of the project that ran on the GPU in this check, and those that did not."""
    study = (parts.get("study") or {}).get("result") or {}
    devices = study.get("devices") or {}
    on, off = [], []
    for mod, e in (devices.get("generate") or {}).items():
        (on if any(d.startswith("cuda") for d in e["device"]) else off).append(CALLERS.get(mod, mod))
    for dev in devices.get("sft_trainer") or {}:
        (on if dev.startswith("cuda") else off).append("SFT training")
    for name in ("sft_bench", "rollout_bench"):
        res = (parts.get(name) or {}).get("result") or {}
        if res:
            (on if str(res.get("device", "")).startswith("cuda") else off).append(name)
    return {"on_gpu": on, "not_on_gpu": off} if device == "cuda" else {"on_gpu": [], "not_on_gpu": on + off}


def drive(args: argparse.Namespace) -> int:
    device = "cpu" if args.cpu else "cuda"
    out = Path(args.out or os.environ.get("OUT") or ROOT / "runs" / "gpu_smoke").resolve()
    (out / "parts").mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    for old in (out / "parts").glob("*.json"):
        old.unlink()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    if args.cpu:
        env["CUDA_VISIBLE_DEVICES"] = ""  # the dry run stays on the CPU even on a GPU machine
    threads = args.threads or (None if args.cpu else min(8, os.cpu_count() or 1))
    commands = part_commands(device, args.quick, out, threads)
    start = time.perf_counter()
    deadline = start + args.budget
    parts: dict[str, Any] = {}
    for name, cmd in commands.items():
        if args.only and name not in args.only:
            continue
        limit = min(LIMITS[name][1 if args.quick else 0], deadline - time.perf_counter())
        if limit < 5:
            parts[name] = {"status": "skipped", "error": "no time left in the budget"}
            continue
        parts[name] = run_part(name, cmd, limit, out, env)
        if name == "env" and parts[name]["status"] != "ok":
            for rest in commands:
                if rest != "env" and (not args.only or rest in args.only):
                    parts[rest] = {"status": "skipped", "error": "the env part failed"}
            break
    ok = all(p["status"] == "ok" for p in parts.values())
    summary = {
        "device": device,
        "quick": args.quick,
        "ok": ok,
        "seconds": time.perf_counter() - start,
        "budget_s": args.budget,
        "wheels": args.wheels,
        "parts": parts,
        "gpu_paths": gpu_paths(device, parts),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    print(
        f"\n=== GPU smoke check on {device}{' (quick)' if args.quick else ''}: {'PASSED' if ok else 'FAILED'}"
    )
    print(f"{'part':<15}{'status':<9}{'seconds':>8}")
    for name, p in parts.items():
        print(f"{name:<15}{p['status']:<9}{p.get('seconds', 0):>8.1f}")
    print(f"\n{'measurement':<54}{'tokens/s':>14}{'peak memory':>14}")
    for name, p in parts.items():
        for what, rate, mem in headline(name, p):
            print(f"{what:<54}{rate:>14}{mem:>14}")
    paths = summary["gpu_paths"]
    print(f"\nran on the GPU: {', '.join(paths['on_gpu']) or 'nothing'}")
    print(f"did not run on the GPU: {', '.join(paths['not_on_gpu']) or 'nothing'}")
    print(f"summary: {out / 'summary.json'}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd")
    ap.add_argument("--cpu", action="store_true", help="dry run on the CPU (CUDA devices hidden)")
    ap.add_argument("--quick", action="store_true", help="tiny budgets (seconds per part)")
    ap.add_argument("--out", default=None, help="output folder (default: $OUT, else runs/gpu_smoke)")
    ap.add_argument("--budget", type=float, default=510.0, help="seconds for all parts together")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: 8 on GPU runs)")
    ap.add_argument("--only", nargs="*", choices=sorted(LIMITS), help="run only these parts")
    ap.add_argument("--wheels", default="not recorded", help="what the wheel install did (set by the .sh)")
    env_p = sub.add_parser("env-part")
    study_p = sub.add_parser("study-part")
    for p in (env_p, study_p):
        p.add_argument("--device", choices=["cpu", "cuda"], required=True)
        p.add_argument("--json", required=True)
        p.add_argument("--out", default=".")
        p.add_argument("--quick", action="store_true")
        p.add_argument("--threads", type=int, default=None)
    wheels_p = sub.add_parser("wheels")
    wheels_p.add_argument("--dir", default=str(ROOT / ".whl"))
    wheels_p.add_argument("--target", required=True)
    args = ap.parse_args(argv)
    if args.cmd == "wheels":
        return install_wheels(Path(args.dir), Path(args.target))
    if args.cmd in ("env-part", "study-part"):
        if args.cmd == "env-part":
            result = env_part(args.device, Path(args.out))
        else:
            result = study_part(args.device, args.quick, Path(args.out), args.threads)
        Path(args.json).write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
        return 0
    return drive(args)


if __name__ == "__main__":
    sys.exit(main())
