"""PPO run plumbing kept out of the main loop: FLOPs from the init checkpoint, JSONL/TensorBoard
logging, and the progress bar."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from sftvsrl.flops import FlopsCounter


def init_flops(init: str, n_params: int) -> FlopsCounter:
    """Continue the lineage's FLOPs: D_init and its FLOPs come from the init checkpoint's
    ``trainer_state.json`` (``flops`` entry); a model without one starts from zero."""
    state_file = Path(init) / "trainer_state.json"
    if state_file.is_file():
        try:
            data = json.loads(state_file.read_text(encoding="utf-8"))
            if isinstance(data.get("flops"), dict):
                return FlopsCounter.from_dict(data["flops"]).next_stage(n_params)
        except (ValueError, json.JSONDecodeError):
            print(f"warning: {state_file}: no usable FLOPs state; counting from 0", file=sys.stderr)
    return FlopsCounter(n_params=n_params)


class RunLogger:
    """One JSON object per update in ``log.jsonl`` (+ TensorBoard scalars when installed)."""

    def __init__(self, out_dir: Path, enabled: bool, tensorboard: bool) -> None:
        self.enabled = enabled
        self.file = open(out_dir / "log.jsonl", "a", encoding="utf-8") if enabled else None  # noqa: SIM115
        self.tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out_dir / "tensorboard"))
            except ImportError:
                self.tb = None

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("step", "time"):
                    self.tb.add_scalar(f"rl/{k}", v, record["step"])

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.tb is not None:
            self.tb.close()


def progress_bar(enabled: bool, start: int, total: int):
    """A rich progress bar over updates; returns a function that advances it with a log record."""
    if not enabled:
        return lambda record: None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("rl"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        transient=False,
    )
    task = bar.add_task("rl", total=total, completed=start, info="")
    bar.start()

    def advance(record: dict[str, Any]) -> None:
        sr = record.get("success_rate")
        info = f"reward {record['mean_reward']:+.2f} success {sr if sr is None else f'{sr:.2f}'}"
        bar.update(task, advance=1, info=info)
        if record["step"] >= total:
            bar.stop()

    return advance
