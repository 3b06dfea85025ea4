"""One study over several processes: trainers use all of them, everything else runs once.

Under ``torchrun`` or ``accelerate launch`` the SFT and PPO trainers are data-parallel over
every process, but writing data, evaluating checkpoints and writing results must happen
once. The main process does those; the others wait at a barrier and then read what it
wrote. With one process every call here is a no-op wrapper.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _multi_process() -> bool:
    import os

    return int(os.environ.get("WORLD_SIZE", "1")) > 1


class Processes:
    def __init__(self, timeout_min: float = 360.0) -> None:
        """``timeout_min``: how long a process waits at a barrier (e.g. while the main process
        evaluates) before the launch fails; used only if this creates the process group."""
        from datetime import timedelta

        from accelerate import PartialState

        from sftvsrl.training.loop import cpu_only_launch

        kwargs = {"timeout": timedelta(minutes=timeout_min)} if _multi_process() else {}
        self.state = PartialState(cpu=cpu_only_launch(), **kwargs)

    @property
    def is_main(self) -> bool:
        return self.state.is_main_process

    @property
    def count(self) -> int:
        return self.state.num_processes

    def wait(self) -> None:
        self.state.wait_for_everyone()

    def main_only(self, fn: Callable[[], T]) -> T | None:
        """Run ``fn`` on the main process only; every process returns after it is done."""
        result = fn() if self.is_main else None
        self.wait()
        return result

    def from_main(self, value: Any) -> Any:
        """The main process's ``value``, on every process (a picklable object)."""
        if self.count == 1:
            return value
        from accelerate.utils import broadcast_object_list

        box = [value if self.is_main else None]
        broadcast_object_list(box, from_process=0)
        return box[0]
