"""GRPO: group advantages, the episode-return choice, zero gradient without signal, the config
switch, end-to-end runs on the toy env, exact resume and 2 processes."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sftvsrl.config import ConfigError, load_config
from sftvsrl.rollout import EnvPool, Generation, HFRolloutEngine, Sampling, make_envs
from sftvsrl.runlog import RunLog
from sftvsrl.training.grpo import collect_groups, group_seeds, grpo_loss, step_advantages
from sftvsrl.training.grpo import train as train_grpo
from sftvsrl.training.rl import RLConfig, train_rl
from sftvsrl.training.rl_batch import Policy, collate
from sftvsrl.training.rl_math import group_advantages

HERE = Path(__file__).resolve().parent
CONFIGS = HERE.parents[1] / "configs"
TOY = "sftvsrl-test/Toy-v0"
BASE = [
    "algorithm=grpo",
    "init=tiny-lm",
    f"env_id={TOY}",
    "max_turns=2",
    "num_envs=4",
    "group_size=2",
    "max_new_tokens=3",
    "epochs=2",
    "minibatch_size=4",
    "micro_batch_size=2",
    "lr=1e-3",
    "clip=0.2",
    "ent_coef=0.01",
    "kl_coef=0.05",
    "tensorboard=false",
    "temperature=1.0",
]


def cfg(tmp_path, name, *extra):
    return load_config(RLConfig, None, [*BASE, f"out_dir={tmp_path / name}", *extra])


def read_log(run):
    return [json.loads(x) for x in (Path(run) / "log.jsonl").read_text().splitlines()]


# ---- math -----------------------------------------------------------------------------


def test_group_advantages_are_zero_mean_per_group():
    returns = torch.tensor([[5.0, -3.0, -1.0, 4.0], [-3.0, -3.0, -3.0, -3.0], [5.0, 5.0, -6.0, 0.5]])
    adv = group_advantages(returns, "group")
    assert torch.allclose(adv.mean(dim=1), torch.zeros(3), atol=1e-6)
    assert torch.allclose(adv[[0, 2]].pow(2).mean(dim=1), torch.ones(2), atol=1e-4)  # unit std
    assert torch.equal(adv[1], torch.zeros(4))  # all equal: exactly no signal
    raw = group_advantages(returns, "none")  # Dr. GRPO: centred, not scaled
    assert torch.allclose(raw, returns - returns.mean(dim=1, keepdim=True))
    with pytest.raises(ValueError, match="G >= 2"):
        group_advantages(torch.tensor([[5.0], [-3.0]]))


class ScriptedEngine:
    """Answers the toy env: env 0 says a wrong digit on its first turn, everything else is right."""

    def __init__(self) -> None:
        self.calls = 0

    def generate(self, observations, *, max_new_tokens, temperature, do_sample, seed):
        out = []
        for i, obs in enumerate(observations):
            target = int(re.search(r"Say (\d)", obs).group(1))
            answer = str((target + 1) % 10) if (self.calls == 0 and i == 0) else str(target)
            out.append(Generation(answer, [1, 2], [3]))
        self.calls += 1
        return out


def test_every_answer_gets_its_episodes_group_advantage():
    """Episode return, not return-to-go: env 0 fails then revises (-1 + 5 = 4) against a group
    mate that solves at once (5); both of env 0's answers get the same negative advantage (a
    return-to-go of 5 would have rewarded its late answer for merely coming late)."""
    envs = make_envs(TOY, {}, 4, max_turns=2)
    pool = EnvPool(envs, env_seeds=group_seeds(100, 4, 2))
    assert [e.unwrapped.target for e in envs[::2]] == [e.unwrapped.target for e in envs[1::2]]  # same hands
    ro = collect_groups(pool, ScriptedEngine(), Sampling(3), seed=lambda t: t)
    assert ro.step_env == [0, 1, 2, 3, 0] and ro.returns == [4.0, 5.0, 5.0, 5.0]
    assert pool.active() == []  # every env played exactly one episode
    adv, returns = step_advantages(ro, 2, "group")
    assert torch.allclose(adv, torch.tensor([-1.0, 1.0, 0.0, 0.0, -1.0]), atol=1e-4)
    assert adv[0] == adv[4] and returns.shape == (2, 2)


def test_group_members_sample_different_answers():
    from sftvsrl.models.loading import load_model

    envs = make_envs(TOY, {}, 4, max_turns=1)
    pool = EnvPool(envs, env_seeds=group_seeds(7, 4, 4))
    engine = HFRolloutEngine(load_model("tiny-lm"))
    ro = collect_groups(pool, engine, Sampling(6, temperature=1.0), seed=lambda t: 123)
    assert len({tuple(g.answer_ids) for g in ro.steps}) > 1


def test_all_equal_group_gives_zero_gradient():
    from sftvsrl.models.loading import load_model

    pm = load_model("tiny-lm")
    gens = HFRolloutEngine(pm).generate(
        ["Say 3.", "Say 3.", "Say 1."], max_new_tokens=4, do_sample=True, seed=0
    )
    c = load_config(RLConfig, None, ["algorithm=grpo", "group_size=3", "num_envs=3"])
    policy = Policy(pm.model, pm.tokenizer.pad_token_id, 8)
    batch = collate(gens, policy.pad_id)
    out = policy.forward(batch, entropy=True)
    returns = torch.tensor([[-3.0, -3.0, -3.0]])
    adv = group_advantages(returns).flatten()
    loss, _ = grpo_loss(c, out, out.seq_logp.detach(), adv, None)
    loss.backward()
    grads = [p.grad for p in pm.model.parameters() if p.grad is not None]
    assert grads and all(torch.count_nonzero(g) == 0 for g in grads)


# ---- config -----------------------------------------------------------------------------


def test_group_size_one_and_uneven_groups_are_refused():
    with pytest.raises(ConfigError, match="group_size=1: GRPO needs group_size >= 2"):
        load_config(RLConfig, None, ["algorithm=grpo", "group_size=1"])
    with pytest.raises(ConfigError, match="num_envs=6 is not a multiple of group_size=4"):
        load_config(RLConfig, None, ["algorithm=grpo", "group_size=4", "num_envs=6"])
    unchecked = RLConfig.model_construct(**{**RLConfig().model_dump(), "algorithm": "grpo", "group_size": 1})
    with pytest.raises(ConfigError, match="group_size"):
        train_grpo(unchecked)
    assert load_config(RLConfig, None, ["group_size=1"]).algorithm == "ppo"  # PPO ignores it


def test_ppo_config_file_switches_to_grpo_and_unknown_keys_stay_errors():
    c = load_config(RLConfig, CONFIGS / "gp_l_tiny_rl.yaml", ["algorithm=grpo", "group_size=8"])
    assert (c.algorithm, c.group_size, c.num_envs) == ("grpo", 8, 64)
    assert load_config(RLConfig, CONFIGS / "gp_l_paper_rl.yaml").algorithm == "ppo"  # PPO stays the default
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(RLConfig, None, ["algorithm=grpo", "group_sise=8"])
    with pytest.raises(ConfigError, match="algorithm"):
        load_config(RLConfig, None, ["algorithm=reinforce"])


# ---- end to end -------------------------------------------------------------------------


def test_short_run_logs_group_statistics_and_has_no_value_head(tmp_path):
    out = train_rl(cfg(tmp_path, "a", "updates=2"))
    log = read_log(out)
    assert [r["step"] for r in log] == [1, 2]
    for key in (
        "time",
        "flops",
        "tokens",
        "mean_reward",
        "episodes",
        "success_rate",
        "mean_turns",
        "mean_return",
        "outcomes",
        "pg_loss",
        "kl_ref",
        "clipfrac",
        "approx_kl",
        "grad_norm",
        "lr",
        "groups",
        "groups_with_signal",
        "group_return_std",
        "time/gen",
        "time/old_log_prob",
        "time/ref",
        "time/adv",
        "time/update_actor",
    ):
        assert key in log[0], key
    assert "v_loss" not in log[0] and "explained_variance" not in log[0]
    assert log[0]["groups"] == 2 and log[0]["episodes"] == 4 and 0 <= log[0]["groups_with_signal"] <= 2
    assert sum(log[0]["outcomes"].values()) == log[0]["answers"]
    assert log[1]["flops"] > log[0]["flops"] > 0 and log[0]["d_buffer"] > 0
    ckpt = out / "checkpoints" / "step-00000002"
    assert not (ckpt / "value_head.safetensors").exists()


def test_no_signal_and_no_regulariser_leaves_the_policy_untouched(tmp_path):
    # The random tiny model never says a digit on the toy env: every return is equal.
    out = train_rl(cfg(tmp_path, "flat", "updates=1", "max_turns=1", "kl_coef=0", "ent_coef=0"))
    log = read_log(out)
    assert log[0]["groups_with_signal"] == 0 and log[0]["pg_loss"] is None
    from sftvsrl.models.loading import load_model

    init = load_model("tiny-lm").model.state_dict()
    after = load_file(out / "checkpoints/step-00000001/model.safetensors")
    assert all(torch.equal(init[k], after[k]) for k in after)


def test_compile_rollouts_reaches_the_rollout_engine(tmp_path, monkeypatch):
    import sftvsrl.rollout.decode as decode

    calls = []

    def stand_in(*args):  # the compiler itself is tested in tests/rollout/test_compile.py
        calls.append(1)
        return decode.decode_step(*args)

    monkeypatch.setattr(decode, "compiled_step", lambda: stand_in)
    train_rl(cfg(tmp_path, "plain", "updates=1", "max_turns=1"))
    assert not calls
    train_rl(cfg(tmp_path, "compiled", "updates=1", "max_turns=1", "compile_rollouts=true"))
    assert calls


class Killed(Exception):
    pass


def test_resume_is_exact(tmp_path, monkeypatch):
    small = ["updates=4", "epochs=1", "save_every=2"]
    full = train_rl(cfg(tmp_path, "full", *small))
    part = cfg(tmp_path, "part", *small)
    append = RunLog.append

    def append_then_die(self, record):
        append(self, record)
        if record["step"] == 3:
            raise Killed

    monkeypatch.setattr(RunLog, "append", append_then_die)
    with pytest.raises(Killed):
        train_rl(part)
    monkeypatch.undo()
    train_rl(part, resume=True)
    log = read_log(part.out_dir)
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    for a, b in zip(read_log(full), log, strict=True):
        for key in ("mean_reward", "pg_loss", "entropy", "approx_kl", "kl_ref", "lr", "flops", "outcomes"):
            assert a[key] == b[key], key
    wa = load_file(full / "checkpoints/step-00000004/model.safetensors")
    wb = load_file(Path(part.out_dir) / "checkpoints/step-00000004/model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_two_cpu_processes_with_gloo(tmp_path, torchrun):
    out = tmp_path / "ddp"
    cmd = [*torchrun(2), str(HERE / "toy_cli.py"), "rl", *BASE, "updates=2", "save_every=1", f"out_dir={out}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    log = read_log(out)
    assert [r["processes"] for r in log] == [2, 2]
    assert log[0]["groups"] == 4 and log[0]["episodes"] == 8  # 2 processes x 2 groups of 2
    assert (out / "checkpoints/step-00000002/rng_state_1.pt").is_file()
