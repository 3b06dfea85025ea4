"""``sftvsrl play generalpoints`` in the terminal, with scripted input."""

import argparse
import io
import subprocess
import sys

import pytest

from sftvsrl.envs.generalpoints import play


def _run(argv, text, monkeypatch, capsys):
    parser = argparse.ArgumentParser()
    play.add_arguments(parser)
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    code = play.run(parser.parse_args(argv))
    return code, capsys.readouterr().out


def test_play_a_fixed_hand(monkeypatch, capsys):
    code, out = _run(["--cards", "3 3 8 8"], "3+3+8+8\nhint\n8/(3-8/3)\n", monkeypatch, capsys)
    assert code == 0
    assert "reward -1" in out and "wrong_value" in out and "8/(3-8/3)" in out
    assert "reward +5" in out and "Solved!" in out


def test_vision_writes_the_image_and_eof_is_clean(monkeypatch, capsys, tmp_path):
    image = tmp_path / "hand.png"
    code, out = _run(["--vl", "--seed", "3", "--image-out", str(image)], "", monkeypatch, capsys)
    assert code == 0 and image.exists() and str(image) in out and "Bye." in out


def test_out_of_turns_then_quit(monkeypatch, capsys):
    code, out = _run(["--seed", "0", "--max-turns", "2"], "1\n2\nn\n", monkeypatch, capsys)
    assert code == 0 and out.count("wrong_numbers") == 2 and "Out of answers" in out


def test_command_line_with_a_bad_hand_is_a_clean_error():
    # `sftvsrl play` builds every task's parser; skip until the V-IRL task module exists
    pytest.importorskip("sftvsrl.envs.virl.play")
    proc = subprocess.run(
        [sys.executable, "-m", "sftvsrl", "play", "generalpoints", "--cards", "A A A A"],
        capture_output=True,
        text=True,
        timeout=120,
        input="",
    )
    assert proc.returncode == 2 and "no solution" in proc.stderr and "Traceback" not in proc.stderr
