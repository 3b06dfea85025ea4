"""Atomic training checkpoints: an HF model folder plus everything needed to resume exactly.

Layout of ``<run_dir>/checkpoints/step-00000042/``::

    config.json, model.safetensors, tokenizer/processor files   (loadable by load_model)
    adapter/                      LoRA adapters, when training with LoRA
    trainer_state.json            step, FLOPs counter, tokens, data position, config, ...
    optimizer.pt, scheduler.pt    torch.save'd state dicts
    rng_state_<rank>.pt           python/numpy/torch(/cuda) RNG states, one file per process
    <name>.safetensors            extra modules (e.g. the PPO value head)

A checkpoint is written under a temporary name in the same folder, fsynced, and renamed into
place, so a crash leaves either the old checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_model as load_module_safetensors
from safetensors.torch import save_model as save_module_safetensors

from sftvsrl.config import ConfigError
from sftvsrl.errors import CheckpointError
from sftvsrl.models.loading import PolicyModel, load_model, save_model

CHECKPOINTS_DIR = "checkpoints"
TRAINER_STATE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.pt"
SCHEDULER_FILE = "scheduler.pt"
STEP_DIR = re.compile(r"^step-(\d+)$")


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


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS_DIR / f"step-{step:08d}"


# ---------------------------------------------------------------- RNG


def rng_state() -> dict[str, Any]:
    """All RNG states as tensors/ints, so they load with ``weights_only=True``."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    npst = state["numpy"]
    np.random.set_state(
        (npst["kind"], npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"], npst["cached"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------- saving


def save_checkpoint(
    path: str | Path,
    pm: PolicyModel,
    trainer_state: dict[str, Any],
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    extra_modules: dict[str, torch.nn.Module] | None = None,
    dist: Distributed | None = None,
    keep_last: int | None = None,
    model_state_dict: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write a checkpoint atomically; every process must call it (each saves its RNG state).

    The main process writes the model, tokenizer/processor, trainer state, optimizer and
    scheduler (identical on every data-parallel rank) and any ``extra_modules`` as
    ``<name>.safetensors``; then renames the folder into place and, with ``keep_last``,
    deletes the oldest ``step-*`` siblings. ``model_state_dict``: a full state dict gathered
    from a sharded model (FSDP/DeepSpeed), written instead of the model's own.
    """
    dist = dist or SingleProcess()
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp"
    if dist.is_main_process:
        path.parent.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)  # left over from a crash during an earlier save
        tmp.mkdir()
        save_model(pm, tmp, state_dict=model_state_dict)
        _write_json(tmp / TRAINER_STATE, trainer_state)
        if optimizer is not None:
            torch.save(optimizer.state_dict(), tmp / OPTIMIZER_FILE)
        if scheduler is not None:
            torch.save(scheduler.state_dict(), tmp / SCHEDULER_FILE)
        for name, module in (extra_modules or {}).items():
            _check_name(name)
            save_module_safetensors(module, str(tmp / f"{name}.safetensors"))
    dist.wait_for_everyone()
    torch.save(rng_state(), tmp / f"rng_state_{dist.process_index}.pt")
    dist.wait_for_everyone()
    if dist.is_main_process:
        _fsync_tree(tmp)
        old = None
        if path.exists():
            old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(path, old)
        os.rename(tmp, path)
        _fsync_dir(path.parent)
        if old is not None:
            shutil.rmtree(old)
        if keep_last:
            prune_checkpoints(path.parent, keep_last)
    dist.wait_for_everyone()
    return path


def prune_checkpoints(checkpoints_dir: str | Path, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` complete ``step-*`` folders."""
    steps = _complete_steps(Path(checkpoints_dir))
    doomed = [p for _, p in steps[:-keep_last]] if keep_last > 0 else []
    for p in doomed:
        shutil.rmtree(p)
    return doomed


def _check_name(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
        raise ValueError(f"extra module name {name!r} must be letters, digits, '_' or '-'")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")


def _fsync_tree(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------- finding and loading


def _complete_steps(checkpoints_dir: Path) -> list[tuple[int, Path]]:
    if not checkpoints_dir.is_dir():
        return []
    found = []
    for child in checkpoints_dir.iterdir():
        m = STEP_DIR.match(child.name)
        if m and child.is_dir() and (child / TRAINER_STATE).is_file():
            found.append((int(m.group(1)), child))
    return sorted(found)


def find_latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run (``None`` if it has none)."""
    steps = _complete_steps(Path(run_dir) / CHECKPOINTS_DIR)
    return steps[-1][1] if steps else None


def resolve_checkpoint(path: str | Path) -> Path:
    """Accept a checkpoint folder or a run folder (then its latest checkpoint)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if (path / TRAINER_STATE).is_file():
        return path
    latest = find_latest_checkpoint(path)
    if latest is None:
        raise CheckpointError(
            f"{path}: no {TRAINER_STATE} here and no complete checkpoint under {CHECKPOINTS_DIR}/"
        )
    return latest


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model and the state to resume from."""

    path: Path
    pm: PolicyModel
    trainer_state: dict[str, Any]
    files: list[str] = field(default_factory=list)

    def load_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        optimizer.load_state_dict(_torch_load(self.path / OPTIMIZER_FILE))

    def load_scheduler(self, scheduler: Any) -> None:
        scheduler.load_state_dict(_torch_load(self.path / SCHEDULER_FILE))

    def restore_rng(self, process_index: int = 0) -> None:
        """Restore this process's RNG state (falls back to rank 0's if the world size changed)."""
        f = self.path / f"rng_state_{process_index}.pt"
        if not f.is_file():
            f = self.path / "rng_state_0.pt"
        set_rng_state(_torch_load(f))

    def has_module(self, name: str) -> bool:
        return (self.path / f"{name}.safetensors").is_file()

    def load_module(self, name: str, module: torch.nn.Module) -> None:
        """Load an extra module saved with ``extra_modules={name: module}``."""
        f = self.path / f"{name}.safetensors"
        if not f.is_file():
            raise CheckpointError(f"{f}: missing (the checkpoint has no {name!r} module)")
        try:
            load_module_safetensors(module, str(f))
        except Exception as exc:  # noqa: BLE001 - any failure here means a bad file
            raise CheckpointError(f"{f}: cannot be loaded into {type(module).__name__}: {exc}") from None


def _torch_load(f: Path) -> Any:
    if not f.is_file():
        raise CheckpointError(f"{f}: missing from the checkpoint")
    try:
        return torch.load(f, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated/corrupt pickles raise many types
        raise CheckpointError(f"{f}: corrupt or unreadable ({type(exc).__name__}: {exc})") from None


def read_trainer_state(path: Path) -> dict[str, Any]:
    f = path / TRAINER_STATE
    if not f.is_file():
        raise CheckpointError(f"{f}: missing (not a complete checkpoint)")
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{f}: corrupt JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{f}: expected a JSON object")
    return data


def verify_weights(path: Path) -> None:
    """Open every safetensors file (headers and tensors) so a truncated one is named."""
    weights = sorted(path.glob("*.safetensors")) + sorted((path / "adapter").glob("*.safetensors"))
    if not any(w.parent == path for w in weights):
        raise CheckpointError(f"{path}: no model weights (*.safetensors) in the checkpoint")
    for w in weights:
        try:
            with safe_open(str(w), framework="pt") as fh:
                for key in fh.keys():  # noqa: SIM118 - safe_open has no __iter__
                    fh.get_tensor(key)
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
            raise CheckpointError(f"{w}: corrupt weights file ({exc})") from None


def load_checkpoint(path: str | Path, *, dtype: str = "float32", trainable: bool = True) -> Checkpoint:
    """Load a checkpoint (or a run folder's latest one), with clear errors naming bad files."""
    path = resolve_checkpoint(path)
    state = read_trainer_state(path)
    verify_weights(path)
    try:
        pm = load_model(path, dtype=dtype, trainable=trainable)
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None
    files = sorted(p.name for p in path.iterdir())
    return Checkpoint(path=path, pm=pm, trainer_state=state, files=files)
