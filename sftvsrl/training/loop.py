"""The small skeleton both trainers share: LR schedule, progress reporting, phase timing,
the TensorBoard mirror of log records, and the CPU multi-process launch check."""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TextIO

import torch


def cpu_only_launch() -> bool:
    """True for a multi-process launch on a machine without GPUs: use CPU processes with gloo.
    (accelerate would otherwise give each torchrun process its own unconnected world.)"""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return world > 1 and not torch.cuda.is_available()


def lr_multiplier(
    step: int,
    total: int,
    warmup: int,
    min_ratio: float,
    schedule: Literal["cosine", "constant"] = "cosine",
) -> float:
    """Linear warmup ``(step+1)/warmup`` to 1, then cosine down to ``min_ratio`` at ``total``
    steps (or constant 1): the factor a ``LambdaLR`` multiplies the base LR by."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Progress:
    """Progress over ``total`` steps: a rich bar on a terminal; in a log file (stderr not a
    terminal) a plain line every ``every`` seconds and at the end, so logs stay readable:
    ``label step/total, rate, ETA, info`` (the trainers put the last loss or reward in info).

    Use as a context manager; ``update(step, info)`` after each step, or ``advance(n)``.
    ``unit`` names what is counted in the rate (``steps/s``, ``episodes/s``).
    """

    def __init__(
        self,
        label: str,
        total: int,
        done: int = 0,
        enabled: bool = True,
        *,
        stream: TextIO | None = None,
        every: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        unit: str = "steps",
    ) -> None:
        self.label, self.total, self.enabled, self.unit = label, total, enabled, unit
        self.stream = stream or sys.stderr
        self.every, self.clock = every, clock
        self.start_step, self.step, self.printed_step, self.info = done, done, done, ""
        self.bar = None
        self.tty = enabled and self.stream.isatty()
        if self.tty:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(
                TextColumn(label),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                console=Console(file=self.stream),
            )
            self.task = self.bar.add_task(label, total=total, completed=done, info="")

    def __enter__(self) -> Progress:
        self.t0 = self.last_print = self.clock()
        if self.bar is not None:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
        elif self.enabled and self.step != self.printed_step:
            self._print()  # the final position, unless the last update just printed it

    def update(self, step: int, info: str = "") -> None:
        if not self.enabled:
            return
        self.step, self.info = step, info
        if self.bar is not None:
            self.bar.update(self.task, completed=step, info=info)
        elif self.clock() - self.last_print >= self.every or step >= self.total:
            self._print()

    def advance(self, n: int = 1, info: str = "") -> None:
        """``update(step + n, info)``: for callers that count finished items."""
        self.update(self.step + n, info)

    def line(self) -> str:
        """``label step/total, rate, ETA, info`` (rate and ETA over this attempt's steps)."""
        now = self.clock()
        dt, done = now - self.t0, self.step - self.start_step
        rate = done / dt if dt > 0 else 0.0
        eta = _duration((self.total - self.step) / rate) if rate > 0 else "?"
        parts = [f"{self.label} {self.step}/{self.total}", f"{rate:.3g} {self.unit}/s", f"ETA {eta}"]
        return ", ".join(parts + ([self.info] if self.info else []))

    def _print(self) -> None:
        self.last_print, self.printed_step = self.clock(), self.step
        print(self.line(), file=self.stream, flush=True)


class PhaseTimer:
    """Seconds spent in named phases of one update (``with timer("gen"): ...``), logged as
    ``time/<phase>``; ``reset()`` after each update's record."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.totals: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = self.clock()
        try:
            yield
        finally:
            self.totals[name] = self.totals.get(name, 0.0) + self.clock() - t0

    def seconds(self) -> dict[str, float]:
        return {f"time/{name}": s for name, s in self.totals.items()}

    def reset(self) -> None:
        self.totals = {}


class TensorBoardMirror:
    """Numeric fields of each log record as TensorBoard scalars under ``<run>/tensorboard``
    (a no-op when disabled or when tensorboard is not installed)."""

    def __init__(self, run_dir: str | Path, prefix: str, enabled: bool = True) -> None:
        self.prefix, self.writer = prefix, None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                return
            self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"))

    def log(self, record: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for k, v in record.items():
            if isinstance(v, (int, float)) and k not in ("step", "time"):
                self.writer.add_scalar(f"{self.prefix}/{k}", v, record["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def resumed_runtime(cfg: Any, saved: dict[str, Any]) -> Any:
    """A resumed run keeps the precision it was trained in: ``bf16: auto`` takes the
    checkpoint's resolved value instead of measuring again (another CPU could decide otherwise
    and the resume would no longer be exact)."""
    if getattr(cfg, "bf16", None) == "auto" and isinstance(saved.get("bf16"), bool):
        return cfg.model_copy(update={"bf16": saved["bf16"]})
    return cfg
