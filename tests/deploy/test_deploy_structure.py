"""Structural checks of the shipped production composition (services.md §1.5, §8.4, §8.5).

Docker and promtool are not available here, so the files are checked by parsing them: every 3T service
runs a command the CLI really registers, nothing secret is written inline, every published port is on
loopback, and every alert rule and dashboard query names a metric the code exports.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from prometheus_client import CollectorRegistry

from ttt.cli import app
from ttt.config import resolved
from ttt.config.models import Config
from ttt.telemetry.metrics import DB_GAUGES, Metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_PATH = DEPLOY / "docker-compose.yml"


def _yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


COMPOSE: dict[str, Any] = _yaml(COMPOSE_PATH)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
TTT_SERVICES = sorted(name for name, svc in SERVICES.items() if svc.get("entrypoint") == ["3t"])

# services.md §1.3 / §1.5: service -> (3t command path, options that must be parsed to these values)
EXPECTED_COMMANDS: dict[str, tuple[list[str], dict[str, Any]]] = {
    "migrate": (["db", "upgrade"], {}),
    "worker-high": (["worker"], {"queues": "high_priority"}),
    "worker-low": (["worker"], {"queues": "low_priority"}),
    "beat": (["beat"], {}),
    "feed": (["feed"], {}),
    "gateway": (["gateway"], {"port": 8002}),
    "observer": (["observer"], {}),
    "dashboard": (["dashboard"], {}),
    "sim-exchange": (["sim-exchange"], {"port": 3001}),
}

SPEC_ALERTS = [
    "TTTReconciliationStalled",
    "TTTHolds",
    "TTTCriticalAlert",
    "TTTPriceStale",
    "TTTQuorumDegraded",
    "TTTCircuitOpen",
    "TTTShardLag",
    "TTTQueueBacklog",
    "TTTForbiddenExchangeAction",
]

SPEC_DASHBOARDS = ["TTT Overview", "TTT Providence", "TTT Portfolio", "TTT Data", "TTT Queues", "TTT Traces"]


# ---------------------------------------------------------------------------------------------- helpers


def resolve_3t(args: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Parse `3t <args>` with the real Typer app: the command path and its parsed parameters.

    Unknown commands and options raise the CLI's usage error, exactly as `3t` would at start.
    """
    cmd: Any = typer.main.get_command(app)
    ctx = cmd.make_context("3t", list(args))
    path: list[str] = []
    while getattr(cmd, "commands", None):
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            raise AssertionError(f"`3t {' '.join(args)}` names a command group, not a command")
        name, sub, rest = cmd.resolve_command(ctx, rest)
        path.append(name)
        ctx = sub.make_context(name, rest, parent=ctx)
        cmd = sub
    return path, dict(ctx.params)


def exported_series() -> dict[str, str]:
    """Every series name the code can export -> the metric type it belongs to."""
    registry = CollectorRegistry()
    Metrics.create(registry)
    names: dict[str, str] = {}
    for family in registry.collect():
        if family.type == "counter":
            names[family.name + "_total"] = "counter"
            names[family.name + "_created"] = "counter"
        elif family.type == "histogram":
            for suffix in ("_bucket", "_sum", "_count", "_created"):
                names[family.name + suffix] = "histogram"
        else:
            names[family.name] = family.type
    for name in DB_GAUGES:
        names[name] = "gauge"
    return names


METRIC_RE = re.compile(r"\b(ttt_[a-zA-Z0-9_]+)\b")
RANGE_FN_RE = re.compile(r"\b(rate|increase|irate|delta)\(\s*(ttt_[a-zA-Z0-9_]+)")
RANGE_RE = re.compile(r"\[([^\]]*)\]")
FUNC_RE = re.compile(r"\b([a-z_]+)\s*\(")
KNOWN_WORDS = {
    # PromQL functions, aggregations and keywords these files may use
    "rate",
    "increase",
    "irate",
    "delta",
    "time",
    "histogram_quantile",
    "sum",
    "max",
    "min",
    "avg",
    "count",
    "by",
    "without",
    "ignoring",
    "on",
    "absent",
    "clamp_min",
    "vector",
}


