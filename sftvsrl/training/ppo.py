"""Multi-turn PPO with sequential revision, in one loop that reads top to bottom.

One PPO *step* is one answer of one environment: the prompt (first prompt plus every earlier
answer and its feedback) is the state, the whole answer text is the action, its log-prob is the
(optionally thought-weighted) sum of its token log-probs, and the verifier's reward for that
answer is the step's reward. Each update:

1. rollout: ``num_envs`` environments answer ``steps_per_env`` times each, every env at its own
   turn; a finished episode (solved, or out of turns) resets at once. Every update starts new
   episodes from seeds derived from (seed, update, process), so a resumed run sees exactly the
   episodes an uninterrupted one would; episodes still open at the end of the buffer bootstrap
   from the value of their current prompt.
2. scoring: one no-grad forward over all steps gives the old log-probs and values (value head
   on the last prompt token), plus the values of bootstrap states and, with ``kl_coef``, the
   frozen initial policy's log-probs.
3. GAE with exact episode boundaries, then ``epochs`` passes of shuffled minibatches with the
   clipped policy loss, value loss, entropy bonus, KL penalty and gradient clipping.
4. log, checkpoint.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object

from sftvsrl.config import ConfigError
from sftvsrl.flops import FlopsCounter
from sftvsrl.models.loading import load_model
from sftvsrl.training import ppo_io
from sftvsrl.training.checkpoint import (
    checkpoint_path,
    find_latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from sftvsrl.training.ppo_batch import answer_weights, collate, collate_prompts, forward_policy_value
from sftvsrl.training.ppo_config import PPOConfig
from sftvsrl.training.ppo_math import (
    ValueHead,
    compute_gae,
    explained_variance,
    kl_penalty,
    masked_mean,
    normalize_advantages,
    policy_loss,
    value_loss,
)
from sftvsrl.rollout import EnvPool, Generation, HFRolloutEngine, encode_prompt, make_envs


def lr_lambda(cfg: PPOConfig, total_steps: int):
    """Linear warmup then cosine (or constant) decay, as a multiplier of ``cfg.lr``."""
    warmup = int(cfg.warmup_fraction * total_steps)

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if cfg.lr_schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def scored(model, value_head, tokenizer, gens: list[Generation], cfg: PPOConfig, pad_id: int, autocast):
    """Old log-probs, per-token weights and values of a list of steps, in micro-batches."""
    seq_logp, values, token_logp, weights = [], [], [], []
    for i in range(0, len(gens), cfg.micro_batch_size):
        chunk = gens[i : i + cfg.micro_batch_size]
        batch = collate(chunk, pad_id)
        w = answer_weights(tokenizer, chunk, batch["answer_width"], cfg.thought_coef, cfg.action_marker)
        with torch.no_grad(), autocast():
            out = forward_policy_value(model, value_head, batch, w, with_entropy=False)
        seq_logp += out["seq_logp"].float().cpu().unbind()
        values += out["values"].float().cpu().unbind()
        token_logp += [
            row[:n].float().cpu() for row, n in zip(out["token_logp"], batch["answer_lengths"], strict=True)
        ]
        weights += [row[:n] for row, n in zip(w, batch["answer_lengths"], strict=True)]
    return torch.stack(seq_logp), torch.stack(values), token_logp, weights


def prompt_values(
    model, value_head, gens: list[Generation], cfg: PPOConfig, pad_id: int, autocast
) -> torch.Tensor:
    """Values of prompts alone (bootstrap states)."""
    if not gens:
        return torch.zeros(0)
    out = []
    for i in range(0, len(gens), cfg.micro_batch_size):
        batch = collate_prompts(gens[i : i + cfg.micro_batch_size], pad_id)
        with torch.no_grad(), autocast():
            out.append(
                forward_policy_value(model, value_head, batch, with_entropy=False)["values"].float().cpu()
            )
    return torch.cat(out)


def pad_rows(rows: list[torch.Tensor], width: int) -> torch.Tensor:
    out = torch.zeros(len(rows), width)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def train(cfg: PPOConfig, resume: bool = False) -> Path:
    """Run PPO as configured; returns the output folder."""
    # cpu=True without CUDA: under torchrun, accelerate then joins the processes with gloo.
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    # bf16 autocast is ours, not accelerate's mixed_precision: accelerate fixes that setting
    # once per process, and several runs (tests, a study) may share one process.
    device_type = accelerator.device.type

    def autocast():
        return torch.autocast(device_type, dtype=torch.bfloat16, enabled=cfg.bf16)

    rank, world = accelerator.process_index, accelerator.num_processes
    out_dir = Path(cfg.out_dir)
    if accelerator.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.json").write_text(json.dumps(cfg.model_dump(mode="json"), indent=2))
    torch.manual_seed(cfg.seed + rank)

    # ---- models: policy (from the SFT checkpoint), value head, optional frozen reference ----
    resumed = None
    if resume:
        latest = find_latest_checkpoint(out_dir)
        if latest is None:
            raise ConfigError(f"--resume: no checkpoint under {out_dir}/checkpoints")
        resumed = load_checkpoint(latest, dtype=cfg.dtype)
        pm = resumed.pm
    else:
        if find_latest_checkpoint(out_dir) is not None:
            raise ConfigError(f"{out_dir} already holds a run; pass --resume or choose another out_dir")
        pm = load_model(cfg.init, dtype=cfg.dtype, lora=cfg.lora, seed=cfg.seed)
    pm.model.train()
    pad_id = pm.tokenizer.pad_token_id
    hidden = pm.model.get_input_embeddings().embedding_dim
    value_head = ValueHead(hidden, cfg.value_head_inner)
    ref_model = None
    if cfg.kl_coef > 0:
        ref_model = load_model(cfg.init, dtype=cfg.dtype, seed=cfg.seed, trainable=False).model.eval()
        ref_model.requires_grad_(False)
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
    steps_per_update = cfg.epochs * math.ceil(cfg.num_envs * cfg.steps_per_env / cfg.minibatch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, cfg.updates * steps_per_update))
    model, value_head, optimizer = accelerator.prepare(pm.model, value_head, optimizer)
    if ref_model is not None:
        ref_model.to(accelerator.device)
    engine = HFRolloutEngine(pm, batch_size=cfg.generation_batch_size)
    engine.pm.model = accelerator.unwrap_model(model)

    # ---- counters: FLOPs continue from the init checkpoint (D_init), or from the resumed one ----
    start_update = 0
    if resumed is not None:
        resumed.load_module("value_head", accelerator.unwrap_model(value_head))
        resumed.load_optimizer(optimizer)
        resumed.load_scheduler(scheduler)
        resumed.restore_rng(rank)
        start_update = int(resumed.trainer_state["step"])
        flops = FlopsCounter.from_dict(resumed.trainer_state["flops"])
        accelerator.print(f"resumed from {resumed.path} after update {start_update}")
    else:
        flops = ppo_io.init_flops(cfg.init, pm.n_params)
    envs = make_envs(cfg.env_id, cfg.env_kwargs, cfg.num_envs, cfg.max_turns)
    logger = ppo_io.RunLogger(out_dir, enabled=accelerator.is_main_process, tensorboard=cfg.tensorboard)
    last_update = min(cfg.updates, cfg.stop_after or cfg.updates)
    progress = ppo_io.progress_bar(accelerator.is_main_process, start_update, last_update)
    T, E = cfg.steps_per_env, cfg.num_envs

    for update in range(start_update, last_update):
        # ---- 1. rollout: every env answers T times, each at its own turn ----
        t0 = time.perf_counter()
        pool = EnvPool(envs, base_seed=(cfg.seed * 7919 + update * 104729 + rank * 15485863) % 2**31)
        gens: list[list[Generation]] = []
        rewards = torch.zeros(T, E)
        terminated = torch.zeros(T, E, dtype=torch.bool)
        truncated = torch.zeros(T, E, dtype=torch.bool)
        boot_gens: dict[tuple[int, int], Generation] = {}  # (t, e) -> state to bootstrap from
        episodes, outcomes = [], Counter()
        episode_return = [0.0] * E
        with autocast():
            for t in range(T):
                obs = [pool.obs[e] for e in range(E)]
                step_gens = engine.generate(
                    obs,
                    max_new_tokens=cfg.max_new_tokens,
                    temperature=cfg.temperature,
                    do_sample=True,
                    seed=(cfg.seed * 1_000_003 + update * 10_007 + t * 101 + rank) % 2**31,
                )
                gens.append(step_gens)
                for tr in pool.step({e: g.text for e, g in enumerate(step_gens)}):
                    e = tr.env_index
                    rewards[t, e], terminated[t, e], truncated[t, e] = tr.reward, tr.terminated, tr.truncated
                    outcomes[str(tr.info.get("outcome", ""))] += 1
                    episode_return[e] += tr.reward
                    if tr.done:
                        episodes.append((bool(tr.info.get("success", False)), tr.turn + 1, episode_return[e]))
                        episode_return[e] = 0.0
                    if tr.truncated:  # value of the final observation, or of the open episode's prompt
                        boot_gens[(t, e)] = encode_prompt(pm, tr.final_observation)
                    elif t == T - 1 and not tr.terminated:
                        boot_gens[(t, e)] = encode_prompt(pm, pool.obs[e])
        flat = [g for row in gens for g in row]
        rollout_time = time.perf_counter() - t0
        gen_tokens = sum(len(g.answer_ids) for g in flat)
        buffer_tokens = sum(len(g.prompt_ids) + len(g.answer_ids) for g in flat)

        # ---- 2. score the buffer: old log-probs, values, bootstrap values, reference log-probs ----
        model.eval()
        old_logp, values, _, weights = scored(model, value_head, pm.tokenizer, flat, cfg, pad_id, autocast)
        values, old_logp = values.view(T, E), old_logp.view(T, E)
        boot_keys = list(boot_gens)
        boot_v = prompt_values(model, value_head, [boot_gens[k] for k in boot_keys], cfg, pad_id, autocast)
        next_values = torch.zeros(T, E)
        next_values[:-1] = values[1:]
        for (t, e), v in zip(boot_keys, boot_v, strict=True):
            next_values[t, e] = v
        ref_token_logp = None
        if ref_model is not None:
            _, _, ref_token_logp, _ = scored(ref_model, value_head, pm.tokenizer, flat, cfg, pad_id, autocast)
        model.train()

        # ---- 3. advantages with exact episode boundaries ----
        adv, returns = compute_gae(rewards, values, next_values, terminated, truncated, cfg.gamma, cfg.lam)
        valid = torch.ones(T * E, dtype=torch.bool)
        adv, returns, values_f, old_logp = (
            adv.flatten(),
            returns.flatten(),
            values.flatten(),
            old_logp.flatten(),
        )
        if cfg.normalize_advantages:
            adv = normalize_advantages(adv, valid)

        # ---- 4. PPO epochs over shuffled minibatches ----
        t1 = time.perf_counter()
        stats: dict[str, list[float]] = {
            k: [] for k in ("pg_loss", "v_loss", "entropy", "kl_ref", "clipfrac", "approx_kl", "grad_norm")
        }
        g = torch.Generator().manual_seed(cfg.seed * 31 + update)
        trained_tokens = 0
        n = T * E
        for _epoch in range(cfg.epochs):
            perm = torch.randperm(n, generator=g)
            for mb_start in range(0, n, cfg.minibatch_size):
                mb = perm[mb_start : mb_start + cfg.minibatch_size]
                optimizer.zero_grad(set_to_none=True)
                for mc_start in range(0, len(mb), cfg.micro_batch_size):
                    idx = mb[mc_start : mc_start + cfg.micro_batch_size].tolist()
                    chunk = [flat[i] for i in idx]
                    batch = collate(chunk, pad_id)
                    A = batch["answer_width"]
                    w = pad_rows([weights[i] for i in idx], A)
                    with autocast():
                        out = forward_policy_value(model, value_head, batch, w)
                    dev = out["seq_logp"].device
                    sel = torch.tensor(idx)
                    row_mask = torch.ones(len(idx), device=dev)
                    pg, diag = policy_loss(
                        out["seq_logp"], old_logp[sel].to(dev), adv[sel].to(dev), cfg.clip, row_mask
                    )
                    vl = value_loss(
                        out["values"], values_f[sel].to(dev), returns[sel].to(dev), row_mask, cfg.value_clip
                    )
                    ent = masked_mean(out["entropy"], out["mask"])
                    loss = pg + cfg.vf_coef * vl - cfg.ent_coef * ent
                    kl = torch.zeros((), device=dev)
                    if ref_token_logp is not None:
                        kl = kl_penalty(
                            out["token_logp"],
                            pad_rows([ref_token_logp[i] for i in idx], A).to(dev),
                            out["mask"],
                        )
                        loss = loss + cfg.kl_coef * kl
                    accelerator.backward(loss * len(idx) / len(mb))
                    trained_tokens += int(batch["attention_mask"].sum())
                    for k, v in (
                        ("pg_loss", pg),
                        ("v_loss", vl),
                        ("entropy", ent),
                        ("kl_ref", kl),
                        ("clipfrac", diag["clipfrac"]),
                        ("approx_kl", diag["approx_kl"]),
                    ):
                        stats[k].append(float(v.detach()))
                if cfg.max_grad_norm is not None:
                    norm = accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                    stats["grad_norm"].append(float(norm))
                optimizer.step()
                scheduler.step()
        train_time = time.perf_counter() - t1

        # ---- 5. counters, logs, checkpoint ----
        totals = accelerator.reduce(
            torch.tensor(
                [float(rewards.sum()), n, gen_tokens, buffer_tokens, trained_tokens],
                dtype=torch.float64,
                device=accelerator.device,
            ),
            reduction="sum",
        ).tolist()
        flops.add_buffer_tokens(int(totals[3]))
        flops.add_train_tokens(int(totals[4]))
        all_episodes = [x for part in gather_object([episodes]) for x in part]
        all_outcomes: Counter = Counter()
        for part in gather_object([dict(outcomes)]):
            all_outcomes.update(part)
        ev = explained_variance(values_f, returns, valid)
        record = {
            "step": update + 1,
            "processes": world,
            "time": time.time(),
            "flops": flops.total_flops,
            "tokens": flops.total_tokens,
            "d_buffer": flops.d_buffer,
            "mean_reward": totals[0] / totals[1],
            "episodes": len(all_episodes),
            "success_rate": sum(s for s, _, _ in all_episodes) / len(all_episodes) if all_episodes else None,
            "mean_turns": sum(k for _, k, _ in all_episodes) / len(all_episodes) if all_episodes else None,
            "mean_return": sum(r for _, _, r in all_episodes) / len(all_episodes) if all_episodes else None,
            "outcomes": dict(sorted(all_outcomes.items())),
            **{k: (sum(v) / len(v) if v else None) for k, v in stats.items()},
            "explained_variance": None if math.isnan(ev) else ev,
            "lr": scheduler.get_last_lr()[0],
            "rollout_tokens_per_s": totals[2] / rollout_time / world if rollout_time > 0 else None,
            "train_tokens_per_s": totals[4] / train_time / world if train_time > 0 else None,
            "rollout_s": rollout_time,
            "train_s": train_time,
        }
        logger.log(record)
        progress(record)
        if (update + 1) % cfg.save_every == 0 or update + 1 == last_update:
            state = {
                "step": update + 1,
                "stage": "rl",
                "flops": flops.to_dict(),
                "config": cfg.model_dump(mode="json"),
                "time": time.time(),
            }
            save_checkpoint(
                checkpoint_path(out_dir, update + 1),
                pm,
                state,
                optimizer=optimizer,
                scheduler=scheduler,
                extra_modules={"value_head": accelerator.unwrap_model(value_head)},
                dist=accelerator,
                keep_last=cfg.keep_checkpoints,
            )
    logger.close()
    for env in envs:
        env.close()
    return out_dir
