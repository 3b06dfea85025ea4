import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toy_env import register_toy  # noqa: E402

register_toy()
# These tests run tiny models on small batches: one thread is fastest, and on a shared
# 2-core machine a second OpenMP thread waiting for a busy core slows them down 10-100x.
torch.set_num_threads(1)