def promql_problems(expr: str, series: Mapping[str, str]) -> list[str]:
    """Structural PromQL checks (promtool is unavailable): balance, ranges, functions, metric names."""
    problems: list[str] = []
    stripped = re.sub(r'"[^"]*"', '""', expr)
    if expr.count('"') % 2:
        problems.append(f"unbalanced quotes in {expr!r}")
    for opening, closing in ("()", "[]", "{}"):
        depth = 0
        for ch in stripped:
            depth += (ch == opening) - (ch == closing)
            if depth < 0:
                break
        if depth != 0:
            problems.append(f"unbalanced {opening}{closing} in {expr!r}")
    for window in RANGE_RE.findall(stripped):
        if not re.fullmatch(r"\d+[smhd]", window):
            problems.append(f"bad range [{window}] in {expr!r}")
    for word in FUNC_RE.findall(stripped):
        if word not in KNOWN_WORDS:
            problems.append(f"unknown function {word}( in {expr!r}")
    for name in METRIC_RE.findall(stripped):
        if name not in series:
            problems.append(f"metric {name} is not exported by ttt.telemetry.metrics")
    for fn, name in RANGE_FN_RE.findall(stripped):
        if name in series and series[name] == "gauge":
            problems.append(f"{fn}() over the gauge {name} in {expr!r}")
    if not METRIC_RE.search(stripped):
        problems.append(f"no ttt_ metric in {expr!r}")
    return problems


CREDENTIAL_KEY_RE = re.compile(r"(password|passwd|secret|token|api_?key|private_?key|auth)", re.IGNORECASE)
CREDENTIAL_TEXT_RES = [
    re.compile(r"(password|token)\s*[:=]\s*['\"]?(?!(yes|no|true|false)\b)[^\s'\"$]", re.IGNORECASE),
    re.compile(r"://[^/\s:@]*:[^/\s@]+@"),  # user:password@ in a URL
    re.compile(r"0x[0-9a-fA-F]{64}"),  # a private key
    re.compile(r"--basic[-_]auth", re.IGNORECASE),
]


