"""Small helpers shared by the configuration tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

WALLET = "0x" + "ab" * 20
PRIVATE_KEY = "0x" + "5e" * 32
GATEWAY_TOKEN = "gw-token-that-is-long-enough-0123456789"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run `3t ARGV` in-process; return (exit code, stdout, stderr with whitespace runs collapsed).

    The error console wraps long messages at the terminal width; collapsing whitespace undoes that.
    """
    from ttt.cli import main

    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, " ".join(err.split())


def secrets_yaml(
    wallet: str | None = WALLET, private_key: str | None = PRIVATE_KEY, token: str | None = None
) -> str:
    def val(v: str | None) -> str:
        return "null" if v is None else f'"{v}"'

    return (
        "exchanges:\n  hyperliquid:\n"
        f"    wallet_address: {val(wallet)}\n    private_key: {val(private_key)}\n"
        f"gateway:\n  token: {val(token)}\n"
    )
