import pytest

from sftvsrl.study.stages import StageRunner


def test_finished_stages_are_skipped_and_interrupted_ones_rerun(tmp_path):
    calls = []

    def ok(name):
        def fn():
            calls.append(name)
            return {"value": name}

        return fn

    def boom():
        calls.append("boom")
        raise KeyboardInterrupt

    runner = StageRunner(tmp_path, total=3)
    assert runner.run("a", ok("a"))["value"] == "a"
    with pytest.raises(KeyboardInterrupt):
        runner.run("b", boom)
    assert runner.done("a") and not runner.done("b")

    again = StageRunner(tmp_path, total=3)
    assert again.run("a", ok("a-again"))["value"] == "a"  # stored result reused
    assert again.run("b", ok("b"))["value"] == "b"
    assert calls == ["a", "boom", "b"]
    assert "stage_seconds" in again.run("b", ok("never"))


def test_unreadable_result_reruns(tmp_path):
    runner = StageRunner(tmp_path)
    runner.result_path("a").write_text("{broken")
    assert runner.run("a", lambda: {"v": 1})["v"] == 1


def test_interrupted_attempts_count_in_the_stage_time(tmp_path):
    import time

    def slow_then_interrupted():
        time.sleep(0.35)  # a few heartbeats
        raise KeyboardInterrupt

    runner = StageRunner(tmp_path, heartbeat_s=0.05)
    with pytest.raises(KeyboardInterrupt):
        runner.run("a", slow_then_interrupted)
    assert float((tmp_path / "stages" / ".a.elapsed").read_text()) >= 0.35

    result = StageRunner(tmp_path, heartbeat_s=0.05).run("a", lambda: {"v": 1})
    assert result["stage_seconds"] >= 0.35 and result["attempts_seconds_before"] >= 0.35
    assert not (tmp_path / "stages" / ".a.elapsed").exists()  # finished: the counter is folded in
