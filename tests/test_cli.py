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


def test_eval_prints_a_plain_progress_line_when_not_a_terminal(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # main() sets it; undone after the test

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rc = main(
            [
                "eval",
                "--model",
                "tiny-lm",
                "--env",
                "sftvsrl/GeneralPoints-L-v0",
                "--env-kwargs",
                "prompt_style=compact",
                "--episodes",
                "3",
                "--max-turns",
                "1",
                "--max-new-tokens",
                "4",
                "--out",
                str(tmp_path / "eval"),
            ]
        )
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    err = capsys.readouterr().err  # capsys's stderr is no terminal: plain lines, no bar
    assert "eval 3/3, " in err and "episodes/s, ETA 0m00s" in err


def test_hugging_face_bars_are_hidden_unless_verbose(monkeypatch):
    from transformers.utils import logging as hf_logging

    from sftvsrl.cli import quiet_hugging_face

    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    hf_logging.enable_progress_bar()
    try:
        quiet_hugging_face(verbose=True)
        assert hf_logging.is_progress_bar_enabled()
        assert "HF_HUB_DISABLE_PROGRESS_BARS" not in __import__("os").environ
        quiet_hugging_face(verbose=False)
        assert not hf_logging.is_progress_bar_enabled()
        assert __import__("os").environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    finally:
        monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
        hf_logging.enable_progress_bar()


@pytest.mark.parametrize(
    "argv", [["--verbose", "sft", "--config", "x.yaml"], ["sft", "--verbose", "--config", "x.yaml"]]
)
def test_verbose_is_accepted_before_and_after_the_command(argv):
    parser, module = build_parser(argv)
    args = parser.parse_args(argv)
    assert module is not None and args.command == "sft" and args.verbose is True
    parser, _ = build_parser(["sft"])
    assert parser.parse_args(["sft"]).verbose is False


def test_a_command_leaves_no_process_group_behind(tmp_path, capsys):
    """A launch's gloo group is destroyed when the command returns, also on an error, so that
    the interpreter's shutdown does not race gloo's threads (an abort after a finished run)."""
    import torch.distributed as dist

    store = dist.HashStore()
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        assert main(["sft", "--config", str(tmp_path / "missing.yaml")]) == 2
        assert "error" in capsys.readouterr().err
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
