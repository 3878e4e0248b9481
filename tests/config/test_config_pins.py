"""services.md §13 pins SV-01…SV-06, SV-24 and SV-25, through `3t config check` (exit codes of §12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ttt.config import load_settings
from ttt.errors import ConfigError

from .config_support import GATEWAY_TOKEN, run_cli, secrets_yaml, write


def check(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    return run_cli(capsys, "config", "check", *extra)


def test_sv01_unknown_key_in_file_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cfg = write(tmp_path / "config.yml", "portfolio:\n  quorum:\n    kk: 3\n")
    code, out, err = check(capsys, "--config", str(cfg))
    assert code == 2
    assert "portfolio.quorum.kk" in err
    assert "unknown key" in err
    assert f"{cfg} line 3" in err  # the file and the line of the typo
    assert out == ""


def test_sv02_env_quorum_k_above_sources(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTT_PORTFOLIO__QUORUM__K", "3")
    code, _, err = check(capsys)
    assert code == 2
    assert "portfolio.quorum.k = 3" in err
    assert "number of quorum sources (2" in err  # local + embedded observer
    assert "TTT_PORTFOLIO__QUORUM__K" in err


def test_sv02_k_equal_to_sources_is_accepted(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTT_PORTFOLIO__QUORUM__K", "3")
    monkeypatch.setenv("TTT_PORTFOLIO__QUORUM__OBSERVERS", "[http://obs-1:8001/3T-observer.json]")
    code, _, err = check(capsys)
    assert code == 0, err


def test_sv03_unknown_env_variable_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTT_PORTFOLO__X", "1")
    code, _, err = check(capsys)
    assert code == 2
    assert "TTT_PORTFOLO__X" in err


def test_sv04_proxies_as_string_is_rejected(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cfg = write(tmp_path / "config.yml", 'exchange:\n  hyperliquid:\n    proxies: "http://p/"\n')
    code, _, err = check(capsys, "--config", str(cfg))
    assert code == 2
    assert "exchange.hyperliquid.proxies" in err
    assert "must be a list" in err


def test_sv05_write_cadence_slower_than_freshness(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "config.yml",
        """
        providence:
          db_write_every_ticks: 200
        scheduler:
          periods:
            providence_dispatch: 5
        portfolio:
          run_freshness_s: 600
        """,
    )
    code, _, err = check(capsys, "--config", str(cfg))
    assert code == 2
    assert "providence.db_write_every_ticks = 200" in err
    assert "1000" in err
    assert "portfolio.run_freshness_s" in err


def test_sv05_boundary_below_freshness_passes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # 119 × 5 = 595 < 600 is accepted; 120 × 5 = 600 is not (strictly below).
    ok = write(tmp_path / "ok.yml", "providence:\n  db_write_every_ticks: 119\n")
    bad = write(tmp_path / "bad.yml", "providence:\n  db_write_every_ticks: 120\n")
    assert check(capsys, "--config", str(ok))[0] == 0
    assert check(capsys, "--config", str(bad))[0] == 2


DISTRIBUTED = """
mode: distributed
database:
  url: {url}
exchange:
  kind: hyperliquid
  hyperliquid:
    network: custom
    base_url: "http://127.0.0.1:3001"
portfolio:
  quorum:
    observers: ["http://observer-1:8001/3T-observer.json"]
"""


def test_sv06_distributed_with_sqlite_is_rejected(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cfg = write(tmp_path / "config.yml", DISTRIBUTED.format(url='"sqlite:///var/ttt.sqlite"'))
    sec = write(tmp_path / "secrets.yml", secrets_yaml())
    code, _, err = check(capsys, "--config", str(cfg), "--secrets", str(sec))
    assert code == 2
    assert "database.url" in err
    assert "SQLite" in err
    assert err.count("config error:") == 1  # only the SQLite URL is wrong in this file


def test_sv06_same_file_with_postgres_passes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cfg = write(tmp_path / "config.yml", DISTRIBUTED.format(url='"postgresql+psycopg://ttt@db/ttt"'))
    sec = write(tmp_path / "secrets.yml", secrets_yaml())
    code, _, err = check(capsys, "--config", str(cfg), "--secrets", str(sec))
    assert code == 0, err


SV24 = """
exchange:
  kind: hyperliquid
  hyperliquid:
    network: mainnet
