"""Multi-turn PPO with sequential revision, in one loop that reads top to bottom.

One PPO *step* is one answer of one environment: the prompt (first prompt plus every earlier
answer and its feedback) is the state, the whole answer text is the action, its log-prob is the
(optionally thought-weighted) sum of its token log-probs, and the verifier's reward for that
answer is the step's reward. Each update runs these named, timed phases (``time/<phase>`` in
the log):

1. ``gen``: ``num_envs`` environments answer ``steps_per_env`` times each, every env at its own
   turn; a finished episode (solved, or out of turns) resets at once. Every update starts new
   episodes from seeds derived from (seed, update, process), so a resumed run sees exactly the
   episodes an uninterrupted one would; episodes still open at the end of the buffer bootstrap
   from the value of their current prompt.
2. ``old_log_prob``: one no-grad forward over all steps gives the old log-probs and values
   (value head on the last prompt token); ``values``: the values of bootstrap states;
   ``ref`` (with ``kl_coef``): the frozen initial policy's token log-probs.
3. ``adv``: GAE with exact episode boundaries.
4. ``update_actor``: ``epochs`` passes of shuffled minibatches with the clipped policy loss,
   value loss, entropy bonus, KL penalty and gradient clipping.

Then one log record and, every ``save_every`` updates, a checkpoint.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sftvsrl.rollout import (
    EnvPool,
    Generation,
    HFRolloutEngine,
    RolloutEngine,
    Sampling,
    encode_prompt,
    make_envs,
)
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
from sftvsrl.training.rl_batch import Policy, Scores, answer_weights, collate, collate_prompts, weight_batch
from sftvsrl.training.rl_math import (
    Means,
    compute_gae,
    explained_variance,
    kl_penalty,
    masked_mean,
    normalize_advantages,
    pad_rows,
    policy_loss,
    value_loss,
)

__all__ = [
    "PPOConfig",
    "ActorCritic",
    "ValueHead",
    "collect_rollout",
    "ppo_loss",
    "pool_seed",
    "generate_seed",
    "train",
]


PPOConfig = RLConfig  # the name the study and older code import; algorithm must be "ppo" here


class ValueHead(nn.Module):
    """Two-layer MLP mapping the hidden state of the last prompt token to a scalar value."""

    def __init__(self, hidden_size: int, inner: int | None = None) -> None:
        super().__init__()
        inner = inner or hidden_size
        self.net = nn.Sequential(nn.Linear(hidden_size, inner), nn.Tanh(), nn.Linear(inner, 1))
        nn.init.zeros_(self.net[2].weight)
        nn.init.zeros_(self.net[2].bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.net(hidden.to(self.net[0].weight.dtype)).squeeze(-1)


class ActorCritic(Policy):
    """The policy LM plus a value head on its last prompt token: log-probs and values of steps."""

    def __init__(self, model: nn.Module, value_head: nn.Module, pad_id: int, micro_batch_size: int) -> None:
        super().__init__(model, pad_id, micro_batch_size)
        self.value_head = value_head

    def logprobs_entropy_and_values(
        self, batch: dict[str, Any], weights: torch.Tensor | None
    ) -> tuple[Scores, torch.Tensor]:
        """The training forward pass of one collated micro-batch (with grad)."""
        scores = self.forward(batch, weights, entropy=True, hidden=True)
        return scores, self.value_head(scores.hidden).float()

    @torch.no_grad()
    def logprobs_and_values(
        self, gens: Sequence[Generation], weights: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Weighted answer log-probs and state values of every step (on the CPU)."""
        logp, values = [], []
        for part in self.chunks(len(gens)):
            batch = collate(gens[part], self.pad_id)
            scores = self.forward(batch, weight_batch(weights[part], batch), hidden=True)
            logp.append(scores.seq_logp.float().cpu())
            values.append(self.value_head(scores.hidden).float().cpu())
        return torch.cat(logp), torch.cat(values)

    @torch.no_grad()
    def values(self, gens: Sequence[Generation]) -> torch.Tensor:
        """Values of prompts alone (states that got no answer, e.g. bootstrap states)."""
        out = [torch.zeros(0)]
        for part in self.chunks(len(gens)):
            hidden = self.forward(collate_prompts(gens[part], self.pad_id), hidden=True).hidden
            out.append(self.value_head(hidden).float().cpu())
        return torch.cat(out)


