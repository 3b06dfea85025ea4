"""``log.jsonl``, a run's log: one JSON record per line, appended as the run goes.

A line cut short by a kill is never glued to the next record: the next append finishes or drops
it, and reading drops it with a warning (a resume trusts the checkpoint, not the log).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sftvsrl.atomic import atomic_write_text
from sftvsrl.errors import CheckpointError, UserError, warn_once
from sftvsrl.writable import os_reason


def _is_record(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


class RunLog:
    """``log.jsonl``: one JSON record per line, each with step, time (elapsed s), flops, tokens."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(record) + "\n").encode("utf-8")
        try:
            self._append(line)
        except OSError as exc:  # a full disk: name the file (a write() error names none)
            raise UserError(f"{self.path}: appending to the log failed ({os_reason(exc)})") from None

    def _append(self, line: bytes) -> None:
        with self.path.open("a+b") as fh:
            if fh.tell() > 0:  # a line cut short by a kill: never glue the next record onto it
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    fh.seek(0)
                    data = fh.read()
                    cut = data.rfind(b"\n") + 1
                    if _is_record(data[cut:]):
                        line = b"\n" + line  # only its newline was lost
                    else:
                        warn_once(f"{self.path}: dropped a partial last line (a write cut short)")
                        fh.truncate(cut)
            fh.write(line)
            fh.flush()

    def read(self) -> list[dict[str, Any]]:
        """All records (blank lines skipped); [] when there is no log yet.

        A last line without its newline that is not valid JSON was being written when the process
        died: it is dropped with a warning (the checkpoint, not the log, is what a resume trusts).
        Any other bad line is an error naming ``file:line``."""
        if not self.path.is_file():
            return []
        try:
            text = self.path.read_text(encoding="utf-8", errors="strict")
        except UnicodeDecodeError:
            text = self.path.read_bytes().decode("utf-8", errors="replace")
        lines = text.splitlines()
        out = []
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                if n == len(lines) and not text.endswith("\n"):
                    warn_once(f"{self.path}:{n}: dropped a partial last line (a write cut short)")
                    continue
                raise CheckpointError(f"{self.path}:{n}: not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                raise CheckpointError(f"{self.path}:{n}: not a log record (a JSON object with an int 'step')")
            out.append(record)
        return out

    def truncate(self, step: int) -> None:
        """Drop records after ``step`` (a resumed run redoes them) and any partial last line;
        all of them for step 0."""
        if not self.path.is_file():
            return
        kept = [r for r in self.read() if r["step"] <= step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def at(self, step: int) -> dict[str, Any] | None:
        """The last record logged for ``step`` (None when that step was not logged)."""
        found = [r for r in self.read() if r.get("step") == step]
        return found[-1] if found else None


__all__ = ["RunLog"]
