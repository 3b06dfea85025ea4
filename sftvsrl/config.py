"""Validated YAML configs with ``key=value`` overrides from the command line.

Every command's config is a pydantic model that forbids unknown keys. Overrides use
dotted keys (``optim.lr=3e-4``) and YAML syntax for values (``true``, ``[1, 2]``, ``null``),
so the CLI can set anything the file can.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from sftvsrl.errors import ConfigError

T = TypeVar("T", bound=BaseModel)

__all__ = ["ConfigError", "StrictModel", "load_config", "dump_config", "read_yaml", "apply_overrides"]


class StrictModel(BaseModel):
    """Base for config sections: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, turning every failure into a ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of keys to values, got {type(data).__name__}"
        )
    return data


def parse_override(item: str) -> tuple[list[str], Any]:
    """Split ``a.b=value`` into (["a", "b"], parsed value)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not of the form key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {item!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``key=value`` override set."""
    out = _deep_copy(data)
    for item in overrides:
        keys, value = parse_override(item)
        node = out
        for k in keys[:-1]:
            child = node.get(k)
            if child is None:
                child = node[k] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {k!r} is a value, not a section")
            node = child
        node[keys[-1]] = value
    return out


def _deep_copy(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in data.items()}


def _fields_at(cls: type[BaseModel] | None, loc: tuple[Any, ...]) -> list[str]:
    """The field names valid at ``loc`` (a path of keys) of a pydantic model class."""
    for key in loc:
        if cls is None or not isinstance(key, str) or key not in cls.model_fields:
            return []
        cls = _model_class(cls.model_fields[key].annotation)
    return list(cls.model_fields) if cls is not None else []


def _model_class(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as ``Optim`` or ``Optim | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_class(arg)
        if found is not None:
            return found
    return None


def format_validation_error(
    exc: ValidationError,
    source: str,
    *,
    model: type[BaseModel] | None = None,
    overrides: dict[str, str] | None = None,
) -> str:
    """One line naming, for each bad key, where it came from (an override or the file), what is
    wrong, and for an unknown key the closest valid one."""
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc) or "<root>"
        origin = next(
            (
                f"override {item!r}"
                for k, item in (overrides or {}).items()
                if key == k or key.startswith(k + ".")
            ),
            source,
        )
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(loc[-1]), _fields_at(model, loc[:-1]), n=1)
            hint = f" (did you mean {'.'.join([*map(str, loc[:-1]), close[0]])}?)" if close else ""
            problems.append(f"{origin}: {key}: unknown key{hint}")
        else:
            problems.append(f"{origin}: {key}: {err['msg']} (got {err.get('input')!r})")
    return "invalid config: " + "; ".join(problems)


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Build a validated ``cls`` from an optional YAML file plus overrides."""
    data = read_yaml(path) if path else {}
    data = apply_overrides(data, overrides or [])
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        by_key = {".".join(parse_override(item)[0]): item for item in overrides or []}
        source = f"config file {path}" if path else "defaults"
        raise ConfigError(format_validation_error(exc, source, model=cls, overrides=by_key)) from None


def dump_config(config: BaseModel, path: str | Path) -> None:
    """Write the resolved config next to a run's outputs, so the run can be repeated."""
    Path(path).write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
