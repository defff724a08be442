"""The `teran` console script: lists its subcommands, and a bad config ends in one clear line."""

import subprocess
import sys

import pytest

from jobs.cli import SUBCOMMANDS


def teran(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs.cli", *args], capture_output=True, text=True, timeout=120)


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


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_missing_config_is_one_clear_line(name, tmp_path):
    missing = str(tmp_path / "missing.yaml")
    result = teran(name, "--config", missing)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"teran {name}: error: config file {missing} does not exist"]


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_misspelt_key_names_the_file_and_key(name, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("no_such_section_xyz: {a: 1}\n")
    result = teran(name, "--config", str(bad))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"config {bad} is not valid" in result.stderr
    assert "no_such_section_xyz: unknown key" in result.stderr
