"""The `teran` console script: lists its subcommands, and a bad config ends in one clear line.

Each subcommand's config errors are checked in this process (``jobs.cli.main``, as the console script
calls it): a subprocess per case would cost seconds of importing torch and Ray each. One case runs as a
real process, to prove the exit code and stderr a user sees.
"""

import subprocess
import sys

import pytest

from jobs.cli import SUBCOMMANDS, main


def teran(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs.cli", *args], capture_output=True, text=True, timeout=120)


def teran_here(capsys, *args: str) -> tuple[int, str]:
    """(exit code, stderr) of ``teran *args`` run in this process."""
    capsys.readouterr()
    code = main(list(args))
    return code, capsys.readouterr().err


def test_help_lists_every_subcommand():
    result = teran("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # argparse wraps long help lines
    for name, (_, help_text) in SUBCOMMANDS.items():
        assert name in text and help_text in text


def test_unknown_subcommand_is_an_error():
    result = teran("frobnicate")
    assert result.returncode == 2
    assert "invalid choice: 'frobnicate'" in result.stderr


def test_a_bad_config_is_one_clear_line_from_the_console_script(tmp_path):
    missing = str(tmp_path / "missing.yaml")
    result = teran("encode", "--config", missing)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"teran encode: error: config file {missing} does not exist"]


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_missing_config_is_one_clear_line(name, tmp_path, capsys):
    missing = str(tmp_path / "missing.yaml")
    code, stderr = teran_here(capsys, name, "--config", missing)
    assert code == 2, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines() == [f"teran {name}: error: config file {missing} does not exist"]


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_misspelt_key_names_the_file_and_key(name, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("no_such_section_xyz: {a: 1}\n")
    code, stderr = teran_here(capsys, name, "--config", str(bad))
    assert code == 2, stderr
    assert "Traceback" not in stderr
    assert f"config {bad} is not valid" in stderr
    assert "no_such_section_xyz: unknown key" in stderr
