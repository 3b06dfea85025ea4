"""The task registry: every task variant spelled out once.

A task declares its Gymnasium id and entry point, whether it is vision, its training
kwargs and held-out eval splits, the answer functions expert data is made with, its
task-specific summary metrics and the modules behind ``sftvsrl data|play <command>``.
Gym registration, the data and play CLIs, the study and the evaluation summary all read
this table, so adding a task is adding one ``register_task`` call.

Functions are named as ``"module:attr"`` strings and imported only when used, so reading
the table stays cheap: ``sftvsrl data generalpoints`` does not import V-IRL's map libraries
and ``sftvsrl play`` does not import torch.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from sftvsrl.errors import ConfigError

AnswerFn = Callable[[dict[str, Any], random.Random], str | None]
MetricsFn = Callable[[list[dict[str, Any]]], dict[str, Any]]


def resolve(ref: str) -> Any:
    """The object a ``"module:attr"`` reference names (imported now, not at registration)."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Task:
    """One task variant (e.g. GeneralPoints-VL).

    ``splits`` are the eval splits: ``id_seen`` replays the training pool (hands or routes
    SFT and RL trained on) under the training rule, then the held-out ones. Success on
    ``id_seen`` but not on held-out ``id`` is memorisation, which is how a small model
    shows the paper's effect before it generalises at all.
    """

    name: str  # "GeneralPoints-L"
    family: str  # "GeneralPoints"; curves and the report group by it
    env_id: str
    entry_point: str  # "module:Class"
    vision: bool
    train: Mapping[str, Any]  # env kwargs of the training pool
    held_out: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)  # fixed at gym registration
    expert: str | None = None  # "module:fn(info, rng) -> answer"; None: info["expert_answer"]
    wrong: str | None = None  # "module:factory(env_kwargs, vision) -> fn(info, rng) -> answer | None"
    row_extra: str | None = None  # "module:fn(info) -> dict": extra columns of a data row
    # "module:fn(records) -> dict" (or several): the task's own summary metrics, e.g. the
    # fine metrics of sftvsrl.evaluation.summary (rule following, valid action, ...)
    metrics: str | tuple[str, ...] | None = None
    curve_metric: str | None = None  # summary key the study's curves record as recognition_acc
    commands: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # CLI -> (name, module)
    help: str = ""

    @property
    def variant(self) -> str:
        return "VL" if self.vision else "L"

    @property
    def splits(self) -> dict[str, dict[str, Any]]:
        """Every eval split: ``id_seen`` (the training kwargs themselves), then the held-out ones."""
        return {"id_seen": dict(self.train), **{k: dict(v) for k, v in self.held_out.items()}}

    def expert_fn(self) -> AnswerFn | None:
        return resolve(self.expert) if self.expert else None

    def wrong_fn(self, env_kwargs: Mapping[str, Any]) -> AnswerFn | None:
        """Wrong answers for revision rows of episodes made with ``env_kwargs``."""
        return resolve(self.wrong)(env_kwargs, self.vision) if self.wrong else None

    def row_extra_fn(self) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
        return resolve(self.row_extra) if self.row_extra else None

    def summary_metrics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """The task's own metrics over evaluation records ({} when it declares none)."""
        refs = (self.metrics,) if isinstance(self.metrics, str) else self.metrics or ()
        out: dict[str, Any] = {}
        for ref in refs:
            out.update(resolve(ref)(records))
        return out

    def register_env(self) -> None:
        """Register the gym id (the entry point is imported by gymnasium on ``gym.make``)."""
        if self.env_id not in gym.registry:
            gym.register(id=self.env_id, entry_point=self.entry_point, kwargs=dict(self.env_kwargs))