@dataclass
class Rollout:
    """One update's buffer: ``T x E`` steps (``steps`` is t-major) and what they earned."""

    steps: list[Generation]
    rewards: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    bootstrap: dict[tuple[int, int], Generation]  # (t, e) -> state whose value follows step t
    episodes: list[tuple[bool, int, float]] = field(default_factory=list)  # (success, turns, return)
    outcomes: Counter = field(default_factory=Counter)


def collect_rollout(
    pool: EnvPool,
    engine: RolloutEngine,
    sampling: Sampling,
    seed: Callable[[int], int],
    steps: int,
    encode: Callable[[Any], Generation],
) -> Rollout:
    """Every env of a training pool answers ``steps`` times; ``encode`` turns a bootstrap
    observation into a prompt-only step."""
    T, E = steps, len(pool.envs)
    ro = Rollout(
        steps=[],
        rewards=torch.zeros(T, E),
        terminated=torch.zeros(T, E, dtype=torch.bool),
        truncated=torch.zeros(T, E, dtype=torch.bool),
        bootstrap={},
    )
    episode_return = [0.0] * E
    for t, transitions in enumerate(pool.play(engine, sampling, seed, steps=T)):
        for tr in transitions:
            e = tr.env_index
            ro.steps.append(tr.generation)
            ro.rewards[t, e], ro.terminated[t, e], ro.truncated[t, e] = tr.reward, tr.terminated, tr.truncated
            ro.outcomes[str(tr.info.get("outcome", ""))] += 1
            episode_return[e] += tr.reward
            if tr.done:
                ro.episodes.append((bool(tr.info.get("success", False)), tr.turn + 1, episode_return[e]))
                episode_return[e] = 0.0
            if tr.truncated:  # value of the final observation, or of the open episode's prompt
                ro.bootstrap[(t, e)] = encode(tr.final_observation)
            elif t == T - 1 and not tr.terminated:
                ro.bootstrap[(t, e)] = encode(pool.obs[e])
    return ro


