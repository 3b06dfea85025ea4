import json

import pytest
import torch

from sftvsrl.models import precision


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SFTVSRL_CACHE", str(tmp_path))
    monkeypatch.setattr(precision, "_decided", {})
    return tmp_path / "precision.json"


def mock_rates(monkeypatch, fp32, bf16):
    calls = []

    def fake(hidden, device="cpu", seconds=precision.MEASURE_SECONDS):
        calls.append(hidden)
        return fp32, bf16

    monkeypatch.setattr(precision, "measure_rates", fake)
    return calls


def test_auto_picks_fp32_when_bf16_measures_slower(cache, monkeypatch, capsys):
    calls = mock_rates(monkeypatch, 100.0, 60.0)
    assert precision.resolve_bf16("auto", hidden=64, device="cpu") is False
    err = capsys.readouterr().err
    assert "bf16 auto: fp32" in err and "fp32 100.0 GFLOP/s" in err and "bf16 60.0 GFLOP/s" in err
    assert calls == [64]


def test_auto_picks_bf16_when_faster_and_reads_the_cache_next_time(cache, monkeypatch, capsys):
    calls = mock_rates(monkeypatch, 100.0, 250.0)
    assert precision.resolve_bf16("auto", hidden=64, device="cpu") is True
    table = json.loads(cache.read_text())
    (key,) = table
    assert precision.cpu_model() in key and torch.__version__ in key and "hidden 64" in key
    assert table[key] == {"fp32": 100.0, "bf16": 250.0, "bf16_chosen": True}
    # A new process (empty memo) reads the file instead of measuring again.
    monkeypatch.setattr(precision, "_decided", {})
    assert precision.resolve_bf16("auto", hidden=64, device="cpu") is True
    assert calls == [64]
    assert "cached in" in capsys.readouterr().err.splitlines()[-1]
    # Another shape is another measurement.
    mock_rates(monkeypatch, 100.0, 90.0)
    assert precision.resolve_bf16("auto", hidden=128, device="cpu") is False


def test_one_model_name_with_other_vector_extensions_is_measured_again(cache, monkeypatch, tmp_path):
    """Two "AMD EPYC" chips, one with AVX512-BF16 and one with AVX2 only: a decision cached on
    the first must not be read on the second."""
    real_open = open
    head = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2 fma"
    for extra, fp32, bf16 in ((" avx512f avx512_bf16", 100.0, 300.0), ("", 80.0, 1.0)):
        info = tmp_path / "cpuinfo"
        info.write_text(head + extra + "\n")
        monkeypatch.setattr(
            "builtins.open",
            lambda f, *a, _info=info, **k: real_open(_info if f == "/proc/cpuinfo" else f, *a, **k),
        )
        calls = mock_rates(monkeypatch, fp32, bf16)
        assert precision.resolve_bf16("auto", hidden=64) is (bf16 > fp32)
        assert calls == [64]
    table = json.loads(cache.read_text())
    assert sorted(k.split(" | ")[0] for k in table) == [
        "AMD EPYC [avx2 avx512f avx512_bf16]",
        "AMD EPYC [avx2]",
    ]


def test_a_tie_within_the_margin_stays_fp32(cache, monkeypatch):
    mock_rates(monkeypatch, 100.0, 103.0)
    assert precision.resolve_bf16("auto", hidden=32) is False


def test_forced_settings_do_not_measure(cache, monkeypatch):
    calls = mock_rates(monkeypatch, 1.0, 2.0)
    assert precision.resolve_bf16(True, hidden=64) is True
    assert precision.resolve_bf16(False, hidden=64) is False
    assert calls == [] and not cache.exists()
    with pytest.raises(ValueError):
        precision.resolve_bf16("yes", hidden=64)


def test_unreadable_cache_is_measured_again(cache, monkeypatch):
    cache.write_text("{not json")
    calls = mock_rates(monkeypatch, 100.0, 200.0)
    assert precision.resolve_bf16("auto", hidden=64) is True and calls == [64]


def test_real_measurement_is_short_and_positive():
    fp32, bf16 = precision.measure_rates(32, seconds=0.01)
    assert fp32 > 0 and bf16 > 0


def test_threads(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert precision.resolve_threads(1) == 1 == torch.get_num_threads()
        assert precision.resolve_threads(None) == 1  # never raises an earlier pin
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "64")
        torch.set_num_threads(2)
        assert precision.resolve_threads(None) == 1  # a process's share of the cores
        with pytest.raises(ValueError):
            precision.resolve_threads(0)
    finally:
        torch.set_num_threads(before)


def test_trainer_configs_default_to_auto():
    from sftvsrl.training.ppo import PPOConfig
    from sftvsrl.training.sft import SFTConfig

    assert SFTConfig.model_fields["bf16"].default == "auto"
    assert PPOConfig.model_fields["bf16"].default == "auto"
    assert SFTConfig.model_fields["threads"].default is None
    assert PPOConfig.model_fields["threads"].default is None
