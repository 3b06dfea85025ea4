from pathlib import Path

import pytest

from sftvsrl.config import ConfigError, StrictModel, apply_overrides, load_config


class Optim(StrictModel):
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.95)


class Demo(StrictModel):
    name: str = "demo"
    steps: int = 10
    optim: Optim = Optim()


def test_defaults_and_overrides():
    cfg = load_config(Demo, overrides=["steps=5", "optim.lr=3e-4", "optim.betas=[0.8, 0.9]"])
    assert cfg.steps == 5 and cfg.optim.lr == pytest.approx(3e-4) and cfg.optim.betas == (0.8, 0.9)


def test_file_then_override(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 7\noptim:\n  lr: 0.1\n")
    cfg = load_config(Demo, path, ["optim.lr=0.2"])
    assert cfg.steps == 7 and cfg.optim.lr == pytest.approx(0.2)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["stepz=3"], "stepz: unknown key"),
        (["optim.momentum=0.9"], "optim.momentum: unknown key"),
        (["steps=many"], "steps:"),
        (["steps"], "not of the form key=value"),
        (["steps=1", "steps.x=1"], "is a value, not a section"),
    ],
)
def test_bad_overrides_are_clear(overrides, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config(Demo, overrides=overrides)


def test_bad_files_are_clear(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Demo, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(Demo, bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(Demo, listy)


def test_apply_overrides_does_not_mutate():
    data = {"a": {"b": 1}}
    out = apply_overrides(data, ["a.b=2", "c.d=x"])
    assert data == {"a": {"b": 1}} and out == {"a": {"b": 2}, "c": {"d": "x"}}


def test_errors_name_their_source_and_closest_key(tmp_path: Path):
    with pytest.raises(ConfigError) as err:
        load_config(Demo, overrides=["stepz=3"])
    msg = str(err.value)
    assert "\n" not in msg
    assert "override 'stepz=3'" in msg and "did you mean steps?" in msg
    with pytest.raises(ConfigError, match=r"did you mean optim\.betas\?"):
        load_config(Demo, overrides=["optim.beta=[0.8, 0.9]"])
    path = tmp_path / "c.yaml"
    path.write_text("stpes: 3\n")
    with pytest.raises(
        ConfigError, match=rf"config file {path}: stpes: unknown key \(did you mean steps\?\)"
    ):
        load_config(Demo, path, ["optim.lr=0.1"])
    with pytest.raises(ConfigError, match=r"override 'steps=many': steps:"):
        load_config(Demo, None, ["steps=many"])
