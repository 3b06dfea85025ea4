"""Supervised fine-tuning: next-token NLL on the completion tokens of prompt/completion rows.

One readable loop on accelerate (one CPU process, several gloo processes, or GPUs under
DDP/FSDP/DeepSpeed from an ``accelerate launch`` config). Data order is a seeded permutation
per epoch and the position in it is part of the checkpoint, so ``resume=True`` continues
exactly where a run stopped: same batches, same optimizer/scheduler/RNG state, same losses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from sftvsrl.config import ConfigError, StrictModel
from sftvsrl.errors import DataError
from sftvsrl.flops import FlopsCounter, count_tokens, measure_matmul_peak, mfu
from sftvsrl.models.encoding import IGNORE_INDEX, encode_sft_batch
from sftvsrl.models.loading import (
    LoraSettings,
    PolicyModel,
    autocast,
    load_checkpoint,
    load_model,
    save_model,
    unwrap,
)
from sftvsrl.models.precision import apply_runtime
from sftvsrl.resume import check_resume_config
from sftvsrl.runs import RunDir, TrainerState, lineage_flops, read_trainer_state
from sftvsrl.training.loop import Progress, cpu_only_launch, lr_multiplier, resumed_runtime
from sftvsrl.training.sft_data import SFTDataset, load_sft_jsonl


class SFTData(StrictModel):
    train: str = Field(description="prompt/completion JSONL written by `sftvsrl data`")
    eval: str | None = Field(None, description="optional held-out JSONL for a validation loss")


LENGTH_WINDOW = 64  # global batches sorted together by ``group_by_length``


class SFTConfig(StrictModel):
    """Everything an SFT run needs; every field can be overridden as ``key=value``."""

    model: str = Field("tiny-lm", description="tiny-lm, tiny-vlm, an HF folder or a checkpoint folder")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    bf16: bool | Literal["auto"] = Field("auto", description="bf16 autocast; auto: measured once per CPU")
    threads: int | None = Field(None, ge=1, description="torch threads; null: capped torch default")
    lora: LoraSettings | None = None
    data: SFTData
    out_dir: str = "runs/sft"
    seed: int = 0
    batch_size: int = Field(32, gt=0, description="examples per process per micro-batch")
    grad_accum: int = Field(1, gt=0)
    epochs: int = Field(1, gt=0)
    max_steps: int | None = Field(None, gt=0, description="optimizer steps; when set, replaces epochs")
    lr: float = Field(1e-3, gt=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float | None = Field(1.0, gt=0)
    save_every: int = Field(100, gt=0, description="optimizer steps between checkpoints")
    keep_last: int = Field(2, gt=0)
    log_every: int = Field(1, gt=0)
    group_by_length: bool = Field(
        False,
        description="batch rows of similar length together (sorted within shuffled windows of "
        f"{LENGTH_WINDOW} global batches, then the batches shuffled): less padding, the same rows per epoch",
    )
    eval_every: int | None = Field(None, gt=0, description="steps between validation losses")
    progress: bool = True

    @model_validator(mode="after")
    def _check(self) -> SFTConfig:
        if self.eval_every is not None and self.data.eval is None:
            raise ValueError("eval_every needs data.eval")
        return self


# Settings a resume can take new values of: bookkeeping only, never the trained numbers.
RESUMABLE = (
    "out_dir",
    "save_every",
    "keep_last",
    "log_every",
    "eval_every",
    "data.eval",
    "progress",
    "threads",
)


def check_resume(cfg: SFTConfig, checkpoint: Path) -> SFTConfig:
    """Refuse a resume that changes the LR schedule, data order, model or numerics of the run;
    returns ``cfg`` with the checkpoint's resolved precision when it asks for ``bf16: auto``."""
    saved = read_trainer_state(checkpoint).config
    cfg = resumed_runtime(cfg, saved)
    allowed = list(RESUMABLE)
    if saved.get("min_lr_ratio") == 1.0 and cfg.min_lr_ratio == 1.0:
        allowed += ["max_steps", "epochs"]  # a constant LR after warmup: the length may change
    elif saved.get("max_steps") is not None and saved.get("max_steps") == cfg.max_steps:
        allowed.append("epochs")  # max_steps replaces epochs
    new = cfg.model_dump(mode="json")
    check_resume_config(saved, new, allowed=allowed, paths=("model", "data.train"), where=checkpoint)
    return cfg


