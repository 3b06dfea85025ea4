"""Run folders: the one on-disk layout every trainer reads and writes.

Layout of ``<run>/``::

    config.yaml                   the resolved config of the run (every trainer)
    log.jsonl                     one JSON record per logged step: step, time (elapsed s), flops, tokens, ...
    checkpoints/step-00000042/
        config.json, model.safetensors, tokenizer/processor files   (a loadable HF model folder)
        adapter/                  LoRA adapters, when training with LoRA
        trainer_state.json        TrainerState: stage, step, FLOPs, elapsed, config, extra
        optimizer.pt, scheduler.pt    torch.save'd state dicts
        rng_state_<rank>.pt       python/numpy/torch(/cuda) RNG states, one file per process
        <name>.safetensors        extra modules (e.g. the PPO value head)

A checkpoint is written under a temporary name, fsynced, and renamed into place, so a crash
leaves either the old checkpoint or the new one, never half of one. This module knows nothing
about models: the caller passes a ``write_model(folder)`` function (see models/loading.py for
loading a checkpoint together with its model). The log is runlog.py's, the RNG states rng.py's.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors import safe_open
from safetensors.torch import load_model as load_module_safetensors
from safetensors.torch import save_model as save_module_safetensors

from sftvsrl.atomic import atomic_write_text, fsync_dir, fsync_tree
from sftvsrl.errors import CheckpointError, ConfigError, RunWarning, UserError, warn_once
from sftvsrl.flops import FlopsCounter
from sftvsrl.rng import rng_state, set_rng_state
from sftvsrl.runlog import RunLog
from sftvsrl.writable import ensure_writable, os_reason, write_probe

CHECKPOINTS_DIR = "checkpoints"
TRAINER_STATE = "trainer_state.json"
LOG_FILE = "log.jsonl"
CONFIG_FILE = "config.yaml"
OPTIMIZER_FILE = "optimizer.pt"
SCHEDULER_FILE = "scheduler.pt"
STATE_FILES = (TRAINER_STATE, OPTIMIZER_FILE, SCHEDULER_FILE)  # what export_model leaves out
STEP_DIR = re.compile(r"^step-(\d+)$")


# ---------------------------------------------------------------- trainer state


@dataclass
class TrainerState:
    """What ``trainer_state.json`` holds; ``extra`` is the algorithm's own (data position, ...)."""

    stage: str
    step: int
    flops: dict[str, Any] = field(default_factory=dict)
    elapsed: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        """Tokens trained on over the whole lineage (0 without a FLOPs counter)."""
        return FlopsCounter.from_dict(self.flops).total_tokens if self.flops else 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str | Path = TRAINER_STATE) -> TrainerState:
        """Read the current format, or the older flat one (unknown top-level keys go to ``extra``)."""
        if not isinstance(data, dict):
            raise CheckpointError(f"{where}: expected a JSON object")
        data = dict(data)
        extra = data.pop("extra", {})
        try:
            state = cls(
                stage=str(data.pop("stage", "")),
                step=int(data.pop("step")),
                flops=dict(data.pop("flops", None) or {}),
                elapsed=float(data.pop("elapsed", 0.0)),
                config=dict(data.pop("config", None) or {}),
                extra={**data, **dict(extra)},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"{where}: not a valid trainer state ({type(exc).__name__}: {exc})"
            ) from None
        if state.flops:
            try:
                FlopsCounter.from_dict(state.flops)
            except (TypeError, ValueError) as exc:
                raise CheckpointError(f"{where}: bad 'flops' entry ({exc})") from None
        return state


def read_trainer_state(ckpt: str | Path) -> TrainerState:
    f = Path(ckpt) / TRAINER_STATE
    if not f.is_file():
        raise CheckpointError(f"{f}: missing (not a complete checkpoint)")
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{f}: corrupt JSON ({exc})") from None
    return TrainerState.from_dict(data, where=f)


# ---------------------------------------------------------------- processes


