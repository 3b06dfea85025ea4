from pathlib import Path

import pytest

from sftvsrl.config import ConfigError, load_config
from sftvsrl.training.ppo import PPOConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("name", ["gp_l_tiny_rl.yaml", "gp_l_paper_rl.yaml"])
def test_shipped_configs_validate(name):
    cfg = load_config(PPOConfig, CONFIGS / name, ["init=somewhere"])
    assert cfg.gamma == 0.9 and cfg.lam == 0.95


def test_paper_defaults():
    cfg = load_config(PPOConfig, CONFIGS / "gp_l_paper_rl.yaml")
    assert (cfg.lr, cfg.clip, cfg.epochs, cfg.temperature, cfg.max_new_tokens) == (1e-6, 0.1, 4, 0.2, 512)
    assert cfg.lr_schedule == "cosine" and cfg.thought_coef == 0.5


def test_bad_values_are_clear_errors():
    with pytest.raises(ConfigError, match="clip"):
        load_config(PPOConfig, None, ["clip=-1"])
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(PPOConfig, None, ["gama=0.9"])
