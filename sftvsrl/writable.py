"""Output folders that can really be written, checked before any compute is spent.

Permission bits alone do not tell (root writes into a 0o500 folder, a read-only mount refuses),
so a small probe file is created, fsynced and deleted.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

from sftvsrl.errors import UserError


def ensure_writable(folder: str | Path) -> Path:
    """Create ``folder`` and prove it can be written (a probe file is created, fsynced and deleted),
    before any compute is spent; raises a one-line ``UserError`` naming the folder otherwise."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder}: the output path exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{folder}: cannot create the output folder ({os_reason(exc)})") from None
    failure = write_probe(folder)
    if failure is not None:
        raise UserError(f"{folder}: the output folder is not writable ({os_reason(failure)})")
    return folder


def write_probe(folder: Path) -> OSError | None:
    """Create, fsync and delete a small file in ``folder``: the OSError that stops it, or None."""
    probe = folder / f".write-probe-{uuid.uuid4().hex[:8]}"
    try:
        with open(probe, "wb") as fh:
            fh.write(b"ok")
            fh.flush()
            os.fsync(fh.fileno())
        probe.unlink()
    except OSError as exc:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
        return exc
    return None


def os_reason(exc: BaseException) -> str:
    """The OS's words for an ``OSError`` (its strerror), else the exception's type and message."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}"


__all__ = ["ensure_writable", "os_reason", "write_probe"]
