"""Every seed the study derives, in one named table (the values of the original study).

The study's own seeds come from ``StudyConfig.seed`` (training), ``corpus.seed`` (stage 0;
None: ``seed``, the table's ``seed`` for stage 0 means that one) and ``eval.seed`` (the
fixed evaluation episodes: episode ``i`` of a split resets with ``eval.seed + i``):

==========================  =======================================================
expert rows of D_init        ``seed * INIT_DATA_FACTOR`` (+ row index, in data.expert)
expert rows for stage 2 SFT  ``seed * INIT_DATA_FACTOR + MORE_DATA_OFFSET``
validation rows / episodes   ``eval.seed + VALIDATION_OFFSET``
stage-0 probe rows           ``seed + PROBE_OFFSET``
KL reference answers         ``eval.seed + KL_OFFSET`` (prompts: the eval episodes' first ones)
trainers                     ``seed`` (SFTConfig.seed, PPOConfig.seed)
==========================  =======================================================

PPO derives its own per-update seeds from ``PPOConfig.seed`` inside
``sftvsrl.training.ppo``: ``pool_seed`` (``seed * 7919 + update * 104729 + rank *
15485863``), ``generate_seed`` (``seed * 1_000_003 + update * 10_007 + t * 101 + rank``),
``seed + rank`` for torch and ``seed * 31 + update`` for minibatch shuffling.
"""

from __future__ import annotations

INIT_DATA_FACTOR = 1_000_003
MORE_DATA_OFFSET = 10_000_000
VALIDATION_OFFSET = 500_000
PROBE_OFFSET = 7919
KL_OFFSET = 300_000


def init_data_seed(seed: int) -> int:
    return seed * INIT_DATA_FACTOR


def more_data_seed(seed: int) -> int:
    return init_data_seed(seed) + MORE_DATA_OFFSET


def validation_seed(eval_seed: int) -> int:
    return eval_seed + VALIDATION_OFFSET


def probe_seed(seed: int) -> int:
    return seed + PROBE_OFFSET


def kl_seed(eval_seed: int) -> int:
    return eval_seed + KL_OFFSET
