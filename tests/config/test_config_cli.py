"""`3t config init | check | show` and the generated templates."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from ttt.config import Config, Secrets, load_settings
from ttt.config.template import config_template, secrets_template

from .config_support import GATEWAY_TOKEN, PRIVATE_KEY, WALLET, run_cli, secrets_yaml, write


def key_tree(value: Any) -> Any:
    """The shape of a nested mapping: keys only, leaves replaced by None."""
    if isinstance(value, dict):
        return {k: key_tree(v) for k, v in value.items()}
    return None


# ---------------------------------------------------------------------------------------- templates


def test_config_template_lists_every_key_with_its_default() -> None:
    # Read with plain PyYAML: any YAML reader must see exactly the documented defaults.
    data = yaml.safe_load(config_template())
    defaults = Config().model_dump(mode="json")
    assert key_tree(data) == key_tree(defaults)
    assert data == defaults


def test_config_template_has_a_comment_on_every_key_line() -> None:
    lines = [ln for ln in config_template().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    symbol_entries = [ln for ln in lines if ln.lstrip().startswith('"')]  # products rows
    assert len(symbol_entries) == 4
    for line in lines:
        if line not in symbol_entries:
            assert " # " in line, line


def test_spec_example_values_in_the_template() -> None:
    text = config_template()
    for fragment in (
        "risk_pos_percentage: 0.000003",
        'client_id_prefix: "74747401"',
        '"BTC/USDC:USDC": {sz_decimals: 5, max_leverage: 40, margin_mode: cross}',
        "pos_weight: 0.032732855219630354",
        "timeframes: [1m, 4h]",
        "lookback_bars: {1m: 20, 4h: 50, default: 20}",
    ):
        assert fragment in text


def test_secrets_template_lists_every_secret_unset() -> None:
    data = yaml.safe_load(secrets_template())
    assert key_tree(data) == key_tree(Secrets().model_dump(mode="json"))
    assert data["gateway"]["token"] is None and data["observability"]["otlp_headers"] == {}


# ------------------------------------------------------------------------------------------- init


def test_init_then_check_exits_zero(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "deploy"
    code, out, err = run_cli(capsys, "config", "init", str(target))
    assert code == 0, err
    cfg, sec = target / "config.yml", target / "secrets.yml"
    assert f"wrote {cfg}" in out and f"wrote {sec}" in out
    assert stat.S_IMODE(sec.stat().st_mode) == 0o600
    code, out, err = run_cli(capsys, "config", "check", "--config", str(cfg), "--secrets", str(sec))
    assert code == 0, err
    assert "configuration OK" in err
    settings = load_settings(cfg, sec, environ={})
    assert settings.config == Config()
    assert settings.secrets == Secrets()
    assert settings.config_hash() == load_settings(environ={}).config_hash()
    assert settings.sources == (str(cfg), str(sec))


def test_init_defaults_to_the_working_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "config", "init")
    assert code == 0, err
    assert (tmp_path / "config.yml").is_file() and (tmp_path / "secrets.yml").is_file()


def test_init_refuses_to_overwrite(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    existing = write(tmp_path / "secrets.yml", "gateway:\n  token: keep-me\n")
    code, _, err = run_cli(capsys, "config", "init", str(tmp_path))
    assert code == 2
    assert str(existing) in err and "overwrite" in err
    assert existing.read_text(encoding="utf-8") == "gateway:\n  token: keep-me\n"
    assert not (tmp_path / "config.yml").exists()  # nothing half-written


def test_typo_in_an_initialised_file_exits_2_naming_the_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert run_cli(capsys, "config", "init", str(tmp_path))[0] == 0
    cfg = tmp_path / "config.yml"
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("  can_go_short: true", "  can_go_shrot: true"))
    code, out, err = run_cli(capsys, "config", "check", "--config", str(cfg))
    assert code == 2
    assert "portfolio.can_go_shrot: unknown key" in err
    assert out == ""
    assert "Traceback" not in err


# ---------------------------------------------------------------------------------- check and show


def test_malformed_yaml_exits_2_with_file_and_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cfg = write(tmp_path / "config.yml", "mode: embedded\nuniverse:\n  symbols: [BTC/USDC:USDC\n")
    code, out, err = run_cli(capsys, "config", "check", "--config", str(cfg))
    assert code == 2
    assert f"{cfg} line 4" in err
    assert "Traceback" not in err and out == ""


def test_global_options_work_before_the_subcommand(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cfg = write(tmp_path / "c.yml", "instance_id: global-flag\n")
    code, out, err = run_cli(capsys, "--config", str(cfg), "--log-level", "warning", "config", "show")
    assert code == 0, err
    assert "instance_id: global-flag" in out
    assert "log_level: WARNING" in out


def test_show_and_check_never_print_secrets(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_token = "env-gateway-token-9f8e7d6c5b4a39281706"
    sec = write(
        tmp_path / "secrets.yml",
        secrets_yaml(token=GATEWAY_TOKEN) + 'database:\n  password: "pw-db-0451"\n',
    )
    cfg = write(
        tmp_path / "config.yml", "exchange: {kind: hyperliquid}\nembedded: {serve_gateway_http: true}\n"
    )
    monkeypatch.setenv("TTT_SECRET__GATEWAY__TOKEN", env_token)
    outputs = []
    for argv in (
        ("config", "show", "--config", str(cfg), "--secrets", str(sec)),
        ("config", "check", "--config", str(cfg), "--secrets", str(sec)),
        ("--json", "config", "show", "--config", str(cfg), "--secrets", str(sec)),
        ("--json", "config", "check", "--config", str(cfg), "--secrets", str(sec)),
    ):
        code, out, err = run_cli(capsys, *argv)
        assert code == 0, err
        outputs.append(out + err)
    joined = "\n".join(outputs)
    for secret in (WALLET, PRIVATE_KEY, GATEWAY_TOKEN, env_token, "pw-db-0451"):
        assert secret not in joined
    assert "token: '***'" in outputs[0]
    data = json.loads(
        run_cli(capsys, "--json", "config", "show", "--config", str(cfg), "--secrets", str(sec))[1]
    )
    assert data["secrets"]["gateway"]["token"] == "***"
    assert data["secrets"]["dashboard"]["token"] is None
    assert data["config"]["exchange"]["kind"] == "hyperliquid"
    # and the env secret really was the one in effect
    token = load_settings(cfg, sec, process="run").secrets.gateway.token
    assert token is not None and token.get_secret_value() == env_token


def test_show_yaml_round_trips_to_the_effective_config(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cfg = write(
        tmp_path / "config.yml", "portfolio: {quorum: {k: 1}}\nmarket_data: {replay: {start: 2024-03-01}}\n"
    )
    code, out, err = run_cli(capsys, "config", "show", "--config", str(cfg))
    assert code == 0
    assert "warning: portfolio.quorum.k = 1" in err
    shown = yaml.safe_load(out)
    reloaded = write(tmp_path / "shown.yml", yaml.safe_dump(shown["config"]))
    assert load_settings(reloaded, environ={}).config == load_settings(cfg, environ={}).config
    assert shown["resolved"]["cache.backend"] == "memory"


def test_check_for_another_process_kind(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "config", "check", "--process", "gateway")
    assert code == 2
    assert "secrets.gateway.token" in err
    code, _, err = run_cli(capsys, "config", "check", "--process", "daemon")
    assert code == 2
    assert "daemon" in err
