"""The project's error and warning types, below every other module so that anything may raise them.

The CLI prints these as one line (``sftvsrl <command>: error: <message>``) without a
traceback; every message names the file, key or value that is wrong.
"""

from __future__ import annotations

import warnings


class UserError(Exception):
    """An error caused by the user's input (a file, a path, an argument)."""


class ConfigError(UserError, ValueError):
    """A config file or override that cannot be used, with a message a user can act on."""


class DataError(UserError):
    """A data file (JSONL rows, images, map data) that cannot be used; names the file and line."""


class CheckpointError(UserError):
    """A checkpoint or run folder that is missing, incomplete or corrupt; names the file."""


class RunWarning(UserWarning):
    """Something in a run folder that is skipped or kept aside rather than trusted (or deleted)."""


_warned: set[str] = set()


def warn_once(message: str) -> None:
    """Warn about ``message`` once per process (a folder listed at every save warns once)."""
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, RunWarning, stacklevel=3)
