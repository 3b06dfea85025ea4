"""The task registry: every task makes its envs and scores its expert; adding a task is one
entry; task ids and names are spelled in one place."""

import ast
import importlib
import random
import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest

import sftvsrl.envs.tasks as registry
from sftvsrl.envs.tasks import Task, get_task, make_env, register_task, task_for_env, tasks
from sftvsrl.errors import ConfigError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PACKAGE = Path(__file__).resolve().parents[2] / "sftvsrl"
CASES = [(name, split) for name, task in tasks().items() for split in task.splits]


def _best_reward(task: Task) -> float:
    package = task.entry_point.split(":")[0].rsplit(".", 1)[0]
    return max(importlib.import_module(f"{package}.verifier").REWARDS.values())


@pytest.mark.parametrize("name, split", CASES)
def test_every_split_makes_its_env_and_the_expert_scores_full_reward(name, split):
    task = get_task(name)
    env = gym.make(task.env_id, **task.splits[split])
    try:
        obs, info = env.reset(seed=7)
        assert isinstance(obs, dict) == task.vision
        expert = task.expert_fn()
        answers = [info["expert_answer"]] + ([expert(info, random.Random(0))] if expert else [])
        for answer in answers:
            env.reset(seed=7)
            _, reward, _, _, after = env.step(answer)
            assert after["outcome"] == "correct" and reward == _best_reward(task), answer
    finally:
        env.close()


@pytest.mark.parametrize("name", list(tasks()))
def test_wrong_answers_do_not_score_full_reward(name):
    task = get_task(name)
    wrong_fn = task.wrong_fn(task.train)
    assert wrong_fn is not None
    env = make_env(task.env_id, **task.train, max_turns=2)
    try:
        made = 0
        for seed in range(8):
            _, info = env.reset(seed=seed)
            wrong = wrong_fn(info, random.Random(seed))
            if wrong is None:
                continue
            made += 1
            _, reward, _, _, after = env.step(wrong)
            assert after["outcome"] != "correct" and reward < _best_reward(task), wrong
        assert made > 0
    finally:
        env.close()


def test_the_four_paper_tasks_and_their_splits():
    assert list(tasks()) == ["GeneralPoints-L", "GeneralPoints-VL", "VIRL-L", "VIRL-VL"]
    assert list(get_task("GeneralPoints-VL").splits) == ["id_seen", "id", "ood", "visual_ood"]
    assert list(get_task("VIRL-L").splits) == ["id_seen", "id", "ood"]
    assert get_task("GeneralPoints-L").splits["id_seen"] == {"rule": "id", "split": "train"}
    assert [t.name for t in tasks().values() if t.curve_metric] == ["GeneralPoints-VL"]
    for task in tasks().values():
        assert task_for_env(task.env_id) is task
        assert task.variant == ("VL" if task.vision else "L") and task.name == f"{task.family}-{task.variant}"
    assert task_for_env("sftvsrl/NoSuch-v0") is None


def test_virl_vl_visual_ood_trains_on_helsinki_and_walks_kotka_with_full_reward():
    task = get_task("VIRL-VL")
    assert list(task.splits) == ["id_seen", "id", "ood", "visual_ood"]
    assert task.splits["visual_ood"] == {"action_space": "absolute", "split": "test", "city": "kotka"}
    seen = make_env(task.env_id, **task.splits["id_seen"], prompt_style="compact")
    env = make_env(task.env_id, **task.splits["visual_ood"], prompt_style="compact")
    try:
        assert seen.unwrapped.city == "helsinki" and env.unwrapped.city == "kotka"
        for seed in range(10):
            _, info = env.reset(seed=seed)
            lat = info["position"][0]
            assert 60.3 < lat < 60.6, lat  # Kotka (Helsinki lies near 60.17 N)
            rewards, done = [], False
            while not done:
                obs, reward, done, truncated, info = env.step(info["expert_answer"])
                assert not truncated and obs["image"].any()
                rewards.append(reward)
            assert info["success"] and rewards == [_best_reward(task)] * len(rewards)
    finally:
        env.close()
        seen.close()


def test_unknown_task_is_a_config_error_listing_the_known_ones():
    with pytest.raises(ConfigError, match="unknown task 'Chess-L'; known: GeneralPoints-L, GeneralPoints-VL"):
        get_task("Chess-L")
    with pytest.raises(ConfigError, match="has no -VL variant"):
        registry.variant("Chess", vision=True)


