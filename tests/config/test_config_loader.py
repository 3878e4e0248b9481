"""Files, precedence, environment parsing, secrets handling and error reporting of `load_settings`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from ttt.config import Config, Secrets, Settings, load_settings
from ttt.errors import ConfigError

from .config_support import GATEWAY_TOKEN, PRIVATE_KEY, WALLET, secrets_yaml, write


def problems(**kwargs: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(**kwargs)  # type: ignore[arg-type]
    assert info.value.exit_code == 2
    return info.value.problems


# ------------------------------------------------------------------------------------------- files


def test_no_files_means_all_defaults() -> None:
    settings = load_settings(environ={})
    assert settings.config == Config()
    assert settings.secrets == Secrets()
    assert settings.sources == ()
    assert settings.warnings == ()


def test_default_paths_are_read_from_the_working_directory(tmp_path: Path) -> None:
    write(tmp_path / "config.yml", "instance_id: from-cwd\n")
    write(tmp_path / "secrets.yml", "dashboard:\n  token: dash\n")
    settings = load_settings(environ={})
    assert settings.config.instance_id == "from-cwd"
    assert settings.secrets.dashboard.token is not None
    assert settings.sources == ("config.yml", "secrets.yml")


def test_ttt_config_and_ttt_secrets_name_the_files(tmp_path: Path) -> None:
    cfg = write(tmp_path / "elsewhere" / "c.yml", "instance_id: via-env\n")
    sec = write(tmp_path / "elsewhere" / "s.yml", "dashboard:\n  token: dash\n")
    settings = load_settings(environ={"TTT_CONFIG": str(cfg), "TTT_SECRETS": str(sec)})
    assert settings.config.instance_id == "via-env"
    assert settings.sources == (str(cfg), str(sec))


def test_an_explicitly_named_missing_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    found = problems(config_path=missing, environ={})
    assert found == [f"{missing}: config.yml file not found"]
    found = problems(environ={"TTT_SECRETS": str(missing)})
    assert str(missing) in found[0] and "TTT_SECRETS" in found[0]


def test_empty_file_is_all_defaults(tmp_path: Path) -> None:
    cfg = write(tmp_path / "config.yml", "# nothing set\n")
    assert load_settings(cfg, environ={}).config == Config()


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    cfg = write(tmp_path / "config.yml", "mode: embedded\nportfolio:\n  quorum: [1, 2\n  k: 3\n")
    (found,) = problems(config_path=cfg, environ={})
    assert found.startswith(f"{cfg} line 4")
    assert "invalid YAML" in found


def test_malformed_secrets_yaml_names_that_file(tmp_path: Path) -> None:
    sec = write(tmp_path / "secrets.yml", "gateway:\n\ttoken: x\n")
    (found,) = problems(secrets_path=sec, environ={})
    assert found.startswith(f"{sec} line 2")


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    cfg = write(tmp_path / "config.yml", "portfolio:\n  can_go_long: true\n  can_go_long: false\n")
    (found,) = problems(config_path=cfg, environ={})
    assert found == f"{cfg} line 3: duplicate key portfolio.can_go_long"


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    cfg = write(tmp_path / "config.yml", "- a\n- b\n")
    (found,) = problems(config_path=cfg, environ={})
    assert str(cfg) in found and "mapping" in found


def test_every_error_is_reported_together(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "config.yml",
        """
        mode: hybrid
        orders:
          client_id_prefix: "XYZ"
        portfolio:
          quorum:
            kk: 1
        take_profit:
          median_window: 4
        """,
    )
    found = problems(config_path=cfg, environ={"TTT_DASHBOARD__PORT": "0"})
    text = "\n".join(found)
    for key in ("mode", "portfolio.quorum.kk", "dashboard.port"):
        assert key in text
    assert len(found) == 3  # schema errors; cross-field rules need a schema-valid config
    cfg.write_text('orders:\n  client_id_prefix: "XYZ"\ntake_profit:\n  median_window: 4\n', encoding="utf-8")
    found = problems(config_path=cfg, environ={})
    assert len(found) == 2
    assert found[0].startswith('orders.client_id_prefix = "XYZ": must be exactly 8 lower-case hex')
    assert found[1].startswith("take_profit.median_window = 4: must be odd")


def test_error_names_key_value_rule_and_origin(tmp_path: Path) -> None:
    cfg = write(tmp_path / "config.yml", "celery:\n  task_soft_time_limit_factor: 1.5\n")
    (found,) = problems(config_path=cfg, environ={})
    assert found.startswith("celery.task_soft_time_limit_factor = 1.5: must be less than or equal to 1")
    assert found.endswith(f"(in {cfg} line 2)")


def test_unknown_key_suggests_the_close_name(tmp_path: Path) -> None:
    cfg = write(tmp_path / "config.yml", "portfolio:\n  can_go_lnog: false\n")
    (found,) = problems(config_path=cfg, environ={})
    assert "portfolio.can_go_lnog: unknown key (did you mean can_go_long?)" in found


# -------------------------------------------------------------------------------------- precedence


def test_precedence_defaults_file_env_cli(tmp_path: Path) -> None:
    assert load_settings(environ={}).config.portfolio.busy_retry_s == 30
    cfg = write(tmp_path / "config.yml", "portfolio:\n  busy_retry_s: 11\n")
    env = {"TTT_PORTFOLIO__BUSY_RETRY_S": "22"}
    cli = {"portfolio.busy_retry_s": 33}
    assert load_settings(cfg, environ={}).config.portfolio.busy_retry_s == 11
    assert load_settings(cfg, environ=env).config.portfolio.busy_retry_s == 22
    assert load_settings(cfg, environ=env, cli_overrides=cli).config.portfolio.busy_retry_s == 33
    assert load_settings(cfg, environ={}, cli_overrides=cli).config.portfolio.busy_retry_s == 33


def test_file_keys_merge_into_defaults_without_dropping_siblings(tmp_path: Path) -> None:
    cfg = write(tmp_path / "config.yml", "portfolio:\n  kelly:\n    threshold: 0.7\n")
    kelly = load_settings(cfg, environ={}).config.portfolio.kelly
    assert (kelly.threshold, kelly.probationary_multiplier, kelly.min_samples) == (0.7, 0.25, 10)


def test_log_level_alias_and_cli_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert load_settings(environ={"TTT_LOG_LEVEL": "debug"}).config.observability.log_level == "DEBUG"
    settings = load_settings(
        environ={"TTT_LOG_LEVEL": "debug"}, cli_overrides={"observability.log_level": "ERROR"}
    )
    assert settings.config.observability.log_level == "ERROR"
    found = problems(environ={"TTT_LOG_LEVEL": "LOUD"})
    assert "observability.log_level" in found[0] and "TTT_LOG_LEVEL" in found[0]


def test_unknown_cli_override_is_an_error() -> None:
    (found,) = problems(environ={}, cli_overrides={"portfolio.nope": 1})
    assert "portfolio.nope" in found


# ------------------------------------------------------------------------------------- environment


def test_env_values_are_yaml_scalars_and_flow_collections() -> None:
    settings = load_settings(
        environ={
            "TTT_UNIVERSE__SYMBOLS": "[SOL/USDC:USDC, BTC/USDC:USDC]",
            "TTT_PORTFOLIO__CAN_GO_SHORT": "false",
            "TTT_PORTFOLIO__MARGIN_CAP_MULTIPLIER": "12.5",
            "TTT_MARKET_DATA__LOOKBACK_BARS": "{4h: 60}",
        }
    )
    cfg = settings.config
    assert cfg.universe.symbols == ["SOL/USDC:USDC", "BTC/USDC:USDC"]
    assert cfg.portfolio.can_go_short is False
    assert cfg.portfolio.margin_cap_multiplier == 12.5
    assert cfg.market_data.lookback_bars == {"1m": 20, "4h": 60, "default": 20}


def test_env_paths_match_keys_case_insensitively() -> None:
    settings = load_settings(environ={"TTT_market_data__LOOKBACK_BARS__DEFAULT": "33"})
    assert settings.config.market_data.lookback_bars["default"] == 33


def test_env_text_keys_keep_the_raw_text() -> None:
    # YAML would read 74747401 as a number and 0x… as hex; text keys take the variable verbatim.
    settings = load_settings(
        environ={
            "TTT_ORDERS__CLIENT_ID_PREFIX": "74747402",
            "TTT_EXCHANGE__PAPER__WALLET": "0x00000000000000000000000000000000000000ff",
        }
    )
    assert settings.config.orders.client_id_prefix == "74747402"
    assert settings.config.exchange.paper.wallet == "0x00000000000000000000000000000000000000ff"


def test_unquoted_hex_in_a_file_stays_a_string(tmp_path: Path) -> None:
    sec = write(tmp_path / "secrets.yml", f"exchanges:\n  hyperliquid:\n    wallet_address: {WALLET}\n")
    settings = load_settings(secrets_path=sec, environ={})
    wallet = settings.secrets.exchanges.hyperliquid.wallet_address
    assert wallet is not None and wallet.get_secret_value() == WALLET


def test_env_bad_type_names_key_and_variable() -> None:
    (found,) = problems(environ={"TTT_PORTFOLIO__QUORUM__K": "two"})
    assert found.startswith('portfolio.quorum.k = "two": must be an integer')
    assert "TTT_PORTFOLIO__QUORUM__K" in found


@pytest.mark.parametrize(
    "name", ["TTT_", "TTT_MODE__X", "TTT_PORTFOLIO_QUORUM_K", "TTT_SECRET__NOPE", "TTT_A____B"]
)
def test_unknown_variables_are_errors(name: str) -> None:
    (found,) = problems(environ={name: "1"})
    assert name in found


def test_other_prefixes_are_ignored() -> None:
    settings = load_settings(environ={"T3_TEST_X": "1", "TTTX": "1", "PATH": "/bin"})
    assert settings.config == Config()


# ----------------------------------------------------------------------------------------- secrets


def test_secret_env_override_beats_the_file(tmp_path: Path) -> None:
    sec = write(tmp_path / "secrets.yml", 'gateway:\n  token: "from-file-token-0000000000000000000"\n')
    settings = load_settings(secrets_path=sec, environ={"TTT_SECRET__GATEWAY__TOKEN": GATEWAY_TOKEN})
    token = settings.secrets.gateway.token
    assert token is not None and token.get_secret_value() == GATEWAY_TOKEN
    settings = load_settings(secrets_path=sec, environ={})
    token = settings.secrets.gateway.token
    assert token is not None and token.get_secret_value() == "from-file-token-0000000000000000000"


def test_secret_env_text_is_verbatim() -> None:
    settings = load_settings(
        environ={"TTT_SECRET__DATABASE__PASSWORD": "123456", "TTT_SECRET__REDIS__PASSWORD": "yes"}
    )
    assert settings.secrets.database.password is not None
    assert settings.secrets.database.password.get_secret_value() == "123456"
    assert settings.secrets.redis.password is not None
    assert settings.secrets.redis.password.get_secret_value() == "yes"


def test_secret_values_never_appear_in_errors(tmp_path: Path) -> None:
    leaked = "0xnot-an-address-but-very-secret"
    sec = write(
        tmp_path / "secrets.yml",
        f'exchanges:\n  hyperliquid:\n    wallet_address: "{leaked}"\n    private_key: "{leaked}"\n'
        f'gateway:\n  token: ["{leaked}"]\nbogus: "{leaked}"\n',
    )
    found = "\n".join(problems(secrets_path=sec, environ={}, process="gateway"))
    assert leaked not in found
    assert "secrets.bogus: unknown key" in found
    assert "secrets.gateway.token" in found
    # the schema-valid secrets are then checked by the cross-field rules, still without values
    sec.write_text(
        f'exchanges:\n  hyperliquid:\n    wallet_address: "{leaked}"\n    private_key: "{leaked}"\n',
        encoding="utf-8",
    )
    found = "\n".join(problems(secrets_path=sec, environ={"TTT_EXCHANGE__KIND": "hyperliquid"}))
    assert leaked not in found
    assert "secrets.exchanges.hyperliquid.wallet_address = ***" in found
    assert "secrets.exchanges.hyperliquid.private_key = ***" in found


def test_reference_secret_names_are_accepted(tmp_path: Path) -> None:
    sec = write(
        tmp_path / "secrets.yml",
        'exchanges:\n  hyperliquid:\n    apiKey: "k"\n'
        f'    walletAddress: "{WALLET}"\n    privateKey: "{PRIVATE_KEY}"\n',
    )
    settings = load_settings(secrets_path=sec, environ={"TTT_EXCHANGE__KIND": "hyperliquid"})
    hl = settings.secrets.exchanges.hyperliquid
    assert hl.wallet_address is not None and hl.wallet_address.get_secret_value() == WALLET
    assert hl.private_key is not None and hl.private_key.get_secret_value() == PRIVATE_KEY
    assert any("apiKey" in w and "ignored" in w for w in settings.warnings)


def test_secrets_never_in_repr_str_or_redacted_dict(tmp_path: Path) -> None:
    db_pw = "db-pass-4f9a1c"
    sec = write(
        tmp_path / "secrets.yml",
        secrets_yaml(token=GATEWAY_TOKEN)
        + f'database:\n  password: "{db_pw}"\n'
        + 'observability:\n  otlp_headers: {Authorization: "Bearer hdr-77"}\n',
    )
    cfg = write(tmp_path / "config.yml", 'database:\n  url: "postgresql://u:inline-pw-31@db/ttt"\n')
    settings = load_settings(cfg, sec, environ={"TTT_EXCHANGE__KIND": "hyperliquid"})
    rendered = repr(settings) + str(settings) + json.dumps(settings.redacted_dict())
    rendered += repr(settings.config) + str(settings.config) + repr(settings.secrets) + str(settings.secrets)
    for secret in (WALLET, PRIVATE_KEY, GATEWAY_TOKEN, db_pw, "hdr-77", "inline-pw-31"):
        assert secret not in rendered
    red = settings.redacted_dict()
    assert red["secrets"]["gateway"]["token"] == "***"
    assert red["secrets"]["dashboard"]["token"] is None
    assert red["secrets"]["observability"]["otlp_headers"] == {"Authorization": "***"}
    assert red["config"]["database"]["url"] == "postgresql://u:***@db/ttt"
    assert set(settings.secret_values()) >= {
        WALLET,
        PRIVATE_KEY,
        GATEWAY_TOKEN,
        db_pw,
        "Bearer hdr-77",
        "inline-pw-31",
    }
    assert any("database.url" in w and "password" in w for w in settings.warnings)


def test_database_url_merges_the_secret_password(tmp_path: Path) -> None:
    cfg = write(tmp_path / "config.yml", 'database:\n  url: "postgresql+psycopg://ttt@127.0.0.1:5432/ttt"\n')
    settings = load_settings(cfg, environ={"TTT_SECRET__DATABASE__PASSWORD": "p@ss"})
    assert settings.database_url() == "postgresql+psycopg://ttt:p%40ss@127.0.0.1:5432/ttt"
    assert "p%40ss" not in settings.database_url(hide_password=True)
    settings = load_settings(cfg, environ={"TTT_SECRET__REDIS__PASSWORD": "r/pw"})
    assert settings.redis_url() == "redis://:r%2Fpw@localhost:6379/0"
    assert settings.broker_url() == "redis://:r%2Fpw@localhost:6379/1"


# ----------------------------------------------------------------------------------- settings object


def test_config_hash_covers_config_not_secrets(tmp_path: Path) -> None:
    base = load_settings(environ={})
    assert len(base.config_hash()) == 64
    with_secret = load_settings(environ={"TTT_SECRET__DASHBOARD__TOKEN": "abc"})
    assert with_secret.config_hash() == base.config_hash()
    changed = load_settings(environ={"TTT_INSTANCE_ID": "ttt-2"})
    assert changed.config_hash() != base.config_hash()
    # canonical JSON: key order and formatting do not matter
    canonical = json.dumps(Config().model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    assert base.config_hash() == hashlib.sha256(canonical.encode()).hexdigest()


def test_resolved_defaults_by_mode(tmp_path: Path) -> None:
    s1 = load_settings(environ={})
    assert (s1.auto_migrate, s1.cache_backend, s1.log_format, s1.embedded_observer, s1.gateway_url) == (
        True,
        "memory",
        "text",
        True,
        "embedded",
    )
    assert s1.embedded_workers(cpu_count=1) == 2 and s1.embedded_workers(cpu_count=8) == 8
    assert s1.quorum_sources == 2
    cfg = write(
        tmp_path / "config.yml",
        """
        mode: distributed
        database: {url: "mysql+pymysql://ttt@db/ttt"}
        exchange: {kind: hyperliquid, hyperliquid: {hip3_dexes: [xyz]}}
        portfolio: {quorum: {k: 1}}
        """,
    )
    s2 = load_settings(cfg, write(tmp_path / "secrets.yml", secrets_yaml()), environ={}, process="worker")
    assert (s2.auto_migrate, s2.cache_backend, s2.log_format, s2.embedded_observer, s2.gateway_url) == (
        False,
        "redis",
        "json",
        False,
        "http://127.0.0.1:8002",
    )
    assert s2.observer_hip3_dexes == ["xyz"]
    assert s2.quorum_sources == 1
    assert s2.metrics_port == 9101
    assert any("portfolio.quorum.k = 1" in w for w in s2.warnings)


def test_settings_is_immutable() -> None:
    settings = load_settings(environ={})
    assert isinstance(settings, Settings)
    with pytest.raises(Exception):  # noqa: B017 - frozen dataclass and frozen pydantic models
        settings.config.mode = "distributed"  # type: ignore[misc]


def test_unknown_process_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown process kind"):
        load_settings(environ={}, process="daemon")


def test_env_value_that_is_not_yaml_is_one_clear_line() -> None:
    (found,) = problems(environ={"TTT_UNIVERSE__SYMBOLS": "[BTC/USDC:USDC"})
    assert found.startswith("environment variable TTT_UNIVERSE__SYMBOLS: value is not valid YAML")
    assert "\n" not in found


def test_setting_below_a_non_mapping_is_reported() -> None:
    found = problems(environ={"TTT_PORTFOLIO": "5", "TTT_PORTFOLIO__QUORUM__K": "1"})
    assert found == [
        "portfolio is not a mapping, so portfolio.quorum.k cannot be set (environment variable "
        "TTT_PORTFOLIO__QUORUM__K)"
    ]
