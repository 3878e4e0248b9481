"""Prometheus metrics of services.md §8.1.

Every process builds one `Metrics` on a registry (the default registry in production, a private one in
tests). Gauges carry a multiprocess mode so prefork Celery workers export correctly when
`PROMETHEUS_MULTIPROC_DIR` is set. DB-derived gauges are not observed here: `ttt.ops.collect_metrics`
computes them once into the cache and `DbGaugeCollector` re-exports that document, so each series exists once.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

DB_GAUGES_KEY = "metrics:db"

# DB-derived gauges (computed by collect_metrics, exported by DbGaugeCollector): name -> (help, labels)
DB_GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "ttt_providence_active_runs": ("Active runs (end_time NULL, exit_run false)", ("symbol",)),
    "ttt_providence_runs_direction": ("Active runs by sign of position_direction", ("symbol", "direction")),
    "ttt_providence_open_pnl_usd": ("Sum of live_pnl of active runs", ("symbol",)),
    "ttt_providence_height": ("Highest epoch height", ()),
    "ttt_account_value_usd": ("Latest usable snapshot account value", ()),
    "ttt_account_margin_used_usd": ("Margin used", ("kind",)),
    "ttt_market_data_bar_age_seconds": ("now - newest bar open time", ("symbol", "timeframe")),
    "ttt_queue_depth": ("Broker queue length", ("queue",)),
}


@dataclass(frozen=True)
class Metrics:
    """All process-observed metrics; labels never carry unbounded values (run ids, client order ids)."""

    registry: CollectorRegistry
    shard_step_seconds: Histogram
    shard_lag_seconds: Gauge
    virtual_trades_total: Counter
    run_ends_total: Counter
    stale_ticks_total: Counter
    missed_ticks_total: Counter
    db_write_failures_total: Counter
    reconciliation_cycles_total: Counter
    reconciliation_cycle_seconds: Histogram
    reconciliation_last_success: Gauge
    reconciliation_symbol_outcomes_total: Counter
    reconciliation_holds_total: Counter
    position_desired: Gauge
    position_actual: Gauge
    quorum_source_errors_total: Counter
    quorum_dissent_total: Counter
    balance_snapshots_total: Counter
    take_profit_gain_ratio: Gauge
    epochs_total: Counter
    take_profit_readings_skipped_total: Counter
    alerts_total: Counter
    gateway_requests_total: Counter
    gateway_orders_total: Counter
    gateway_replays_total: Counter
    exchange_request_seconds: Histogram
    exchange_requests_total: Counter
    exchange_circuit_open: Gauge
    exchange_forbidden_actions_total: Counter
    fills_total: Counter
    fees_usd_total: Counter
    foreign_open_orders: Gauge
    observer_polls_total: Counter
    observer_document_age_seconds: Gauge
    price_age_seconds: Gauge
    price_updates_total: Counter
    market_data_fetch_total: Counter
    task_runs_total: Counter
    task_duration_seconds: Histogram
    scheduler_overruns_total: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> Metrics:
        reg = registry if registry is not None else CollectorRegistry(auto_describe=True)

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, registry=reg)

        def gauge(name: str, doc: str, labels: tuple[str, ...] = (), mode: str = "mostrecent") -> Gauge:
            return Gauge(name, doc, labels, registry=reg, multiprocess_mode=mode)  # type: ignore[arg-type]

        def histogram(name: str, doc: str, labels: tuple[str, ...] = ()) -> Histogram:
            return Histogram(name, doc, labels, registry=reg)

        return cls(
            registry=reg,
            shard_step_seconds=histogram(
                "ttt_providence_shard_step_seconds", "Duration of one shard step", ("symbol",)
            ),
            shard_lag_seconds=gauge(
                "ttt_providence_shard_lag_seconds", "now - last completed tick", ("symbol", "shard")
            ),
            virtual_trades_total=counter(
                "ttt_providence_virtual_trades", "Virtual trades", ("symbol", "side")
            ),
            run_ends_total=counter("ttt_providence_run_ends", "Run ends by reason", ("symbol", "reason")),
            stale_ticks_total=counter(
                "ttt_providence_stale_ticks", "Shard ticks skipped for missing inputs", ("symbol", "missing")
            ),
            missed_ticks_total=counter(
                "ttt_providence_missed_ticks", "Ticks a shard did not process", ("symbol",)
            ),
            db_write_failures_total=counter(
                "ttt_providence_db_write_failures", "Failed shard-tick DB transactions", ("symbol",)
            ),
            reconciliation_cycles_total=counter(
                "ttt_reconciliation_cycles", "Reconciliation cycles", ("trigger", "outcome")
            ),
            reconciliation_cycle_seconds=histogram("ttt_reconciliation_cycle_seconds", "Cycle duration"),
            reconciliation_last_success=gauge(
                "ttt_reconciliation_last_success_timestamp_seconds",
                "End time of the last completed cycle",
                mode="max",
            ),
            reconciliation_symbol_outcomes_total=counter(
                "ttt_reconciliation_symbol_outcomes", "Per-symbol outcomes", ("symbol", "outcome")
            ),
            reconciliation_holds_total=counter(
                "ttt_reconciliation_holds", "Holds by reason", ("symbol", "reason")
            ),
            position_desired=gauge("ttt_position_desired", "Desired position after the clamp", ("symbol",)),
            position_actual=gauge("ttt_position_actual", "Quorum actual position", ("symbol",)),
            quorum_source_errors_total=counter(
                "ttt_quorum_source_errors", "Unavailable quorum readings", ("source", "reason")
            ),
            quorum_dissent_total=counter("ttt_quorum_dissent", "Dissenting readings", ("source",)),
            balance_snapshots_total=counter("ttt_balance_snapshots", "Snapshot outcomes", ("result",)),
            take_profit_gain_ratio=gauge("ttt_take_profit_gain_ratio", "(V - baseline)/baseline"),
            epochs_total=counter("ttt_epochs", "Epochs", ("kind",)),
            take_profit_readings_skipped_total=counter(
                "ttt_take_profit_readings_skipped", "Balance readings not evaluated", ("reason",)
            ),
            alerts_total=counter("ttt_alerts", "Alerts", ("component", "reason", "severity")),
            gateway_requests_total=counter("ttt_gateway_requests", "HTTP requests", ("endpoint", "code")),
            gateway_orders_total=counter(
                "ttt_gateway_orders", "Orders by status", ("symbol", "side", "style", "status")
            ),
            gateway_replays_total=counter("ttt_gateway_replays", "Idempotent replays"),
            exchange_request_seconds=histogram(
                "ttt_exchange_request_seconds", "Exchange call latency", ("exchange", "operation")
            ),
            exchange_requests_total=counter(
                "ttt_exchange_requests", "Exchange calls", ("exchange", "operation", "result")
            ),
            exchange_circuit_open=gauge(
                "ttt_exchange_circuit_open", "1 when the circuit breaker is open", ("exchange",), mode="max"
            ),
            exchange_forbidden_actions_total=counter(
                "ttt_exchange_forbidden_actions", "Guard refusals", ("action",)
            ),
            fills_total=counter("ttt_fills", "Fills of our orders", ("symbol", "liquidity")),
            fees_usd_total=counter("ttt_fees_usd", "Fees of our orders", ("symbol", "liquidity")),
            foreign_open_orders=gauge("ttt_foreign_open_orders", "Open orders not ours", ("symbol",)),
            observer_polls_total=counter("ttt_observer_polls", "Observer server polls", ("result",)),
            observer_document_age_seconds=gauge(
                "ttt_observer_document_age_seconds", "Observer document age seen by consumers", ("observer",)
            ),
            price_age_seconds=gauge("ttt_price_age_seconds", "now - ts of the latest price", ("symbol",)),
            price_updates_total=counter("ttt_price_updates", "Published prices", ("symbol", "source")),
            market_data_fetch_total=counter(
                "ttt_market_data_fetch", "OHLCV jobs", ("symbol", "timeframe", "result")
            ),
            task_runs_total=counter("ttt_task_runs", "Task executions", ("task", "result")),
            task_duration_seconds=histogram("ttt_task_duration_seconds", "Task duration", ("task",)),
            scheduler_overruns_total=counter(
                "ttt_scheduler_overruns", "Runs skipped because the previous one held the lock", ("task",)
            ),
        )


class DbGaugeCollector(Collector):
    """Re-exports the DB-derived gauges document that collect_metrics stores in the cache.

    Each family is built in its own guarded block: one malformed entry never hides the others.
    """

    def __init__(self, load: Callable[[], bytes | None]) -> None:
        self._load = load

    def collect(self) -> Iterator[Metric]:
        try:
            raw = self._load()
            doc = json.loads(raw) if raw else {}
        except Exception as exc:
            log.warning("db gauges unavailable: %s", exc)
            return
        gauges = doc.get("gauges", {}) if isinstance(doc, dict) else {}
        for name, (doc_text, labels) in DB_GAUGES.items():
            try:
                family = GaugeMetricFamily(name, doc_text, labels=list(labels))
                for sample in gauges.get(name, []):
                    if set(sample["labels"]) != set(labels):
                        raise ValueError(f"labels {sorted(sample['labels'])} != {list(labels)}")
                    values = [str(sample["labels"][label]) for label in labels]
                    family.add_metric(values, float(sample["value"]))
                yield family
            except Exception as exc:
                log.warning("db gauge %s skipped: %s", name, exc)


def exposition(registry: CollectorRegistry | None = None) -> tuple[bytes, str]:
    """The `/metrics` body and content type; aggregates worker files in multiprocess mode."""
    if registry is None and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry if registry is not None else REGISTRY), CONTENT_TYPE_LATEST
