"""Gymnasium environments with rule-based verifiers, one sub-package per task.

Importing this package registers every task's gym id from the task registry
(``sftvsrl.envs.tasks``); code that makes envs calls ``make_env`` or ``register_envs``
itself rather than relying on an earlier import for its side effect.
"""

from __future__ import annotations

from sftvsrl.envs.tasks import Task, get_task, make_env, register_envs, register_task, task_for_env, tasks

__all__ = ["Task", "get_task", "make_env", "register_envs", "register_task", "task_for_env", "tasks"]

register_envs()
