"""Every Python block in README.md and docs/*.md runs as written, or says why it cannot.

A block is preceded (on the line before its opening fence) by an optional marker:
``<!-- doc-test: slow -->`` runs it only in the slow set; ``<!-- doc-test: skip REASON -->``
never runs it and must give the reason. Blocks run in a fresh interpreter in a temporary
folder that holds a copy of ``configs/``, so relative paths in them work and write nothing
into the checkout.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from doc_blocks import doc_blocks

ROOT = Path(__file__).resolve().parents[1]

BLOCKS = doc_blocks("python")


def _param(where: str, marker: str, code: str):
    marks = []
    if marker == "slow":
        marks.append(pytest.mark.slow)
    elif marker.startswith("skip"):
        marks.append(pytest.mark.skip(reason=f"{where}: {marker[4:].strip()}"))
    elif marker:
        raise AssertionError(f"{where}: unknown doc-test marker {marker!r}")
    return pytest.param(code, id=where, marks=marks)


def test_the_docs_have_python_blocks():
    assert len(BLOCKS) >= 3


def test_every_skip_gives_a_reason():
    for where, marker, _ in BLOCKS:
        if marker.startswith("skip"):
            assert len(marker[4:].strip()) > 10, f"{where}: a skipped block must say why"


@pytest.mark.parametrize("code", [_param(*b) for b in BLOCKS])
def test_python_block_runs(code, tmp_path):
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
