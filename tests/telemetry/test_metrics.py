"""Metric names and labels of §8.1, and the DB-derived gauge re-export."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from ttt.telemetry.metrics import DB_GAUGES, DbGaugeCollector, Metrics, exposition


def _families(payload: bytes) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(payload.decode())}


def test_spec_metric_names_are_exposed() -> None:
    m = Metrics.create()
    m.reconciliation_cycles_total.labels("sched", "completed").inc()
    m.alerts_total.labels("reconcile", "stale_price", "critical").inc(2)
    body, ctype = exposition(m.registry)
    assert ctype.startswith("text/plain")
    text = body.decode()
    assert 'ttt_reconciliation_cycles_total{outcome="completed",trigger="sched"} 1.0' in text
    assert 'ttt_alerts_total{component="reconcile",reason="stale_price",severity="critical"} 2.0' in text
    for name in (
        "ttt_providence_shard_step_seconds",
        "ttt_providence_stale_ticks_total",
        "ttt_gateway_orders_total",
        "ttt_exchange_circuit_open",
        "ttt_scheduler_overruns_total",
    ):
        assert f"# TYPE {name}" in text


def test_db_gauges_reexported_once_and_bad_entries_isolated() -> None:
    doc = {
        "gauges": {
            "ttt_providence_active_runs": [{"labels": {"symbol": "BTC/USDC:USDC"}, "value": 42}],
            "ttt_providence_height": [{"labels": {}, "value": 3}],
            "ttt_account_value_usd": [{"labels": {"wrong": "x"}, "value": 1}],
        }
    }
    reg = CollectorRegistry()
    reg.register(DbGaugeCollector(lambda: json.dumps(doc).encode()))
    text = exposition(reg)[0].decode()
    assert 'ttt_providence_active_runs{symbol="BTC/USDC:USDC"} 42.0' in text
    assert "ttt_providence_height 3.0" in text
    assert "\nttt_account_value_usd " not in text
    assert 'ttt_providence_active_runs{symbol="BTC/USDC:USDC"}' in text  # other families unaffected
    assert set(_families(exposition(reg)[0])) <= set(DB_GAUGES)


def test_db_gauges_missing_document_exports_nothing() -> None:
    reg = CollectorRegistry()
    reg.register(DbGaugeCollector(lambda: None))
    families = _families(exposition(reg)[0])
    assert all(not getattr(f, "samples", []) for f in families.values())