_REGISTRY: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Add a task and register its gym id; re-registering the same task is a no-op."""
    known = _REGISTRY.get(task.name)
    if known is not None and known != task:
        raise ValueError(f"task {task.name!r} is already registered differently")
    clash = next(
        (t.name for t in _REGISTRY.values() if t.env_id == task.env_id and t.name != task.name), None
    )
    if clash:
        raise ValueError(f"env id {task.env_id!r} already belongs to task {clash!r}")
    _REGISTRY[task.name] = task
    task.register_env()
    return task


def tasks() -> dict[str, Task]:
    """Every registered task by name, in registration order."""
    return dict(_REGISTRY)


def get_task(name: str) -> Task:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; known: {', '.join(_REGISTRY)}") from None


def task_for_env(env_id: str) -> Task | None:
    """The task an env id belongs to (None for an env outside the registry, e.g. a test's)."""
    return next((t for t in _REGISTRY.values() if t.env_id == env_id), None)


def variant(family: str, vision: bool) -> Task:
    """The -L or -VL task of a family (the data and play CLIs' ``--vl`` flag)."""
    for task in _REGISTRY.values():
        if task.family == family and task.vision == vision:
            return task
    raise ConfigError(f"task family {family!r} has no {'-VL' if vision else '-L'} variant")


def commands(cli: str) -> dict[str, tuple[str, str]]:
    """``{name: (module, help)}`` of the ``sftvsrl <cli> <name>`` subcommands (one per family)."""
    out: dict[str, tuple[str, str]] = {}
    for task in _REGISTRY.values():
        if cli in task.commands:
            name, module = task.commands[cli]
            out.setdefault(name, (module, task.help))
    return out


def register_envs() -> None:
    """Register every task's gym id (idempotent: gymnasium's registry survives re-imports)."""
    for task in _REGISTRY.values():
        task.register_env()


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gym.make`` that does not rely on an earlier import having registered the ids."""
    register_envs()
    return gym.make(env_id, **kwargs)


_GP = "sftvsrl.envs.generalpoints"
_VIRL = "sftvsrl.envs.virl"
_SUMMARY = "sftvsrl.evaluation.summary"
_RECOGNITION = f"{_SUMMARY}:recognition_metrics"
_RULE_FOLLOWING = f"{_SUMMARY}:rule_following_metrics"  # the "number" field under the rule
_VALID_ACTION = f"{_SUMMARY}:valid_action_metrics"  # the action is in the episode's space
_STEP_ACCURACY = f"{_SUMMARY}:step_accuracy_metrics"  # right actions among the answers

# What the -L and -VL variants of a family share: how the env is made, its answer functions,
# its CLI modules and help line.
_GENERALPOINTS: dict[str, Any] = dict(
    family="GeneralPoints",
    entry_point=f"{_GP}.env:GeneralPointsEnv",
    expert=f"{_GP}.answers:varied_expert",
    wrong=f"{_GP}.answers:make_wrong_fn",
    row_extra=f"{_GP}.answers:row_extra",
    commands={
        "data": ("generalpoints", "sftvsrl.data.generalpoints"),
        "play": ("generalpoints", f"{_GP}.play"),
    },
    help="GeneralPoints: make 24 from four cards",
)
_VIRL_FAMILY: dict[str, Any] = dict(
    family="VIRL",
    entry_point=f"{_VIRL}.env:VIRLEnv",
    wrong=f"{_VIRL}.answers:make_wrong_fn",
    row_extra=f"{_VIRL}.answers:row_extra",
    commands={"data": ("virl", "sftvsrl.data.virl"), "play": ("virl", f"{_VIRL}.play")},
    help="V-IRL: follow a route through a city's streets",
)

register_task(
    Task(
        **_GENERALPOINTS,
        name="GeneralPoints-L",
        env_id="sftvsrl/GeneralPoints-L-v0",
        vision=False,
        env_kwargs={"vision": False},
        train={"rule": "id", "split": "train"},
        held_out={"id": {"rule": "id", "split": "test"}, "ood": {"rule": "ood", "split": "test"}},
        metrics=(_RULE_FOLLOWING,),
    )
)
register_task(
    Task(
        **_GENERALPOINTS,
        name="GeneralPoints-VL",
        env_id="sftvsrl/GeneralPoints-VL-v0",
        vision=True,
        env_kwargs={"vision": True},
        train={"rule": "id", "split": "train", "card_color": "black"},
        held_out={
            "id": {"rule": "id", "split": "test", "card_color": "black"},
            "ood": {"rule": "ood", "split": "test", "card_color": "black"},
            "visual_ood": {"rule": "id", "split": "test", "card_color": "red"},
        },
        metrics=(_RECOGNITION, _RULE_FOLLOWING),  # card recognition: were the cards shown named?
        curve_metric="recognition_accuracy",
    )
)
register_task(
    Task(
        **_VIRL_FAMILY,
        name="VIRL-L",
        env_id="sftvsrl/VIRL-L-v0",
        vision=False,
        env_kwargs={"vision": False},
        train={"action_space": "absolute", "split": "train"},
        held_out={
            "id": {"action_space": "absolute", "split": "test"},
            "ood": {"action_space": "relative", "split": "test"},
        },
        metrics=(_VALID_ACTION, _STEP_ACCURACY),
    )
)
register_task(
    Task(
        **_VIRL_FAMILY,
        name="VIRL-VL",
        env_id="sftvsrl/VIRL-VL-v0",
        vision=True,
        env_kwargs={"vision": True},
        train={"action_space": "absolute", "split": "train"},
        held_out={
            "id": {"action_space": "absolute", "split": "test"},
            "ood": {"action_space": "relative", "split": "test"},
            # visual OOD: trained on Helsinki's streets, evaluated on Kotka's (docs/virl.md)
            "visual_ood": {"action_space": "absolute", "split": "test", "city": "kotka"},
        },
        metrics=(_RECOGNITION, _VALID_ACTION, _STEP_ACCURACY),  # landmarks: ``landmark_error``
    )
)
