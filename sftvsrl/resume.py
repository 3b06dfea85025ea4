"""Resume settings: which keys of a run's config changed since its checkpoint, and refusing the
changes a resumed run cannot honour (LR schedule, data order, model, seeds...)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sftvsrl.errors import ConfigError


def _same(a: Any, b: Any, key: str, paths: frozenset[str]) -> bool:
    if a == b:
        return True
    if key in paths and isinstance(a, str) and isinstance(b, str):
        return os.path.realpath(a) == os.path.realpath(b)  # the same file, spelled differently
    return False


def config_changes(
    saved: dict[str, Any], new: dict[str, Any], *, paths: Iterable[str] = (), prefix: str = ""
) -> list[tuple[str, Any, Any]]:
    """``(dotted key, saved value, new value)`` for every setting that differs. Nested settings
    are compared key by key; a key only one side has (another package version) is not compared."""
    paths = frozenset(paths)
    out: list[tuple[str, Any, Any]] = []
    for key in saved:
        if key not in new:
            continue
        a, b, name = saved[key], new[key], f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_changes(a, b, paths=paths, prefix=f"{name}.")
        elif not _same(a, b, name, paths):
            out.append((name, a, b))
    return out


def check_resume_config(
    saved: dict[str, Any],
    new: dict[str, Any],
    *,
    allowed: Iterable[str],
    paths: Iterable[str] = (),
    where: str | Path = "",
) -> list[str]:
    """Refuse a resume whose settings differ from the checkpoint's in a way the resumed run cannot
    honour (LR schedule, data order, model, seeds...): one ``ConfigError`` naming every such key.
    ``allowed`` keys (and their sub-keys) may change; returns the ones that did. A checkpoint
    without a saved config (an older format) is not checked."""
    if not saved:
        return []
    allowed = tuple(allowed)

    def ok(key: str) -> bool:
        return any(key == a or key.startswith(f"{a}.") for a in allowed)

    changes = config_changes(saved, new, paths=paths)
    refused = [(k, a, b) for k, a, b in changes if not ok(k)]
    if refused:
        listed = ", ".join(f"{k} ({_show(a)} -> {_show(b)})" for k, a, b in refused)
        src = f" (the checkpoint {where} was trained with the former)" if where else ""
        raise ConfigError(f"--resume: cannot change {listed}{src}; allowed to change: {', '.join(allowed)}")
    return [k for k, _, _ in changes]


def _show(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


__all__ = ["check_resume_config", "config_changes"]
