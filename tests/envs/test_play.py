"""The shared terminal game loop (``sftvsrl.envs.playloop``) driven through both games."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import types

import pytest

from sftvsrl.envs import playloop
from sftvsrl.envs.generalpoints import play as gp_play
from sftvsrl.envs.virl import play as virl_play


class Script:
    """A fake input function: each line is a string, or a callable of the transcript so far."""

    def __init__(self, *lines):
        self.lines = list(lines)
        self.prompts: list[str] = []
        self.said: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        if not self.lines:
            raise EOFError
        line = self.lines.pop(0)
        return line(self) if callable(line) else line

    def say(self, text: str) -> None:
        self.said.append(text)

    @property
    def out(self) -> str:
        return "\n".join(self.said)


def expert_from_hint(script: Script) -> str:
    """The full answer the last ``hint`` printed (GeneralPoints)."""
    last = next(t for t in reversed(script.said) if "(full answer: " in t)
    return last.split("(full answer: ", 1)[1].rstrip(")")


def virl_expert_action(script: Script) -> str:
    last = next(t for t in reversed(script.said) if t.startswith("Expert action: "))
    return last.splitlines()[0].removeprefix("Expert action: ")


def make(module, argv):
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return module.make_game(parser.parse_args(argv))


def count_steps(game):
    """Wrap the env's step so the test can see how many answers were scored."""
    calls = []
    step = game.env.step

    def counted(answer):
        calls.append(answer)
        return step(answer)

    game.env.step = counted
    return calls


def play(game, script):
    return playloop.play(game, input_fn=script, say=script.say)


def test_commands_and_control_lines_are_never_scored():
    game = make(gp_play, ["--seed", "0"])
    steps = count_steps(game)
    script = Script("help", "hint", "?", "show", "\x1b[D", "\x1b[A\x1b[A", "", "HELP", "quit")
    assert play(game, script) == 0
    assert steps == []
    out = script.out
    assert "Commands (never scored)" in out and "a solution:" in out and "[Task]" in out
    assert out.count("control characters") == 2 and "arrow keys only for editing" in out
    assert "0 answers scored" in out and "Bye." in out
    assert all("attempt 1 of 5" in p for p in script.prompts)


def test_attempt_counter_counts_scored_answers_only():
    game = make(gp_play, ["--seed", "0", "--max-turns", "3"])
    script = Script("1+1", "hint", "2+2", "quit")
    assert play(game, script) == 0
    assert script.prompts == [
        "\n[attempt 1 of 3] > ",
        "\n[attempt 2 of 3] > ",
        "\n[attempt 2 of 3] > ",
        "\n[attempt 3 of 3] > ",
    ]
    assert "2 answers scored" in script.out


def test_expert_answer_wins_and_another_hand_is_offered():
    game = make(gp_play, ["--seed", "5"])
    steps = count_steps(game)
    script = Script("hint", expert_from_hint, "y", "hint", expert_from_hint, "n")
    assert play(game, script) == 0
    assert len(steps) == 2 and script.out.count("Solved!") == 2
    assert script.prompts.count("\nAnother hand? [Y/n] ") == 2
    assert "Score: 2 of 2 hands won, 2 answers scored" in script.out


def test_out_of_answers_shows_a_solution_then_eof_at_another_is_clean():
    game = make(gp_play, ["--seed", "0", "--max-turns", "1"])
    script = Script("1")
    assert play(game, script) == 0
    assert "Out of answers. Values" in script.out and "\nAnother hand? [Y/n] " in script.prompts
    assert "Score: 0 of 1 hand won, 1 answer scored" in script.out


def test_a_fixed_hand_is_not_offered_again():
    game = make(gp_play, ["--cards", "3 3 8 8"])
    script = Script("8/(3-8/3)")
    assert play(game, script) == 0
    assert "Solved!" in script.out and not any("Another" in p for p in script.prompts)


