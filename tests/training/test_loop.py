import io
import math

import pytest

from sftvsrl.training.loop import PhaseTimer, Progress, cpu_only_launch, lr_multiplier


def test_lr_multiplier_matches_the_old_schedules():
    # SFT's former lr_factor
    assert lr_multiplier(0, 10, 2, 0.1) == 0.5
    assert lr_multiplier(1, 10, 2, 0.1) == 1.0
    assert lr_multiplier(2, 10, 2, 0.1) == pytest.approx(1.0)
    assert lr_multiplier(10, 10, 2, 0.1) == pytest.approx(0.1)
    assert lr_multiplier(6, 10, 2, 0.1) == pytest.approx(0.55)
    # PPO's former lr_lambda: warmup then constant, and no warmup at all
    assert lr_multiplier(0, 10, 2, 0.1, "constant") == 0.5
    assert lr_multiplier(7, 10, 2, 0.1, "constant") == 1.0
    assert lr_multiplier(0, 10, 0, 0.0) == 1.0
    expected = 0.2 + 0.8 * 0.5 * (1 + math.cos(math.pi * 3 / 10))
    assert lr_multiplier(3, 10, 0, 0.2) == expected  # bit-identical formula


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class FakeStream(io.StringIO):
    def isatty(self) -> bool:
        return False


def test_progress_prints_plain_lines_every_30s_and_at_the_end():
    clock, out = FakeClock(), FakeStream()
    with Progress("sft", total=100, done=10, stream=out, clock=clock) as p:
        for step in range(11, 51):
            clock.t += 2.0
            p.update(step, f"loss {1 / step:.3f}")
    lines = out.getvalue().splitlines()
    # 40 steps of 2 s: a line at 30 s, 60 s and the final one at 80 s
    assert len(lines) == 3
    assert lines[0].startswith("sft 25/100, 0.5 steps/s, ETA 2m30s, loss 0.040")
    assert lines[-1].startswith("sft 50/100, 0.5 steps/s, ETA 1m40s")


def test_progress_final_step_prints_once_and_disabled_prints_nothing():
    clock, out = FakeClock(), FakeStream()
    with Progress("rl", total=3, stream=out, clock=clock) as p:
        for step in (1, 2, 3):
            clock.t += 1.0
            p.update(step, "")
    assert out.getvalue().splitlines() == ["rl 3/3, 1 steps/s, ETA 0m00s"]
    out = FakeStream()
    with Progress("rl", total=3, enabled=False, stream=out, clock=clock) as p:
        p.update(3, "x")
    assert out.getvalue() == ""


def test_phase_timer_sums_phases_and_resets():
    clock = FakeClock()
    timer = PhaseTimer(clock=clock)
    for _ in range(2):
        with timer("gen"):
            clock.t += 1.5
    with timer("train"):
        clock.t += 0.5
    assert timer.seconds() == {"time/gen": 3.0, "time/train": 0.5}
    timer.reset()
    assert timer.seconds() == {}


def test_cpu_only_launch(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not cpu_only_launch()


def test_progress_advance_counts_items_in_its_unit():
    clock, out = FakeClock(), FakeStream()
    with Progress("eval", total=4, stream=out, clock=clock, unit="episodes") as p:
        for _ in range(4):
            clock.t += 0.5
            p.advance()
    assert out.getvalue().splitlines() == ["eval 4/4, 2 episodes/s, ETA 0m00s"]


def test_progress_line_before_any_step_has_no_eta():
    clock, out = FakeClock(), FakeStream()
    with Progress("sft", total=10, stream=out, clock=clock, every=30) as p:
        clock.t += 31.0
        assert p.line() == "sft 0/10, 0 steps/s, ETA ?"
        p.update(1, "loss 2.000")
    assert out.getvalue().splitlines() == ["sft 1/10, 0.0323 steps/s, ETA 4m39s, loss 2.000"]