class Distributed(Protocol):
    """What checkpointing needs from ``accelerate.Accelerator`` (or a single process)."""

    is_main_process: bool
    process_index: int

    def wait_for_everyone(self) -> None: ...


class SingleProcess:
    is_main_process = True
    process_index = 0

    def wait_for_everyone(self) -> None:
        return None


# ---------------------------------------------------------------- the run folder


def _complete_steps(checkpoints_dir: Path) -> list[tuple[int, Path]]:
    """``step-N`` folders that hold a trainer state; any other ``step-N`` entry is warned about
    (once) and skipped, and never deleted: the trainer did not write it, or not all of it."""
    if not checkpoints_dir.is_dir():
        return []
    found = []
    for child in checkpoints_dir.iterdir():
        m = STEP_DIR.match(child.name)
        if not m:
            continue
        if child.is_dir() and (child / TRAINER_STATE).is_file():
            found.append((int(m.group(1)), child))
        else:
            warn_once(f"{child}: no {TRAINER_STATE}, not a complete checkpoint: skipped (never deleted)")
    return sorted(found)


class RunDir:
    """One training run's folder: config, log and checkpoints."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.log = RunLog(self.path / LOG_FILE)
        self.config_path = self.path / CONFIG_FILE

    def checkpoint_path(self, step: int) -> Path:
        return self.path / CHECKPOINTS_DIR / f"step-{step:08d}"

    def checkpoints(self) -> list[tuple[int, Path]]:
        """Complete checkpoints (those with a trainer state), by step."""
        return _complete_steps(self.path / CHECKPOINTS_DIR)

    def latest(self) -> Path | None:
        steps = self.checkpoints()
        return steps[-1][1] if steps else None

    def start(self, resume: bool) -> Path | None:
        """The fresh-or-resume guard, before anything is written: a refused launch never
        touches an existing run. Returns the checkpoint to resume from (None when fresh)."""
        latest = self.latest()
        if resume and latest is None:
            raise ConfigError(f"--resume: no complete checkpoint under {self.path / CHECKPOINTS_DIR}")
        if not resume and latest is not None:
            raise ConfigError(
                f"{self.path} already holds a run: pass --resume to continue it, or another out_dir"
            )
        return latest

    def write_config(self, cfg: Any) -> Path:
        """The resolved config (a pydantic model) as YAML, so the run can be repeated."""
        import yaml

        text = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
        try:
            return atomic_write_text(self.config_path, text)
        except OSError as exc:
            raise UserError(f"{self.config_path}: writing the config failed ({os_reason(exc)})") from None

    def save_checkpoint(
        self,
        step: int,
        *,
        write_model: Callable[[Path], None],
        state: TrainerState,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Any | None = None,
        extra_modules: dict[str, torch.nn.Module] | None = None,
        dist: Distributed | None = None,
        keep_last: int | None = None,
    ) -> Path:
        """Write checkpoint ``step`` atomically; every process must call it (each saves its RNG).

        The main process calls ``write_model(folder)`` and writes the trainer state, optimizer and
        scheduler (identical on every data-parallel rank) and ``extra_modules`` as
        ``<name>.safetensors``; then renames the folder into place (the previous checkpoint
        stays until then) and, with ``keep_last``, deletes the oldest complete checkpoints.
        A write that fails (disk full, read-only) leaves no partial folder behind and raises a
        one-line ``CheckpointError``.
        """
        dist = dist or SingleProcess()
        path = self.checkpoint_path(step)
        tmp = path.parent / f".{path.name}.tmp"
        if dist.is_main_process:
            with self._writing(tmp, path):
                path.parent.mkdir(parents=True, exist_ok=True)
                if tmp.exists():
                    shutil.rmtree(tmp)  # left over from a crash during an earlier save
                tmp.mkdir()
                write_model(tmp)
                (tmp / TRAINER_STATE).write_text(
                    json.dumps(state.to_dict(), indent=2, sort_keys=True), encoding="utf-8"
                )
                if optimizer is not None:
                    torch.save(optimizer.state_dict(), tmp / OPTIMIZER_FILE)
                if scheduler is not None:
                    torch.save(scheduler.state_dict(), tmp / SCHEDULER_FILE)
                for name, module in (extra_modules or {}).items():
                    _check_name(name)
                    save_module_safetensors(module, str(tmp / f"{name}.safetensors"))
        dist.wait_for_everyone()
        with self._writing(tmp, path):
            torch.save(rng_state(), tmp / f"rng_state_{dist.process_index}.pt")
        dist.wait_for_everyone()
        if dist.is_main_process:
            with self._writing(tmp, path):
                fsync_tree(tmp)
                self._swap_in(tmp, path)
            if keep_last:
                self.prune(keep_last, below=step)
        dist.wait_for_everyone()
        return path

    def _swap_in(self, tmp: Path, path: Path) -> None:
        """Rename the finished ``tmp`` to ``path``. A complete checkpoint already there (the same
        step saved again) is replaced; anything else there is moved aside, never deleted."""
        old = None
        if path.exists() or path.is_symlink():
            if path.is_dir() and (path / TRAINER_STATE).is_file():
                old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
                os.rename(path, old)
            else:
                aside = path.with_name(f"{path.name}.kept-{uuid.uuid4().hex[:8]}")
                os.rename(path, aside)
                warnings.warn(
                    f"{path}: was not a complete checkpoint; moved to {aside.name} before saving this step",
                    RunWarning,
                    stacklevel=3,
                )
        try:
            os.rename(tmp, path)
        except BaseException:
            if old is not None:
                os.rename(old, path)  # put the previous complete checkpoint back
            raise
        fsync_dir(path.parent)
        if old is not None:
            shutil.rmtree(old)

    @contextlib.contextmanager
    def _writing(self, tmp: Path, path: Path) -> Iterator[None]:
        """A failed checkpoint write (disk full, read-only folder) removes the partial ``tmp``
        folder and becomes a one-line ``CheckpointError``; earlier checkpoints are untouched."""
        try:
            yield
        except Exception as exc:
            failure = exc if isinstance(exc, OSError) else write_probe(tmp.parent)  # torch.save: RuntimeError
            reason = None if failure is None else os_reason(failure)
            shutil.rmtree(tmp, ignore_errors=True)
            if reason is None:
                raise  # not the disk: a real bug keeps its traceback
            latest = self.latest()
            kept = f"the latest checkpoint {latest.name} is intact" if latest else "no earlier checkpoint"
            raise CheckpointError(
                f"{path}: writing the checkpoint failed ({reason}); the partial folder was removed, "
                f"{kept} and --resume continues from it"
            ) from None

    def prune(self, keep_last: int, below: int | None = None) -> list[Path]:
        """Delete all but the newest ``keep_last`` complete checkpoints (only those with a trainer
        state: a folder the trainer did not write is never deleted), none at or after step
        ``below`` (the one just saved)."""
        doomed = [p for _, p in self.checkpoints()[:-keep_last]] if keep_last > 0 else []
        if below is not None:
            doomed = [p for p in doomed if int(STEP_DIR.match(p.name).group(1)) < below]
        for p in doomed:
            shutil.rmtree(p)
        return doomed

    def check_writable(self) -> None:
        """Before any compute: the run folder, its checkpoints folder and log can be written."""
        ensure_writable(self.path)
        ckpts = self.path / CHECKPOINTS_DIR
        if ckpts.exists():
            ensure_writable(ckpts)
        if self.log.path.exists():
            try:
                with self.log.path.open("ab"):
                    pass
            except OSError as exc:
                raise UserError(f"{self.log.path}: cannot be appended to ({os_reason(exc)})") from None


def _check_name(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
        raise ValueError(f"extra module name {name!r} must be letters, digits, '_' or '-'")


# ---------------------------------------------------------------- reading checkpoints


def is_run_dir(path: str | Path) -> bool:
    return (Path(path) / CHECKPOINTS_DIR).is_dir()


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder as is, or a run folder's newest complete checkpoint."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if (path / TRAINER_STATE).is_file():
        return path
    latest = RunDir(path).latest()
    if latest is None:
        raise CheckpointError(
            f"{path}: no {TRAINER_STATE} here and no complete checkpoint under {CHECKPOINTS_DIR}/"
        )
    return latest


def lineage_flops(path: str | Path) -> dict[str, Any] | None:
    """The FLOPs counter of a checkpoint (or a run folder's newest one); None for a plain model,
    whose FLOPs start at zero."""
    path = Path(path)
    if not (path / TRAINER_STATE).is_file():
        latest = RunDir(path).latest()
        if latest is None:
            return None
        path = latest
    return read_trainer_state(path).flops or None


def lineage_gflops(path: str | Path) -> float:
    """Cumulative training GFLOPs of a model's lineage (0 for a plain model)."""
    flops = lineage_flops(path)
    return FlopsCounter.from_dict(flops).total_flops / 1e9 if flops else 0.0


def export_model(ckpt: str | Path, dest: str | Path) -> Path:
    """Copy a checkpoint's model files without trainer state, optimizer or RNG: a plain HF
    folder whose FLOPs start at zero. An existing ``dest`` is kept (the export is done)."""
    ckpt, dest = Path(ckpt), Path(dest)
    if dest.is_dir():
        return dest
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(
        ckpt,
        tmp,
        ignore=lambda _d, names: [n for n in names if n in STATE_FILES or n.startswith("rng_state")],
    )
    fsync_tree(tmp)
    tmp.replace(dest)
    fsync_dir(dest.parent)
    return dest


def load_torch_file(f: str | Path) -> Any:
    f = Path(f)
    if not f.is_file():
        raise CheckpointError(f"{f}: missing from the checkpoint")
    try:
        return torch.load(f, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated/corrupt pickles raise many types
        raise CheckpointError(f"{f}: corrupt or unreadable ({type(exc).__name__}: {exc})") from None


def verify_weights(ckpt: str | Path) -> None:
    """Open every safetensors file (headers and tensors) so a truncated one is named."""
    ckpt = Path(ckpt)
    weights = sorted(ckpt.glob("*.safetensors")) + sorted((ckpt / "adapter").glob("*.safetensors"))
    if not any(w.parent == ckpt for w in weights):
        raise CheckpointError(f"{ckpt}: no model weights (*.safetensors) in the checkpoint")
    for w in weights:
        try:
            with safe_open(str(w), framework="pt") as fh:
                for key in fh.keys():  # noqa: SIM118 - safe_open has no __iter__
                    fh.get_tensor(key)
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
            raise CheckpointError(f"{w}: corrupt weights file ({exc})") from None


def load_extra_module(ckpt: str | Path, name: str, module: torch.nn.Module) -> None:
    """Load a module saved with ``extra_modules={name: module}``."""
    f = Path(ckpt) / f"{name}.safetensors"
    if not f.is_file():
        raise CheckpointError(f"{f}: missing (the checkpoint has no {name!r} module)")
    try:
        load_module_safetensors(module, str(f))
    except Exception as exc:  # noqa: BLE001 - any failure here means a bad file
        raise CheckpointError(f"{f}: cannot be loaded into {type(module).__name__}: {exc}") from None


def restore_rng(ckpt: str | Path, process_index: int = 0) -> None:
    """Restore this process's RNG state (rank 0's if the world size changed)."""
    f = Path(ckpt) / f"rng_state_{process_index}.pt"
    if not f.is_file():
        f = Path(ckpt) / "rng_state_0.pt"
    set_rng_state(load_torch_file(f))


__all__ = [
    "CHECKPOINTS_DIR",
    "CONFIG_FILE",
    "LOG_FILE",
    "TRAINER_STATE",
    "Distributed",
    "RunDir",
    "SingleProcess",
    "TrainerState",
    "export_model",
    "lineage_flops",
    "lineage_gflops",
    "load_extra_module",
    "load_torch_file",
    "read_trainer_state",
    "resolve_checkpoint",
    "restore_rng",
    "verify_weights",
]