def completion_nll(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Mean next-token NLL over labelled (completion + eos) positions, and their count."""
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "completion_mask")}
    logits = model(**inputs).logits[:, :-1].float()
    targets = batch["labels"][:, 1:]
    n = int((targets != IGNORE_INDEX).sum())
    loss = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX
    )
    return loss, n


class SFTTrainer:
    """Holds the run's state; ``train()`` runs until ``total_steps``."""

    def __init__(
        self,
        cfg: SFTConfig,
        *,
        resume: bool = False,
        on_log: Callable[[dict[str, Any]], None] | None = None,
        on_checkpoint: Callable[[Path], bool | None] | None = None,
    ) -> None:
        """``on_checkpoint(path)`` runs on the main process after each save; returning True
        stops training there on every process (early stopping)."""
        from accelerate import Accelerator
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # per-shard save/load bars would drown our own
        self.cfg = cfg
        self.on_log, self.on_checkpoint = on_log, on_checkpoint
        self.stop_requested = False
        self.run = RunDir(cfg.out_dir)
        self.acc = Accelerator(gradient_accumulation_steps=cfg.grad_accum, cpu=cpu_only_launch())
        torch.manual_seed(cfg.seed)
        self.train_data = load_sft_jsonl(cfg.data.train)
        self.eval_data = load_sft_jsonl(cfg.data.eval) if cfg.data.eval else None

        resume_from = self.run.start(resume)  # refuses before anything is written
        if resume_from is not None:
            cfg = check_resume(cfg, resume_from)
        self.run.check_writable()  # a read-only or missing output folder fails before any compute
        if resume_from is not None:
            ck = load_checkpoint(resume_from, dtype=cfg.dtype, trainable=True)
            self.pm, state = ck.pm, ck.state
            self.flops = FlopsCounter.from_dict(state.flops)
        else:
            ck, state = None, TrainerState(stage="sft", step=0)
            self.pm = self._initial_model()
        self.cfg = cfg = apply_runtime(cfg, self.pm, self.acc.device)  # threads; bf16 auto -> bool
        self._check_data(self.train_data)
        self.world = self.acc.num_processes
        self.global_batch = cfg.batch_size * self.world * cfg.grad_accum
        self.steps_per_epoch = len(self.train_data) // self.global_batch
        self._order_cache: tuple[int, torch.Tensor] | None = None  # (epoch, its row order)
        if self.steps_per_epoch == 0:
            raise DataError(
                f"{self.train_data.path}: {len(self.train_data)} rows is less than one optimizer step "
                f"({cfg.batch_size} x {self.world} processes x {cfg.grad_accum} accumulation)"
            )
        self.total_steps = cfg.max_steps or cfg.epochs * self.steps_per_epoch
        saved_batch = state.extra.get("data_position", {}).get("global_batch", self.global_batch)
        if saved_batch != self.global_batch:
            raise ConfigError(
                f"--resume: the checkpoint used {saved_batch} examples per step, this launch would use "
                f"{self.global_batch} (batch_size x processes x grad_accum must not change)"
            )
        params = [p for p in self.pm.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_multiplier(s, self.total_steps, cfg.warmup_steps, cfg.min_lr_ratio)
        )
        if ck is not None:
            ck.load_optimizer(optimizer)
            ck.load_scheduler(self.scheduler)
        self.model, self.optimizer = self.acc.prepare(self.pm.model, optimizer)
        self.step = state.step
        self.elapsed = state.elapsed
        self.examples = int(state.extra.get("examples", 0))
        self.peak = measure_matmul_peak("bfloat16" if cfg.bf16 else "float32", device=str(self.acc.device))
        if ck is not None:  # last, so that nothing after it draws from the restored RNG
            ck.restore_rng(self.acc.process_index)
        if self.acc.is_main_process:
            self.run.log.truncate(self.step)  # drop lines after the checkpoint (all of them if fresh)
            self.run.write_config(cfg)

    # ------------------------------------------------------------ setup helpers

    def _initial_model(self) -> PolicyModel:
        """Fresh tiny model, an HF folder, or a checkpoint whose FLOPs this stage adds to."""
        cfg = self.cfg
        pm = load_model(cfg.model, dtype=cfg.dtype, lora=cfg.lora, seed=cfg.seed)
        prior = lineage_flops(cfg.model) if Path(cfg.model).is_dir() else None
        self.flops = (
            FlopsCounter.from_dict(prior).next_stage(pm.n_params) if prior else FlopsCounter(pm.n_params)
        )
        return pm

    def _check_data(self, data: SFTDataset) -> None:
        if self.pm.is_vision and not all(img is not None for img in data.images):
            i = next(i for i, img in enumerate(data.images) if img is None)
            raise DataError(f"{data.where(i)}: the model {self.cfg.model} needs an image per row ('images')")
        if not self.pm.is_vision and data.has_images:
            raise DataError(f"{data.path}: rows have images but {self.cfg.model} is a text-only model")

    # ------------------------------------------------------------ data order

    def _order(self, epoch: int) -> torch.Tensor:
        """One epoch's row order, a pure function of (seed, epoch): a seeded permutation; with
        ``group_by_length``, each window of ``LENGTH_WINDOW`` global batches of it is sorted by
        row length and cut into batches, and the window's batches are shuffled. A batch then
        pads to rows of its own length instead of to the one long (revision) row it holds."""
        if self._order_cache is not None and self._order_cache[0] == epoch:
            return self._order_cache[1]
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + epoch)
        perm = torch.randperm(len(self.train_data), generator=g)
        if self.cfg.group_by_length:
            data, batch = self.train_data, self.global_batch
            used = self.steps_per_epoch * batch
            lengths = torch.tensor(
                [len(p) + len(c) for p, c in zip(data.prompts, data.completions, strict=True)]
            )
            parts = []
            for start in range(0, used, batch * LENGTH_WINDOW):
                window = perm[start : min(start + batch * LENGTH_WINDOW, used)]
                batches = window[torch.argsort(lengths[window], stable=True)].view(-1, batch)
                parts.append(batches[torch.randperm(len(batches), generator=g)].reshape(-1))
            perm = torch.cat([*parts, perm[used:]])
        self._order_cache = (epoch, perm)
        return perm

    def _indices(self, step: int, micro: int) -> list[int]:
        """The rows of one process's micro-batch: a pure function of (seed, step), hence resumable."""
        epoch, in_epoch = divmod(step, self.steps_per_epoch)
        perm = self._order(epoch)
        start = (
            in_epoch * self.global_batch + (micro * self.world + self.acc.process_index) * self.cfg.batch_size
        )
        return perm[start : start + self.cfg.batch_size].tolist()

    def _batch(self, data: SFTDataset, idx: list[int]) -> dict[str, torch.Tensor]:
        batch = encode_sft_batch(
            self.pm, [data.observation(i) for i in idx], [data.completions[i] for i in idx]
        )
        limit = getattr(unwrap(self.model).config.get_text_config(), "max_position_embeddings", None)
        if limit is not None and batch["input_ids"].shape[1] > limit:
            lengths = batch["attention_mask"].sum(1)
            worst = idx[int(lengths.argmax())]
            raise DataError(
                f"{data.where(worst)}: {int(lengths.max())} tokens, over the model's limit of {limit}"
            )
        return {k: v.to(self.acc.device) for k, v in batch.items()}

    # ------------------------------------------------------------ loop

    def train(self) -> Path:
        cfg, acc = self.cfg, self.acc
        self.model.train()
        progress = Progress("sft", self.total_steps, self.step, enabled=cfg.progress and acc.is_main_process)
        last_saved = None
        with progress:
            while self.step < self.total_steps:
                t0 = time.perf_counter()
                loss_sum, tokens = 0.0, 0
                grad_norm = None
                for micro in range(cfg.grad_accum):
                    batch = self._batch(self.train_data, self._indices(self.step, micro))
                    tokens += count_tokens(batch["attention_mask"])
                    with acc.accumulate(self.model), autocast(acc.device, cfg.bf16):
                        loss, _ = completion_nll(self.model, batch)
                        acc.backward(loss)
                        if acc.sync_gradients and cfg.grad_clip is not None:
                            grad_norm = acc.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                        self.optimizer.step()
                        self.optimizer.zero_grad()
                    loss_sum += loss.item() / cfg.grad_accum
                self.scheduler.step()
                self.step += 1
                step_tokens = int(acc.reduce(torch.tensor(tokens, device=acc.device), "sum").item())
                step_loss = float(acc.reduce(torch.tensor(loss_sum, device=acc.device), "mean").item())
                self.flops.add_train_tokens(step_tokens)
                self.examples += self.global_batch
                dt = time.perf_counter() - t0
                self.elapsed += dt
                record = self._record(step_loss, step_tokens, dt, grad_norm)
                if self.eval_data is not None and cfg.eval_every and self.step % cfg.eval_every == 0:
                    record["eval_loss"] = self.evaluate_loss()
                if self.step % cfg.log_every == 0 or self.step == self.total_steps:
                    self._log(record)
                progress.update(self.step, _progress_info(record))
                if self.step % cfg.save_every == 0 or self.step == self.total_steps:
                    last_saved = self.save()
                    if self.stop_requested:
                        break
        return last_saved or self.run.checkpoint_path(self.step)

    def _record(self, loss: float, tokens: int, dt: float, grad_norm: Any) -> dict[str, Any]:
        step_flops = 6.0 * self.flops.n_params * tokens
        return {
            "step": self.step,
            "epoch": self.step / self.steps_per_epoch,
            "flops": self.flops.total_flops,
            "tokens": self.flops.total_tokens,
            "time": round(self.elapsed, 4),
            "loss": loss,
            "lr": self.scheduler.get_last_lr()[0],
            "grad_norm": None if grad_norm is None else float(grad_norm),
            "examples": self.examples,
            "tokens_per_s": tokens / dt if dt > 0 else 0.0,
            "mfu": mfu(step_flops, dt, self.peak * self.world),
        }

    def _log(self, record: dict[str, Any]) -> None:
        if self.acc.is_main_process:
            self.run.log.append(record)
            if self.on_log:
                self.on_log(record)

    @torch.no_grad()
    def evaluate_loss(self) -> float:
        """Completion NLL over the whole eval file (token-weighted, all processes)."""
        assert self.eval_data is not None
        self.model.eval()
        total, count = 0.0, 0
        bs = self.cfg.batch_size
        for start in range(self.acc.process_index * bs, len(self.eval_data), bs * self.world):
            batch = self._batch(self.eval_data, list(range(start, min(start + bs, len(self.eval_data)))))
            with autocast(self.acc.device, self.cfg.bf16):
                loss, n = completion_nll(self.model, batch)
            total += loss.item() * n
            count += n
        self.model.train()
        sums = self.acc.reduce(torch.tensor([total, float(count)], device=self.acc.device), "sum")
        return float(sums[0] / max(sums[1], 1.0))

    def save(self) -> Path:
        self.pm.model = self.acc.unwrap_model(self.model)
        sharded = self.acc.distributed_type.value in ("FSDP", "DEEPSPEED")
        # gathering a sharded model's weights is collective: every process takes part
        full_state = self.acc.get_state_dict(self.model) if sharded else None
        state = TrainerState(
            stage="sft",
            step=self.step,
            flops=self.flops.to_dict(),
            elapsed=self.elapsed,
            config=self.cfg.model_dump(mode="json"),
            extra={
                "total_steps": self.total_steps,
                "examples": self.examples,
                "data_position": {
                    "epoch": self.step // self.steps_per_epoch,
                    "step_in_epoch": self.step % self.steps_per_epoch,
                    "global_batch": self.global_batch,
                    "seed": self.cfg.seed,
                },
                "world_size": self.world,
            },
        )
        pm = self.pm
        path = self.run.save_checkpoint(
            self.step,
            write_model=lambda folder: save_model(pm, folder, state_dict=full_state),
            state=state,
            optimizer=self.optimizer.optimizer if hasattr(self.optimizer, "optimizer") else self.optimizer,
            scheduler=self.scheduler,
            dist=self.acc,
            keep_last=self.cfg.keep_last,
        )
        stop = bool(self.on_checkpoint(path)) if self.acc.is_main_process and self.on_checkpoint else False
        # The main process decides; every process must leave the loop at the same step.
        flag = torch.tensor([1.0 if stop else 0.0], device=self.acc.device)
        self.stop_requested = bool(self.acc.reduce(flag, "sum").item() > 0)
        return path


def _progress_info(r: dict[str, Any]) -> str:
    return (
        f"loss {r['loss']:.4f}  {r['tokens_per_s']:,.0f} tok/s  MFU {100 * r['mfu']:.1f}%  "
        f"{r['flops']:.3e} FLOPs"
    )


def train_sft(cfg: SFTConfig, *, resume: bool = False, **hooks: Any) -> Path:
    """Run SFT and return the final checkpoint's folder."""
    return SFTTrainer(cfg, resume=resume, **hooks).train()
