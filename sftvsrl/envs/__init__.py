"""Gymnasium environments with rule-based verifiers, one sub-package per task.

Importing this package registers every task's gym id from the task registry
(``sftvsrl.envs.tasks``); code that makes envs calls ``make_env`` or ``register_envs``
itself rather than relying on an earlier import for its side effect.
"""

from __future__ import annotations

# Only ``register_envs`` is re-exported: a ``tasks`` function here would shadow the
# ``sftvsrl.envs.tasks`` module; the registry's API is imported from that module.
from sftvsrl.envs.tasks import register_envs

__all__ = ["register_envs"]

register_envs()
