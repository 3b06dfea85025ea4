import argparse
import subprocess
import sys

import pytest

import sftvsrl
from sftvsrl.cli import COMMANDS, build_parser, main


def test_help_lists_every_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_module_entry_point_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "sftvsrl", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and "study" in proc.stdout


def _help(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"sftvsrl {sftvsrl.__version__}"


def test_top_level_help_has_no_rest_markup(capsys):
    out = _help(capsys)
    assert "``" not in out and "--version" in out


def test_eval_help_shows_its_defaults(capsys):
    out = " ".join(_help(capsys, "eval").split())
    for text in ("(default: 234)", "(default: 5)", "(default: 0.2)", "{float32,bfloat16,float16}"):
        assert text in out


def test_data_virl_help_lists_the_split_choices(capsys):
    out = " ".join(_help(capsys, "data", "virl").split())
    assert "{train,test,district,all}" in out and "(default: train)" in out


def test_every_option_with_a_default_shows_it(capsys):
    """Each option (of every command and task) whose default is not None/False says it in help."""
    commands = [["data", "generalpoints"], ["data", "virl"], ["play", "generalpoints"], ["play", "virl"]]
    commands += [["eval"], ["sft"], ["rl"], ["study"]]
    for argv in commands:
        parser, _ = build_parser(argv)
        sub = parser
        for name in argv:
            action = next(a for a in sub._actions if isinstance(a, argparse._SubParsersAction))
            sub = action.choices[name]
        for action in sub._actions:
            if action.default in (None, False, argparse.SUPPRESS) or action.required:
                continue
            assert action.help and "default" in action.help, (argv, action.dest)
        text = " ".join(sub.format_help().split())
        assert "``" not in text, argv