def _environment(svc: Mapping[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def credential_problems(compose: Mapping[str, Any], text: str) -> list[str]:
    """Inline credentials: literal values of secret-looking variables, and secret-looking text."""
    problems: list[str] = []
    for name, svc in compose.get("services", {}).items():
        for key, value in _environment(svc).items():
            if not CREDENTIAL_KEY_RE.search(key) or key == "GF_AUTH_ANONYMOUS_ENABLED":
                continue
            if value.startswith("/run/secrets/"):
                continue  # a path to a compose secret, e.g. POSTGRES_PASSWORD_FILE, TTT_SECRETS
            if value in ("", "yes", "true", "false"):
                continue
            problems.append(f"service {name}: {key} has a literal value")
    for line_no, line in enumerate(text.splitlines(), start=1):
        code = line.split("#", 1)[0]
        for pattern in CREDENTIAL_TEXT_RES:
            if pattern.search(code):
                problems.append(f"line {line_no}: {line.strip()!r} looks like a credential")
    return problems


def port_problems(compose: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    for name, svc in compose.get("services", {}).items():
        for port in svc.get("ports") or []:
            if isinstance(port, Mapping):
                if port.get("host_ip") != "127.0.0.1" or "published" not in port:
                    problems.append(f"service {name}: port {dict(port)} not bound to 127.0.0.1")
            elif not re.fullmatch(r"127\.0\.0\.1:\d+:\d+(/(tcp|udp))?", str(port)):
                problems.append(f"service {name}: port {port!r} not bound to 127.0.0.1")
    return problems


def _panels(board: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def _dashboards() -> dict[str, dict[str, Any]]:
    boards = {}
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        boards[path.name] = json.loads(path.read_text(encoding="utf-8"))
    return boards


def _alert_rules() -> dict[str, dict[str, Any]]:
    doc = _yaml(DEPLOY / "prometheus" / "alerts.yml")
    rules: dict[str, dict[str, Any]] = {}
    for group in doc["groups"]:
        for rule in group["rules"]:
            assert rule["alert"] not in rules, f"duplicate alert {rule['alert']}"
            rules[rule["alert"]] = rule
    return rules


# ---------------------------------------------------------------------------------------------- compose


def test_compose_defines_the_services_and_profiles_of_the_spec() -> None:
    expected_profiles = {
        "redis": None,
        "db": None,
        "mariadb": ["mariadb"],
        "sim-exchange": ["paper"],
        "migrate": None,
        "worker-high": None,
        "worker-low": None,
        "beat": None,
        "feed": None,
        "gateway": None,
        "observer": None,
        "dashboard": None,
        "prometheus": ["monitoring"],
        "grafana": ["monitoring"],
        "flower": ["monitoring"],
        "otel-collector": ["tracing"],
        "tempo": ["tracing"],
    }
    assert set(SERVICES) == set(expected_profiles)
    for name, profiles in expected_profiles.items():
        assert SERVICES[name].get("profiles") == profiles, name
    assert SERVICES["db"]["image"].startswith("postgres:")
    assert SERVICES["mariadb"]["image"].startswith("mariadb:")
    assert SERVICES["migrate"]["restart"] == "no"
    assert set(TTT_SERVICES) == set(EXPECTED_COMMANDS)


def test_redis_never_evicts_and_persists() -> None:
    command = SERVICES["redis"]["command"]
    pairs = dict(zip(command[1::2], command[2::2], strict=False))
    assert pairs["--maxmemory-policy"] == "noeviction"
    assert pairs["--appendonly"] == "yes"


@pytest.mark.parametrize("service", sorted(EXPECTED_COMMANDS))
def test_service_runs_a_registered_3t_command(service: str) -> None:
    """A service whose command is not registered in `ttt.cli.app` fails here (it would crash-loop)."""
    path, params = resolve_3t(SERVICES[service]["command"])
    want_path, want_params = EXPECTED_COMMANDS[service]
    assert path == want_path
    for key, value in want_params.items():
        assert params[key] == value, f"{service}: {key}"


def test_resolver_rejects_unknown_commands_and_options() -> None:
    with pytest.raises(Exception, match="No such command"):
        resolve_3t(["no-such-command"])
    with pytest.raises(Exception, match="No such option"):
        resolve_3t(["worker", "--no-such-option"])
    assert resolve_3t(["worker", "-Q", "low_priority"]) == (
        ["worker"],
        {"queues": "low_priority", "concurrency": None, "pool": None},
    )


def test_every_ttt_environment_variable_names_a_config_key() -> None:
    defaults = Config().model_dump(mode="python")
    reserved = {"TTT_CONFIG", "TTT_SECRETS", "TTT_LOG_LEVEL"}
    for name in TTT_SERVICES:
        for key in _environment(SERVICES[name]):
            if not key.startswith("TTT_") or key in reserved:
                continue
            assert not key.startswith("TTT_SECRET__"), f"{name}: secrets come from secrets.yml, not {key}"
            node: Any = defaults
            for part in key.removeprefix("TTT_").lower().split("__"):
                assert isinstance(node, dict) and part in node, f"{name}: {key} names no configuration key"
                node = node[part]


def test_config_is_mounted_read_only_and_secrets_come_from_files() -> None:
    top_secrets = COMPOSE["secrets"]
    for entry in top_secrets.values():
        assert set(entry) == {"file"} and entry["file"].startswith("./secrets/"), entry
    assert "/secrets/" in (DEPLOY / ".gitignore").read_text(encoding="utf-8").splitlines()
    for name in TTT_SERVICES:
        svc = SERVICES[name]
        env = _environment(svc)
        assert f"./config.yml:{env['TTT_CONFIG']}:ro" in svc["volumes"], name
        for volume in svc["volumes"]:
            assert "secret" not in volume, f"{name}: secrets are compose secrets, not volumes"
        targets = {s["target"]: s["source"] for s in svc.get("secrets", [])}
        if "TTT_SECRETS" in env:
            assert env["TTT_SECRETS"] == "/run/secrets/secrets.yml", name
            assert "secrets.yml" in targets, name
        else:
            assert not targets, f"{name}: mounts secrets it does not read"
        # The signing key lives in the full secrets.yml, which only the gateway receives (§1.1).
        if name != "gateway":
            assert targets.get("secrets.yml") != "ttt_secrets", name
    assert {s["source"] for s in SERVICES["gateway"]["secrets"]} == {"ttt_secrets"}
    assert not SERVICES["observer"].get("secrets"), "the observer needs no secrets (§1.3)"


def test_database_and_dashboards_read_passwords_from_secret_files() -> None:
    assert _environment(SERVICES["db"])["POSTGRES_PASSWORD_FILE"] == "/run/secrets/db_password"
    assert _environment(SERVICES["mariadb"])["MARIADB_PASSWORD_FILE"] == "/run/secrets/db_password"
    grafana = _environment(SERVICES["grafana"])
    assert grafana["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    flower = SERVICES["flower"]
    assert "--conf=/run/secrets/flowerconfig.py" in flower["command"]
    assert {"source": "flower_config", "target": "flowerconfig.py"} in flower["secrets"]
    assert "--broker=redis://redis:6379/1" in flower["command"]  # celery.broker_url's database index


def test_no_credentials_in_the_compose_file() -> None:
    assert credential_problems(COMPOSE, COMPOSE_PATH.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    "env, text",
    [
        ({"POSTGRES_PASSWORD": "hunter2"}, ""),
        ({"GF_SECURITY_ADMIN_PASSWORD": "admin"}, ""),
        ({"FLOWER_BASIC_AUTH": "user:pw"}, ""),
        ({"TTT_SECRET__GATEWAY__TOKEN": "x" * 32}, ""),
        ({}, "      - POSTGRES_PASSWORD=hunter2"),
        ({}, "    password: hunter2"),
        ({}, "      MARIADB_ROOT_PASSWORD: 'yesman'"),
        ({}, "      token: abc"),
        ({}, "      - --broker=redis://:hunter2@redis:6379/1"),
        ({}, "      - --basic-auth=user:pw"),
        ({}, "      TTT_KEY: 0x" + "ab" * 32),
    ],
)
def test_the_credential_check_finds_inline_credentials(env: dict[str, str], text: str) -> None:
    compose = {"services": {"x": {"environment": env}}}
    assert credential_problems(compose, text)


def test_published_ports_are_bound_to_loopback() -> None:
    assert port_problems(COMPOSE) == []
    published = {name for name, svc in SERVICES.items() if svc.get("ports")}
    assert {"gateway", "observer", "dashboard", "grafana", "flower"} <= published
    assert not {"redis", "db", "mariadb"} & published
    bad = {"services": {"a": {"ports": ["8080:8080"]}, "b": {"ports": [{"target": 1, "published": 1}]}}}
    assert len(port_problems(bad)) == 2


def test_http_services_listen_on_the_container_network_at_the_spec_ports() -> None:
    assert resolve_3t(SERVICES["gateway"]["command"])[1]["bind"] == "0.0.0.0"
    assert resolve_3t(SERVICES["sim-exchange"]["command"])[1]["host"] == "0.0.0.0"
    assert _environment(SERVICES["observer"])["TTT_OBSERVER__BIND"] == "0.0.0.0"
    assert _environment(SERVICES["dashboard"])["TTT_DASHBOARD__BIND"] == "0.0.0.0"
    container_ports = {
        name: sorted(int(str(p).split(":")[-1]) for p in SERVICES[name]["ports"])
        for name in ("gateway", "observer", "dashboard", "sim-exchange")
    }
    assert container_ports == {
        "gateway": [8002],
        "observer": [8001],
        "dashboard": [8080],
        "sim-exchange": [3001],
    }
    defaults = Config()
    assert (defaults.gateway.port, defaults.observer.port, defaults.dashboard.port) == (8002, 8001, 8080)


def test_metrics_listeners_are_reachable_by_prometheus() -> None:
    """worker, beat and feed serve /metrics on their own port, bound to loopback unless configured: in the
    composition Prometheus scrapes them over the container network, so they bind 0.0.0.0 there."""
    assert Config().observability.metrics_bind == "127.0.0.1"
    for name in ("worker-high", "worker-low", "beat", "feed"):
        assert _environment(SERVICES[name])["TTT_OBSERVABILITY__METRICS_BIND"] == "0.0.0.0", name
        assert not SERVICES[name].get("ports"), f"{name}: metrics ports are not published"


def test_stores_users_wait_for_migrations_and_workers_scale() -> None:
    for name in ("worker-high", "worker-low", "feed", "gateway", "dashboard"):
        assert SERVICES[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert SERVICES["worker-high"]["deploy"]["replicas"] >= 2
    for name in ("worker-high", "worker-low"):
        assert _environment(SERVICES[name])["PROMETHEUS_MULTIPROC_DIR"] in SERVICES[name]["tmpfs"]
    assert COMPOSE["networks"]["backend"]["internal"] is True


def test_dockerfile_installs_the_package_and_runs_3t() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11", text, re.MULTILINE)
    assert re.search(r"^RUN pip install \.", text, re.MULTILINE)
    assert 'ENTRYPOINT ["3t"]' in text
    assert re.search(r"^USER ttt$", text, re.MULTILINE)
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert "3t" in scripts
    build = SERVICES["migrate"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == (DEPLOY / "Dockerfile").resolve()


# ---------------------------------------------------------------------------------------------- prometheus


def test_prometheus_scrapes_every_process_on_its_spec_port() -> None:
    doc = _yaml(DEPLOY / "prometheus" / "prometheus.yml")
    targets: dict[str, list[str]] = {}
    for job in doc["scrape_configs"]:
        found = [t for sc in job.get("static_configs", []) for t in sc["targets"]]
        found += [f"{n}:{sd['port']}" for sd in job.get("dns_sd_configs", []) for n in sd["names"]]
        targets[job["job_name"]] = found
    defaults = Config()
    expected = {
        "worker-high": f"worker-high:{resolved.metrics_port(defaults, 'worker')}",
        "worker-low": f"worker-low:{resolved.metrics_port(defaults, 'worker')}",
        "beat": f"beat:{resolved.metrics_port(defaults, 'beat')}",
        "feed": f"feed:{resolved.metrics_port(defaults, 'feed')}",
        "gateway": "gateway:8002",
        "observer": "observer:8001",
        "dashboard": "dashboard:8080",
    }
    assert expected["worker-high"] == "worker-high:9101" and expected["beat"] == "beat:9102"
    assert expected["feed"] == "feed:9103"
    for job, target in expected.items():
        assert targets.get(job) == [target], job
        assert job in SERVICES
    mount = next(v for v in SERVICES["prometheus"]["volumes"] if v.startswith("./prometheus:"))
    container_dir = mount.split(":")[1]
    for rule_file in doc["rule_files"]:
        assert rule_file.startswith(container_dir + "/")
        assert (DEPLOY / "prometheus" / rule_file.removeprefix(container_dir + "/")).is_file()


def test_alert_rules_cover_section_8_4() -> None:
    rules = _alert_rules()
    assert set(SPEC_ALERTS) <= set(rules)
    # (metric, comparison and threshold, window, for) per §8.4
    spec = {
        "TTTReconciliationStalled": (
            "ttt_reconciliation_last_success_timestamp_seconds",
            "> 2.5 * 600",
            None,
            None,
        ),
        "TTTHolds": ("ttt_reconciliation_holds_total", "> 0", "[15m]", None),
        "TTTCriticalAlert": ('ttt_alerts_total{severity="critical"}', "> 0", "[5m]", None),
        "TTTPriceStale": ("ttt_price_age_seconds", "> 120", None, "5m"),
        "TTTQuorumDegraded": ("ttt_quorum_source_errors_total", "> 0", "[15m]", None),
        "TTTCircuitOpen": ("ttt_exchange_circuit_open", "== 1", None, None),
        "TTTShardLag": ("ttt_providence_shard_lag_seconds", "> 60", None, None),
        "TTTQueueBacklog": ('ttt_queue_depth{queue="low_priority"}', "> 1000", None, "10m"),
        "TTTForbiddenExchangeAction": ("ttt_exchange_forbidden_actions_total", "> 0", None, None),
    }
    for name, (metric, comparison, window, for_) in spec.items():
        expr = " ".join(rules[name]["expr"].split())
        assert metric in expr, name
        assert comparison in expr, name
        if window is not None:
            assert f"increase({metric}{window})" in expr, name
        assert rules[name].get("for") == for_, name
        assert "time()" in expr or name != "TTTReconciliationStalled"
        assert rules[name]["labels"]["severity"] in ("warning", "critical"), name
        assert rules[name]["annotations"]["summary"], name
    assert "increase(ttt_quorum_source_errors_total" in rules["TTTQuorumDegraded"]["expr"]
    assert "by (source)" in rules["TTTQuorumDegraded"]["expr"]
    assert "increase(ttt_exchange_forbidden_actions_total" in rules["TTTForbiddenExchangeAction"]["expr"]


def test_alert_expressions_are_well_formed_and_use_exported_metrics() -> None:
    series = exported_series()
    problems = [p for rule in _alert_rules().values() for p in promql_problems(rule["expr"], series)]
    assert problems == []


@pytest.mark.parametrize(
    "expr",
    [
        "ttt_no_such_metric > 0",
        "increase(ttt_price_age_seconds[5m]) > 0",  # increase() over a gauge
        "sum(rate(ttt_task_runs_total[5x]))",
        "sum(rate(ttt_task_runs_total[5m])",
        'ttt_queue_depth{queue="low_priority} > 1',
        "frobnicate(ttt_queue_depth)",
        "ttt_providence_virtual_trades > 0",  # counter without its _total suffix
    ],
)
def test_the_promql_check_finds_broken_expressions(expr: str) -> None:
    assert promql_problems(expr, exported_series())


# ---------------------------------------------------------------------------------------------- grafana


def test_grafana_provisioning_points_at_the_shipped_dashboards() -> None:
    datasources = _yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "ttt.yml")["datasources"]
    by_uid = {ds["uid"]: ds for ds in datasources}
    assert by_uid["prometheus"]["type"] == "prometheus"
    assert by_uid["prometheus"]["url"] == "http://prometheus:9090"
    assert by_uid["tempo"]["type"] == "tempo"
    assert by_uid["tempo"]["url"].startswith("http://tempo:")
    providers = _yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "ttt.yml")["providers"]
    mounts = dict(v.split(":")[:2] for v in SERVICES["grafana"]["volumes"] if v.startswith("./"))
    assert mounts["./grafana/dashboards"] == providers[0]["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"


def test_dashboards_of_section_8_5() -> None:
    boards = _dashboards()
    titles = sorted(board["title"] for board in boards.values())
    assert titles == sorted(SPEC_DASHBOARDS)
    assert len({board["uid"] for board in boards.values()}) == len(boards)
    datasources = _yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "ttt.yml")["datasources"]
    uids = {ds["uid"] for ds in datasources}
    for file, board in boards.items():
        panels = list(_panels(board))
        assert panels, file
        assert len({p["id"] for p in panels}) == len(panels), file
        for panel in panels:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, f"{file}: {panel['title']}"
            assert panel["datasource"]["uid"] in uids, f"{file}: {panel['title']}"
            assert panel["targets"], f"{file}: {panel['title']}"
    traces = next(b for b in boards.values() if b["title"] == "TTT Traces")
    assert {p["datasource"]["uid"] for p in _panels(traces)} == {"tempo"}


def test_dashboard_queries_are_well_formed_and_use_exported_metrics() -> None:
    series = exported_series()
    problems: list[str] = []
    used: set[str] = set()
    for file, board in _dashboards().items():
        for panel in _panels(board):
            for target in panel["targets"]:
                if panel["datasource"]["uid"] != "prometheus":
                    continue
                expr = target.get("expr", "")
                used.update(METRIC_RE.findall(expr))
                problems += [f"{file}: {panel['title']}: {p}" for p in promql_problems(expr, series)]
    assert problems == []
    # The panels the spec names for each board draw on these families.
    for needed in (
        "ttt_account_value_usd",
        "ttt_account_margin_used_usd",
        "ttt_take_profit_gain_ratio",
        "ttt_providence_active_runs",
        "ttt_providence_runs_direction",
        "ttt_providence_open_pnl_usd",
        "ttt_providence_shard_step_seconds_bucket",
        "ttt_providence_shard_lag_seconds",
        "ttt_providence_stale_ticks_total",
        "ttt_providence_run_ends_total",
        "ttt_providence_height",
        "ttt_position_desired",
        "ttt_position_actual",
        "ttt_quorum_source_errors_total",
        "ttt_quorum_dissent_total",
        "ttt_gateway_orders_total",
        "ttt_fills_total",
        "ttt_fees_usd_total",
        "ttt_price_age_seconds",
        "ttt_market_data_bar_age_seconds",
        "ttt_market_data_fetch_total",
        "ttt_price_updates_total",
        "ttt_exchange_circuit_open",
        "ttt_queue_depth",
        "ttt_task_runs_total",
        "ttt_task_duration_seconds_bucket",
        "ttt_scheduler_overruns_total",
    ):
        assert needed in used, needed


# ---------------------------------------------------------------------------------------------- tracing


def test_otel_collector_forwards_otlp_http_to_tempo() -> None:
    doc = _yaml(DEPLOY / "otel-collector.yml")
    assert doc["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    for pipeline in doc["service"]["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in doc[kind], f"{kind} {component} is not defined"
    exporters = doc["service"]["pipelines"]["traces"]["exporters"]
    assert any(doc["exporters"][e]["endpoint"] == "tempo:4317" for e in exporters)
    tempo = _yaml(DEPLOY / "tempo.yml")
    assert tempo["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].endswith(":4317")
    assert _yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "ttt.yml")["datasources"][1][
        "url"
    ].endswith(f":{tempo['server']['http_listen_port']}")
    assert "./otel-collector.yml:/etc/otelcol/config.yml:ro" in SERVICES["otel-collector"]["volumes"]
    assert SERVICES["otel-collector"]["command"] == ["--config=/etc/otelcol/config.yml"]
