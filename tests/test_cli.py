import subprocess
import sys

from sftvsrl.cli import COMMANDS, main


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
