"""Prompt/completion JSONL for SFT: strict validation, then ``datasets`` for storage.

Every line is checked first so that a malformed row is reported as ``file:line: problem``
(``datasets`` alone would fail with an Arrow error that names neither). -VL rows carry
``images`` paths relative to the JSONL file; they are checked to exist up front.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sftvsrl.errors import DataError

__all__ = ["SFTDataset", "load_sft_jsonl", "validate_jsonl"]


@dataclass
class SFTDataset:
    """Rows plus where they came from, so later errors can still name file and line."""

    path: Path
    prompts: list[str]
    completions: list[str]
    images: list[Path | None]
    lines: list[int]

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def has_images(self) -> bool:
        return any(img is not None for img in self.images)

    def observation(self, i: int) -> str | dict[str, Any]:
        if self.images[i] is None:
            return self.prompts[i]
        return {"text": self.prompts[i], "image": self.images[i]}

    def where(self, i: int) -> str:
        return f"{self.path}:{self.lines[i]}"


def validate_jsonl(path: Path) -> list[int]:
    """Check every line; return the line numbers of the rows (blank lines are skipped)."""
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    lines = []
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            where = f"{path}:{lineno}"
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError(f"{where}: not UTF-8 text") from None
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(row, dict):
                raise DataError(f"{where}: a row must be a JSON object, got {type(row).__name__}")
            for key in ("prompt", "completion"):
                if not isinstance(row.get(key), str):
                    raise DataError(f"{where}: {key!r} must be a string")
            if not row["completion"]:
                raise DataError(f"{where}: 'completion' is empty")
            images = row.get("images")
            if images is not None and (
                not isinstance(images, list) or len(images) != 1 or not isinstance(images[0], str)
            ):
                raise DataError(f"{where}: 'images' must be a list with one relative path")
            if images is not None and not (path.parent / images[0]).is_file():
                raise DataError(f"{where}: image not found: {path.parent / images[0]}")
            lines.append(lineno)
    if not lines:
        raise DataError(f"{path}: no rows")
    return lines


def load_sft_jsonl(path: str | Path) -> SFTDataset:
    """Validate, then load through ``datasets.load_dataset("json")`` (kept in memory)."""
    import datasets

    path = Path(path)
    lines = validate_jsonl(path)
    datasets.disable_progress_bars()
    try:
        ds = datasets.load_dataset("json", data_files=str(path), split="train", keep_in_memory=True)
    except Exception as exc:  # noqa: BLE001 - Arrow raises many types for odd-but-valid JSON
        raise DataError(f"{path}: cannot be loaded as a table: {exc}") from None
    if len(ds) != len(lines):
        raise DataError(f"{path}: read {len(ds)} rows but validated {len(lines)}; check for odd line endings")
    images: list[Path | None] = (
        [path.parent / imgs[0] if imgs else None for imgs in ds["images"]]
        if "images" in ds.column_names
        else [None] * len(ds)
    )
    return SFTDataset(
        path=path, prompts=list(ds["prompt"]), completions=list(ds["completion"]), images=images, lines=lines
    )
