"""``bf16: auto``: decide once whether bf16 autocast pays on this machine, for this model size.

On a GPU the answer is "bf16 when the GPU supports it". On a CPU it depends on the chip
(AVX512-BF16/AMX make bf16 matmuls several times faster; without them bf16 is emulated and
slower) and on the model's shapes, so :func:`resolve_bf16` measures: the model's own matmul
shapes (a batch of tokens through hidden x hidden, hidden x 4*hidden and 4*hidden x hidden),
for about 0.2 s in fp32 and 0.2 s under bf16 autocast (alternating short rounds, best
round of each), and picks bf16 when it is at least
``MARGIN`` faster. The decision and both rates are cached in ``$SFTVSRL_CACHE/precision.json``
(default ``~/.cache/sftvsrl``), keyed by CPU model, torch version, hidden size and thread
count, so later processes read it instead of measuring; a process measures at most once per
key. ``True``/``False`` force the setting without measuring.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Literal

import torch

Bf16Setting = bool | Literal["auto"]
MARGIN = 1.05  # bf16 must beat fp32 by 5% to be chosen: a tie is not worth the precision
MEASURE_SECONDS = 0.2
ROUNDS = 4  # alternating fp32/bf16 rounds of the measurement
TOKENS = 256  # rows per matmul: a training micro-batch or a rollout batch is of this order

_decided: dict[str, bool] = {}


def cache_dir() -> Path:
    """``$SFTVSRL_CACHE``, else ``~/.cache/sftvsrl``."""
    env = os.environ.get("SFTVSRL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "sftvsrl"


ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")  # what decides fp32 and bf16 matmul speed


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``, else what ``platform`` knows) with the vector
    extensions that decide matmul speed, e.g. ``AMD EPYC [avx2 avx512f avx512_bf16]``.

    The extensions are part of the name because one model name can cover chips that differ
    in them (two "AMD EPYC" machines of this project's kind: one with AVX512-BF16, where bf16
    autocast is faster, one with AVX2 only, where it is emulated and far slower), and both the
    ``bf16: auto`` cache and every benchmark line must tell them apart."""
    name, flags = "", ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                low = line.lower()
                if not name and low.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                elif not flags and low.startswith("flags"):
                    flags = line.split(":", 1)[1]
                if name and flags:
                    break
    except OSError:
        pass
    name = name or platform.processor() or platform.machine() or "unknown CPU"
    present = set(flags.split())
    isa = [f for f in ISA_FLAGS if f in present]
    return f"{name} [{' '.join(isa) or 'no avx2'}]" if flags else name


def measure_rates(hidden: int, device: str = "cpu", seconds: float = MEASURE_SECONDS) -> tuple[float, float]:
    """GFLOP/s of the model's matmul shapes in fp32 and under bf16 autocast (fp32 weights, as
    training and rollouts hold them, so the per-call casts are part of the bf16 cost)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(TOKENS, hidden, generator=gen).to(device)
    ws = [
        torch.randn(hidden, hidden, generator=gen).to(device),
        torch.randn(4 * hidden, hidden, generator=gen).to(device),
        torch.randn(hidden, 4 * hidden, generator=gen).to(device),
    ]
    flops = 2 * TOKENS * (hidden * hidden + 8 * hidden * hidden)

    def step() -> None:
        h = torch.nn.functional.linear(x, ws[0])
        u = torch.nn.functional.linear(h, ws[1])
        torch.nn.functional.linear(u, ws[2])

    # Alternate fp32 and bf16 in short rounds and keep each one's best round: load from other
    # processes then slows both alike instead of deciding the comparison.
    best = [0.0, 0.0]
    with torch.no_grad():
        for _ in range(ROUNDS):
            for i, bf16 in enumerate((False, True)):
                with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
                    step()  # warm-up (kernel selection, allocation)
                    n, start = 0, time.perf_counter()
                    while n < 2 or time.perf_counter() - start < seconds / ROUNDS:
                        step()
                        n += 1
                    best[i] = max(best[i], flops * n / (time.perf_counter() - start) / 1e9)
    return best[0], best[1]


def resolve_bf16(setting: Bf16Setting, *, hidden: int, device: torch.device | str = "cpu") -> bool:
    """Whether to run bf16 autocast: ``True``/``False`` as given; ``"auto"`` decides as above
    and logs the decision (with the two measured rates) to stderr once per process."""
    if isinstance(setting, bool):
        return setting
    if setting != "auto":
        raise ValueError(f"bf16 must be true, false or 'auto', got {setting!r}")
    dev = torch.device(device)
    if dev.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if dev.type != "cpu":
        return False
    key = f"{cpu_model()} | torch {torch.__version__} | hidden {hidden} | threads {torch.get_num_threads()}"
    if key in _decided:
        return _decided[key]
    path = cache_dir() / "precision.json"
    table = _read(path)
    entry = table.get(key)
    source = "cached in " + str(path)
    if not isinstance(entry, dict) or not {"fp32", "bf16"} <= entry.keys():
        fp32, bf16 = measure_rates(hidden, "cpu")
        entry = {"fp32": round(fp32, 2), "bf16": round(bf16, 2), "bf16_chosen": bf16 > MARGIN * fp32}
        table[key] = entry
        _write(path, table)
        source = "measured"
    choice = bool(entry.get("bf16_chosen", entry["bf16"] > MARGIN * entry["fp32"]))
    _decided[key] = choice
    print(
        f"bf16 auto: {'bf16 autocast' if choice else 'fp32'} ({source}: fp32 {entry['fp32']:.1f} GFLOP/s, "
        f"bf16 {entry['bf16']:.1f} GFLOP/s; {key})",
        file=sys.stderr,
    )
    return choice


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, table: dict) -> None:
    """Best effort (a read-only home must not stop a run); atomic so concurrent runs never
    read half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(table, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass


def default_threads() -> int:
    """The thread count ``threads: null`` keeps: torch's current count (its default, one per
    core, or what ``OMP_NUM_THREADS``/an earlier ``torch.set_num_threads`` chose), capped at
    this process's share of the cores when several processes of one launch share a machine
    (``LOCAL_WORLD_SIZE``), so a launch never oversubscribes its own cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        local = 1
    return max(1, min(torch.get_num_threads(), cores // local))


def resolve_threads(threads: int | None) -> int:
    """Apply a config's ``threads``: a positive count as given, ``None`` as
    :func:`default_threads`. Returns the count now in use."""
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1 or null, got {threads}")
    n = threads if threads is not None else default_threads()
    if n != torch.get_num_threads():
        torch.set_num_threads(n)
    return n


def apply_runtime(cfg: Any, pm: Any, device: torch.device | str) -> Any:
    """At trainer start: apply ``cfg.threads`` and resolve ``cfg.bf16`` for this model's hidden
    size. Returns a copy of the config whose ``bf16`` is a bool."""
    resolve_threads(getattr(cfg, "threads", None))
    hidden = pm.model.get_input_embeddings().embedding_dim
    return cfg.model_copy(update={"bf16": resolve_bf16(cfg.bf16, hidden=hidden, device=device)})
