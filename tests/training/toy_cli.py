"""``python tests/training/toy_cli.py <sftvsrl args>``: the CLI with the toy env registered
(for tests that launch subprocesses, e.g. 2 processes under accelerate)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toy_env import register_toy  # noqa: E402

from sftvsrl.cli import main  # noqa: E402

register_toy()
sys.exit(main(sys.argv[1:]))