def ppo_loss(
    cfg: PPOConfig,
    out: Scores,
    new_values: torch.Tensor,
    old: dict[str, torch.Tensor],
    ref_logp: torch.Tensor | None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One micro-batch's loss: clipped policy loss, value loss, entropy bonus, KL to the reference.
    ``old`` holds the rollout's ``logp``, ``adv``, ``values`` and ``returns`` of its rows."""
    pg, diag = policy_loss(out.seq_logp, old["logp"], old["adv"], cfg.clip)
    vl = value_loss(new_values, old["values"], old["returns"], cfg.value_clip)
    ent = masked_mean(out.entropy, out.mask)
    loss = pg + cfg.vf_coef * vl - cfg.ent_coef * ent
    kl = torch.zeros((), device=pg.device)
    if ref_logp is not None:
        kl = kl_penalty(out.token_logp, ref_logp, out.mask)
        loss = loss + cfg.kl_coef * kl
    return loss, {"pg_loss": pg, "v_loss": vl, "entropy": ent, "kl_ref": kl, **diag}


def train(cfg: PPOConfig, resume: bool = False) -> Path:
    """Run PPO as configured; returns the output folder."""
    # run folder, resume check, config, seed; the policy (from the SFT checkpoint or the
    # resumed one); cfg comes back resolved (the checkpoint's precision, bf16 a bool)
    setup = start_rl_run(cfg, resume, "ppo")
    accelerator, run, cfg, pm = setup.accelerator, setup.run, setup.cfg, setup.pm
    rank, world, main = accelerator.process_index, accelerator.num_processes, accelerator.is_main_process
    amp = setup.amp  # bf16 autocast, when on

    # ---- models: value head, optional frozen reference ----
    value_head = ValueHead(pm.model.get_input_embeddings().embedding_dim, cfg.value_head_inner)
    ref_model = load_reference(cfg)
    policy_params = [p for p in pm.model.parameters() if p.requires_grad]
    params = policy_params + list(value_head.parameters())
    optimizer = torch.optim.AdamW(
        [
            {"params": policy_params, "lr": cfg.lr},
            {"params": list(value_head.parameters()), "lr": cfg.value_lr or cfg.lr},
        ],
        eps=cfg.adam_eps,
        weight_decay=cfg.weight_decay,
    )
    total_steps = cfg.updates * cfg.epochs * math.ceil(cfg.num_envs * cfg.steps_per_env / cfg.minibatch_size)
    warmup = int(cfg.warmup_fraction * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_multiplier(s, total_steps, warmup, cfg.min_lr_ratio, cfg.lr_schedule)
    )
    model, value_head, optimizer = accelerator.prepare(pm.model, value_head, optimizer)
    if ref_model is not None:
        ref_model.to(accelerator.device)
    pm.model = accelerator.unwrap_model(model)  # generation and saving use the plain module
    engine = HFRolloutEngine(pm, batch_size=cfg.generation_batch_size, compile=cfg.compile_rollouts)
    pad_id = pm.tokenizer.pad_token_id
    agent = ActorCritic(model, value_head, pad_id, cfg.micro_batch_size)
    reference = Policy(ref_model, pad_id, cfg.micro_batch_size) if ref_model is not None else None

    # ---- counters: FLOPs continue from the init checkpoint (D_init), or from the resumed one ----
    extra = {"value_head": accelerator.unwrap_model(value_head)}  # checkpointed with the policy
    start, elapsed_before, flops = setup.resume(optimizer, scheduler, extra)
    started = time.perf_counter()
    envs = make_envs(cfg.env_id, cfg.env_kwargs, cfg.num_envs, cfg.max_turns)
    tensorboard = TensorBoardMirror(run.path, "rl", enabled=main and cfg.tensorboard)
    sampling = Sampling(cfg.max_new_tokens, cfg.temperature, do_sample=True)
    timer = PhaseTimer()
    T, E, n = cfg.steps_per_env, cfg.num_envs, cfg.steps_per_env * cfg.num_envs

    with Progress("rl", cfg.updates, start, enabled=main) as progress:
        for update in range(start, cfg.updates):
            timer.reset()
            # ---- 1. rollout: every env answers T times, each at its own turn ----
            with timer("gen"), amp():
                pool = EnvPool(envs, base_seed=pool_seed(cfg, update, rank))
                seed = partial(generate_seed, cfg, update, rank=rank)
                ro = collect_rollout(pool, engine, sampling, seed, T, lambda obs: encode_prompt(pm, obs))
            gen_tokens = sum(len(g.answer_ids) for g in ro.steps)
            buffer_tokens = sum(len(g.prompt_ids) + len(g.answer_ids) for g in ro.steps)

            # ---- 2. score the buffer: old log-probs and values, bootstrap values, reference ----
            model.eval()
            with timer("old_log_prob"), amp():
                weights = answer_weights(pm.tokenizer, ro.steps, cfg.thought_coef, cfg.action_marker)
                old_logp, values = agent.logprobs_and_values(ro.steps, weights)
            with timer("values"), amp():
                boot_values = agent.values(list(ro.bootstrap.values()))
            ref_logp = None
            if reference is not None:
                with timer("ref"), amp():
                    ref_logp = reference.token_logprobs(ro.steps)
            model.train()

            # ---- 3. advantages with exact episode boundaries ----
            with timer("adv"):
                values = values.view(T, E)
                next_values = torch.zeros(T, E)
                next_values[:-1] = values[1:]
                for (t, e), v in zip(ro.bootstrap, boot_values, strict=True):
                    next_values[t, e] = v
                adv, returns = compute_gae(
                    ro.rewards, values, next_values, ro.terminated, ro.truncated, cfg.gamma, cfg.lam
                )
                adv, returns, values = adv.flatten(), returns.flatten(), values.flatten()
                if cfg.normalize_advantages:
                    adv = normalize_advantages(adv)
                buffer = {"logp": old_logp, "adv": adv, "values": values, "returns": returns}

            # ---- 4. PPO epochs over shuffled minibatches ----
            with timer("update_actor"):
                stats = Means("pg_loss", "v_loss", "entropy", "kl_ref", "clipfrac", "approx_kl", "grad_norm")
                g = torch.Generator().manual_seed(cfg.seed * 31 + update)
                trained_tokens = 0
                for _epoch in range(cfg.epochs):
                    perm = torch.randperm(n, generator=g)
                    for mb_start in range(0, n, cfg.minibatch_size):
                        mb = perm[mb_start : mb_start + cfg.minibatch_size]
                        optimizer.zero_grad(set_to_none=True)
                        for mc_start in range(0, len(mb), cfg.micro_batch_size):
                            idx = mb[mc_start : mc_start + cfg.micro_batch_size].tolist()
                            batch = collate([ro.steps[i] for i in idx], pad_id)
                            with amp():
                                out, new_values = agent.logprobs_entropy_and_values(
                                    batch, weight_batch([weights[i] for i in idx], batch)
                                )
                            dev, sel = accelerator.device, torch.tensor(idx)
                            ref_rows = None
                            if ref_logp is not None:
                                ref_rows = pad_rows([ref_logp[i] for i in idx], batch["answer_width"]).to(dev)
                            mb_old = {k: v[sel].to(dev) for k, v in buffer.items()}
                            loss, losses = ppo_loss(cfg, out, new_values, mb_old, ref_rows)
                            accelerator.backward(loss * len(idx) / len(mb))
                            trained_tokens += int(batch["attention_mask"].sum())
                            stats.add(**losses)
                        if cfg.max_grad_norm is not None:
                            stats.add(grad_norm=accelerator.clip_grad_norm_(params, cfg.max_grad_norm))
                        optimizer.step()
                        scheduler.step()

            # ---- 5. counters, log, checkpoint ----
            local = [float(ro.rewards.sum()), n, gen_tokens, buffer_tokens, trained_tokens]
            totals, outcomes, episodes = gather_update(accelerator, local, ro.outcomes, ro.episodes)
            flops.add_buffer_tokens(int(totals[3]))
            flops.add_train_tokens(int(totals[4]))
            seconds = timer.seconds()
            elapsed = elapsed_before + time.perf_counter() - started
            record = {
                "step": update + 1,
                "time": elapsed,
                "flops": flops.total_flops,
                "tokens": flops.total_tokens,
                "d_buffer": flops.d_buffer,
                "processes": world,
                "mean_reward": totals[0] / totals[1],
                **episodes,
                "outcomes": outcomes,
                **stats.means(),
                "explained_variance": explained_variance(values, returns),
                "lr": scheduler.get_last_lr()[0],
                "rollout_tokens_per_s": per_s(totals[2], seconds["time/gen"], world),
                "train_tokens_per_s": per_s(totals[4], seconds["time/update_actor"], world),
                **seconds,
            }
            if main:
                run.log.append(record)
                tensorboard.log(record)
            sr = record["success_rate"]
            progress.update(update + 1, f"reward {record['mean_reward']:+.2f} success {fmt(sr)}")
            if (update + 1) % cfg.save_every == 0 or update + 1 == cfg.updates:
                setup.save(update + 1, flops, elapsed, optimizer, scheduler, extra)
    tensorboard.close()
    for env in envs:
        env.close()
    return run.path
