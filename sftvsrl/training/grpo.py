"""Multi-turn GRPO (DeepSeekMath, Shao et al. 2024) with sequential revision: PPO's clipped
objective with a group baseline instead of a value head.

A *group* is ``group_size`` envs that reset with the same seed, i.e. replay the same hand or
route; each update every env plays exactly one complete episode (no truncated buffers, so no
bootstrapping), with revision turns until it is solved or out of turns. Group members share
the start state but not their samples: one generate call samples every active env's row
independently from one seeded stream, so G copies of a prompt get G different answers.

**Advantage = episode return, not return-to-go.** Every answer of an episode gets
``(R - mean_group(R)) / std_group(R)`` (or without the division, ``scale_rewards: none``, as in
Dr. GRPO, Liu et al. 2025) where ``R`` is the episode's undiscounted return. The group mean is
a baseline for the *shared start state* only: the G episodes are G samples from it. A later
turn's state (the hand plus that episode's own earlier answers and feedback) is not shared by
the group, so comparing its return-to-go with the start-state mean would be biased by the turn
alone (later turns have fewer penalties left to collect, so they would look better merely for
coming late). With the episode return the baseline is exact, and the return already ranks
the outcomes of revision: solved at once (+5) > solved after one wrong value (-1 + 5 = 4) >
solved late > never solved. It is the multi-turn analogue of DeepSeekMath's outcome
supervision, where every token of an answer gets the answer's normalised reward.

A group whose returns are all equal has advantage 0 for all its answers and so contributes no
policy gradient; the log counts ``groups_with_signal``. An update where no group on any
process has signal and no entropy / KL term is on skips the optimiser (Adam's momentum would
otherwise keep moving the policy on stale gradients) and counts no trained tokens.

Phases (``time/<phase>`` in the log): ``gen`` (play the groups), ``old_log_prob`` (no-grad
answer log-probs), ``ref`` (with ``kl_coef``: the frozen init policy's token log-probs, k3
KL), ``adv`` (group advantages), ``update_actor`` (``epochs`` passes over shuffled
minibatches). Processes hold whole groups of their own, so advantages never need another
process; their buffers differ in length, so every process runs the same number of
minibatches (set by the smallest buffer) and all-reduces gradients once per minibatch.
The learning-rate schedule steps once per update.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch

from sftvsrl.rollout import EnvPool, Generation, HFRolloutEngine, RolloutEngine, Sampling, make_envs
from sftvsrl.training.loop import PhaseTimer, Progress, TensorBoardMirror, lr_multiplier
from sftvsrl.training.rl import (
    RLConfig,
    fmt,
    gather_update,
    generate_seed,
    load_reference,
    per_s,
    pool_seed,
    start_rl_run,
)
from sftvsrl.training.rl_batch import Policy, Scores, answer_weights, collate, weight_batch
from sftvsrl.training.rl_math import Means, group_advantages, kl_penalty, masked_mean, pad_rows, policy_loss


@dataclass
class GroupRollout:
    """One update's answers (in play order) and the one episode each env played."""

    steps: list[Generation] = field(default_factory=list)
    step_env: list[int] = field(default_factory=list)  # env (hence group and episode) of each answer
    rewards: list[float] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)  # per env: its episode's return
    episodes: list[tuple[bool, int, float]] = field(default_factory=list)  # (success, turns, return)
    outcomes: Counter = field(default_factory=Counter)


