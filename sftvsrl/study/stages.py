"""Run a study as named stages that survive interruption.

A finished stage leaves ``stages/<name>.json`` (its result, written atomically); re-running
the study skips it and reuses the result. A stage that was interrupted has no such file and
runs again; trainers inside it resume from their own checkpoints, so no work is lost.

With several processes (``procs``), every process runs a stage's function (trainers need
them all), the main process stores the result, and the others take the stored result, so
all processes go on with the same one.

Time: a running stage's seconds so far are written every ``heartbeat_s`` to
``stages/.<name>.elapsed``, so a stage that was interrupted and re-run reports the time of
all its attempts (up to one heartbeat lost per interruption), not only of the last one.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from sftvsrl.atomic import atomic_write_text
from sftvsrl.study.dist import Processes


class StageRunner:
    def __init__(
        self,
        out_dir: str | Path,
        console: Console | None = None,
        total: int | None = None,
        procs: Processes | None = None,
        heartbeat_s: float = 10.0,
    ):
        self.heartbeat_s = heartbeat_s
        self.out_dir = Path(out_dir)
        self.stage_dir = self.out_dir / "stages"
        self.stage_dir.mkdir(parents=True, exist_ok=True)
        self.procs = procs
        quiet = procs is not None and not procs.is_main
        self.console = console or Console(stderr=True, quiet=quiet)
        self.total = total
        self.index = 0
        self.started = time.time()
        self.skipped: set[str] = set()  # stages whose stored result was reused

    def result_path(self, name: str) -> Path:
        return self.stage_dir / f"{name}.json"

    def _elapsed_path(self, name: str) -> Path:
        return self.stage_dir / f".{name}.elapsed"

    def _earlier_seconds(self, name: str) -> float:
        """Seconds spent in earlier, interrupted attempts of ``name``."""
        try:
            return max(0.0, float(self._elapsed_path(name).read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return 0.0

    def done(self, name: str) -> bool:
        return self.result_path(name).is_file()

    def stored(self, name: str) -> dict[str, Any] | None:
        """The stored result of ``name`` (None when missing or unreadable)."""
        try:
            data = json.loads(self.result_path(name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def run(
        self, name: str, fn: Callable[[], dict[str, Any]], fingerprint: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Return the stored result of ``name`` or run ``fn`` and store what it returns (with
        ``fingerprint``, the settings it was made with; the caller compares them beforehand)."""
        self.index += 1
        label = f"[{self.index}/{self.total}]" if self.total else f"[{self.index}]"
        path = self.result_path(name)
        if path.is_file():
            result = self.stored(name)
            if result is None:
                self.console.print(f"{label} {name}: stored result is unreadable, running it again")
            else:
                self.console.print(f"{label} {name}: done earlier, skipped")
                self.skipped.add(name)
                return result
        self.console.rule(f"{label} stage {name}")
        start, earlier = time.time(), self._earlier_seconds(name)
        main = self.procs is None or self.procs.is_main
        stop = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat, args=(name, start, earlier, stop), daemon=True, name=f"stage-{name}"
        )
        if main:
            beat.start()
        finished = False
        try:
            result = fn()
            finished = True
        finally:
            if main:
                stop.set()
                beat.join()  # no write of the counter may land after this
                if not finished:  # interrupted or failed: keep the time spent for the next attempt
                    self._write_elapsed(name, earlier + time.time() - start)
        result = {**(result or {}), "stage_seconds": round(earlier + time.time() - start, 2)}
        if earlier:
            result["attempts_seconds_before"] = round(earlier, 2)
        if fingerprint is not None:
            result["fingerprint"] = fingerprint
        if main:
            atomic_write_text(path, json.dumps(result, indent=2))
            self._elapsed_path(name).unlink(missing_ok=True)
        if self.procs is not None:
            self.procs.wait()
            if not self.procs.is_main:
                result = json.loads(path.read_text(encoding="utf-8"))
        elapsed = time.time() - self.started
        eta = ""
        if self.total and self.index < self.total:
            eta = f", about {elapsed / self.index * (self.total - self.index) / 60:.1f} min left"
        self.console.print(f"{label} {name}: finished in {result['stage_seconds']:.0f} s{eta}")
        return result

    def _heartbeat(self, name: str, start: float, earlier: float, stop: threading.Event) -> None:
        while not stop.wait(self.heartbeat_s):
            self._write_elapsed(name, earlier + time.time() - start)

    def _write_elapsed(self, name: str, seconds: float) -> None:
        path = self._elapsed_path(name)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(f"{seconds:.2f}", encoding="utf-8")
        tmp.replace(path)