def test_virl_prints_only_what_changed_and_offers_another_route():
    game = make(virl_play, ["--seed", "1"])
    steps = count_steps(game)

    def walker(script: Script) -> str:
        """Ask for a hint, then type the hinted action; say no to another route."""
        if script.prompts[-1].startswith("\nAnother route?"):
            return "n"
        return virl_expert_action(script) if script.said[-1].startswith("Expert action: ") else "hint"

    script = Script("help", "show", "\x1b[D", *[walker] * 100)
    assert play(game, script) == 0
    out = script.out
    # The full prompt appears once for the route and once for "show"; a step prints only news.
    assert out.count("[Instruction]") == 2
    assert "Now: O_2 (current):" in out and "Route complete!" in out and "[wrong" not in out
    assert script.prompts[-1] == "\nAnother route? [Y/n] " and "Score: 1 of 1 route won" in out
    assert any(p.startswith("\n[route 1, step 2, attempt 1 of 2]") for p in script.prompts)
    assert len(steps) == sum(1 for t in script.said if t.startswith("[correct]"))


def test_virl_wrong_answer_keeps_the_place_and_counts_the_attempt():
    game = make(virl_play, ["--seed", "1"])
    script = Script("stop", "quit")
    assert play(game, script) == 0
    assert script.prompts[1].startswith("\n[route 1, step 1, attempt 2 of 2]")
    assert "Now:" not in script.out and "(the last one unfinished)" in script.out


def test_virl_next_route_after_yes():
    game = make(virl_play, ["--seed", "1", "--max-turns", "1"])
    script = Script("stop", "y", "quit")
    assert play(game, script) == 0
    assert any(p.startswith("\n[route 2, step 1") for p in script.prompts)
    assert "Score: 0 of 2 routes won" in script.out


def test_line_reader_on_a_pipe_echoes_and_ends_with_eof():
    out = io.StringIO()
    read = playloop.LineReader("test", stdin=io.StringIO("abc\n\x1b[D\n"), stdout=out)
    assert read("> ") == "abc" and read("> ") == "\x1b[D"
    with pytest.raises(EOFError):
        read("> ")
    assert out.getvalue() == "> abc\n> \\x1b[D\n> \n"


def test_line_reader_keeps_a_history_per_game(monkeypatch):
    history: list[str] = []
    fake = types.SimpleNamespace(
        clear_history=history.clear,
        add_history=history.append,
        get_current_history_length=lambda: len(history),
        remove_history_item=lambda i: history.pop(i),
    )
    monkeypatch.setitem(sys.modules, "readline", fake)
    monkeypatch.setattr(playloop.LineReader, "_histories", {})
    typed = iter(["1+2", "y", "3*8"])

    def fake_input(prompt):
        line = next(typed)
        history.append(line)  # what readline does for every line read
        return line

    monkeypatch.setattr("builtins.input", fake_input)
    tty = types.SimpleNamespace(isatty=lambda: True)
    read = playloop.LineReader("gp", stdin=tty)
    assert read("> ") == "1+2" and read("? ", remember=False) == "y" and read("> ") == "3*8"
    assert history == ["1+2", "3*8"]
    other = playloop.LineReader("virl", stdin=tty)
    assert history == [] and other.readline is fake
    playloop.LineReader("gp", stdin=tty)
    assert history == ["1+2", "3*8"]


def test_has_control_chars():
    assert playloop.has_control_chars("\x1b[D") and playloop.has_control_chars("ab\x7f")
    assert not playloop.has_control_chars("(8-2)*(3+1)\t") and not playloop.has_control_chars("Lääke")


def test_piped_command_line_session():
    text = "help\nhint\nshow\n\x1b[D\n?\n1+1\nquit\n"
    proc = subprocess.run(
        [sys.executable, "-m", "sftvsrl", "play", "generalpoints", "--seed", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        input=text,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "[attempt 1 of 5] > help" in out and "[attempt 2 of 5] > quit" in out
    assert "not sent as an answer" in out and "\\x1b[D" in out
    assert "Score: 0 of 1 hand won, 1 answer scored, total reward -2" in out
    assert json.loads(out.split("(full answer: ", 1)[1].split(")\n", 1)[0])["number"] == [2, 1, 3, 6]


def test_ctrl_c_prints_the_score_and_exits_130():
    game = make(gp_play, ["--seed", "0"])

    def interrupt(script):
        raise KeyboardInterrupt

    script = Script("1+1", interrupt)
    assert play(game, script) == 130
    assert "Score: 0 of 1 hand won, 1 answer scored" in script.out
