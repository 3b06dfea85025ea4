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

Console: when it is not a terminal (a log file), a running stage prints a plain line every
``say_every_s`` (its time so far), so a log is never silent through a long stage; the
trainers inside add their own step/total, rate, ETA and loss lines. The time left after a
stage comes only from measured times: the seconds a finished stage of the same kind (the
name's part after its last dot: ``GeneralPoints-L.rl`` -> ``rl``) took, in this run or an
earlier one; stages of kinds not run yet are counted as unknown, not guessed.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
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
        plan: Sequence[str] | None = None,
        say_every_s: float = 30.0,
    ):
        """``plan``: every stage's name in running order (for the time left by stage kind);
        ``total`` defaults to its length."""
        self.heartbeat_s, self.say_every_s = heartbeat_s, say_every_s
        self.plan = list(plan) if plan is not None else None
        if total is None and self.plan is not None:
            total = len(self.plan)
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
        self.measured: dict[str, list[float]] = {}  # stage kind -> seconds of finished stages

    @staticmethod
    def kind(name: str) -> str:
        """``GeneralPoints-L.rl`` -> ``rl``; ``pretrain`` -> ``pretrain``."""
        return name.rsplit(".", 1)[-1]

    def _measure(self, name: str, result: dict[str, Any]) -> None:
        seconds = result.get("stage_seconds")
        if isinstance(seconds, (int, float)) and seconds >= 0:
            self.measured.setdefault(self.kind(name), []).append(float(seconds))

    def expected_seconds(self, name: str) -> float | None:
        """Mean measured seconds of finished stages of ``name``'s kind (None: none yet)."""
        times = self.measured.get(self.kind(name))
        return sum(times) / len(times) if times else None

    def time_left(self) -> str:
        """``about N min left`` from measured stage times, or what is unknown."""
        if not self.total or self.index >= self.total:
            return ""
        left = self.total - self.index
        if self.plan is None:
            return f"{left} stage{'s' * (left > 1)} left"
        expected = [self.expected_seconds(n) for n in self.plan[self.index :]]
        known = [e for e in expected if e is not None]
        unknown = len(expected) - len(known)
        if not known:
            return f"{left} stage{'s' * (left > 1)} left, time unknown (none of their kinds has run yet)"
        minutes = sum(known) / 60
        if unknown:
            return f"at least {minutes:.1f} min left (+{unknown} stage{'s' * (unknown > 1)} of kinds not run yet)"
        return f"about {minutes:.1f} min left (measured stage times)"

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
                self._measure(name, result)
                return result
        self.console.rule(f"{label} stage {name}")
        start, earlier = time.time(), self._earlier_seconds(name)
        main = self.procs is None or self.procs.is_main
        stop = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat,
            args=(name, label, start, earlier, stop),
            daemon=True,
            name=f"stage-{name}",
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
        self._measure(name, result)
        left = self.time_left()
        self.console.print(
            f"{label} {name}: finished in {result['stage_seconds']:.0f} s" + (f", {left}" if left else ""),
            soft_wrap=True,
        )
        return result

    def running_line(self, name: str, label: str, seconds: float) -> str:
        """``[3/9] GeneralPoints-L.rl: running, 1m30s so far`` (+ what the same kind took)."""
        line = f"{label} {name}: running, {_duration(seconds)} so far"
        expected = self.expected_seconds(name)
        if expected is not None:
            line += f" (a finished {self.kind(name)} stage took {_duration(expected)})"
        return line

    def _heartbeat(self, name: str, label: str, start: float, earlier: float, stop: threading.Event) -> None:
        say = not self.console.is_terminal and self.say_every_s > 0
        last_said = start
        while not stop.wait(min(self.heartbeat_s, self.say_every_s) if say else self.heartbeat_s):
            now = time.time()
            self._write_elapsed(name, earlier + now - start)
            if say and now - last_said >= self.say_every_s:
                last_said = now
                self.console.print(self.running_line(name, label, earlier + now - start), soft_wrap=True)

    def _write_elapsed(self, name: str, seconds: float) -> None:
        path = self._elapsed_path(name)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(f"{seconds:.2f}", encoding="utf-8")
        tmp.replace(path)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"
