"""Package-level names that import their module only when first used.

``from sftvsrl.models import load_model`` must work, but importing ``sftvsrl.models`` (or
``sftvsrl.training``) for one light helper must not pay for torch and transformers.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, names: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for a package whose ``names`` map to ``"module"`` (the
    same name there) or ``"module:attr"``."""

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attr = names[name].partition(":")
        return getattr(importlib.import_module(module), attr or name)

    def __dir__() -> list[str]:
        return sorted(names)

    return __getattr__, __dir__
