"""The `3t` entry point: exit codes of services.md §12 and no traceback as the user interface."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ttt.cli import main


def test_unknown_option_is_a_usage_error_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--bogus"]) == 2
    err = capsys.readouterr().err
    assert "No such option: --bogus" in err and "Traceback" not in err


def test_unknown_command_is_a_usage_error() -> None:
    assert main(["no-such-command"]) == 2


def test_version_prints_versions_and_schema_head(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", "version"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["ttt"] and info["python"].count(".") == 2 and info["ccxt"]
    assert info["schema_head"]


def test_console_script_exit_code_reaches_the_shell() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "from ttt.cli import run; run()", "--bogus"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
