"""The paper's training-compute accounting, from tokens actually processed.

    X_SFT = 6 N (D_init + D_SFT)
    X_RL  = 6 N (D_init + D_RL) + 2 N D_buffer

N is the parameter count; D the number of tokens that went through a forward and backward
pass (6N per token: 2N forward, 4N backward) and D_buffer the tokens that only went forward
(rollout generation, 2N per token). D_init is what the starting checkpoint was trained on, so
FLOPs accumulate across stages: the counter is saved in each checkpoint and the next stage
starts from it.

LoRA: N is the full model's parameter count, frozen weights included. The forward pass runs
through every weight and the backward pass still propagates activations' gradients through
the frozen ones, so counting only the adapters would understate compute by orders of
magnitude. (Skipping the frozen weights' weight-gradients saves up to 2N of the 6N; we keep
the paper's formula as is, so numbers stay comparable with it.)

Tokens are the non-padding positions of a batch (prompt and answer; for a VLM the expanded
image placeholder positions too), i.e. ``attention_mask.sum()``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any


def sft_flops(n_params: int, d_init: int, d_sft: int) -> float:
    """X_SFT = 6N(D_init + D_SFT)."""
    return 6.0 * n_params * (d_init + d_sft)


def rl_flops(n_params: int, d_init: int, d_rl: int, d_buffer: int) -> float:
    """X_RL = 6N(D_init + D_RL) + 2N*D_buffer."""
    return 6.0 * n_params * (d_init + d_rl) + 2.0 * n_params * d_buffer


def sft_steps_for_budget(budget_gflops: float, n_params: int, tokens_per_step: float) -> int:
    """SFT optimizer steps that spend ``budget_gflops`` at 6N FLOPs per token (at least one):
    how the study matches SFT's compute to RL's."""
    return max(1, round(budget_gflops * 1e9 / (6 * n_params * tokens_per_step)))


def count_tokens(attention_mask: Any) -> int:
    """Non-padding tokens of a batch (a tensor or nested lists of 0/1)."""
    if hasattr(attention_mask, "sum") and hasattr(attention_mask, "dtype"):
        return int(attention_mask.sum().item())
    return int(sum(sum(row) for row in attention_mask))


@dataclass
class FlopsCounter:
    """Cumulative compute of one model lineage; lives in ``trainer_state.json``.

    ``init_flops`` and ``d_init`` come from the starting checkpoint; ``d_train`` counts tokens
    trained on (forward + backward) in this stage, ``d_buffer`` tokens only generated/scored.
    """

    n_params: int
    d_init: int = 0
    init_flops: float = 0.0
    d_train: int = 0
    d_buffer: int = 0

    def add_train_tokens(self, n: int) -> None:
        self.d_train += int(n)

    def add_buffer_tokens(self, n: int) -> None:
        self.d_buffer += int(n)

    @property
    def stage_flops(self) -> float:
        """FLOPs of this stage alone: 6N*D + 2N*D_buffer."""
        return 6.0 * self.n_params * self.d_train + 2.0 * self.n_params * self.d_buffer

    @property
    def total_flops(self) -> float:
        """All FLOPs since the lineage started (the x axis of the paper's curves).

        When the whole lineage has one N, this equals ``rl_flops(N, d_init, d_train, d_buffer)``
        (and ``sft_flops`` without buffer); carrying FLOPs rather than tokens keeps the sum right
        even if an earlier stage had another N.
        """
        return self.init_flops + self.stage_flops

    @property
    def total_tokens(self) -> int:
        return self.d_init + self.d_train

    def next_stage(self, n_params: int | None = None) -> FlopsCounter:
        """A counter for a stage that starts from this one's result."""
        return FlopsCounter(
            n_params=self.n_params if n_params is None else n_params,
            d_init=self.total_tokens,
            init_flops=self.total_flops,
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_flops": self.total_flops, "total_tokens": self.total_tokens}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FlopsCounter:
        fields = ("n_params", "d_init", "init_flops", "d_train", "d_buffer")
        missing = [f for f in fields if f not in data]
        if missing:
            raise ValueError(f"FLOPs state is missing {missing}")
        return cls(
            n_params=int(data["n_params"]),
            d_init=int(data["d_init"]),
            init_flops=float(data["init_flops"]),
            d_train=int(data["d_train"]),
            d_buffer=int(data["d_buffer"]),
        )


def measure_matmul_peak(
    dtype: str = "bfloat16", device: str = "cpu", size: int = 1024, seconds: float = 0.5, trials: int = 5
) -> float:
    """Best achieved FLOP/s of a square matmul loop over a few short trials: the denominator of
    MFU, measured on this machine (nominal peaks mean little on shared or throttled CPUs; the
    best trial is the one least disturbed by other processes)."""
    import torch

    dt = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}[dtype]
    g = torch.Generator(device=device).manual_seed(0)  # never touch the global RNG (exact resume)
    a = torch.randn(size, size, device=device, dtype=dt, generator=g)
    b = torch.randn(size, size, device=device, dtype=dt, generator=g)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    for _ in range(2):
        a @ b
    sync()
    best = 0.0
    for _ in range(trials):
        n, start = 0, time.perf_counter()
        while True:
            a @ b
            n += 1
            sync()
            elapsed = time.perf_counter() - start
            if elapsed >= seconds / trials:
                break
        best = max(best, 2.0 * size**3 * n / elapsed)
    return best


def mfu(flops: float, seconds: float, peak_flops_per_s: float) -> float:
    """Model FLOPs utilisation: achieved model FLOP/s over the measured peak."""
    if seconds <= 0 or peak_flops_per_s <= 0:
        return 0.0
    return flops / seconds / peak_flops_per_s
