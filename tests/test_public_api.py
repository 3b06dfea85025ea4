"""The package-level names the docs show import, and importing the packages stays light."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "package, names",
    [
        ("sftvsrl.models", ["load_model", "load_checkpoint", "save_model", "PolicyModel", "LoraSettings"]),
        ("sftvsrl.training", ["SFTConfig", "train_sft", "PPOConfig", "train_ppo"]),
    ],
)
def test_package_exports_resolve(package, names):
    import importlib

    mod = importlib.import_module(package)
    for name in names:
        assert getattr(mod, name) is not None
        assert name in dir(mod)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mod.nope  # noqa: B018


def test_importing_the_packages_does_not_load_torch():
    code = "import sys, sftvsrl.models, sftvsrl.training; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
