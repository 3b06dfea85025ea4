import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toy_env import register_toy  # noqa: E402

register_toy()


def write_addition_jsonl(path: Path, n: int = 64, seed: int = 0, images: bool = False) -> Path:
    """Tiny prompt/completion rows in the `sftvsrl data` format (a learnable toy task)."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            a, b = rng.randint(1, 9), rng.randint(1, 9)
            row = {
                "prompt": f"{a}+{b}=",
                "completion": str(a + b),
                "env_id": "toy",
                "env_kwargs": {},
                "seed": i,
            }
            if images:
                name = f"img/{i}.png"
                (path.parent / "img").mkdir(exist_ok=True)
                arr = np.full((24, 24, 3), 20 * a, dtype=np.uint8)
                Image.fromarray(arr).save(path.parent / name)
                row["images"] = [name]
            fh.write(json.dumps(row) + "\n")
    return path


@pytest.fixture
def addition_jsonl(tmp_path):
    return write_addition_jsonl(tmp_path / "data" / "train.jsonl")


@pytest.fixture
def make_jsonl():
    return write_addition_jsonl


# ---- PPO/evaluation tests: the toy env, and one thread --------------------------------
import sys  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toy_env import register_toy  # noqa: E402

register_toy()
# These tests run tiny models on small batches: one thread is fastest, and on a shared
# 2-core machine a second OpenMP thread waiting for a busy core slows them down 10-100x.
torch.set_num_threads(1)
