import json

import pytest

from sftvsrl.atomic import atomic_write_json, atomic_write_text
from sftvsrl.errors import CheckpointError, ConfigError, DataError, UserError


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "result.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["result.json"]


def test_atomic_write_failure_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "report.md"
    atomic_write_text(target, "old")

    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr("sftvsrl.atomic.os.replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_error_hierarchy():
    for cls in (ConfigError, DataError, CheckpointError):
        assert issubclass(cls, UserError)
    assert issubclass(ConfigError, ValueError)  # callers that caught ValueError keep working