def test_a_registered_task_reaches_every_consumer(monkeypatch):
    """A toy task added with one register_task call: gym, the env maker, the study config and
    the evaluation summary all see it, with no change to any of them."""
    from sftvsrl.evaluation.summary import summarize
    from sftvsrl.rollout.pool import make_envs
    from sftvsrl.study.config import TASKS, StudyConfig, task_spec

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    toy = Task(
        name="Toy-VL",
        family="Toy",
        env_id="sftvsrl-test/ToyTask-VL-v0",
        entry_point="toy_env:ToyEnv",
        vision=True,
        env_kwargs={"vision": True},
        train={"split": "train"},
        held_out={"id": {"split": "test"}},
        metrics="sftvsrl.evaluation.summary:recognition_metrics",
    )
    try:
        assert register_task(toy) is toy and register_task(toy) is toy  # idempotent
        assert "Toy-VL" in tasks() and "Toy-VL" in TASKS and task_spec("Toy-VL") is toy
        env = gym.make(toy.env_id, **toy.splits["id"])
        obs, info = env.reset(seed=0)
        assert set(obs) == {"text", "image"}
        assert len(make_envs(toy.env_id, toy.train, 2)) == 2
        cfg = StudyConfig.model_validate({"tasks": ["Toy-VL"], "ablations": {"turns_splits": ["id"]}})
        assert cfg.model_for(task_spec("Toy-VL")) == "tiny-vlm"
        record = {"success": True, "final_outcome": "correct", "return": 1.0}
        summary = summarize(
            [{**record, "turns": [{"outcome": "correct", "recognized": True}]}], env_id=toy.env_id
        )
        assert summary["recognition_accuracy"] == 1.0  # from the task's metrics, not a guess
        with pytest.raises(ValueError, match="already registered differently"):
            register_task(Task(**{**toy.__dict__, "help": "changed"}))
        with pytest.raises(ValueError, match="already belongs to task"):
            register_task(Task(**{**toy.__dict__, "name": "Toy2-VL"}))
    finally:
        gym.registry.pop(toy.env_id, None)


def test_text_tasks_have_no_recognition_metrics_and_vision_tasks_do():
    from sftvsrl.evaluation.summary import summarize

    record = {"success": True, "final_outcome": "correct", "return": 1.0}
    turns = [{"outcome": "correct", "recognized": None}]
    for task in tasks().values():
        summary = summarize([{**record, "turns": turns}], task.vision, env_id=task.env_id)
        assert ("recognition_accuracy" in summary) == task.vision


def _package_files():
    return sorted(p for p in PACKAGE.rglob("*.py"))


def test_env_ids_are_written_in_at_most_two_files():
    ids = [t.env_id for t in tasks().values()]
    holding = sorted(
        str(p.relative_to(PACKAGE))
        for p in _package_files()
        if any(i in p.read_text(encoding="utf-8") for i in ids)
    )
    assert "envs/tasks.py" in holding and len(holding) <= 2, holding


def test_no_branch_on_a_task_name_outside_envs():
    names = "|".join(sorted({t.family for t in tasks().values()} | set(tasks())))
    compare = re.compile(rf"""[=!]=\s*["']({names})["']|["']({names})["']\s*[=!]=""")
    offenders = [
        f"{p.relative_to(PACKAGE)}:{n}"
        for p in _package_files()
        if "envs" not in p.relative_to(PACKAGE).parts
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if compare.search(line)
    ]
    assert not offenders


def _imports(path: Path, module: str) -> set[str]:
    """Modules of sftvsrl.envs that ``path`` imports anywhere (function-level imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m.startswith("sftvsrl.envs") and m != module}


def test_no_import_cycle_in_envs():
    modules = {}
    for p in (PACKAGE / "envs").rglob("*.py"):
        parts = p.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = p
    graph = {m: _imports(p, m) & set(modules) for m, p in modules.items()}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(nxt == goal or reaches(nxt, goal, seen | {nxt}) for nxt in graph[start] - seen)

    # A package's __init__ importing its own submodules is not a cycle of the submodules.
    cycles = [m for m in graph if not m.endswith(("envs", "generalpoints", "virl")) and reaches(m, m, {m})]
    assert not cycles, cycles
    loader = graph["sftvsrl.envs.virl.loader"]
    assert "sftvsrl.envs.virl.render" not in loader and "sftvsrl.envs.virl.views" in loader


def _run(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_cli_commands_import_only_what_they_need(tmp_path):
    out = _run(
        "import sys\n"
        "from sftvsrl.cli import main\n"
        f"assert main(['data', 'generalpoints', '--n', '2', '--out', {str(tmp_path / 'gp.jsonl')!r}]) == 0\n"
        "print(sorted(m for m in sys.modules if m.startswith(('sftvsrl.envs.virl', 'torch'))))\n"
    )
    assert out.strip().endswith("[]")
    out = _run(
        "import sys\n"
        "from sftvsrl.cli import build_parser\n"
        "build_parser(['play', 'virl', '--seed', '1'])\n"
        "print(sorted(m for m in sys.modules if m.startswith(('torch', 'transformers'))))\n"
    )
    assert out.strip() == "[]"
