"""StageRunner's console lines: a heartbeat in a log, and time left only from measured stages."""

import io
import time

from rich.console import Console

from sftvsrl.study.stages import StageRunner


def _log_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200), out  # a file: not a terminal, as in `... > log`


def test_a_running_stage_says_so_in_a_log(tmp_path):
    console, out = _log_console()
    runner = StageRunner(tmp_path, console=console, total=1, heartbeat_s=0.02, say_every_s=0.1)
    runner.run("T.sft", lambda: time.sleep(0.35) or {})
    lines = [line for line in out.getvalue().splitlines() if "running" in line]
    assert len(lines) >= 2
    assert lines[0].startswith("[1/1] T.sft: running, 0m00s so far")


def test_no_heartbeat_lines_on_a_terminal(tmp_path):
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200)
    StageRunner(tmp_path, console=console, heartbeat_s=0.02, say_every_s=0.05).run(
        "a", lambda: time.sleep(0.2) or {}
    )
    assert "running" not in out.getvalue()


def test_time_left_comes_from_measured_stages_of_the_same_kind(tmp_path):
    console, out = _log_console()
    plan = ["pretrain", "A.data", "A.sft", "B.data", "B.sft"]
    runner = StageRunner(tmp_path, console=console, plan=plan, say_every_s=0)
    assert runner.total == 5
    runner.run("pretrain", dict)
    assert (
        out.getvalue()
        .splitlines()[-1]
        .endswith("4 stages left, time unknown (none of their kinds has run yet)")
    )
    runner.run("A.data", dict)  # B.data is of its kind; the sft stages are not
    assert "min left (+2 stages of kinds not run yet)" in out.getvalue().splitlines()[-1]
    runner.measured["data"] = [60.0]  # as if A.data had taken a minute
    runner.measured["sft"] = [120.0]
    runner.index = 3  # after A.sft: B.data and B.sft left, both kinds measured
    assert runner.time_left() == "about 3.0 min left (measured stage times)"
    runner.measured.pop("sft")
    assert runner.time_left() == "at least 1.0 min left (+1 stage of kinds not run yet)"
    assert runner.running_line("B.data", "[3/4]", 90) == (
        "[3/4] B.data: running, 1m30s so far (a finished data stage took 1m00s)"
    )


def test_skipped_stages_count_as_measured_and_no_plan_gives_no_guess(tmp_path):
    StageRunner(tmp_path, console=_log_console()[0]).run("A.rl", lambda: {"v": 1})
    console, out = _log_console()
    again = StageRunner(tmp_path, console=console, total=3)
    again.run("A.rl", dict)  # done earlier: its stored time is a measurement
    assert again.expected_seconds("B.rl") is not None
    again.run("A.eval", dict)
    assert out.getvalue().splitlines()[-1].endswith("1 stage left")