def group_seeds(base_seed: int, num_envs: int, group_size: int) -> list[list[int]]:
    """Each env's episode seed list for one update: env ``e`` is in group ``e // group_size``,
    which plays the hand of seed ``base_seed + group``."""
    return [[base_seed + e // group_size] for e in range(num_envs)]


def collect_groups(
    pool: EnvPool, engine: RolloutEngine, sampling: Sampling, seed: Callable[[int], int]
) -> GroupRollout:
    """Play until every env of the pool has finished its episode."""
    ro = GroupRollout(returns=[0.0] * len(pool.envs))
    for transitions in pool.play(engine, sampling, seed):
        for tr in transitions:
            ro.steps.append(tr.generation)
            ro.step_env.append(tr.env_index)
            ro.rewards.append(tr.reward)
            ro.outcomes[str(tr.info.get("outcome", ""))] += 1
            ro.returns[tr.env_index] += tr.reward
            if tr.done:
                ro.episodes.append(
                    (bool(tr.info.get("success", False)), tr.turn + 1, ro.returns[tr.env_index])
                )
    return ro


def step_advantages(ro: GroupRollout, group_size: int, scale: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantage of every answer = its episode's group advantage, ``[groups, G]`` returns)."""
    returns = torch.tensor(ro.returns, dtype=torch.float32).view(-1, group_size)
    per_env = group_advantages(returns, scale).flatten()
    return per_env[torch.tensor(ro.step_env, dtype=torch.long)], returns


def grpo_loss(
    cfg: RLConfig, out: Scores, old_logp: torch.Tensor, adv: torch.Tensor, ref_logp: torch.Tensor | None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One micro-batch's loss: PPO's clipped ratio objective on the answer log-prob with group
    advantages, an optional entropy bonus and k3 KL to the reference; no value term."""
    pg, diag = policy_loss(out.seq_logp, old_logp, adv, cfg.clip)
    ent = masked_mean(out.entropy, out.mask)
    loss = pg - cfg.ent_coef * ent
    kl = torch.zeros((), device=pg.device)
    if ref_logp is not None:
        kl = kl_penalty(out.token_logp, ref_logp, out.mask)
        loss = loss + cfg.kl_coef * kl
    return loss, {"pg_loss": pg, "entropy": ent, "kl_ref": kl, **diag}


def train(cfg: RLConfig, resume: bool = False) -> Path:
    """Run GRPO as configured; returns the output folder."""
    # run folder, resume check, config, seed; the policy (from the init checkpoint or the
    # resumed one); cfg comes back resolved (the checkpoint's precision, bf16 a bool)
    setup = start_rl_run(cfg, resume, "grpo")
    accelerator, run, cfg, pm = setup.accelerator, setup.run, setup.cfg, setup.pm
    rank, world, main = accelerator.process_index, accelerator.num_processes, accelerator.is_main_process
    amp = setup.amp  # bf16 autocast, when on

    # ---- models: an optional frozen reference; no value head ----
    ref_model = load_reference(cfg)
    params = [p for p in pm.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, eps=cfg.adam_eps, weight_decay=cfg.weight_decay)
    warmup = int(cfg.warmup_fraction * cfg.updates)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_multiplier(s, cfg.updates, warmup, cfg.min_lr_ratio, cfg.lr_schedule)
    )
    model, optimizer = accelerator.prepare(pm.model, optimizer)
    if ref_model is not None:
        ref_model.to(accelerator.device)
    pm.model = accelerator.unwrap_model(model)
    engine = HFRolloutEngine(pm, batch_size=cfg.generation_batch_size, compile=cfg.compile_rollouts)
    pad_id = pm.tokenizer.pad_token_id
    policy = Policy(model, pad_id, cfg.micro_batch_size)
    reference = Policy(ref_model, pad_id, cfg.micro_batch_size) if ref_model is not None else None

    start, elapsed_before, flops = setup.resume(optimizer, scheduler)
    started = time.perf_counter()
    envs = make_envs(cfg.env_id, cfg.env_kwargs, cfg.num_envs, cfg.max_turns)
    tensorboard = TensorBoardMirror(run.path, "rl", enabled=main and cfg.tensorboard)
    sampling = Sampling(cfg.max_new_tokens, cfg.temperature, do_sample=True)
    timer = PhaseTimer()
    G, n_groups = cfg.group_size, cfg.num_envs // cfg.group_size

    with Progress("rl", cfg.updates, start, enabled=main) as progress:
        for update in range(start, cfg.updates):
            timer.reset()
            # ---- 1. rollout: every env plays one episode; a group's envs play the same hand ----
            with timer("gen"), amp():
                seeds = group_seeds(pool_seed(cfg, update, rank), cfg.num_envs, G)
                pool = EnvPool(envs, env_seeds=seeds)
                ro = collect_groups(pool, engine, sampling, partial(generate_seed, cfg, update, rank=rank))
            n = len(ro.steps)
            gen_tokens = sum(len(g.answer_ids) for g in ro.steps)
            buffer_tokens = sum(len(g.prompt_ids) + len(g.answer_ids) for g in ro.steps)

            # ---- 2. old log-probs, reference token log-probs ----
            model.eval()
            with timer("old_log_prob"), amp():
                weights = answer_weights(pm.tokenizer, ro.steps, cfg.thought_coef, cfg.action_marker)
                old_logp = policy.logprobs(ro.steps, weights)
            ref_logp = None
            if reference is not None:
                with timer("ref"), amp():
                    ref_logp = reference.token_logprobs(ro.steps)
            model.train()

            # ---- 3. group advantages; which groups carry signal, on every process ----
            with timer("adv"):
                adv, returns = step_advantages(ro, G, cfg.scale_rewards)
                with_signal = int((returns != returns[:, :1]).any(dim=1).sum())
                std = returns.std(dim=1, unbiased=False)
                # smallest buffer and total signal over processes fix the minibatch count / skip
                sizes = accelerator.gather(torch.tensor([n, with_signal], device=accelerator.device)).view(
                    -1, 2
                )
                minibatches = max(1, math.ceil(int(sizes[:, 0].min()) / cfg.minibatch_size))
                learn = int(sizes[:, 1].sum()) > 0 or cfg.kl_coef > 0 or cfg.ent_coef > 0

            # ---- 4. epochs over shuffled minibatches; one gradient all-reduce per minibatch ----
            with timer("update_actor"):
                stats = Means("pg_loss", "entropy", "kl_ref", "clipfrac", "approx_kl", "grad_norm")
                g = torch.Generator().manual_seed(cfg.seed * 31 + update)
                trained_tokens = 0
                for _epoch in range(cfg.epochs if learn else 0):
                    for mb in torch.tensor_split(torch.randperm(n, generator=g), minibatches):
                        optimizer.zero_grad(set_to_none=True)
                        micro = [
                            mb[i : i + cfg.micro_batch_size].tolist()
                            for i in range(0, len(mb), cfg.micro_batch_size)
                        ]
                        for j, idx in enumerate(micro):
                            last = j == len(micro) - 1
                            with contextlib.nullcontext() if last else accelerator.no_sync(model):
                                batch = collate([ro.steps[i] for i in idx], pad_id)
                                with amp():
                                    out = policy.forward(
                                        batch, weight_batch([weights[i] for i in idx], batch), entropy=True
                                    )
                                dev, sel = accelerator.device, torch.tensor(idx)
                                ref_rows = None
                                if ref_logp is not None:
                                    ref_rows = pad_rows([ref_logp[i] for i in idx], batch["answer_width"]).to(
                                        dev
                                    )
                                loss, losses = grpo_loss(
                                    cfg, out, old_logp[sel].to(dev), adv[sel].to(dev), ref_rows
                                )
                                accelerator.backward(loss * len(idx) / len(mb))
                            trained_tokens += int(batch["attention_mask"].sum())
                            stats.add(**losses)
                        if cfg.max_grad_norm is not None:
                            stats.add(grad_norm=accelerator.clip_grad_norm_(params, cfg.max_grad_norm))
                        optimizer.step()
            lr = scheduler.get_last_lr()[0]  # the rate this update used
            with warnings.catch_warnings():  # an update without signal steps the schedule alone
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
                scheduler.step()

            # ---- 5. counters, log, checkpoint ----
            local = [
                sum(ro.rewards),
                n,
                gen_tokens,
                buffer_tokens,
                trained_tokens,
                n_groups,
                with_signal,
                float(std.sum()),
            ]
            totals, outcomes, episodes = gather_update(accelerator, local, ro.outcomes, ro.episodes)
            flops.add_buffer_tokens(int(totals[3]))
            flops.add_train_tokens(int(totals[4]))
            seconds = timer.seconds()
            record = {
                "step": update + 1,
                "time": elapsed_before + time.perf_counter() - started,
                "flops": flops.total_flops,
                "tokens": flops.total_tokens,
                "d_buffer": flops.d_buffer,
                "processes": world,
                "answers": int(totals[1]),
                "mean_reward": totals[0] / totals[1],
                **episodes,
                "outcomes": outcomes,
                "groups": int(totals[5]),
                "groups_with_signal": int(totals[6]),
                "group_return_std": totals[7] / totals[5],
                **stats.means(),
                "lr": lr,
                "rollout_tokens_per_s": per_s(totals[2], seconds["time/gen"], world),
                "train_tokens_per_s": per_s(totals[4], seconds["time/update_actor"], world),
                **seconds,
            }
            if main:
                run.log.append(record)
                tensorboard.log(record)
            progress.update(
                update + 1,
                f"reward {record['mean_reward']:+.2f} success {fmt(record['success_rate'])} "
                f"signal {record['groups_with_signal']}/{record['groups']}",
            )
            if (update + 1) % cfg.save_every == 0 or update + 1 == cfg.updates:
                setup.save(update + 1, flops, record["time"], optimizer, scheduler)
    tensorboard.close()
    for env in envs:
        env.close()
    return run.path
