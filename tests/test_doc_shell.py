"""Every shell block in README.md and docs/*.md runs as written (slow set), or says why not.

The marker on the line before a block's opening fence decides: ``<!-- doc-test: run -->``
runs each of its commands (``\\``-continued lines joined, ``sftvsrl`` as this interpreter's
``-m sftvsrl``) in a temporary folder holding a copy of ``configs/``, with ``quit`` lines
on stdin for the interactive ones; ``<!-- doc-test: skip REASON -->`` never runs it. A
block with no marker fails, so a new command in the docs is either tried or explained.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from doc_blocks import doc_blocks

ROOT = Path(__file__).resolve().parents[1]


def commands(code: str) -> list[str]:
    """The block's commands: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\s*\\\n\s*", " ", code)
    out = []
    for line in joined.splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


BLOCKS = doc_blocks("bash|sh|shell")


def test_every_shell_block_is_run_or_explained():
    assert len(BLOCKS) >= 5
    for where, marker, _ in BLOCKS:
        assert marker == "run" or (marker.startswith("skip") and len(marker[4:].strip()) > 10), (
            f"{where}: mark the block <!-- doc-test: run --> or <!-- doc-test: skip REASON -->"
        )


def test_commands_join_continuations_and_drop_comments():
    code = "a --x 1 \\\n    --y 2   # note\n# only a comment\n\nb\n"
    assert commands(code) == ["a --x 1 --y 2", "b"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "code", [pytest.param(code, id=where) for where, marker, code in BLOCKS if marker == "run"]
)
def test_shell_block_runs(code, tmp_path):
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "SFTVSRL_CACHE": str(tmp_path / ".c"),
    }
    for command in commands(code):
        if command.startswith("sftvsrl "):
            command = f"{sys.executable} -m sftvsrl {command[len('sftvsrl ') :]}"
        result = subprocess.run(
            command,
            shell=True,
            cwd=tmp_path,
            input="quit\nquit\nn\n",
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        assert result.returncode == 0, f"{command}\n{result.stderr[-3000:]}"