portfolio:
  max_margin_usage_percentage: 0.2
  minimum_trade_threshold_usd: 15
"""


def test_sv24_one_warning_for_the_default_sizing_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cfg = write(tmp_path / "config.yml", SV24)
    sec = write(tmp_path / "secrets.yml", secrets_yaml())
    code, _, err = check(capsys, "--config", str(cfg), "--secrets", str(sec))
    assert code == 0, err
    assert err.count("warning:") == 1
    assert "portfolio.risk_pos_percentage = 3e-06" in err

    settings = load_settings(cfg, sec, environ={})
    assert len(settings.warnings) == 1
    assert settings.warnings[0].startswith("portfolio.risk_pos_percentage = 3e-06")


def test_sv24_all_three_defaults_give_three_warnings(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "config.yml", "exchange:\n  kind: hyperliquid\n  hyperliquid:\n    network: testnet\n"
    )
    sec = write(tmp_path / "secrets.yml", secrets_yaml())
    warnings = load_settings(cfg, sec, environ={}).warnings
    assert len(warnings) == 3
    for key in ("risk_pos_percentage", "max_margin_usage_percentage", "minimum_trade_threshold_usd"):
        assert sum(f"portfolio.{key} = " in w for w in warnings) == 1


def test_sv24_no_warning_on_paper_or_custom_network(tmp_path: Path) -> None:
    assert load_settings(environ={}).warnings == ()
    cfg = write(
        tmp_path / "config.yml",
        'exchange:\n  kind: hyperliquid\n  hyperliquid:\n    network: custom\n    base_url: "http://127.0.0.1:3001"\n',
    )
    sec = write(tmp_path / "secrets.yml", secrets_yaml())
    assert load_settings(cfg, sec, environ={}).warnings == ()


def test_sv25_reference_alias_sets_db_write_every_ticks(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cfg = write(tmp_path / "config.yml", "providence:\n  mysql_update_frequency: 20\n")
    code, out, err = check(capsys, "--config", str(cfg))
    assert code == 0, err
    assert "db_write_every_ticks: 20" in out
    assert "mysql_update_frequency" not in out
    settings = load_settings(cfg, environ={})
    assert settings.config.providence.db_write_every_ticks == 20
    assert settings.warnings == ()


def test_sv25_new_name_wins_with_a_warning(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "config.yml", "providence:\n  mysql_update_frequency: 20\n  db_write_every_ticks: 30\n"
    )
    settings = load_settings(cfg, environ={})
    assert settings.config.providence.db_write_every_ticks == 30
    assert len(settings.warnings) == 1
    assert "mysql_update_frequency" in settings.warnings[0]
    assert "db_write_every_ticks wins" in settings.warnings[0]


def test_sv25_alias_goes_through_the_same_validation(tmp_path: Path) -> None:
    cfg = write(tmp_path / "config.yml", "providence:\n  mysql_update_frequency: 200\n")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, environ={})
    text = str(info.value)
    assert "providence.db_write_every_ticks = 200" in text
    assert "as providence.mysql_update_frequency" in text


def test_purge_age_minutes_is_accepted_and_ignored(tmp_path: Path) -> None:
    cfg = write(tmp_path / "config.yml", "providence:\n  purge_age_minutes: 30\n")
    settings = load_settings(cfg, environ={})
    assert settings.config == load_settings(environ={}).config
    assert len(settings.warnings) == 1
    assert "providence.purge_age_minutes" in settings.warnings[0]
    assert "ignored" in settings.warnings[0]


def test_gateway_token_pin_for_http_gateway(tmp_path: Path) -> None:
    # SV-adjacent rule of §11.4: the gateway serving HTTP needs a token of at least 32 characters.
    sec = write(tmp_path / "secrets.yml", secrets_yaml(token="x" * 31))
    with pytest.raises(ConfigError) as info:
        load_settings(secrets_path=sec, environ={}, process="gateway")
    assert "secrets.gateway.token" in str(info.value)
    assert "x" * 31 not in str(info.value)
    sec.write_text(secrets_yaml(token=GATEWAY_TOKEN), encoding="utf-8")
    assert load_settings(secrets_path=sec, environ={}, process="gateway").secrets.gateway.token is not None
