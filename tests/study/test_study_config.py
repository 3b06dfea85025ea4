from pathlib import Path

import pytest

from sftvsrl.config import ConfigError
from sftvsrl.study.config import load_study_config

PRESETS = Path(__file__).resolve().parents[2] / "configs" / "study"


@pytest.mark.parametrize("name", ["smoke", "cpu", "paper"])
def test_presets_validate(name):
    cfg = load_study_config(PRESETS / f"{name}.yaml")
    assert cfg.preset == name
    assert "GeneralPoints-L" in cfg.tasks


def test_smoke_is_tiny_and_pretrains():
    cfg = load_study_config(PRESETS / "smoke.yaml")
    assert cfg.model == "tiny-lm" and cfg.pretrain and cfg.tasks == ["GeneralPoints-L", "VIRL-L"]


def test_paper_uses_a_local_model_without_stage_0():
    cfg = load_study_config(PRESETS / "paper.yaml")
    assert not cfg.pretrain and cfg.model != "tiny-lm"


@pytest.mark.parametrize(
    "override, message",
    [
        ("stage2.rl.lr=-1", "stage2.rl"),
        ("stage2.rl.out_dir=x", "study sets them"),
        ("init.sft.bogus=1", "unknown key"),
        ("tasks=[Chess-L]", "tasks"),
        ("ablations.turns=[0]", "positive"),
        ("ablations.turns_splits=[id,visual_ood]", r"GeneralPoints-L has no split \['visual_ood'\]"),
    ],
)
def test_bad_values_are_clear_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_study_config(PRESETS / "smoke.yaml", [override])


def test_compile_rollouts_reaches_every_rl_run():
    from sftvsrl.study.trainers import rl_config

    for value in (False, True):
        cfg = load_study_config(PRESETS / "smoke.yaml", [f"compile_rollouts={str(value).lower()}"])
        rl = rl_config(cfg, init="tiny-lm", out_dir=Path("x"), env_id="e", env_kwargs={}, updates=2)
        assert rl.compile_rollouts is value
