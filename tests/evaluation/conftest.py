import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toy_env import register_toy  # noqa: E402

register_toy()
