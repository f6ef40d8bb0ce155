"""The ``liveness`` command line: help, dispatch, and argument errors (exit 2, no traceback)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from liveness import cli


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name, (_, help_text) in cli.COMMANDS.items():
        assert name in out and help_text in out


def test_no_command_prints_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_each_command_has_its_own_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([command, "--help"])
    assert e.value.code == 0
    assert f"liveness {command}" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["no-such-command"], "invalid choice"),
    (["demo"], "--model"),  # required option missing
    (["demo", "--model", "m.npz", "--smooth", "lots"], "invalid float"),
    (["demo", "--model", "m.npz", "--no-such-option"], "unrecognized arguments"),
])
def test_bad_arguments_exit_2_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_installed_entry_point_runs():
    done = subprocess.run([sys.executable, "-m", "liveness.cli", "--version"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("liveness ")
